"""Nights that go wrong (#15 faults): the run finishes what it can, reports the rest, and loses
nothing already stored. (The corrupt and the re-delivered tile: test_runs.py; the sensor
ingester killed or its broker restarted: test_sensors_mqtt.py.)"""

from __future__ import annotations

import socket
from datetime import date
from pathlib import Path

import duckdb
import pytest

from assets.config import Settings
from assets.pipeline import register_claims

pytestmark = pytest.mark.slow
AS_OF = date(2016, 9, 30)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens once the socket is closed


def _limits(db: Path) -> list[tuple]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute("SELECT claim_id, limit_cny FROM claim_status ORDER BY claim_id").fetchall()


def test_the_broker_down_during_the_night(prefect_harness, repo: Path, tmp_path: Path) -> None:
    """No broker: the sensor stage fails with the broker named, the tiles and fields are still done."""
    from assets.flows.nightly import NightlyConfig, run_nightly

    db = tmp_path / "assets.duckdb"
    register_claims(db, repo / "sample_tiles/claims/farmer-001.geojson", "farmer-001", Settings(db_path=db))
    config = NightlyConfig(db_path=str(db), tiles_dir=str(repo / "sample_tiles"), as_of=AS_OF,
                           broker_url=f"mqtt://127.0.0.1:{_closed_port()}")
    report = run_nightly(config)["report"]
    assert report["status"] == "partial" and report["fields_refreshed"] == 2 and report["limits_changed"] == 2
    with duckdb.connect(str(db), read_only=True) as con:
        (stage,) = con.execute("SELECT status, message FROM run_stages WHERE stage = 'sensors'").fetchall()
    assert stage[0] == "failed" and "127.0.0.1" in stage[1]
    assert all(limit for _, limit in _limits(db))  # the fields were valued without the night's readings
