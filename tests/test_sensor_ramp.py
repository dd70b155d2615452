"""A drifting soil probe, seen as a ramp in its own soil moisture (#15 monitoring), judged on real sensor logs: the real EcoIrrigate probes
raise no drift alert over four months; the same logs with a calibration ramp added do."""

from __future__ import annotations

import csv
import json
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from assets.errors import InputError
from assets.monitor import MonitoringParams, _parse
from assets.sensors.evidence import alerts, moisture_drift
from assets.sensors.ingest import store_batch
from assets.sensors.registry import Device, register_device
from assets.sensors.schema import make_payload, topic_for
from assets.store.db import connect

DEVICE = "probe-kolkata"


def _readings(shared_data: Path, farm: str = "Kolkata_Farm_1") -> list[tuple[datetime, float, float]]:
    with open(shared_data / "iot" / "ecoirrigate_kolkata_2025.csv", newline="") as fh:
        return [(datetime.fromisoformat(r["Timestamp"]), float(r["Volumetric_Moisture_Pct"]),
                 float(r["Soil_Temperature_C"])) for r in csv.DictReader(fh) if r["Farm_ID"] == farm]


def _load(db: Path, rows: list[tuple[datetime, float, float]]) -> None:
    with connect(db) as con:
        register_device(con, Device(DEVICE, "farmer-001", "soil_probe", 88.36, 22.57))
        batch = [(topic_for(DEVICE), make_payload(DEVICE, i, ts, {"soil_moisture": (round(sm, 2), "%"),
                                                                   "soil_temperature": (round(st, 2), "C")}))
                 for i, (ts, sm, st) in enumerate(rows)]
        store_batch(con, batch)


def _days(rows: list[tuple[datetime, float, float]]) -> list[date]:
    first, last = rows[0][0].date() + timedelta(days=30), rows[-1][0].date()
    return [first + timedelta(days=k) for k in range(0, (last - first).days + 1, 3)]


def test_real_probes_raise_no_drift_alert(shared_data: Path, tmp_path: Path) -> None:
    for farm in ("Kolkata_Farm_1", "Kolkata_Farm_2"):
        rows = _readings(shared_data, farm)
        db = tmp_path / f"{farm}.duckdb"
        _load(db, rows)
        with connect(db) as con:
            kinds = [r["kind"] for day in _days(rows) for r in alerts(con, day)]
            lines = [moisture_drift(con, DEVICE, day, 21) for day in _days(rows)]
        assert "sensor_drift" not in kinds, farm
        assert all(d is not None for d in lines) and max(abs(d.change_pct) for d in lines if d) < 8.0


def test_a_calibration_ramp_on_real_readings_is_a_drift_alert(shared_data: Path, tmp_path: Path) -> None:
    rows = _readings(shared_data)
    start = rows[-1][0] - timedelta(days=28)
    ramped = [(ts, sm + max(0.0, (ts - start).total_seconds() / 86400) * 0.6, st) for ts, sm, st in rows]
    _load(tmp_path / "db.duckdb", ramped)
    as_of = rows[-1][0].date() - timedelta(days=1)
    with connect(tmp_path / "db.duckdb") as con:
        found = [r for r in alerts(con, as_of) if r["kind"] == "sensor_drift"]
        quiet = alerts(con, start.date() - timedelta(days=1))  # before the ramp began
        strict = alerts(con, as_of, MonitoringParams(version="t", sensor_soil_ramp_min_change_pct=50.0))
    assert len(found) == 1 and found[0]["device_id"] == DEVICE and "recalibrate" in found[0]["message"]
    details = json.loads(found[0]["details"])
    assert details["drift"]["change_pct"] >= 8.0 and details["drift"]["r2"] >= 0.9
    assert details["thresholds"] == {"days": 21, "min_change_pct": 8.0, "min_r2": 0.9}
    assert "sensor_drift" not in {r["kind"] for r in quiet}
    assert "sensor_drift" not in {r["kind"] for r in strict}  # thresholds come from the parameters


def test_drift_thresholds_are_checked_in_the_parameters() -> None:
    ok = _parse("[monitoring]\nsensor_soil_ramp_days = 14\nsensor_soil_ramp_min_r2 = 0.8\n", "t1")
    assert (ok.sensor_soil_ramp_days, ok.sensor_soil_ramp_min_r2, ok.sensor_silent_hours) == (14, 0.8, 24.0)
    with pytest.raises(InputError, match="sensor_soil_ramp_min_r2 = 1.5 is a share of variance"):
        _parse("[monitoring]\nsensor_soil_ramp_min_r2 = 1.5\n", "t2")
    with pytest.raises(InputError, match="must be a number >= 0"):
        _parse("[monitoring]\nsensor_silent_hours = -1\n", "t3")
