"""SQL lives in store/: a guard for the house rule, and the named reads that replaced inline SQL."""

from __future__ import annotations

import re
from datetime import date, datetime
from pathlib import Path

from assets.store import append, connect
from assets.store import sensors as store_sensors
from assets.store.claims import claim_status_rows
from assets.store.tiles import has_tiles_up_to

SRC = Path(__file__).resolve().parents[1] / "src" / "assets"
_SQL_CALL = re.compile(r"\.(execute|executemany|sql)\(")


def test_no_sql_outside_the_store() -> None:
    offenders = [f"{p.relative_to(SRC)}:{i}" for p in SRC.rglob("*.py") if "store" not in p.relative_to(SRC).parts
                 for i, line in enumerate(p.read_text().splitlines(), 1) if _SQL_CALL.search(line)]
    assert offenders == [], "move these queries into src/assets/store/ behind named functions"


def test_sensor_reads(db_path: Path) -> None:
    with connect(db_path) as con:
        assert store_sensors.count_readings(con) == 0 and store_sensors.count_alerts(con) == 0
        assert store_sensors.last_drain(con) is None and store_sensors.device_row(con, "probe-x") is None
        append(con, "sensor_quarantine", [
            {"quarantine_id": f"q{i}", "received_at": datetime(2016, 5, 1, 0, i), "topic": "t", "device_id": None,
             "reason_code": code, "reason": f"why {i}", "payload_size": 1, "payload": b"x"}
            for i, code in enumerate(["not_json", "not_json", "out_of_range"])])
        assert store_sensors.quarantine_counts(con) == [("not_json", 2), ("out_of_range", 1)]
        assert [r[2] for r in store_sensors.recent_quarantine(con, 2)] == ["why 2", "why 1"]
        assert store_sensors.last_reading_at(con, "probe-x", datetime(2017, 1, 1)) is None
        assert store_sensors.reading_quality(con, "probe-x", datetime(2016, 1, 1), datetime(2017, 1, 1),
                                             (0, 60), (-10, 50)) == (0, 0, None)


def test_tile_and_claim_status_reads(db_path: Path) -> None:
    with connect(db_path) as con:
        assert has_tiles_up_to(con, date(2016, 9, 30)) is False
        assert claim_status_rows(con, ["nope"]) == []
