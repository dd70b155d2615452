"""Post-loan monitoring from the season's NDVI: crop failure, not planted by the expected date,
harvest reached (repayment due).

A healthy crop greens up, peaks, and senesces around harvest; a failed one (drought, flood,
pests) loses its canopy weeks early. `crop_failure` compares the newest clear observation inside
the crop's own season (``season_start_doy`` to ``harvest_doy``) with the season's peak so far.
`not_planted` raises when the crop's season is well under way (``planted_within_days`` after its
start) and no clear date since then shows a green canopy; `harvest_reached` raises once the
crop's harvest day has passed on a field that was planted, saying whether the imagery already
shows the canopy gone. Thresholds come from the ``[monitoring]`` table of the versioned valuation
parameters (`valuation_params.toml`), so every alert can be traced to the parameter version that
raised it; each alert's details name the dates, tiles and NDVI it was raised on.
"""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache

from assets.errors import InputError
from assets.observe import ClaimObservation, DateObservation
from assets.valuation import ValuationParams

# Every kind of alert the platform raises: from the season's NDVI (here) and from the sensors
# (`sensors.evidence`: silent, drift, drought). Filters take only these names.
ALERT_KINDS = ("crop_failure", "not_planted", "harvest_reached", "sensor_silent", "sensor_drift", "drought")


def check_alert_kind(kind: str | None) -> str | None:
    """``kind`` when it is one the platform raises (or None); otherwise an error naming the kinds."""
    if kind is not None and kind not in ALERT_KINDS:
        raise InputError(f"unknown alert kind {kind!r}; choose one of {', '.join(ALERT_KINDS)}")
    return kind


MIN_PEAK_NDVI = 0.55  # defaults when a parameter file has no [monitoring] table (older versions)
DROP_NDVI = 0.35


@dataclass(frozen=True)
class MonitoringParams:
    """The ``[monitoring]`` thresholds of one parameter version."""

    version: str
    crop_failure_min_peak_ndvi: float = MIN_PEAK_NDVI  # the crop must have established before a collapse means anything
    crop_failure_drop_ndvi: float = DROP_NDVI  # fall from the peak that counts as a collapse
    planted_ndvi: float = 0.5  # a date's top-decile NDVI at or above this: the field is green (planted)
    planted_within_days: int = 90  # days after the crop's season start by which it must be green
    harvest_due_after_days: int = 0  # days after the crop's harvest day that repayment falls due
    harvested_ndvi: float = 0.4  # a mean NDVI under this after the peak: the imagery shows the harvest
    # Sensors (`sensors.evidence.alerts`). A drifting soil probe's daily soil moisture runs along a straight
    # line: real soil wets in jumps (rain, irrigation) and dries along a curve. On the real EcoIrrigate
    # logs (two farms, Jan-Apr 2025) no 21-day window moves 8 points with R^2 >= 0.9 (largest: 7.5).
    sensor_silent_hours: float = 24.0  # no reading for this long: the device is silent
    sensor_soil_ramp_days: int = 21  # days of daily means the ramp line is fitted over
    sensor_soil_ramp_min_change_pct: float = 8.0  # soil-moisture points the line must move over those days
    sensor_soil_ramp_min_r2: float = 0.9  # and how straight it must be (share of the variance the line explains)
    # Sensor drift (`sensors.evidence.drift_alerts`): a device's daily offset from its neighbours' median
    # (air temperature and pressure are regional) moves by this much between a baseline and the recent days.
    sensor_drift_air_temp_c: float = 2.0
    sensor_drift_air_pressure_hpa: float = 3.0
    sensor_drift_recent_days: int = 7
    sensor_drift_baseline_days: int = 30
    sensor_drift_min_days: int = 3  # recent days compared with a neighbour
    sensor_drift_min_baseline_days: int = 14  # baseline days compared with a neighbour
    # Neighbours judged against: with two, one wandering neighbour already makes half of them disagree
    # (the bundled probes' synthetic weather wanders per probe, so the demo is never judged).
    sensor_drift_min_peers: float = 3
    sensor_drift_peer_km: float = 25.0  # neighbours: other active devices within this distance
    enabled: bool = False  # False: the parameters carry no [monitoring] table (no planting/harvest alerts)


@lru_cache(maxsize=16)
def _parse(text: str, version: str) -> MonitoringParams:
    raw = tomllib.loads(text).get("monitoring")
    if raw is None:
        return MonitoringParams(version=version)
    known = set(MonitoringParams.__dataclass_fields__) - {"version", "enabled"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise InputError(f"valuation parameters {version}: [monitoring] has unknown keys {unknown}; "
                         f"use {sorted(known)}")
    values: dict[str, float | int] = {}
    for key, value in raw.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise InputError(f"valuation parameters {version}: [monitoring] {key} = {value!r} must be a number >= 0")
        if key.endswith("_ndvi") and value > 1:
            raise InputError(f"valuation parameters {version}: [monitoring] {key} = {value} is an NDVI; "
                             "it must lie between 0 and 1")
        if key.endswith("_r2") and value > 1:
            raise InputError(f"valuation parameters {version}: [monitoring] {key} = {value} is a share of variance; "
                             "it must lie between 0 and 1")
        values[key] = int(value) if key.endswith("_days") else float(value)
    return MonitoringParams(version=version, enabled=True, **values)  # type: ignore[arg-type]


def monitoring_params(params: ValuationParams) -> MonitoringParams:
    """The monitoring thresholds stored in the same versioned file as the valuation parameters."""
    return _parse(params.text, params.version)


def _alert_id(*parts: object) -> str:
    return "a-" + hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:16]


def _green(d: DateObservation) -> float:
    return float(d.ndvi_p90 if d.ndvi_p90 is not None else d.ndvi_mean or 0.0)


@dataclass(frozen=True)
class Alert:
    alert_id: str
    kind: str
    borrower_id: str
    claim_id: str | None
    as_of: date
    message: str
    details: dict

    def row(self, raised_at) -> dict:
        return {"alert_id": self.alert_id, "kind": self.kind, "borrower_id": self.borrower_id,
                "claim_id": self.claim_id, "device_id": None, "raised_at": raised_at, "as_of": self.as_of,
                "message": self.message, "details": self.details}


def _called(crop: str, uncertain: bool, best_fit: bool = False) -> str:
    """How an alert names the crop whose calendar it used: a guess is said to be one, and which."""
    if not uncertain:
        return crop
    if best_fit:
        return f"{crop} (the crop call is uncertain; of its likely crops, {crop} fits the season best)"
    return f"{crop} (the likeliest crop; the crop call is uncertain)"


def crop_failure(borrower_id: str, crop: str | None, obs: ClaimObservation, params: ValuationParams, as_of: date,
                 uncertain: bool = False, best_fit: bool = False) -> Alert | None:
    """An alert when the field's NDVI collapsed before its crop's harvest day, else None
    (``uncertain``: ``crop`` is a guess of an uncertain call, the likeliest crop or, with
    ``best_fit``, the likely crop the season fits best: `valuation.calendar_crop`)."""
    econ = params.crops.get(crop or "")
    if econ is None:
        return None
    dates = [d for d in obs.usable_dates
             if econ.season_start_doy <= d.observed_on.timetuple().tm_yday < econ.harvest_doy]
    if len(dates) < 2:
        return None
    peak = max(dates, key=lambda d: d.ndvi_mean)  # type: ignore[arg-type,return-value]  # usable: ndvi set
    last = dates[-1]
    m = monitoring_params(params)
    if (last is peak or peak.ndvi_mean < m.crop_failure_min_peak_ndvi  # type: ignore[operator]
            or peak.ndvi_mean - last.ndvi_mean < m.crop_failure_drop_ndvi):  # type: ignore[operator]
        return None
    key = f"crop_failure|{obs.claim_id}|{last.observed_on}"
    return Alert(
        alert_id="a-" + hashlib.sha256(key.encode()).hexdigest()[:16], kind="crop_failure",
        borrower_id=borrower_id, claim_id=obs.claim_id, as_of=as_of,
        message=(f"{_called(crop or '', uncertain, best_fit)} canopy fell from NDVI {peak.ndvi_mean:.2f} on {peak.observed_on} "
                 f"to {last.ndvi_mean:.2f} on {last.observed_on}, before the usual harvest (day {econ.harvest_doy}); "
                 "inspect the field"),
        details={"peak_ndvi": peak.ndvi_mean, "peak_on": str(peak.observed_on), "last_ndvi": last.ndvi_mean,
                 "last_on": str(last.observed_on), "harvest_doy": econ.harvest_doy,
                 "tiles": [peak.tile_id, last.tile_id], "params_version": params.version},
    )


def post_loan_alerts(borrower_id: str, crop: str | None, obs: ClaimObservation, params: ValuationParams,
                     as_of: date, uncertain: bool = False, best_fit: bool = False) -> list[Alert]:
    """`not_planted` and `harvest_reached` for one field in the season of ``as_of`` (at most one each
    per field and season: the alert id is the same every night, so it is stored once)."""
    m = monitoring_params(params)
    econ = params.crops.get(crop or "")
    if not m.enabled or econ is None or crop is None:
        return []
    year = as_of.year
    season_start = date(year, 1, 1) + timedelta(days=max(econ.season_start_doy - 1, 0))
    harvest_on = date(year, 1, 1) + timedelta(days=econ.harvest_doy - 1)
    planted_by = min(season_start + timedelta(days=m.planted_within_days), harvest_on)
    season = [d for d in obs.usable_dates if season_start <= d.observed_on <= as_of]
    evidence = {"crop": crop, "params_version": params.version, "tiles": [d.tile_id for d in season],
                "dates": [str(d.observed_on) for d in season],
                "ndvi_p90": [round(_green(d), 3) for d in season]}
    green = [d for d in season if _green(d) >= m.planted_ndvi]
    alerts: list[Alert] = []
    if not green and as_of >= planted_by and season:
        best = max(season, key=_green)
        alerts.append(Alert(
            alert_id=_alert_id("not_planted", obs.claim_id, year), kind="not_planted", borrower_id=borrower_id,
            claim_id=obs.claim_id, as_of=as_of,
            message=(f"{_called(crop, uncertain, best_fit)} not planted by {planted_by}: no clear date since "
                     f"{season_start} shows a green canopy "
                     f"(best NDVI {_green(best):.2f} on {best.observed_on}, {m.planted_ndvi:.2f} needed); "
                     "visit the field before the next drawdown"),
            details={**evidence, "planted_by": str(planted_by), "planted_ndvi": m.planted_ndvi}))
    due_on = harvest_on + timedelta(days=m.harvest_due_after_days)
    if green and as_of >= due_on:
        peak = max(green, key=_green)
        after = [d for d in obs.usable_dates if peak.observed_on < d.observed_on <= as_of]
        # the first bare date after the peak: a catch crop or regrowth greening the stubble later does
        # not undo the harvest (the newest date alone missed wheat cut in August and green by September)
        bare = next((d for d in after if d.ndvi_mean is not None and d.ndvi_mean < m.harvested_ndvi), None)
        seen = bare is not None
        what = (f"the imagery shows it harvested (NDVI {bare.ndvi_mean:.2f} on {bare.observed_on})" if bare is not None
                else "the imagery does not show the harvest yet")
        alerts.append(Alert(
            alert_id=_alert_id("harvest_reached", obs.claim_id, year), kind="harvest_reached",
            borrower_id=borrower_id, claim_id=obs.claim_id, as_of=as_of,
            message=f"{_called(crop, uncertain, best_fit)} harvest day {harvest_on} reached: repayment due from {due_on}; {what}",
            details={**evidence, "harvest_on": str(harvest_on), "due_on": str(due_on), "harvest_observed": seen,
                     "peak_on": str(peak.observed_on), "peak_ndvi_p90": round(_green(peak), 3)}))
    return alerts
