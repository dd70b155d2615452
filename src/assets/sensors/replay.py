"""Replay a sensor log (CSV) as device messages over MQTT, QoS 1.

Each device publishes on its own topic, as itself when credentials are given (one MQTT client
per device, as the broker ACL demands), otherwise through one shared client. Sequence numbers
come from a ``seq`` column or, failing that, each device's row count in file order, so replaying
the same file twice produces the same (device_id, seq) keys and the ingester stores nothing twice.
"""

from __future__ import annotations

import csv
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Mapping

from assets.errors import InputError
from assets.sensors.connection import BrokerError, BrokerURL, connect_and_wait, make_client
from assets.sensors.schema import check_device_id, make_payload, parse_timestamp, topic_for

# CSV header (lower case) -> (quantity, unit). Covers our sample files and the EcoIrrigate log.
COLUMN_ALIASES: dict[str, tuple[str, str]] = {
    "soil_moisture_pct": ("soil_moisture", "%"),
    "volumetric_moisture_pct": ("soil_moisture", "%"),
    "soil_temp_c": ("soil_temperature", "C"),
    "soil_temperature_c": ("soil_temperature", "C"),
    "air_temp_c": ("air_temperature", "C"),
    "atm_temperature_c": ("air_temperature", "C"),
    "air_pressure_hpa": ("air_pressure", "hPa"),
    "atm_pressure_inhg": ("air_pressure", "inHg"),
    "battery_v": ("battery", "V"),
    "sensor_voltage_v": ("battery", "V"),
}


@dataclass(frozen=True)
class Message:
    device_id: str
    seq: int
    ts: datetime  # naive UTC
    payload: bytes

    @property
    def topic(self) -> str:
        return topic_for(self.device_id)


@dataclass
class ReplayStats:
    published: int = 0
    devices: int = 0
    skipped_rows: int = 0
    elapsed_s: float = 0.0

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def _parse_time(text: str) -> datetime:
    """ISO timestamps; naive ones (most loggers) are taken as UTC."""
    text = text.strip()
    try:
        return parse_timestamp(text)
    except ValueError:
        ts = datetime.fromisoformat(text)
        return ts.replace(tzinfo=None) if ts.tzinfo is None else ts.astimezone(timezone.utc).replace(tzinfo=None)


def read_messages(
    csv_path: str | Path, *, device_column: str = "device_id", time_column: str = "ts"
) -> tuple[list[Message], int]:
    """Turn a CSV log into messages (in file order). Returns (messages, rows skipped)."""
    path = Path(csv_path)
    if not path.exists():
        raise InputError(f"sensor log {path} does not exist")
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        header = reader.fieldnames or []
        for col in (device_column, time_column):
            if col not in header:
                raise InputError(
                    f"{path} has no column {col!r} (columns: {', '.join(header)}); "
                    "choose them with --device-column / --time-column"
                )
        quantities = {c: COLUMN_ALIASES[c.lower()] for c in header if c.lower() in COLUMN_ALIASES}
        if not quantities:
            raise InputError(
                f"{path} has no reading columns this tool knows; expected some of {', '.join(COLUMN_ALIASES)}"
            )
        seq_column = "seq" if "seq" in header else None
        counters: dict[str, int] = {}
        messages: list[Message] = []
        skipped = 0
        checked: set[str] = set()
        for row in reader:
            device_id = (row.get(device_column) or "").strip()
            if device_id not in checked:
                check_device_id(device_id)
                checked.add(device_id)
            try:
                ts = _parse_time(row[time_column])
                readings = {
                    q: (float(row[c]), unit) for c, (q, unit) in quantities.items() if (row.get(c) or "").strip()
                }
            except (ValueError, TypeError):
                skipped += 1
                continue
            if not readings:
                skipped += 1
                continue
            counters[device_id] = counters.get(device_id, 0) + 1
            seq = int(row[seq_column]) if seq_column else counters[device_id]
            messages.append(Message(device_id, seq, ts, make_payload(device_id, seq, ts, readings)))
    return messages, skipped


def publish(
    messages: Iterable[Message],
    broker_url: str,
    *,
    speed: float = 0.0,
    credentials: Mapping[str, str] | None = None,
    client_prefix: str = "assets-replay",
    max_inflight: int = 1000,
    timeout_s: float = 600.0,
) -> ReplayStats:
    """Publish with QoS 1 and wait until the broker acknowledged every message.

    ``speed`` > 0 replays in time order at that multiple of real time (0: as fast as possible).
    ``credentials`` maps device id -> secret: each device then logs in as itself.
    """
    url = BrokerURL.parse(broker_url)
    messages = list(messages)
    if speed > 0:
        messages.sort(key=lambda m: m.ts)
    devices = sorted({m.device_id for m in messages})
    clients = {}
    started = time.monotonic()
    try:
        if credentials is not None:
            missing = [d for d in devices if d not in credentials]
            if missing:
                raise InputError(f"no secret for devices {missing[:5]}; add them to the devices file")
            for device_id in devices:
                client_url = url.with_credentials(device_id, credentials[device_id])
                clients[device_id] = _open(client_url, f"{client_prefix}-{device_id}", max_inflight)
        else:
            shared = _open(url, client_prefix, max_inflight)
            clients = {d: shared for d in devices}
        infos = []
        t0 = messages[0].ts if messages else None
        wall0 = time.monotonic()
        for m in messages:
            if speed > 0 and t0 is not None:
                delay = (m.ts - t0).total_seconds() / speed - (time.monotonic() - wall0)
                if delay > 0:
                    time.sleep(delay)
            infos.append(clients[m.device_id].publish(m.topic, m.payload, qos=1))
        deadline = time.monotonic() + timeout_s
        for info in infos:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BrokerError(f"the broker did not acknowledge all {len(infos)} messages within {timeout_s:g} s")
            info.wait_for_publish(timeout=remaining)
            if not info.is_published():
                raise BrokerError(f"the broker did not acknowledge all {len(infos)} messages within {timeout_s:g} s")
    finally:
        for client in {id(c): c for c in clients.values()}.values():
            client.disconnect()
            client.loop_stop()
    return ReplayStats(
        published=len(messages), devices=len(devices), elapsed_s=time.monotonic() - started
    )


def _open(url: BrokerURL, client_id: str, max_inflight: int):
    client = make_client(url, client_id, persistent=False)
    client.max_inflight_messages_set(max_inflight)
    client.max_queued_messages_set(0)
    connect_and_wait(client, url)
    return client


def replay_csv(
    csv_path: str | Path,
    broker_url: str,
    *,
    speed: float = 0.0,
    device_column: str = "device_id",
    time_column: str = "ts",
    credentials: Mapping[str, str] | None = None,
) -> ReplayStats:
    """Read a CSV sensor log and publish it (see `read_messages` and `publish`)."""
    messages, skipped = read_messages(csv_path, device_column=device_column, time_column=time_column)
    stats = publish(messages, broker_url, speed=speed, credentials=credentials)
    stats.skipped_rows = skipped
    return stats
