"""Sensors against a real Mosquitto (repo config: password file, ACL, persistence) on loopback.

Faults: broker restart, ingester SIGKILL, replay twice, DuckDB locked by another process. After
each, every message the broker acknowledged to its publisher is stored exactly once.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from assets.cli import main as cli_main
from assets.sensors.broker import INGESTER_USER, MosquittoBroker, TlsFiles, free_port, start_mosquitto
from assets.sensors.connection import BrokerError, BrokerURL, connect_and_wait, make_client
from assets.sensors.ingest import Ingester
from assets.sensors.registry import Device, register_device
from assets.sensors.replay import Message, publish
from assets.sensors.schema import make_payload, topic_for
from assets.store.db import connect

pytestmark = [
    pytest.mark.mosquitto,
    pytest.mark.skipif(shutil.which("mosquitto") is None, reason="mosquitto is not installed (.ci/run installs it with apt)"),
]

DEVICES = ["probe-001", "probe-002", "probe-003"]
USERS = {INGESTER_USER: "ingest-pw", "ghost-001": "ghost-pw", **{d: f"secret-{d}" for d in DEVICES}}
CREDS = {d: USERS[d] for d in DEVICES}


@pytest.fixture
def broker(tmp_path: Path):  # type: ignore[no-untyped-def]
    b = start_mosquitto(tmp_path / "broker", USERS)
    yield b
    b.stop()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "sensors.duckdb"
    with connect(path) as con:
        for i, d in enumerate(DEVICES):
            register_device(con, Device(d, f"farmer-{i + 1:03d}", "soil_probe", 9.25 + i / 100, 56.36))
    return path


def make_messages(n: int, *, start: int = 1) -> list[Message]:
    t0 = datetime(2024, 6, 1)
    out = []
    for k in range(start, start + n):
        device = DEVICES[k % len(DEVICES)]
        ts = t0 + timedelta(minutes=15 * k)
        out.append(Message(device, k, ts, make_payload(device, k, ts, {"soil_moisture": (20 + k % 7, "%")})))
    return out


def stored_keys(db: Path) -> tuple[int, set[tuple[str, int]]]:
    with connect(db) as con:
        rows = con.execute("SELECT device_id, seq FROM sensor_readings").fetchall()
    return len(rows), set(rows)


def assert_exactly_once(db: Path, messages: list[Message]) -> None:
    count, keys = stored_keys(db)
    assert keys == {(m.device_id, m.seq) for m in messages}
    assert count == len(messages)


def wait_for(predicate, timeout_s: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


# --- authentication and ACL -------------------------------------------------------------

def test_anonymous_and_wrong_password_are_refused(broker: MosquittoBroker) -> None:
    for url in (broker.url(), broker.url("probe-001", "wrong")):
        with pytest.raises(BrokerError, match="refused"):
            publish(make_messages(1), url)


def test_device_cannot_publish_or_read_other_topics(broker: MosquittoBroker, db: Path) -> None:
    ingester = Ingester(db, broker.url(INGESTER_USER), client_id="acl-test", max_latency_s=0.05).start()
    try:
        url = BrokerURL.parse(broker.url("probe-001"))
        spy_got: list[str] = []
        spy = make_client(url, "spy", persistent=False)
        spy.on_message = lambda c, u, m: spy_got.append(m.topic)
        connect_and_wait(spy, url)
        spy.subscribe("farms/+/readings", qos=1)
        forger = make_client(url, "forger", persistent=False)
        connect_and_wait(forger, url)
        forged = make_payload("probe-002", 1, datetime(2024, 6, 1), {"soil_moisture": (99.0, "%")})
        forger.publish(topic_for("probe-002"), forged, qos=1).wait_for_publish(5)  # the broker drops it
        own = make_payload("probe-001", 1, datetime(2024, 6, 1), {"soil_moisture": (20.0, "%")})
        forger.publish(topic_for("probe-001"), own, qos=1).wait_for_publish(5)
        wait_for(lambda: ingester.stats.stored == 1)
        ingester.wait_until(idle_s=0.3, timeout_s=10)
        forger.disconnect(), forger.loop_stop(), spy.disconnect(), spy.loop_stop()
    finally:
        stats = ingester.stop()
    assert stats.received == 1 and spy_got == []
    assert stored_keys(db)[1] == {("probe-001", 1)}


# --- bad input -----------------------------------------------------------------------------

def test_bad_input_is_quarantined_and_ingest_keeps_running(broker: MosquittoBroker, db: Path) -> None:
    def doc(device: str = "probe-001", **over: object) -> bytes:
        d: dict[str, object] = {"device_id": device, "seq": 1, "ts": "2024-06-01T00:00:00Z",
                                "readings": {"soil_moisture": {"value": 20.0, "unit": "%"}}}
        d.update(over)
        return json.dumps({k: v for k, v in d.items() if v is not ...}).encode()

    future = (datetime.utcnow() + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    bad = [
        ("probe-001", b"this is not json", "not_json"),
        ("probe-001", doc(seq=...), "missing_field"),
        ("probe-001", doc(seq="one"), "wrong_type"),
        ("probe-001", doc(readings={"soil_moisture": {"value": 250.0, "unit": "%"}}), "out_of_range"),
        ("probe-002", doc("probe-002", ts=future), "future_timestamp"),
        ("ghost-001", doc("ghost-001"), "unknown_device"),  # valid broker login, not registered
        ("probe-003", doc("probe-001", seq=2), "topic_mismatch"),  # on its own topic, claiming another id
        ("probe-002", doc("probe-002", pad="x" * 10_000), "oversize"),
    ]
    ingester = Ingester(db, broker.url(INGESTER_USER), client_id="bad-input", max_latency_s=0.05).start()
    try:
        clients = {}
        for device, payload, _ in bad:
            if device not in clients:
                url = BrokerURL.parse(broker.url(device))
                clients[device] = make_client(url, f"bad-{device}", persistent=False)
                connect_and_wait(clients[device], url)
            clients[device].publish(topic_for(device), payload, qos=1).wait_for_publish(5)
        good = make_messages(30)
        publish(good, broker.url(INGESTER_USER), credentials=CREDS)
        wait_for(lambda: ingester.stats.received >= len(bad) + len(good))
        assert ingester.wait_until(idle_s=0.2, timeout_s=20)
        for c in clients.values():
            c.disconnect()
            c.loop_stop()
    finally:
        stats = ingester.stop()
    assert stats.quarantined == len(bad) and stats.stored == len(good)
    with connect(db) as con:
        rows = con.execute("SELECT reason_code, reason, payload_size, payload FROM sensor_quarantine").fetchall()
    assert sorted(r[0] for r in rows) == sorted(code for _, _, code in bad)
    assert all(r[1] for r in rows)  # every reject says why
    oversize = [r for r in rows if r[0] == "oversize"][0]
    assert oversize[2] > 10_000 and len(oversize[3]) == oversize[2]  # kept, not dropped
    assert_exactly_once(db, good)


# --- faults ------------------------------------------------------------------------------

@pytest.mark.slow
def test_fast_reader_and_paho_reader_feed_one_exactly_once_stream(
    broker: MosquittoBroker, db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Most messages come through `FastClient`'s batch reader, packets split across socket
    reads through paho's own; together every message is stored once and acknowledged."""
    paths = {"batch": 0, "paho": 0}
    batch_reader, paho_reader = Ingester._on_message_batch, Ingester._on_message

    def counted_batch(self, batch):  # type: ignore[no-untyped-def]
        paths["batch"] += len(batch)
        batch_reader(self, batch)

    def counted_paho(self, client, userdata, msg):  # type: ignore[no-untyped-def]
        paths["paho"] += 1
        paho_reader(self, client, userdata, msg)

    monkeypatch.setattr(Ingester, "_on_message_batch", counted_batch)
    monkeypatch.setattr(Ingester, "_on_message", counted_paho)
    url = broker.url(INGESTER_USER)
    # A payload longer than one 64 KiB read always takes paho's path (and is quarantined as
    # oversize: the schema allows 4 KiB).
    big = Message(DEVICES[0], 100_000, datetime(2024, 6, 2),
                  make_payload(DEVICES[0], 100_000, datetime(2024, 6, 2), {"soil_moisture": (21.0, "%")})
                  .replace(b'"readings"', b'"note":"' + b"x" * 70_000 + b'","readings"'))
    messages = make_messages(6000) + [big]
    ingester = Ingester(db, url, client_id="fast-reader-test").start()
    try:
        publish(messages, url, credentials=CREDS)
        assert ingester.wait_until(received=len(messages), idle_s=0.3, timeout_s=60)
    finally:
        stats = ingester.stop()
    assert paths["batch"] > 0 and paths["paho"] >= 1
    assert paths["batch"] + paths["paho"] == stats.received == len(messages)
    assert stats.acked == len(messages)
    assert stats.quarantine_reasons == {"oversize": 1}
    assert_exactly_once(db, messages[:-1])


def test_broker_restart_mid_stream(broker: MosquittoBroker, db: Path) -> None:
    url = broker.url(INGESTER_USER)
    first, second = make_messages(3000), make_messages(2000, start=3001)
    # A long batch window keeps the first messages received but uncommitted when the broker goes.
    ingester = Ingester(db, url, client_id="restart-test", max_latency_s=1.5).start()
    try:
        publish(first, url, credentials=CREDS)
        wait_for(lambda: ingester.stats.received >= len(first))
        assert ingester.stats.batches == 0  # nothing committed or acknowledged yet
        broker.restart()  # SIGTERM: Mosquitto saves its sessions; then a new process on the same port
        publish(second, url, credentials=CREDS)
        wait_for(lambda: ingester.stats.stored >= len(first) + len(second), timeout_s=60)
        assert ingester.wait_until(idle_s=0.5, timeout_s=30)
    finally:
        stats = ingester.stop()
    assert stats.connections >= 2
    assert stats.duplicates >= 1  # the broker redelivered what was never acknowledged
    assert_exactly_once(db, first + second)


def _ingest_process(url: str, db: Path, client_id: str) -> subprocess.Popen:  # type: ignore[type-arg]
    code = "import sys; from assets.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.Popen(
        [sys.executable, "-c", code, "sensors", "ingest", "--broker", url, "--db", str(db),
         "--client-id", client_id, "--batch-size", "500", "--writer-process"],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
    )


@pytest.mark.slow
def test_ingester_sigkilled_mid_batch_then_restarted(broker: MosquittoBroker, db: Path) -> None:
    url = broker.url(INGESTER_USER)
    client_id = "kill-test"
    Ingester(db, url, client_id=client_id).start().stop()  # create the persistent session
    messages = make_messages(12_000)
    publish(messages, url, credentials=CREDS)  # queued by the broker for the session
    proc = _ingest_process(url, db, client_id)
    committed_line = threading.Event()

    def watch() -> None:
        for line in proc.stderr:  # type: ignore[union-attr]
            if "batch committed" in line:
                committed_line.set()

    threading.Thread(target=watch, daemon=True).start()
    assert committed_line.wait(60), "the ingester never committed a batch"
    proc.kill()  # SIGKILL: no cleanup, no final commit, no acks for what it held
    proc.wait(10)
    count, _ = stored_keys(db)
    assert 0 < count < len(messages)  # really killed mid-stream
    stats = Ingester(db, url, client_id=client_id).drain(idle_s=0.5, timeout_s=60)
    # The killed ingester's writer process may still commit the batch it held (never acknowledged,
    # so the broker redelivers it and the (device, seq) key absorbs it): duplicates, not losses.
    assert stats.received == stats.stored + stats.duplicates
    assert 0 < stats.stored <= len(messages) - count
    assert_exactly_once(db, messages)


def test_same_messages_replayed_twice_via_cli(broker: MosquittoBroker, db: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    csv_path = tmp_path / "log.csv"
    lines = ["device_id,ts,soil_moisture_pct,soil_temp_c"]
    lines += [f"{DEVICES[i % 3]},2024-06-0{1 + i // 96}T{(i // 4) % 24:02d}:{15 * (i % 4):02d}:00Z,{20 + i % 5},{15 + i % 3}"
              for i in range(300)]
    csv_path.write_text("\n".join(lines) + "\n")
    devices_file = tmp_path / "devices.json"
    devices_file.write_text(json.dumps([{"device_id": d, "borrower_id": "x", "lon": 9, "lat": 56, "secret": s}
                                        for d, s in CREDS.items()]))
    url = broker.url(INGESTER_USER)
    ingest = ["sensors", "ingest", "--broker", url, "--db", str(db), "--client-id", "twice", "--drain", "--idle", "0.5"]
    Ingester(db, url, client_id="twice").start().stop()  # create the persistent session
    results = []
    for _ in range(2):
        assert cli_main(["sensors", "replay", str(csv_path), "--broker", url, "--devices", str(devices_file)]) == 0
        assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["published"] == 300
        assert cli_main(ingest) == 0
        results.append(json.loads(capsys.readouterr().out.strip().splitlines()[-1]))
    assert (results[0]["stored"], results[0]["duplicates"]) == (300, 0)
    assert (results[1]["stored"], results[1]["duplicates"]) == (0, 300)
    count, keys = stored_keys(db)
    assert count == len(keys) == 300
    assert cli_main(["sensors", "quarantine", "--db", str(db)]) == 0
    assert "none" in capsys.readouterr().out


def test_duckdb_locked_by_another_writer(broker: MosquittoBroker, db: Path) -> None:
    url = broker.url(INGESTER_USER)
    ingester = Ingester(db, url, client_id="lock-test", max_latency_s=0.05, lock_retry_s=0.2).start()
    locker = subprocess.Popen(
        [sys.executable, "-c",
         "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('locked', flush=True); time.sleep(1.5)",
         str(db)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert locker.stdout.readline().strip() == "locked"  # type: ignore[union-attr]
        messages = make_messages(400)
        publish(messages, url, credentials=CREDS)
        wait_for(lambda: ingester.stats.received >= len(messages))
        time.sleep(0.4)  # the other writer still holds the file
        assert (ingester.stats.stored, ingester.stats.acked) == (0, 0)  # nothing acknowledged uncommitted
        locker.wait(10)
        wait_for(lambda: ingester.stats.stored >= len(messages))
        assert ingester.wait_until(idle_s=0.2, timeout_s=20)
    finally:
        locker.kill()
        stats = ingester.stop()
    assert stats.acked == len(messages) and stats.lock_retries >= 1
    assert_exactly_once(db, messages)


# --- TLS and the nightly drain -----------------------------------------------------------

def _make_certs(folder: Path) -> tuple[Path, Path, Path]:
    folder.mkdir()
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run = lambda *args: subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True)  # noqa: E731
    run("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=test-ca")
    run("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost")
    (folder / "san.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "server.crt", "-days", "2", "-extfile", "san.ext")
    return folder / "ca.crt", folder / "server.crt", folder / "server.key"


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is needed to make test certificates")
def test_tls_listener_by_configuration(tmp_path: Path, db: Path) -> None:
    ca, cert, key = _make_certs(tmp_path / "tls")
    broker = start_mosquitto(tmp_path / "tls-broker", USERS, tls=TlsFiles(free_port(), ca, cert, key))
    try:
        url = broker.url(INGESTER_USER, tls=True)
        ingester = Ingester(db, url, client_id="tls-test", max_latency_s=0.05).start()
        try:
            messages = make_messages(50)
            publish(messages, url, credentials=CREDS)
            wait_for(lambda: ingester.stats.stored >= 50)
        finally:
            ingester.stop()
        assert_exactly_once(db, messages)
        with pytest.raises(BrokerError):  # without the CA the server certificate is not trusted
            publish(make_messages(1), url.split("?")[0])
    finally:
        broker.stop()


def test_prefect_drain_task_takes_what_arrived_since_last_run(broker: MosquittoBroker, db: Path) -> None:
    from assets.flows.sensors import DRAIN_CLIENT_ID, drain_sensors

    url = broker.url(INGESTER_USER)
    assert drain_sensors.fn(str(db), url, idle_s=0.3)["received"] == 0  # first run creates the session
    messages = make_messages(250)
    publish(messages, url, credentials=CREDS)  # while no drain is running
    result = drain_sensors.fn(str(db), url, idle_s=0.3)
    assert (result["received"], result["stored"]) == (250, 250)
    assert_exactly_once(db, messages)
    with connect(db) as con:
        drains = con.execute("SELECT client_id, stored FROM sensor_drains ORDER BY finished_at").fetchall()
    assert drains == [(DRAIN_CLIENT_ID, 0), (DRAIN_CLIENT_ID, 250)]


def test_ingest_service_stops_cleanly_on_sigterm(broker: MosquittoBroker, db: Path) -> None:
    import signal

    url = broker.url(INGESTER_USER)
    code = "import sys; from assets.cli import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.Popen([sys.executable, "-c", code, "sensors", "ingest", "--broker", url, "--db", str(db),
                             "--client-id", "service"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stderr.readline()  # type: ignore[union-attr]
        assert "ingesting from" in line and "ingest-pw" not in line  # the password is not logged
        messages = make_messages(600)
        publish(messages, url, credentials=CREDS)
        time.sleep(1.0)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0
    stats = json.loads(out.strip().splitlines()[-1])
    assert stats["stored"] == stats["acked"] == 600
    assert_exactly_once(db, messages)


def test_deploy_password_script_and_cli_passwd_file_work_with_mosquitto(tmp_path: Path, db: Path) -> None:
    repo = Path(__file__).resolve().parents[1]
    devices = tmp_path / "devices.json"
    devices.write_text(json.dumps([{"device_id": d, "borrower_id": "x", "lon": 9, "lat": 56, "secret": s}
                                   for d, s in CREDS.items()]))
    passwd = tmp_path / "passwd"
    subprocess.run(["sh", str(repo / "deploy" / "mosquitto" / "make-passwd.sh"), str(devices), str(passwd),
                    USERS[INGESTER_USER]], check=True, capture_output=True)
    lines = passwd.read_text().splitlines()
    assert [line.split(":")[0] for line in lines] == [INGESTER_USER, *DEVICES]
    assert not any("secret" in line or "ingest-pw" in line for line in lines)  # hashed
    assert cli_main(["sensors", "devices", "add", "probe-009", "--borrower", "farmer-009", "--lon", "9.3",
                     "--lat", "56.3", "--secret", "nine-secret", "--passwd-file", str(passwd), "--db", str(db)]) == 0
    assert passwd.stat().st_mode & 0o777 == 0o600  # hashes of device secrets: never world-readable
    broker = start_mosquitto(tmp_path / "broker", {}, password_file=passwd)
    try:
        ingester = Ingester(db, broker.url(INGESTER_USER, USERS[INGESTER_USER]), client_id="pw", max_latency_s=0.05).start()
        try:
            ts = datetime(2024, 6, 1)
            messages = [Message("probe-009", 1, ts, make_payload("probe-009", 1, ts, {"battery": (3.1, "V")}))]
            messages += make_messages(3)
            publish(messages, broker.url(), credentials={**CREDS, "probe-009": "nine-secret"})
            wait_for(lambda: ingester.stats.stored >= 4)
        finally:
            ingester.stop()
        with pytest.raises(BrokerError, match="refused"):
            publish(messages[:1], broker.url(), credentials={"probe-009": "wrong"})
    finally:
        broker.stop()
    assert_exactly_once(db, messages)


def test_a_drain_that_loses_the_broker_is_a_broker_error_not_an_ok_night(broker: MosquittoBroker, db: Path) -> None:
    """Ops QA 2026-12-08: the broker stopped 0.7 s into a drain: the drain counted the time without it
    as quiet, ended 'ok' with 90,000 of 150,960 readings, and the night cut limits for 'silent' probes."""
    url = broker.url(INGESTER_USER)
    Ingester(db, url, client_id="lost-test").drain(idle_s=0.3, timeout_s=30)  # the session exists on the broker
    publish(make_messages(500), url, credentials=CREDS)
    ingester = Ingester(db, url, client_id="lost-test").start()
    try:
        wait_for(lambda: ingester.stats.received >= 1)
        broker.stop()  # gone, and not back
        with pytest.raises(BrokerError, match="during the drain and could not reconnect within 2 s"):
            ingester.wait_until(idle_s=0.3, timeout_s=30, reconnect_s=2)
        assert ingester.stats.disconnects >= 1
    finally:
        ingester.stop()


def test_time_without_the_broker_is_not_quiet_time(db: Path) -> None:
    ingester = Ingester(db, "mqtt://ingester:x@127.0.0.1:1", client_id="never-connected")
    ingester._lost_at = time.monotonic()  # as _on_disconnect leaves it
    ingester._last_message = time.monotonic() - 60
    assert ingester.wait_until(idle_s=0.1, timeout_s=0.5) is False  # no reconnect limit: waits, never "done"
