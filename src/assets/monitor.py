"""Crop-failure alerts from the season's NDVI: the canopy collapsed before the crop's harvest.

A healthy crop greens up, peaks, and senesces around harvest; a failed one (drought, flood,
pests) loses its canopy weeks early. The rule compares the newest clear observation inside the
crop's own season (``season_start_doy`` to ``harvest_doy``) with the season's peak so far.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date

from assets.observe import ClaimObservation
from assets.valuation import ValuationParams

MIN_PEAK_NDVI = 0.55  # the crop must have established before a collapse means anything
DROP_NDVI = 0.35  # fall from the peak that counts as a collapse


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


def crop_failure(borrower_id: str, crop: str | None, obs: ClaimObservation, params: ValuationParams, as_of: date) -> Alert | None:
    """An alert when the field's NDVI collapsed before its crop's harvest day, else None."""
    econ = params.crops.get(crop or "")
    if econ is None:
        return None
    dates = [d for d in obs.usable_dates
             if econ.season_start_doy <= d.observed_on.timetuple().tm_yday < econ.harvest_doy]
    if len(dates) < 2:
        return None
    peak = max(dates, key=lambda d: d.ndvi_mean)  # type: ignore[arg-type,return-value]  # usable: ndvi set
    last = dates[-1]
    if last is peak or peak.ndvi_mean < MIN_PEAK_NDVI or peak.ndvi_mean - last.ndvi_mean < DROP_NDVI:  # type: ignore[operator]
        return None
    key = f"crop_failure|{obs.claim_id}|{last.observed_on}"
    return Alert(
        alert_id="a-" + hashlib.sha256(key.encode()).hexdigest()[:16], kind="crop_failure",
        borrower_id=borrower_id, claim_id=obs.claim_id, as_of=as_of,
        message=(f"{crop} canopy fell from NDVI {peak.ndvi_mean:.2f} on {peak.observed_on} to {last.ndvi_mean:.2f} "
                 f"on {last.observed_on}, before the usual harvest (day {econ.harvest_doy}); inspect the field"),
        details={"peak_ndvi": peak.ndvi_mean, "peak_on": str(peak.observed_on), "last_ndvi": last.ndvi_mean,
                 "last_on": str(last.observed_on), "harvest_doy": econ.harvest_doy},
    )
