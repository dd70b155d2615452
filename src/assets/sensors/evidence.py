"""What the sensors say about a claimed field, and the alerts they raise after the loan.

Evidence for a field comes only from devices registered to the same borrower, in service on the
as-of date and located inside the claimed polygon. A device corroborates the claim when it
reported within `sensor_silent_hours` (the versioned parameters' ``[monitoring]`` table, the same
threshold the silence alerts use) of the end of the as-of day and its recent readings are
plausible for a cropped field (`PLAUSIBLE`), not merely inside the sensor's physical range
(already enforced at ingest). Soil moisture is compared with the device's own history, so a
sandy and a clay field are each judged against themselves.
"""

from __future__ import annotations

import hashlib
import json
import statistics
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

import duckdb
from shapely.geometry import MultiPolygon, Point, Polygon

from assets.fields.geometry import great_circle_km
from assets.monitor import MonitoringParams
from assets.sensors.registry import Device, list_devices
from assets.store import sensors as store_sensors

WINDOW_DAYS = 7  # readings judged for plausibility
RECENT_DAYS = 3  # "now" for the soil-moisture anomaly
HISTORY_DAYS = 60  # the device's own baseline before that
MIN_HISTORY_DAYS = 5
DROUGHT_Z = -2.0
DROUGHT_DROP_PCT = 3.0  # and at least this many percentage points below the baseline
MIN_IN_RANGE = 0.8
# Plausible for a cropped field's root zone (narrower than the physical ranges in schema.py).
PLAUSIBLE = {"soil_moisture_pct": (3.0, 60.0), "soil_temp_c": (-5.0, 45.0)}


def _end_of(as_of: date) -> datetime:
    return datetime.combine(as_of, time()) + timedelta(days=1)


@dataclass(frozen=True)
class DeviceEvidence:
    device_id: str
    status: str  # reporting | silent | implausible
    message: str
    last_seen: datetime | None
    readings_in_window: int
    in_range_fraction: float | None
    soil_moisture_recent: float | None
    soil_moisture_baseline: float | None
    soil_moisture_anomaly_z: float | None

    def to_dict(self) -> dict[str, object]:
        return {
            "device_id": self.device_id,
            "status": self.status,
            "message": self.message,
            "last_seen": self.last_seen.isoformat() if self.last_seen else None,
            "readings_in_window": self.readings_in_window,
            "in_range_fraction": self.in_range_fraction,
            "soil_moisture_recent": self.soil_moisture_recent,
            "soil_moisture_baseline": self.soil_moisture_baseline,
            "soil_moisture_anomaly_z": self.soil_moisture_anomaly_z,
        }


@dataclass(frozen=True)
class SensorEvidence:
    status: str  # corroborated | no_devices | silent | implausible
    message: str
    device_ids: tuple[str, ...]
    last_seen: datetime | None
    as_of: date | None = None
    readings_in_window: int = 0
    in_range_fraction: float | None = None
    soil_moisture_anomaly_z: float | None = None
    devices: tuple[DeviceEvidence, ...] = ()
    outside_device_ids: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, object]:
        return {
            "status": self.status,
            "message": self.message,
            "device_ids": list(self.device_ids),
            "last_seen": self.last_seen.isoformat() if self.last_seen else None,
            "as_of": self.as_of.isoformat() if self.as_of else None,
            "readings_in_window": self.readings_in_window,
            "in_range_fraction": self.in_range_fraction,
            "soil_moisture_anomaly_z": self.soil_moisture_anomaly_z,
            "devices": [d.to_dict() for d in self.devices],
            "outside_device_ids": list(self.outside_device_ids),
        }


def _round(x: float | None, nd: int = 3) -> float | None:
    return None if x is None else round(float(x), nd)


def device_evidence(con: duckdb.DuckDBPyConnection, device_id: str, as_of: date,
                    silence_hours: float) -> DeviceEvidence:
    """Last seen, plausibility over the last week and the soil-moisture anomaly for one device."""
    end = _end_of(as_of)
    last_seen = store_sensors.last_reading_at(con, device_id, end)
    (lo_m, hi_m), (lo_t, hi_t) = PLAUSIBLE["soil_moisture_pct"], PLAUSIBLE["soil_temp_c"]
    n, n_ok, sm_std = store_sensors.reading_quality(con, device_id, end - timedelta(days=WINDOW_DAYS), end,
                                                    (lo_m, hi_m), (lo_t, hi_t))
    daily = store_sensors.daily_moisture(con, device_id, end - timedelta(days=HISTORY_DAYS + RECENT_DAYS), end)
    recent_start = (end - timedelta(days=RECENT_DAYS)).date()
    recent = [v for d, v in daily if d >= recent_start]
    history = [v for d, v in daily if d < recent_start]
    recent_mean = statistics.fmean(recent) if recent else None
    baseline = statistics.fmean(history) if len(history) >= MIN_HISTORY_DAYS else None
    z = None
    if recent_mean is not None and baseline is not None:
        spread = max(statistics.stdev(history), 0.5)  # floor: a very steady probe is not an alarm
        z = (recent_mean - baseline) / spread
    in_range = n_ok / n if n else None
    if last_seen is None or (end - last_seen).total_seconds() > silence_hours * 3600:
        status = "silent"
        since = f"since {last_seen.isoformat(sep=' ', timespec='minutes')} UTC" if last_seen else "ever"
        message = f"{device_id} has not reported {since}"
    elif in_range is not None and in_range < MIN_IN_RANGE:
        status = "implausible"
        message = (
            f"{device_id}: only {in_range:.0%} of last week's readings are plausible for a cropped field "
            f"(soil moisture {lo_m:g}-{hi_m:g} %, soil temperature {lo_t:g}-{hi_t:g} C); is it in the soil?"
        )
    elif n >= 8 and sm_std is not None and sm_std == 0:
        status = "implausible"
        message = f"{device_id}: soil moisture has not changed in a week; the probe looks stuck"
    else:
        status = "reporting"
        message = f"{device_id} reporting, last seen {last_seen.isoformat(sep=' ', timespec='minutes')} UTC"
        if z is not None:
            message += f", soil moisture {recent_mean:.1f} % vs its usual {baseline:.1f} % (z {z:+.1f})"
    return DeviceEvidence(
        device_id=device_id,
        status=status,
        message=message,
        last_seen=last_seen,
        readings_in_window=int(n),
        in_range_fraction=_round(in_range),
        soil_moisture_recent=_round(recent_mean, 2),
        soil_moisture_baseline=_round(baseline, 2),
        soil_moisture_anomaly_z=_round(z, 2),
    )


def _active(devices: list[Device], as_of: date) -> list[Device]:
    end = _end_of(as_of)
    return [
        d for d in devices if (d.installed_at is None or d.installed_at < end) and (d.retired_at is None or d.retired_at >= end)
    ]


def field_evidence(
    con: duckdb.DuckDBPyConnection,
    borrower_id: str,
    polygon_wgs84: Polygon | MultiPolygon,
    as_of: date,
    silence_hours: float,
) -> SensorEvidence:
    """Sensor evidence for one claimed field (polygon in lon/lat) on ``as_of``; a device is silent
    after ``silence_hours`` without a reading (`MonitoringParams.sensor_silent_hours`, as for alerts)."""
    candidates = _active(list_devices(con, borrower_id=borrower_id), as_of)
    inside = [d for d in candidates if polygon_wgs84.covers(Point(d.lon, d.lat))]
    outside = tuple(d.device_id for d in candidates if d not in inside)
    if not inside:
        note = f" ({len(outside)} of the borrower's devices lie outside this field)" if outside else ""
        return SensorEvidence(
            status="no_devices",
            message=f"no device of {borrower_id} in service inside this field on {as_of.isoformat()}{note}",
            device_ids=(),
            last_seen=None,
            as_of=as_of,
            outside_device_ids=outside,
        )
    per_device = tuple(device_evidence(con, d.device_id, as_of, silence_hours) for d in inside)
    reporting = [e for e in per_device if e.status == "reporting"]
    seen = [e.last_seen for e in per_device if e.last_seen is not None]
    n = sum(e.readings_in_window for e in per_device)
    fractions = [(e.in_range_fraction, e.readings_in_window) for e in per_device if e.in_range_fraction is not None]
    in_range = sum(f * w for f, w in fractions) / sum(w for _, w in fractions) if fractions and n else None
    zs = [e.soil_moisture_anomaly_z for e in reporting if e.soil_moisture_anomaly_z is not None]
    if reporting:
        status = "corroborated"
        message = "; ".join(e.message for e in reporting)
    elif any(e.status == "implausible" for e in per_device):
        status = "implausible"
        message = "; ".join(e.message for e in per_device if e.status == "implausible")
    else:
        status = "silent"
        message = "; ".join(e.message for e in per_device)
    return SensorEvidence(
        status=status,
        message=message,
        device_ids=tuple(e.device_id for e in per_device),
        last_seen=max(seen) if seen else None,
        as_of=as_of,
        readings_in_window=n,
        in_range_fraction=_round(in_range),
        soil_moisture_anomaly_z=_round(statistics.fmean(zs), 2) if zs else None,
        devices=per_device,
        outside_device_ids=outside,
    )


@dataclass(frozen=True)
class Drift:
    """A straight-line fit of a device's daily soil moisture: how far it moved and how straight."""

    days: int
    change_pct: float  # points moved by the line over the window
    r2: float

    def to_dict(self) -> dict[str, object]:
        return {"days": self.days, "change_pct": round(self.change_pct, 2), "r2": round(self.r2, 3)}


def moisture_drift(con: duckdb.DuckDBPyConnection, device_id: str, as_of: date, days: int) -> Drift | None:
    """The line through the last ``days`` daily means (None with under 80 % of the days reported)."""
    end = _end_of(as_of)
    daily = store_sensors.daily_moisture(con, device_id, end - timedelta(days=days), end)
    if len(daily) < max(3, int(0.8 * days)):
        return None
    first = daily[0][0]
    xs = [float((d - first).days) for d, _ in daily]
    ys = [float(v) for _, v in daily]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    syy = sum((y - my) ** 2 for y in ys)
    if sxx == 0:
        return None
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx
    r2 = (slope * slope * sxx / syy) if syy > 0 else 0.0
    return Drift(days=len(daily), change_pct=slope * (xs[-1] - xs[0]), r2=min(1.0, r2))


def _alert_id(*parts: object) -> str:
    return hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()[:16]


DRIFT_VARIABLES = (("air_temp_c", "sensor_drift_air_temp_c", "C"), ("air_pressure_hpa", "sensor_drift_air_pressure_hpa",
                                                                     "hPa"))


def _km(a: Device, b: Device) -> float:
    return great_circle_km(a.lon, a.lat, b.lon, b.lat)


def drift_alerts(con: duckdb.DuckDBPyConnection, as_of: date, monitoring: Any = None,
                 raised_at: datetime | None = None) -> list[dict]:
    """``sensor_drift`` rows: a device whose daily difference from most of its neighbours (air
    temperature, air pressure: the same weather for devices a few km apart) moved by at least the
    threshold between the baseline days and the recent days (median of each window). A constant
    bias is not drift, a step or a creep is; the neighbours of a drifting device do not drift, as
    only one of their differences moves. Thresholds: `monitor.MonitoringParams` (``[monitoring]``
    of the parameters); the details carry the windows, the change against each neighbour and the
    parameter version."""
    from assets.monitor import MonitoringParams

    mp = monitoring if monitoring is not None else MonitoringParams(version="defaults")
    raised_at = raised_at or datetime.now(timezone.utc).replace(tzinfo=None)
    end = _end_of(as_of)
    recent_from = end - timedelta(days=mp.sensor_drift_recent_days)
    start = recent_from - timedelta(days=mp.sensor_drift_baseline_days)
    devices = {d.device_id: d for d in _active(list_devices(con), as_of)}
    if len(devices) < 1 + mp.sensor_drift_min_peers:
        return []
    columns = tuple(v for v, _, _ in DRIFT_VARIABLES)
    daily: dict[str, dict[str, dict[date, float]]] = {v: {} for v in columns}
    for device_id, day, *means in store_sensors.daily_means(con, start, end, columns):
        for v, m in zip(columns, means):
            if m is not None and device_id in devices:
                daily[v].setdefault(device_id, {})[day] = float(m)
    rows = []
    for v, key, unit in DRIFT_VARIABLES:
        threshold = float(getattr(mp, key))
        for device_id, series in sorted(daily[v].items()):
            me = devices[device_id]
            changes: dict[str, float] = {}  # peer -> change of the daily difference, recent vs baseline
            for peer, other in daily[v].items():
                if peer == device_id or _km(me, devices[peer]) > mp.sensor_drift_peer_km:
                    continue
                windows: dict[str, list[float]] = {"baseline": [], "recent": []}
                for day in series.keys() & other.keys():
                    window = "recent" if datetime.combine(day, time()) >= recent_from else "baseline"
                    windows[window].append(series[day] - other[day])
                if (len(windows["recent"]) >= mp.sensor_drift_min_days
                        and len(windows["baseline"]) >= mp.sensor_drift_min_baseline_days):
                    changes[peer] = statistics.median(windows["recent"]) - statistics.median(windows["baseline"])
            if len(changes) < mp.sensor_drift_min_peers:
                continue  # too few neighbours to tell the device from the weather
            drift = statistics.median(changes.values())
            agreeing = [p for p, c in changes.items() if abs(c) >= threshold and (c > 0) == (drift > 0)]
            if abs(drift) < threshold or 2 * len(agreeing) <= len(changes):
                continue  # a neighbour that moved is that neighbour's drift, not this device's
            rows.append({
                "alert_id": _alert_id("sensor_drift", device_id, v, as_of), "kind": "sensor_drift",
                "borrower_id": me.borrower_id, "claim_id": None, "device_id": device_id, "raised_at": raised_at,
                "as_of": as_of,
                "message": (f"{v} of {device_id} ({me.borrower_id}) drifted {drift:+.1f} {unit} against "
                            f"{len(agreeing)} of its {len(changes)} neighbours over the last "
                            f"{mp.sensor_drift_recent_days} days (threshold {threshold:g} {unit}); recalibrate or "
                            "replace the device"),
                "details": json.dumps({
                    "variable": v, "unit": unit, "threshold": threshold, "drift": _round(drift),
                    "change_against": {p: _round(c) for p, c in sorted(changes.items())},
                    "baseline": [start.date().isoformat(), recent_from.date().isoformat()],
                    "recent": [recent_from.date().isoformat(), end.date().isoformat()],
                    "peers": sorted(changes), "peer_km": mp.sensor_drift_peer_km, "params_version": mp.version}),
            })
    return rows


def _silence_cause(con: duckdb.DuckDBPyConnection, device_id: str) -> str:
    """What to do about a silent device: check its power, unless it is sending and being refused."""
    refused = store_sensors.quarantined_after_last_reading(con, device_id)
    if not refused:
        return "check the device and its power"
    what = ", ".join(f"{n:,} {code}" for code, n in refused.items())
    hint = (" (its message counter restarted, e.g. after a reboot: continue the counter past its old maximum, or "
            "register it again under a new id)" if "seq_conflict" in refused else "")
    return (f"it is sending, but its messages since were refused ({what}){hint}; "
            f"see `assets sensors quarantine`")


def alerts(con: duckdb.DuckDBPyConnection, as_of: date,
           monitoring: MonitoringParams | None = None) -> list[dict]:
    """Rows for the ``alerts`` table: devices gone silent, soil probes ramping, soil drying far below its
    norm, and devices drifting from their neighbours (`drift_alerts`).

    ``monitoring`` holds the thresholds (the versioned parameters' ``[monitoring]`` table; its
    defaults when None). ``alert_id`` is deterministic: one silence episode (device + last reading)
    is one alert however many nightly runs see it; drift and drought alerts are one per device and
    as-of day.
    """
    m = monitoring or MonitoringParams(version="defaults")
    raised_at = datetime.now(timezone.utc).replace(tzinfo=None)
    rows = []
    for device in _active(list_devices(con), as_of):
        ev = device_evidence(con, device.device_id, as_of, silence_hours=m.sensor_silent_hours)
        base = {
            "borrower_id": device.borrower_id,
            "claim_id": None,
            "device_id": device.device_id,
            "raised_at": raised_at,
            "as_of": as_of,
        }
        if ev.status == "silent":
            hours = (_end_of(as_of) - ev.last_seen).total_seconds() / 3600 if ev.last_seen else None
            rows.append(
                {
                    **base,
                    "alert_id": _alert_id("sensor_silent", device.device_id, ev.last_seen),
                    "kind": "sensor_silent",
                    "message": f"{ev.message} ({device.borrower_id}); " + _silence_cause(con, device.device_id),
                    "details": json.dumps({**ev.to_dict(), "silent_hours": _round(hours, 1)}),
                }
            )
            continue
        drift = moisture_drift(con, device.device_id, as_of, m.sensor_soil_ramp_days)
        if drift is not None and abs(drift.change_pct) >= m.sensor_soil_ramp_min_change_pct and drift.r2 >= m.sensor_soil_ramp_min_r2:
            rows.append(
                {
                    **base,
                    "alert_id": _alert_id("sensor_drift", device.device_id, "soil_moisture_pct", as_of),
                    "kind": "sensor_drift",
                    "message": (
                        f"soil moisture at {device.device_id} ({device.borrower_id}) has moved {drift.change_pct:+.1f} "
                        f"points along a straight line over {drift.days} days (R2 {drift.r2:.2f}); soil wets in jumps "
                        "and dries along a curve, so the probe looks like it is drifting: recalibrate or replace it"
                    ),
                    "details": json.dumps({**ev.to_dict(), "variable": "soil_moisture_pct", "drift": drift.to_dict(),
                                           "params_version": m.version,
                                           "thresholds": {"days": m.sensor_soil_ramp_days,
                                                          "min_change_pct": m.sensor_soil_ramp_min_change_pct,
                                                          "min_r2": m.sensor_soil_ramp_min_r2}}),
                }
            )
            continue  # a drifting probe's readings say nothing about drought
        if (
            ev.soil_moisture_anomaly_z is not None
            and ev.soil_moisture_anomaly_z <= DROUGHT_Z
            and ev.soil_moisture_baseline is not None
            and ev.soil_moisture_recent is not None
            and ev.soil_moisture_baseline - ev.soil_moisture_recent >= DROUGHT_DROP_PCT
        ):
            rows.append(
                {
                    **base,
                    "alert_id": _alert_id("drought", device.device_id, as_of),
                    "kind": "drought",
                    "message": (
                        f"soil at {device.device_id} ({device.borrower_id}) is drying: "
                        f"{ev.soil_moisture_recent:.1f} % over the last {RECENT_DAYS} days vs its usual "
                        f"{ev.soil_moisture_baseline:.1f} % (z {ev.soil_moisture_anomaly_z:+.1f})"
                    ),
                    "details": json.dumps(ev.to_dict()),
                }
            )
    return rows + drift_alerts(con, as_of, monitoring, raised_at)
