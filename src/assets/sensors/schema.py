"""The device message schema (JSON over MQTT) and its validation.

A device publishes one message per measurement on ``farms/<device_id>/readings``::

    {"device_id": "probe-001",            # must equal the topic segment
     "seq": 1234,                         # the device's own counter, >= 0: (device_id, seq) is unique
     "ts": "2016-09-01T00:15:00Z",        # ISO 8601 with a timezone (Z or +hh:mm)
     "readings": {"soil_moisture": {"value": 14.1, "unit": "%"},
                  "soil_temperature": {"value": 19.2, "unit": "C"}}}

Known quantities, their accepted units and physical ranges are in `QUANTITIES`; anything else is
rejected with a reason code (see `Reject`), so a malformed or forged message is quarantined rather
than silently stored. Validation is pure: the ingester supplies the device registry and the clock.

`validate` first tries a typed decode (msgspec, in C: types, required fields and unknown
quantities checked while parsing) and falls back to the general path, which finds the reason, for
anything the typed decode does not accept. The fast path only ever accepts what the general path
accepts, with the same values (tests/test_sensors.py compares both on a corpus of mutations); it
is what keeps validation under the broker's pace (bench/mqtt_ingest.py).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Callable, Mapping, NamedTuple

import msgspec

try:  # orjson is ~3x faster; the stdlib parser gives the same results.
    import orjson as _orjson

    _loads: Callable[[bytes], object] = _orjson.loads
    _JSON_ERRORS: tuple[type[Exception], ...] = (_orjson.JSONDecodeError, UnicodeDecodeError)
except ImportError:  # pragma: no cover - depends on the environment
    import json as _json

    _loads = _json.loads
    _JSON_ERRORS = (ValueError, UnicodeDecodeError)

TOPIC_PREFIX = "farms"
TOPIC_FILTER = f"{TOPIC_PREFIX}/+/readings"
MAX_PAYLOAD_BYTES = 4096
MAX_FUTURE_SKEW = timedelta(minutes=10)
EARLIEST_TS = datetime(2000, 1, 1)
_ISO_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,6})?([Zz]|[+-]\d{2}:\d{2})?", re.ASCII)
DEVICE_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
RESERVED_USERNAMES = frozenset({"ingester", "admin"})


@dataclass(frozen=True)
class Quantity:
    """One measured quantity: the column it is stored in, its canonical unit and physical range."""

    column: str
    unit: str
    low: float
    high: float
    # Accepted unit -> (scale, offset): canonical = value * scale + offset (same formula in SQL).
    conversions: Mapping[str, tuple[float, float]]


_F_TO_C = (5.0 / 9.0, -160.0 / 9.0)
QUANTITIES: dict[str, Quantity] = {
    "soil_moisture": Quantity("soil_moisture_pct", "%", 0.0, 100.0, {"%": (1.0, 0.0), "m3/m3": (100.0, 0.0)}),
    "soil_temperature": Quantity("soil_temp_c", "C", -40.0, 70.0, {"C": (1.0, 0.0), "F": _F_TO_C}),
    "air_temperature": Quantity("air_temp_c", "C", -60.0, 60.0, {"C": (1.0, 0.0), "F": _F_TO_C}),
    "air_pressure": Quantity(
        "air_pressure_hpa", "hPa", 800.0, 1100.0, {"hPa": (1.0, 0.0), "kPa": (10.0, 0.0), "inHg": (33.8638866667, 0.0)}
    ),
    "battery": Quantity("battery_v", "V", 0.0, 60.0, {"V": (1.0, 0.0)}),
}
READING_COLUMNS: tuple[str, ...] = tuple(q.column for q in QUANTITIES.values())
_COLUMN_INDEX = {name: i for i, name in enumerate(QUANTITIES)}


def topic_for(device_id: str) -> str:
    """The only topic a device may publish on (the broker ACL enforces the same rule)."""
    return f"{TOPIC_PREFIX}/{device_id}/readings"


def device_from_topic(topic: str) -> str | None:
    """The device id a topic belongs to, or None when the topic is not a readings topic."""
    parts = topic.split("/")
    if len(parts) == 3 and parts[0] == TOPIC_PREFIX and parts[2] == "readings" and parts[1]:
        return parts[1]
    return None


def check_device_id(device_id: str) -> str:
    """Raise `SensorError` unless ``device_id`` can be a topic segment and an MQTT username."""
    from assets.errors import SensorError

    if not isinstance(device_id, str) or not DEVICE_ID_PATTERN.match(device_id):
        raise SensorError(
            f"device id {device_id!r} is not allowed: use 1-64 letters, digits, '_', '.', '-' "
            "starting with a letter or digit"
        )
    if device_id in RESERVED_USERNAMES:
        raise SensorError(f"device id {device_id!r} is reserved for the broker; choose another")
    return device_id


class Reading(NamedTuple):
    """A validated message, ready to store (values in canonical units; None when not sent).

    A NamedTuple rather than a dataclass: one is built per message on the ingest hot path."""

    device_id: str
    seq: int
    ts: datetime  # naive UTC
    values: tuple[float | None, ...]  # in READING_COLUMNS order


@dataclass(frozen=True)
class Reject:
    """Why a message was refused. ``code`` is stable (for queries); ``reason`` is for people."""

    code: str
    reason: str
    device_id: str | None = None


@dataclass(frozen=True)
class DeviceStatus:
    """What the validator needs to know about a registered device."""

    retired_at: datetime | None = None  # naive UTC


def _is_canonical_utc(text: str) -> bool:
    """YYYY-MM-DDThh:mm:ssZ by its separators (fromisoformat then checks the digits)."""
    return (len(text) == 20 and text[19] == "Z" and text[10] == "T" and text[4] == "-" == text[7]
            and text[13] == ":" == text[16])


def parse_timestamp(text: object) -> datetime:
    """ISO 8601 with a timezone -> naive UTC. Raises ValueError with a reason."""
    if not isinstance(text, str):
        raise TypeError(f"'ts' must be an ISO 8601 string, got {type(text).__name__}")
    if _is_canonical_utc(text):  # the common case: ...T00:15:00Z
        return datetime.fromisoformat(text[:19])
    # fromisoformat alone is lenient ("10:00:400" reads as 10:00:40): check the shape first.
    if not _ISO_TIMESTAMP.fullmatch(text):
        raise ValueError(f"{text[:40]!r} is not YYYY-MM-DDThh:mm:ss[.ffffff] followed by Z or +hh:mm")
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    ts = datetime.fromisoformat(text)
    if ts.tzinfo is None:
        raise ValueError("'ts' has no timezone; add 'Z' or an offset such as +05:30")
    return ts.astimezone(timezone.utc).replace(tzinfo=None)


class _Item(msgspec.Struct, gc=False):
    value: float  # an integer is accepted and converted, as the general path does; a bool is not
    unit: str


# One field per known quantity: an unknown quantity, a null reading or a missing value/unit fails
# the decode, and the general path then names the problem.
_Readings = msgspec.defstruct(
    "_Readings",
    [(name, "_Item | msgspec.UnsetType", msgspec.UNSET) for name in QUANTITIES],
    forbid_unknown_fields=True,
    gc=False,
    namespace={"_Item": _Item, "msgspec": msgspec},
)


class _Message(msgspec.Struct, gc=False):
    device_id: str
    seq: int
    ts: str
    readings: _Readings  # type: ignore[valid-type]


_decode_message = msgspec.json.Decoder(_Message).decode
_QUANTITY_ORDER = tuple((name, q.conversions, q.low, q.high) for name, q in QUANTITIES.items())
_TOPIC_DEVICE_CACHE: dict[str, str | None] = {}


def _validate_fast(
    topic: str, payload: bytes, devices: Mapping[str, DeviceStatus] | None, now: datetime
) -> Reading | None:
    """The common, valid message, or None: then `_validate_general` decides and says why.

    Payloads with a backslash go to the general path, so a string escape can never make the two
    parsers see different keys or text."""
    if len(payload) > MAX_PAYLOAD_BYTES or b"\\" in payload:
        return None
    try:
        msg = _decode_message(payload)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None
    device_id = msg.device_id
    topic_device = _TOPIC_DEVICE_CACHE.get(topic)
    if topic_device is None:
        topic_device = device_from_topic(topic)
        if topic_device is None:
            return None
        if len(_TOPIC_DEVICE_CACHE) < 100_000:
            _TOPIC_DEVICE_CACHE[topic] = topic_device
    seq = msg.seq
    if device_id != topic_device or seq < 0 or seq >= 2**63:
        return None
    text = msg.ts
    if not _is_canonical_utc(text):
        return None
    try:
        ts = datetime.fromisoformat(text[:19])
    except ValueError:
        return None
    if ts > now + MAX_FUTURE_SKEW or ts < EARLIEST_TS:
        return None
    if devices is not None:
        status = devices.get(device_id)
        if status is None or (status.retired_at is not None and ts >= status.retired_at):
            return None
    readings = msg.readings
    values: list[float | None] = []
    present = False
    for name, conversions, low, high in _QUANTITY_ORDER:
        item = getattr(readings, name)
        if item is msgspec.UNSET:
            values.append(None)
            continue
        convert = conversions.get(item.unit)
        if convert is None:
            return None
        canonical = item.value * convert[0] + convert[1]
        if not low <= canonical <= high:  # also False for NaN
            return None
        values.append(canonical)
        present = True
    if not present:
        return None
    return Reading(device_id, seq, ts, tuple(values))


def validate(
    topic: str,
    payload: bytes,
    devices: Mapping[str, DeviceStatus] | None,
    now: datetime,
) -> Reading | Reject:
    """Check one message against the schema, the topic and the registry.

    ``devices`` maps registered device ids to their status (None skips the registry check);
    ``now`` is naive UTC and bounds how far in the future a timestamp may be.
    """
    reading = _validate_fast(topic, payload, devices, now)
    if reading is not None:
        return reading
    return _validate_general(topic, payload, devices, now)


def _validate_general(
    topic: str,
    payload: bytes,
    devices: Mapping[str, DeviceStatus] | None,
    now: datetime,
) -> Reading | Reject:
    """Every check in turn, stopping at the first that fails: the reason a message is refused."""
    topic_device = device_from_topic(topic)
    if topic_device is None:
        return Reject("bad_topic", f"topic {topic!r} is not {TOPIC_PREFIX}/<device_id>/readings")
    size = len(payload)
    if size > MAX_PAYLOAD_BYTES:
        return Reject("oversize", f"payload is {size} bytes; the limit is {MAX_PAYLOAD_BYTES}", topic_device)
    try:
        doc = _loads(payload)
    except _JSON_ERRORS as exc:
        return Reject("not_json", f"payload is not UTF-8 JSON: {str(exc)[:120]}", topic_device)
    if not isinstance(doc, dict):
        return Reject("not_object", f"payload must be a JSON object, got {type(doc).__name__}", topic_device)
    for key in ("device_id", "seq", "ts", "readings"):
        if key not in doc:
            return Reject("missing_field", f"required field {key!r} is missing", topic_device)
    device_id = doc["device_id"]
    if not isinstance(device_id, str):
        return Reject("wrong_type", "'device_id' must be a string", topic_device)
    if device_id != topic_device:
        return Reject(
            "topic_mismatch",
            f"message claims device {device_id[:64]!r} but was published on {topic_device!r}'s topic",
            topic_device,
        )
    seq = doc["seq"]
    if type(seq) is not int:
        return Reject("wrong_type", f"'seq' must be an integer, got {type(seq).__name__}", topic_device)
    if seq < 0 or seq >= 2**63:
        return Reject("out_of_range", f"'seq' {seq} must be between 0 and 2**63-1", topic_device)
    try:
        ts = parse_timestamp(doc["ts"])
    except TypeError as exc:
        return Reject("wrong_type", str(exc), topic_device)
    except ValueError as exc:
        return Reject("bad_timestamp", f"'ts' is not a valid ISO 8601 timestamp: {exc}", topic_device)
    if ts > now + MAX_FUTURE_SKEW:
        return Reject(
            "future_timestamp",
            f"'ts' {ts.isoformat()}Z is more than {MAX_FUTURE_SKEW} ahead of the ingester clock "
            f"({now.isoformat(timespec='seconds')}Z); fix the device clock",
            topic_device,
        )
    if ts < EARLIEST_TS:
        return Reject("bad_timestamp", f"'ts' {ts.isoformat()} is before {EARLIEST_TS.year}", topic_device)
    if devices is not None:
        status = devices.get(device_id)
        if status is None:
            return Reject(
                "unknown_device",
                f"device {device_id!r} is not registered; add it with `assets sensors devices add`",
                topic_device,
            )
        if status.retired_at is not None and ts >= status.retired_at:
            return Reject(
                "retired_device",
                f"device {device_id!r} was retired at {status.retired_at.isoformat()}",
                topic_device,
            )
    readings = doc["readings"]
    if not isinstance(readings, dict) or not readings:
        return Reject("wrong_type", "'readings' must be a non-empty object", topic_device)
    values: list[float | None] = [None] * len(READING_COLUMNS)
    for name, item in readings.items():
        quantity = QUANTITIES.get(name)
        if quantity is None:
            return Reject(
                "unknown_quantity",
                f"unknown quantity {str(name)[:40]!r}; known: {', '.join(QUANTITIES)}",
                topic_device,
            )
        if not isinstance(item, dict) or "value" not in item or "unit" not in item:
            return Reject("wrong_type", f"reading {name!r} must be {{'value': number, 'unit': text}}", topic_device)
        value, unit = item["value"], item["unit"]
        if type(value) not in (int, float) or not math.isfinite(value):
            return Reject("wrong_type", f"reading {name!r} value must be a finite number", topic_device)
        convert = quantity.conversions.get(unit) if isinstance(unit, str) else None
        if convert is None:
            return Reject(
                "bad_unit",
                f"reading {name!r} unit {str(unit)[:20]!r} is not one of {', '.join(quantity.conversions)}",
                topic_device,
            )
        canonical = float(value) * convert[0] + convert[1]
        if not quantity.low <= canonical <= quantity.high:
            return Reject(
                "out_of_range",
                f"reading {name!r} = {canonical:g} {quantity.unit} is outside the physical range "
                f"{quantity.low:g}..{quantity.high:g} {quantity.unit}",
                topic_device,
            )
        values[_COLUMN_INDEX[name]] = canonical
    return Reading(device_id, seq, ts, tuple(values))


def make_payload(device_id: str, seq: int, ts: datetime, readings: Mapping[str, tuple[float, str]]) -> bytes:
    """Encode one message (the publisher side of the schema). ``ts`` naive means UTC."""
    if ts.tzinfo is not None:
        ts = ts.astimezone(timezone.utc).replace(tzinfo=None)
    body = ",".join(f'"{name}":{{"value":{value!r},"unit":"{unit}"}}' for name, (value, unit) in readings.items())
    return (
        f'{{"device_id":"{device_id}","seq":{seq},"ts":"{ts.isoformat()}Z","readings":{{{body}}}}}'
    ).encode()
