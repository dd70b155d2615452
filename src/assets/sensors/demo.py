"""Feed the demo: register the sample devices, replay their log over MQTT and ingest it.

Uses an in-process amqtt broker unless a broker URL is given, so the demo needs no server.
The DuckDB file is opened only for short commits; the caller may open it right after.
"""

from __future__ import annotations

from pathlib import Path

from assets.sensors.broker import EmbeddedBroker
from assets.sensors.connection import BrokerError
from assets.sensors.ingest import Ingester, IngestStats
from assets.sensors.registry import load_devices_file, register_devices_file
from assets.sensors.replay import publish, read_messages

DEMO_CLIENT_ID = "assets-demo-ingester"


def feed_sample(
    db_path: str | Path,
    devices_file: str | Path,
    readings_csv: str | Path,
    *,
    broker_url: str | None = None,
) -> IngestStats:
    """Register devices (idempotent), replay the CSV as fast as possible, ingest until every
    published message is committed. Re-running on the same database stores nothing twice."""
    register_devices_file(db_path, devices_file)
    secrets = {d.device_id: s for d, s in load_devices_file(devices_file) if s}
    messages, _ = read_messages(readings_csv)
    broker = EmbeddedBroker().start() if broker_url is None else None
    url = broker.url if broker is not None else str(broker_url)
    # A real broker (password file + ACL) needs each device to log in as itself.
    devices_in_log = {m.device_id for m in messages}
    credentials = secrets if broker is None and devices_in_log <= secrets.keys() else None
    try:
        ingester = Ingester(db_path, url, client_id=DEMO_CLIENT_ID).start()
        try:
            publish(messages, url, credentials=credentials, client_prefix="assets-demo-replay")
            if not ingester.wait_until(received=len(messages), idle_s=0.3, timeout_s=300):
                raise BrokerError(
                    f"only {ingester.stats.received} of {len(messages)} published messages reached the "
                    f"ingester at {url.split('@')[-1]}; check the broker"
                )
        finally:
            stats = ingester.stop()
    finally:
        if broker is not None:
            broker.stop()
    return stats
