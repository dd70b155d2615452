"""Sensor drift (#15 post-loan monitoring): a device that moves away from its neighbours raises
`sensor_drift`; a constant bias does not; thresholds come from the parameters' [monitoring] table."""

from __future__ import annotations

import json
import math
from datetime import date, datetime, timedelta
from pathlib import Path

from assets.monitor import _parse
from assets.sensors.evidence import alerts, drift_alerts
from assets.sensors.registry import Device, register_device
from assets.sensors.schema import topic_for
from assets.sensors.writer import store_batch
from assets.store import connect

AS_OF = date(2024, 6, 30)
START = datetime(2024, 5, 21)  # 40 days of hourly readings up to AS_OF


def _payload(device: str, seq: int, ts: datetime, temp: float, pressure: float) -> bytes:
    return json.dumps({"device_id": device, "seq": seq, "ts": ts.isoformat() + "Z", "readings": {
        "air_temperature": {"value": round(temp, 2), "unit": "C"},
        "air_pressure": {"value": round(pressure, 1), "unit": "hPa"}}}).encode()


def _bank(db: Path) -> None:
    """Four probes 1-2 km apart under the same weather; probe-c reads 2 C warm all along (a bias),
    probe-d jumps 3 C warm for the last 5 days (a drift)."""
    with connect(db) as con:
        for i, name in enumerate("abcd"):
            register_device(con, Device(f"probe-{name}", f"farmer-{i:03d}", "soil_probe", 9.25 + i * 0.01, 56.36))
        messages = []
        for h in range(40 * 24):
            ts = START + timedelta(hours=h)
            weather = 12 + 6 * math.sin(2 * math.pi * h / 24) + 3 * math.sin(2 * math.pi * h / (24 * 9))
            pressure = 1012 + 6 * math.sin(2 * math.pi * h / (24 * 6))
            for i, name in enumerate("abcd"):
                temp = weather + 0.1 * math.sin(h + i)
                temp += 2.0 if name == "c" else 0.0
                temp += 3.0 if name == "d" and ts >= datetime(2024, 6, 26) else 0.0
                messages.append((topic_for(f"probe-{name}"), _payload(f"probe-{name}", h, ts, temp, pressure + 0.2 * i)))
        result = store_batch(con, messages, now=datetime(2024, 7, 1))
        assert result.stored == len(messages)


def test_a_drifting_probe_raises_sensor_drift_a_biased_one_does_not(tmp_path: Path) -> None:
    db = tmp_path / "drift.duckdb"
    _bank(db)
    with connect(db) as con:
        rows = drift_alerts(con, AS_OF)
        assert [(r["device_id"], r["kind"]) for r in rows] == [("probe-d", "sensor_drift")]
        details = json.loads(rows[0]["details"])
        assert details["variable"] == "air_temp_c" and 2.0 <= details["drift"] <= 3.5
        assert details["peers"] == ["probe-a", "probe-b", "probe-c"]
        assert all(2.5 <= c <= 3.5 for c in details["change_against"].values())
        assert "recalibrate" in rows[0]["message"]
        assert "sensor_drift" in {r["kind"] for r in alerts(con, AS_OF)}  # part of the nightly device alerts
        # Before the jump, nobody drifts; the biased probe never does.
        assert drift_alerts(con, date(2024, 6, 20)) == []
        # Thresholds are the parameters' own: a looser one raises nothing, and names its version.
        loose = _parse("[monitoring]\nsensor_drift_air_temp_c = 5.0\n", "test-loose")
        assert drift_alerts(con, AS_OF, loose) == []
        strict = _parse("[monitoring]\nsensor_drift_air_temp_c = 1.0\n", "test-strict")
        assert json.loads(drift_alerts(con, AS_OF, strict)[0]["details"])["params_version"] == "test-strict"


def test_too_few_neighbours_or_days_is_no_judgement(tmp_path: Path) -> None:
    db = tmp_path / "few.duckdb"
    _bank(db)
    with connect(db) as con:
        assert drift_alerts(con, AS_OF, _parse("[monitoring]\nsensor_drift_min_peers = 4\n", "test")) == []
        assert drift_alerts(con, AS_OF, _parse("[monitoring]\nsensor_drift_min_baseline_days = 31\n", "test")) == []


def test_the_bundled_season_raises_no_drift(tmp_path: Path) -> None:
    """Three probes are two neighbours each: too few to tell a drifting probe from its neighbours."""
    from assets.sensors.registry import register_devices_file
    from assets.sensors.replay import read_messages

    sample = Path(__file__).resolve().parents[1] / "sample_tiles" / "sensors"
    with connect(tmp_path / "sample.duckdb") as con:
        register_devices_file(con, sample / "devices.json")
        messages, _ = read_messages(sample / "readings.csv")
        store_batch(con, [(m.topic, m.payload) for m in messages], now=datetime(2017, 1, 1))
        assert all(drift_alerts(con, date(2016, 9, d)) == [] for d in range(5, 31, 5))
