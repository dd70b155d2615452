"""The demo feed: sample devices + readings through the in-process amqtt broker into DuckDB."""

from __future__ import annotations

import shutil
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
from shapely.geometry import box

from assets.sensors.broker import INGESTER_USER, EmbeddedBroker, start_mosquitto
from assets.sensors.demo import feed_sample
from assets.sensors.evidence import field_evidence
from assets.sensors.registry import load_devices_file
from assets.store.db import connect

SAMPLE = Path(__file__).resolve().parents[1] / "sample_tiles" / "sensors"


@pytest.fixture
def short_log(tmp_path: Path) -> Path:
    """The last four days of the sample log (keeps the test quick; evidence needs no more)."""
    lines = (SAMPLE / "readings.csv").read_text().splitlines()
    keep = [lines[0]] + [line for line in lines[1:] if line.split(",")[1] >= "2016-09-27"]
    path = tmp_path / "readings.csv"
    path.write_text("\n".join(keep) + "\n")
    return path


def test_feed_sample_is_idempotent_and_releases_the_database(tmp_path: Path, short_log: Path) -> None:
    db = tmp_path / "demo.duckdb"
    expected = len(short_log.read_text().splitlines()) - 1
    first = feed_sample(db, SAMPLE / "devices.json", short_log)
    assert (first.stored, first.duplicates, first.quarantined) == (expected, 0, 0)
    # Another process can open the file for writing right away: nothing holds it.
    opened = subprocess.run([sys.executable, "-c", "import duckdb, sys; duckdb.connect(sys.argv[1]).close()", str(db)],
                            capture_output=True, text=True, timeout=60)
    assert opened.returncode == 0, opened.stderr
    second = feed_sample(db, SAMPLE / "devices.json", short_log)
    assert (second.stored, second.duplicates) == (0, expected)
    with connect(db) as con:
        assert con.execute("SELECT count(*), count(DISTINCT (device_id, seq)) FROM sensor_readings").fetchall()[0] == (
            expected, expected)
        assert con.execute("SELECT count(*) FROM sensor_devices").fetchall()[0][0] == 3
        device = load_devices_file(SAMPLE / "devices.json")[0][0]
        field = box(device.lon - 0.001, device.lat - 0.001, device.lon + 0.001, device.lat + 0.001)
        ev = field_evidence(con, device.borrower_id, field, date(2016, 9, 30), 24.0)
    assert ev.status == "corroborated" and ev.device_ids == (device.device_id,)


def test_embedded_broker_start_stop_frees_the_port() -> None:
    broker = EmbeddedBroker().start()
    port = broker.port
    broker.stop()
    import socket

    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # ignore TIME_WAIT, not a live listener
        s.bind(("127.0.0.1", port))
        s.listen()  # fails if the broker still listens there


@pytest.mark.mosquitto
@pytest.mark.skipif(shutil.which("mosquitto") is None, reason="mosquitto is not installed (.ci/run installs it with apt)")
def test_feed_sample_through_a_real_broker_logs_devices_in(tmp_path: Path, short_log: Path) -> None:
    users = {INGESTER_USER: "demo-ingester", **{d.device_id: s for d, s in load_devices_file(SAMPLE / "devices.json") if s}}
    broker = start_mosquitto(tmp_path / "broker", users)
    try:
        stats = feed_sample(tmp_path / "demo.duckdb", SAMPLE / "devices.json", short_log, broker_url=broker.url(INGESTER_USER))
    finally:
        broker.stop()
    assert stats.stored == len(short_log.read_text().splitlines()) - 1 and stats.quarantined == 0


def test_replay_speed_paces_messages_by_their_timestamps() -> None:
    from datetime import datetime, timedelta

    from assets.sensors.replay import Message, publish
    from assets.sensors.schema import make_payload

    t0 = datetime(2016, 9, 1)
    messages = [Message("probe-001", i + 1, t0 + timedelta(minutes=15 * i),
                        make_payload("probe-001", i + 1, t0 + timedelta(minutes=15 * i), {"battery": (3.2, "V")}))
                for i in range(3)]
    with EmbeddedBroker() as broker:
        paced = publish(list(reversed(messages)), broker.url, speed=1800)  # 15 min of log = 0.5 s
    assert paced.published == 3
    assert paced.elapsed_s >= 0.9  # two gaps of 0.5 s, whatever order the rows came in
