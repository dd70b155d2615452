"""The fast MQTT reader's guard rails: exact paho pin, start-up self-check, stock-paho fallback, keepalive."""

from __future__ import annotations

import logging
import threading
import time
import tomllib
from pathlib import Path

import paho.mqtt
import paho.mqtt.client as mqtt
import pytest

from assets.sensors import connection
from assets.sensors.broker import EmbeddedBroker
from assets.sensors.connection import PAHO_TESTED, BrokerURL, FastClient, _BufferedSocket, make_client
from tests.test_sensors_wire import publish_packet

REPO = Path(__file__).resolve().parents[1]
URL = BrokerURL.parse("mqtt://127.0.0.1:1")  # never connected to in the offline tests


@pytest.fixture(autouse=True)
def fresh_check():
    """Each test sees its own self-check (the real one is cached per process)."""
    connection.fast_reader_problem.cache_clear()
    connection._warn_fallback.cache_clear()
    yield
    connection.fast_reader_problem.cache_clear()
    connection._warn_fallback.cache_clear()


def test_paho_is_pinned_exactly_to_the_version_the_reader_was_tested_with() -> None:
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    assert f"paho-mqtt=={PAHO_TESTED}" in [d.replace(" ", "") for d in deps]
    assert paho.mqtt.__version__ == PAHO_TESTED
    assert connection.fast_reader_problem() is None
    assert type(make_client(URL, "t", persistent=False)) is FastClient


def test_another_paho_version_falls_back_to_stock_paho_with_a_logged_reason(monkeypatch, caplog) -> None:
    monkeypatch.setattr(paho.mqtt, "__version__", "2.9.0")
    with caplog.at_level(logging.WARNING, logger="assets.sensors.connection"):
        client = make_client(URL, "t", persistent=True, manual_ack=True)
        make_client(URL, "t2", persistent=True)  # logged once, not per client
    assert type(client) is mqtt.Client
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "2.9.0" in warnings[0] and PAHO_TESTED in warnings[0]


def test_a_missing_paho_internal_falls_back(monkeypatch) -> None:
    monkeypatch.delattr(mqtt.Client, "_packet_queue")
    assert "_packet_queue" in connection.fast_reader_problem()
    assert type(make_client(URL, "t", persistent=False)) is mqtt.Client


def test_stock_paho_can_be_asked_for() -> None:
    assert type(make_client(URL, "t", persistent=False, fast=False)) is mqtt.Client


class _FakeSocket:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def recv(self, n: int) -> bytes:
        out, self.data = self.data[:n], self.data[n:]
        return out

    def close(self) -> None:
        pass


def test_the_fast_path_refreshes_the_keepalive_clock_paho_reads() -> None:
    """paho 2.2's _check_keepalive reads _last_bytes_received: batches cut by FastClient must move it."""
    client = make_client(URL, "t", persistent=False)
    assert isinstance(client, FastClient)
    got: list = []
    client.on_message_batch = got.extend
    wire = publish_packet(b"sensors/a/readings", b"1", mid=1) + publish_packet(b"sensors/b/readings", b"2", mid=2)
    sock = _BufferedSocket(_FakeSocket(b""))
    sock._buf, sock._pos = wire, 0
    client._sock = sock
    client._last_bytes_received = 0.0
    assert client._packet_read() == mqtt.MQTTErrorCode.MQTT_ERR_SUCCESS
    assert [mid for _, _, mid, _ in got] == [1, 2] and sock.buffered() == 0
    assert time.monotonic() - client._last_bytes_received < 5


@pytest.mark.parametrize("fast", [True, False])
def test_a_one_second_keepalive_survives_idle_and_busy_stretches(fast: bool) -> None:
    """Idle (pings), then a stream on the fast path (or paho's): the session never drops."""
    with EmbeddedBroker() as broker:
        url = BrokerURL.parse(broker.url)
        sub = make_client(url, "keepalive-sub", persistent=False, fast=fast)
        received, dropped = [], threading.Event()
        sub.on_message = lambda c, u, m: received.append(m.payload)
        if isinstance(sub, FastClient):
            sub.on_message_batch = lambda batch: received.extend(p for _, p, _, _ in batch)
        sub.on_disconnect = lambda *a: dropped.set()
        sub.connect(url.host, url.port, keepalive=1)
        sub.subscribe("sensors/#", qos=1)
        sub.loop_start()
        pub = make_client(url, "keepalive-pub", persistent=False, fast=False)
        pub.connect(url.host, url.port, keepalive=30)
        pub.loop_start()
        try:
            time.sleep(2.5)  # idle: keepalive pings only
            sent, end = 0, time.monotonic() + 2.5
            while time.monotonic() < end:
                pub.publish("sensors/p/readings", b"x" * 32, qos=1)
                sent += 1
                time.sleep(0.002)
            deadline = time.monotonic() + 10
            while len(received) < sent and time.monotonic() < deadline:
                time.sleep(0.05)
            assert not dropped.is_set() and sub.is_connected()
            assert len(received) == sent
        finally:
            pub.loop_stop(); pub.disconnect()  # noqa: E702
            sub.loop_stop(); sub.disconnect()  # noqa: E702


def test_the_ingester_works_on_stock_paho(monkeypatch, tmp_path: Path) -> None:
    """The fallback end to end: the demo's devices and 400 readings through amqtt into DuckDB."""
    from assets.sensors.demo import feed_sample

    monkeypatch.setattr(connection, "fast_reader_problem", lambda: "forced by the test")
    sensors = REPO / "sample_tiles" / "sensors"
    lines = (sensors / "readings.csv").read_text().splitlines()[:401]
    (tmp_path / "readings.csv").write_text("\n".join(lines) + "\n")
    stats = feed_sample(tmp_path / "s.duckdb", sensors / "devices.json", tmp_path / "readings.csv")
    again = feed_sample(tmp_path / "s.duckdb", sensors / "devices.json", tmp_path / "readings.csv")
    assert stats.stored + stats.quarantined == 400 and stats.stored > 0
    assert again.stored == 0  # re-run: nothing twice
