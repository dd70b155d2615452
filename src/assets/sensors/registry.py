"""The device registry: which device belongs to which borrower, where it is, and its credentials.

Secrets are stored only as salted PBKDF2 hashes; the broker checks them through its own
password file (built by `assets.sensors.broker.write_password_file` or deploy/mosquitto/).
"""

from __future__ import annotations

import hashlib
import json
import math
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

import duckdb

from assets.access import canonical_id
from assets.config import Settings
from assets.errors import InputError, NotFoundError, SensorError
from assets.fields.geometry import great_circle_km
from assets.sensors.schema import DeviceStatus, check_device_id
from assets.store import claims as store_claims
from assets.store import sensors as store_sensors
from assets.store import writer

KINDS = ("soil_probe", "weather_station", "soil_weather")  # examples; any word is accepted
_PBKDF2_ITERATIONS = 200_000


@dataclass(frozen=True)
class Device:
    device_id: str
    borrower_id: str
    kind: str
    lon: float
    lat: float
    installed_at: datetime | None = None  # naive UTC; None: unknown
    retired_at: datetime | None = None

    def active_at(self, moment: datetime) -> bool:
        return (self.installed_at is None or self.installed_at <= moment) and (
            self.retired_at is None or self.retired_at > moment
        )

    def to_dict(self) -> dict[str, object]:
        return {
            "device_id": self.device_id,
            "borrower_id": self.borrower_id,
            "kind": self.kind,
            "lon": self.lon,
            "lat": self.lat,
            "installed_at": self.installed_at.isoformat() if self.installed_at else None,
            "retired_at": self.retired_at.isoformat() if self.retired_at else None,
        }


def hash_secret(secret: str, *, salt: str | None = None) -> str:
    salt = salt or secrets.token_hex(8)
    digest = hashlib.pbkdf2_hmac("sha256", secret.encode(), salt.encode(), _PBKDF2_ITERATIONS).hex()
    return f"pbkdf2_sha256${_PBKDF2_ITERATIONS}${salt}${digest}"


def check_secret(secret: str, stored: str) -> bool:
    try:
        _, iterations, salt, digest = stored.split("$")
    except ValueError:
        return False
    candidate = hashlib.pbkdf2_hmac("sha256", secret.encode(), salt.encode(), int(iterations)).hex()
    return secrets.compare_digest(candidate, digest)


def _check(device: Device) -> Device:
    check_device_id(device.device_id)
    if not device.borrower_id or not isinstance(device.borrower_id, str):
        raise SensorError(f"device {device.device_id!r}: borrower id is empty")
    try:  # one spelling per borrower: a look-alike id would file the device under a second borrower
        canonical_id(device.borrower_id, "borrower id")
    except InputError as exc:
        raise SensorError(f"device {device.device_id!r}: {exc}") from None
    if not isinstance(device.kind, str) or not device.kind.replace("_", "").replace("-", "").isalnum():
        raise SensorError(
            f"device {device.device_id!r}: kind {device.kind!r} must be a word such as {', '.join(KINDS)}"
        )
    lon, lat = device.lon, device.lat
    if not (isinstance(lon, (int, float)) and isinstance(lat, (int, float))) or not (
        math.isfinite(lon) and math.isfinite(lat) and -180 <= lon <= 180 and -90 <= lat <= 90
    ):
        raise SensorError(
            f"device {device.device_id!r}: location ({lon}, {lat}) is not a WGS84 lon/lat; "
            "give longitude first, in degrees"
        )
    return device


Db = writer.Target  # a database path (faces: its one writer) or an open connection


def register_device(db: Db, device: Device, secret: str | None = None, *, exist_ok: bool = False) -> bool:
    """Add a device. Returns False (and changes nothing) if it exists and ``exist_ok``.

    A device id already registered to another borrower or place is an error even with
    ``exist_ok``: moving a device is a retire + new registration, so history stays attributable.
    """
    _check(device)
    check_placement(db, device)
    row = {
        "device_id": device.device_id,
        "borrower_id": device.borrower_id,
        "kind": device.kind,
        "lon": float(device.lon),
        "lat": float(device.lat),
        "secret_hash": hash_secret(secret) if secret else None,
        "installed_at": device.installed_at,
        "retired_at": device.retired_at,
        "registered_at": datetime.now(timezone.utc).replace(tzinfo=None),
    }
    stored = writer.apply(db, store_sensors.add_device, row=row)
    if stored is None:
        return True
    existing = _row_to_device(stored)
    same = (existing.borrower_id, existing.kind, existing.lon, existing.lat) == (
        device.borrower_id, device.kind, float(device.lon), float(device.lat))
    if exist_ok and same:
        return False
    raise SensorError(
        f"device {device.device_id!r} is already registered to {existing.borrower_id} at "
        f"({existing.lon}, {existing.lat}); retire it and register a new id to move it"
    )


def _km_to_box(lon: float, lat: float, box: Sequence[float]) -> float:
    """Great-circle km from a point to the nearest point of a lon/lat box (0 inside it)."""
    x, y = min(max(lon, box[0]), box[2]), min(max(lat, box[1]), box[3])
    return great_circle_km(lon, lat, x, y)


def field_bounds(db: Db, borrower_id: str) -> list[tuple[float, float, float, float]]:
    """The boxes of a borrower's fields with a usable drawing (none before their first claim)."""
    with writer.reading(db) as con:
        return store_claims.borrower_field_bounds(con, borrower_id)


def check_placement(db: Db, device: Device, max_km: float | None = None) -> None:
    """A device corroborates only the field it stands in: one further than ``max_km``
    (`Settings.device_max_km_from_fields`) from every field its borrower has drawn is a typo or
    swapped coordinates, refused with the distance. A borrower with no fields yet is not checked."""
    boxes = field_bounds(db, device.borrower_id)
    if not boxes:
        return
    limit = Settings().device_max_km_from_fields if max_km is None else max_km
    nearest = min(_km_to_box(float(device.lon), float(device.lat), b) for b in boxes)
    if nearest > limit:
        raise SensorError(
            f"device {device.device_id!r} at lon {device.lon}, lat {device.lat} is {nearest:,.0f} km from the nearest "
            f"of {device.borrower_id}'s fields (at most {limit:g} km); check the location, longitude first, "
            "then latitude"
        )


def retire_device(db: Db, device_id: str, at: datetime | None = None) -> Device:
    """Mark a device retired (readings at or after ``at`` are refused from then on)."""
    at = at or datetime.now(timezone.utc).replace(tzinfo=None)
    stored = writer.apply(db, store_sensors.retire_device, device_id=device_id, at=at)
    if stored is None:
        raise NotFoundError(f"no device {device_id!r}; list them with `assets sensors devices list`")
    device = _row_to_device(stored["row"])
    if not stored["retired"]:
        raise SensorError(f"device {device_id!r} was already retired at {device.retired_at.isoformat()}")  # type: ignore[union-attr]
    return device


def _row_to_device(row: Sequence[Any]) -> Device:
    return Device(*row)


def get_device(con: duckdb.DuckDBPyConnection, device_id: str, *, missing_ok: bool = False) -> Device | None:
    row = store_sensors.device_row(con, device_id)
    if row is None:
        if missing_ok:
            return None
        raise NotFoundError(f"no device {device_id!r}; list them with `assets sensors devices list`")
    return _row_to_device(row)


def list_devices(con: duckdb.DuckDBPyConnection, *, borrower_id: str | None = None) -> list[Device]:
    return [_row_to_device(r) for r in store_sensors.device_rows(con, borrower_id)]


def device_statuses(con: duckdb.DuckDBPyConnection) -> dict[str, DeviceStatus]:
    """What the validator needs: registered ids and when each was retired."""
    return {
        device_id: DeviceStatus(retired_at=retired)
        for device_id, retired in store_sensors.device_retirements(con)
    }


def load_devices_file(path: str | Path) -> list[tuple[Device, str | None]]:
    """Read a devices JSON list ``[{"device_id","borrower_id","kind","lon","lat","secret"?}]``."""
    path = Path(path)
    try:
        items = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise SensorError(f"devices file {path} does not exist") from exc
    except (OSError, ValueError) as exc:
        raise SensorError(f"devices file {path} is not readable JSON: {exc}") from exc
    if not isinstance(items, list):
        raise SensorError(f"devices file {path} must hold a JSON list of devices")
    out = []
    for i, item in enumerate(items):
        try:
            device = Device(
                device_id=item["device_id"],
                borrower_id=item["borrower_id"],
                kind=item.get("kind", "soil_probe"),
                lon=float(item["lon"]),
                lat=float(item["lat"]),
                installed_at=datetime.fromisoformat(item["installed_at"]) if item.get("installed_at") else None,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise SensorError(
                f"devices file {path}, item {i}: needs device_id, borrower_id, lon, lat ({exc!r})"
            ) from exc
        out.append((_check(device), item.get("secret")))
    return out


def register_devices_file(db: Db, path: str | Path) -> int:
    """Register every device in a devices JSON file; idempotent. Returns how many were new."""
    return sum(register_device(db, device, secret, exist_ok=True) for device, secret in load_devices_file(path))
