"""Sensor drain for the nightly flow: one Prefect task per drain, never one per message.

The ingester's persistent MQTT session keeps everything published since the last run; the task
connects with that session, stores and acknowledges it in batches, and stops once the broker has
nothing more to send.

    python -m flows.sensors mqtt://ingester:PASSWORD@broker:1883 --db assets.duckdb   # from a checkout
"""

from __future__ import annotations

from prefect import flow, task

from assets.sensors.ingest import Ingester

DRAIN_CLIENT_ID = "assets-drain"


@task(name="drain-sensors", retries=2, retry_delay_seconds=10)
def drain_sensors(
    db_path: str,
    broker_url: str,
    *,
    client_id: str = DRAIN_CLIENT_ID,
    idle_s: float = 2.0,
    timeout_s: float = 900.0,
) -> dict:
    """Store what arrived since the last drain; returns the ingest counts (JSON-friendly).

    Safe to retry: unacknowledged messages are redelivered and (device_id, seq) de-duplicates.
    """
    ingester = Ingester(db_path, broker_url, client_id=client_id)
    stats = ingester.drain(idle_s=idle_s, timeout_s=timeout_s)
    return stats.to_dict()


@flow(name="sensors-drain", log_prints=True)
def sensors_drain(db_path: str = "assets.duckdb", broker_url: str = "mqtt://127.0.0.1:1883") -> dict:
    result = drain_sensors(db_path, broker_url)
    print(f"sensor drain: {result}")
    return result
