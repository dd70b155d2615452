"""Sensor SQL: the device registry, readings, drains and the quarantine, as named reads and writes.

The sensors room (`assets.sensors`) keeps the meaning (Device, plausibility, alerts); this module
only knows tables and columns, so the house's rule holds: no SQL outside `store/`.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import duckdb

from assets.store.db import append
from assets.store.writer import write_op

_DEVICE = "SELECT device_id, borrower_id, kind, lon, lat, installed_at, retired_at FROM sensor_devices"
_DRAIN_COLUMNS = ("drain_id", "broker", "client_id", "started_at", "finished_at", "received", "stored", "duplicates",
                  "quarantined")


def device_row(con: duckdb.DuckDBPyConnection, device_id: str) -> tuple[Any, ...] | None:
    """(device_id, borrower_id, kind, lon, lat, installed_at, retired_at), or None when unknown."""
    rows = con.execute(f"{_DEVICE} WHERE device_id = ?", [device_id]).fetchall()
    return rows[0] if rows else None


def device_rows(con: duckdb.DuckDBPyConnection, borrower_id: str | None = None) -> list[tuple[Any, ...]]:
    """Every device (or one borrower's), by id; columns as in `device_row`."""
    if borrower_id is None:
        return con.execute(f"{_DEVICE} ORDER BY device_id").fetchall()
    return con.execute(f"{_DEVICE} WHERE borrower_id = ? ORDER BY device_id", [borrower_id]).fetchall()


def device_retirements(con: duckdb.DuckDBPyConnection) -> list[tuple[str, datetime | None]]:
    """(device_id, retired_at) of every registered device: what the message validator needs."""
    return con.execute("SELECT device_id, retired_at FROM sensor_devices").fetchall()


def set_device_retired(con: duckdb.DuckDBPyConnection, device_id: str, at: datetime) -> None:
    con.execute("UPDATE sensor_devices SET retired_at = ? WHERE device_id = ?", [at, device_id])


@write_op
def add_device(con: duckdb.DuckDBPyConnection, row: dict[str, Any]) -> list[Any] | None:
    """Register a device row; when the id is taken, write nothing and return the stored row."""
    existing = device_row(con, row["device_id"])
    if existing is not None:
        return list(existing)
    append(con, "sensor_devices", [row])
    return None


@write_op
def retire_device(con: duckdb.DuckDBPyConnection, device_id: str, at: datetime) -> dict[str, Any] | None:
    """Retire a device still in service: ``{"row": its row afterwards, "retired": whether this
    call retired it}`` (False: it already was, nothing written); None when there is no such device."""
    existing = device_row(con, device_id)
    if existing is None:
        return None
    if existing[6] is not None:
        return {"row": list(existing), "retired": False}
    set_device_retired(con, device_id, at)
    return {"row": list(device_row(con, device_id) or ()), "retired": True}


def last_reading_at(con: duckdb.DuckDBPyConnection, device_id: str, before: datetime) -> datetime | None:
    """When the device last reported before ``before`` (None: never)."""
    return con.execute("SELECT max(ts) FROM sensor_readings WHERE device_id = ? AND ts < ?",
                       [device_id, before]).fetchall()[0][0]


def reading_quality(con: duckdb.DuckDBPyConnection, device_id: str, start: datetime, end: datetime,
                    moisture_range: tuple[float, float], temp_range: tuple[float, float]
                    ) -> tuple[int, int, float | None]:
    """(readings, readings inside both plausible ranges, soil-moisture std) in [start, end)."""
    (lo_m, hi_m), (lo_t, hi_t) = moisture_range, temp_range
    n, n_ok, sm_std = con.execute(
        "SELECT count(*),"
        " count(*) FILTER (WHERE (soil_moisture_pct IS NULL OR soil_moisture_pct BETWEEN ? AND ?)"
        "                    AND (soil_temp_c IS NULL OR soil_temp_c BETWEEN ? AND ?)),"
        " stddev_samp(soil_moisture_pct)"
        " FROM sensor_readings WHERE device_id = ? AND ts >= ? AND ts < ?",
        [lo_m, hi_m, lo_t, hi_t, device_id, start, end],
    ).fetchall()[0]
    return int(n), int(n_ok), sm_std


def daily_moisture(con: duckdb.DuckDBPyConnection, device_id: str, start: datetime, end: datetime
                   ) -> list[tuple[date, float]]:
    """(day, mean soil moisture %) for each day in [start, end) with a moisture reading."""
    return con.execute(
        "SELECT CAST(ts AS DATE) AS d, avg(soil_moisture_pct) FROM sensor_readings"
        " WHERE device_id = ? AND ts >= ? AND ts < ? AND soil_moisture_pct IS NOT NULL"
        " GROUP BY d ORDER BY d",
        [device_id, start, end],
    ).fetchall()


def daily_means(con: duckdb.DuckDBPyConnection, start: datetime, end: datetime,
                columns: tuple[str, ...]) -> list[tuple[Any, ...]]:
    """(device_id, day, mean of each of ``columns``) of every device and day in [start, end) with readings."""
    allowed = {"air_temp_c", "air_pressure_hpa", "soil_temp_c", "soil_moisture_pct"}
    if not set(columns) <= allowed:
        raise ValueError(f"daily_means: columns {sorted(set(columns) - allowed)} are not sensor readings")
    means = ", ".join(f"avg({c})" for c in columns)
    return con.execute(
        f"SELECT device_id, CAST(ts AS DATE) AS d, {means} FROM sensor_readings WHERE ts >= ? AND ts < ?"
        " GROUP BY device_id, d ORDER BY device_id, d", [start, end]).fetchall()


def stored_times(con: duckdb.DuckDBPyConnection, keys: Any) -> dict[tuple[str, int], Any]:
    """(device_id, seq) -> stored ts, for the keys of an Arrow table (columns device_id, seq) already stored."""
    con.register("incoming_keys", keys)
    try:
        rows = con.execute("SELECT r.device_id, r.seq, r.ts FROM sensor_readings r "
                           "JOIN incoming_keys k USING (device_id, seq)").fetchall()
    finally:
        con.unregister("incoming_keys")
    return {(d, q): ts for d, q, ts in rows}


def count_readings(con: duckdb.DuckDBPyConnection) -> int:
    return int(con.execute("SELECT count(*) FROM sensor_readings").fetchall()[0][0])


def count_alerts(con: duckdb.DuckDBPyConnection) -> int:
    return int(con.execute("SELECT count(*) FROM alerts").fetchall()[0][0])


def last_drain(con: duckdb.DuckDBPyConnection) -> dict[str, object] | None:
    """The most recent sensor drain's counts, or None before the first."""
    rows = con.execute(f"SELECT {', '.join(_DRAIN_COLUMNS)} FROM sensor_drains ORDER BY finished_at DESC LIMIT 1"
                       ).fetchall()
    return dict(zip(_DRAIN_COLUMNS, rows[0])) if rows else None


def quarantine_counts(con: duckdb.DuckDBPyConnection) -> list[tuple[str, int]]:
    """(reason_code, messages) over the whole quarantine, most frequent first."""
    return con.execute("SELECT reason_code, count(*) FROM sensor_quarantine GROUP BY 1 ORDER BY 2 DESC").fetchall()


def recent_quarantine(con: duckdb.DuckDBPyConnection, limit: int) -> list[tuple[datetime, str, str]]:
    """(received_at, topic, reason) of the latest ``limit`` refused messages."""
    return con.execute("SELECT received_at, topic, reason FROM sensor_quarantine ORDER BY received_at DESC LIMIT ?",
                       [limit]).fetchall()


def quarantined_after_last_reading(con: duckdb.DuckDBPyConnection, device_id: str) -> dict[str, int]:
    """{reason_code: messages} a device sent that were refused after its last stored reading arrived:
    a device that keeps sending but whose messages are all refused (a counter that restarted after a
    reboot: `seq_conflict`) is not a device without power."""
    rows = con.execute(
        "SELECT q.reason_code, count(*) FROM sensor_quarantine q WHERE q.device_id = ? AND q.received_at >= "
        "coalesce((SELECT max(received_at) FROM sensor_readings r WHERE r.device_id = ?), TIMESTAMP '1970-01-01') "
        "GROUP BY 1 ORDER BY 2 DESC", [device_id, device_id]).fetchall()
    return {code: int(n) for code, n in rows}
