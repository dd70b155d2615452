"""Value a verified field with its uncertainty and set its credit limit, every number explained.

The expected value is the harvest under the crop model's calibrated probabilities:
``area_mu x sum_c P(c) x yield_c x price_c``; a doubtful crop call lowers the value instead of
betting on the top class. Around it sit a low and a high estimate: the verified area +- a margin
that grows as the evidence weakens (fewer cloud-free dates, partial planting), the least (most)
valuable likely crop, and the low (high) yield and price of each crop. The limit lends against
the LOW estimate only (policy in `valuation_params.toml`), so weaker evidence never raises it.
Parameters live in a versioned TOML file; each row records the version and its sha256.

The pieces live by concept: the parameter file (`valuation_params`), the uncertainty of area and
crop (`valuation_uncertainty`) and the credit policy from the low value to the limit
(`valuation_policy`). Their names are re-exported here, where the rest of the platform imports them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from assets.crop_health import Health
from assets.crop_health import health as crop_health
from assets.fields.geometry import ha_to_mu
from assets.models import legend
from assets.valuation_params import (
    CURRENCIES,
    NATIONAL,
    CropEconomics,
    Region,
    Uncertainty,
    ValuationParams,
    load_params,
    parse_params,
)
from assets.valuation_policy import cap_borrower_limits, field_limit
from assets.valuation_uncertainty import area_margin, likely_crops, per_mu_range, per_mu_value
from assets.verify import Verification

__all__ = ["CURRENCIES", "NATIONAL", "VALUE_STEPS", "CropEconomics", "Region", "Uncertainty", "Valuation",
           "ValuationInput", "ValuationParams", "area_margin", "bbox_centre", "cap_borrower_limits", "field_limit",
           "calendar_crop", "health_crop", "judge_health", "likely_crops", "load_params", "parse_params", "per_mu_range", "per_mu_value",
           "season_ndvi", "value_claim", "value_inputs"]

# Explanation steps stored with the valuation; every other step belongs to the limit.
VALUE_STEPS = ("area", "crop", "crop_health", "value_per_mu", "value", "area_range", "value_per_mu_range",
               "value_range")


def stored_probs(crop_probs: Mapping[str, float]) -> dict[str, float]:
    """Crop probabilities as a valuation input stores them (6 decimals), so a recomputation and a
    judgement made before the valuation see the same numbers."""
    return {k: round(float(p), 6) for k, p in crop_probs.items()}


def stored_season(ndvi_season: Any) -> tuple[tuple[str, float], ...] | None:
    """(ISO date, mean NDVI to 4 decimals) per cloud-free date, as a valuation input stores them."""
    return None if ndvi_season is None else tuple((str(on), round(float(x), 4)) for on, x in ndvi_season)


@dataclass(frozen=True)
class ValuationInput:
    """Everything a valuation is computed from, stored with it so it can be recomputed exactly."""

    status: str
    verified_area_ha: float
    claimed_area_ha: float
    crop: str | None
    crop_probability: float
    crop_probs: dict[str, float]
    sensor_status: str
    reason_codes: tuple[str, ...]
    usable_dates: int | None = None
    centre_lon: float | None = None  # the field's bounding-box centre (EPSG:4326): picks the parameter region
    centre_lat: float | None = None
    ndvi_season: tuple[tuple[str, float], ...] | None = None  # (ISO date, mean NDVI) per cloud-free date this season

    @classmethod
    def from_verification(cls, v: Verification, usable_dates: int | None = None,
                          centre: tuple[float, float] | None = None,
                          ndvi_season: Any = None) -> "ValuationInput":
        return cls(status=v.status, verified_area_ha=float(v.verified_area_ha), claimed_area_ha=float(v.claimed_area_ha),
                   crop=v.crop, crop_probability=round(float(v.crop_probability), 6),
                   crop_probs=stored_probs(v.crop_probs),
                   sensor_status=str((v.sensor_evidence or {}).get("status") or "no_devices"),
                   reason_codes=tuple(r.code for r in v.reasons), usable_dates=usable_dates,
                   centre_lon=round(float(centre[0]), 6) if centre else None,
                   centre_lat=round(float(centre[1]), 6) if centre else None,
                   ndvi_season=stored_season(ndvi_season))

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> "ValuationInput":
        """Inputs as stored; those recorded before a field existed read it as None (the step is a no-op)."""
        ndvi = doc.get("ndvi_season")
        return cls(**{**doc, "reason_codes": tuple(doc["reason_codes"]),
                      "ndvi_season": None if ndvi is None else tuple((str(a), float(b)) for a, b in ndvi)})

    def to_json(self) -> dict[str, Any]:
        doc = {**asdict(self), "reason_codes": list(self.reason_codes)}
        for key in ("centre_lon", "centre_lat", "ndvi_season"):  # absent, as in inputs stored before they existed
            if doc[key] is None:
                del doc[key]
        if self.ndvi_season is not None:
            doc["ndvi_season"] = [[on, x] for on, x in self.ndvi_season]
        return doc


@dataclass
class Valuation:
    area_ha: float
    area_mu: float
    crop: str | None
    crop_probability: float
    value_cny: float
    yield_kg_per_mu: float | None
    price_cny_per_kg: float | None
    limit_cny: float
    advance_rate: float
    params_version: str
    explanation: list[dict[str, Any]] = field(default_factory=list)
    value_low_cny: float = 0.0
    value_high_cny: float = 0.0
    inputs: ValuationInput | None = None

    def steps(self, names: tuple[str, ...] = VALUE_STEPS) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(valuation steps, limit steps) of the explanation, by step name."""
        return ([s for s in self.explanation if s["step"] in names], [s for s in self.explanation if s["step"] not in names])


def value_claim(v: Verification, params: ValuationParams, usable_dates: int | None = None,
                centre: tuple[float, float] | None = None, ndvi_season: Any = None) -> Valuation | None:
    """Value and limit for a verified or partial claim; None for a rejected one."""
    if v.rejected:
        return None
    return value_inputs(ValuationInput.from_verification(v, usable_dates, centre, ndvi_season), params)


def bbox_centre(geometry: Any) -> tuple[float, float] | None:
    """The centre of a field's bounding box (EPSG:4326): what picks its parameter region."""
    if geometry is None or geometry.is_empty:
        return None
    x0, y0, x1, y1 = geometry.bounds
    return (x0 + x1) / 2, (y0 + y1) / 2


def season_ndvi(observation: Any) -> list[tuple[str, float]]:
    """(ISO date, mean NDVI) of each cloud-free date of a claim's observation: the crop-health evidence."""
    return [(d.observed_on.isoformat(), float(d.ndvi_mean)) for d in observation.usable_dates]


def _top_crop(crop: str | None, crop_probs: Mapping[str, float]) -> str | None:
    """The called crop, else the most probable one."""
    if crop in legend.CROPS:
        return crop
    return max(crop_probs, key=lambda c: crop_probs[c]) if crop_probs else None


def health_crop(inp: ValuationInput) -> str | None:
    """The crop whose NDVI curve a field is judged against: the called crop, else the most probable one."""
    return _top_crop(inp.crop, inp.crop_probs)


def _judge(crop: str | None, crop_probs: Mapping[str, float], ndvi_season: Any,
           params: ValuationParams) -> tuple[str | None, Health, bool]:
    """`judge_health` on its parts, so the pipeline can ask before a valuation input exists; the
    flag says whether the crop was picked by best fit among an uncertain call's likely crops."""
    p = params.crop_health
    assert p is not None

    def one(c: str | None) -> tuple[str | None, Health]:
        econ = params.crops.get(c or "") if p.stop_at_harvest else None
        return c, crop_health(c, ndvi_season, p, econ.harvest_doy if econ else None)

    if crop == legend.UNKNOWN and p.uncertain_crop == "best_fit" and crop_probs:
        candidates = [c for c in likely_crops(dict(crop_probs), params) if p.curve_key(c) is not None]
        if candidates:
            best = max((one(c) for c in candidates), key=lambda judged: judged[1].factor)  # the first of ties
            return (*best, True)
    return (*one(_top_crop(crop, crop_probs)), False)


def judge_health(inp: ValuationInput, params: ValuationParams) -> tuple[str | None, Health]:
    """(crop judged against, its health). A known crop is judged against its own curve. An uncertain
    call, with ``uncertain_crop = "best_fit"``, against each likely crop that has a curve, keeping
    the one the season fits best: the crop is unknown, so a season lags only if it lags every crop
    it plausibly is (its value per mu is already the least valuable of them). Otherwise, and in
    parameter files before 2026.12-6, against the most probable crop."""
    judged_as, h, _ = _judge(inp.crop, inp.crop_probs, inp.ndvi_season, params)
    return judged_as, h


def calendar_crop(crop: str | None, crop_probs: Mapping[str, float], ndvi_season: Any,
                  params: ValuationParams) -> tuple[str | None, bool]:
    """(crop, picked by best fit) whose calendar (season start, harvest day) the post-loan alerts
    use: the called crop; for an uncertain call (``crop`` is `unknown`) the crop its health is
    judged against, the best-fitting likely crop under ``uncertain_crop = "best_fit"``, else the
    most probable one. An alert and the value then never disagree about which crop a field is."""
    if params.crop_health is None:
        return _top_crop(crop, crop_probs), False
    judged_as, _, best_fit = _judge(crop, stored_probs(crop_probs), stored_season(ndvi_season), params)
    return judged_as, best_fit


def value_inputs(inp: ValuationInput, params: ValuationParams) -> Valuation:
    """The valuation of stored inputs: the pipeline and `--recompute` both call this."""
    area_mu = ha_to_mu(inp.verified_area_ha)
    region = params.region_of(inp.centre_lon, inp.centre_lat)
    uncertain = inp.crop == legend.UNKNOWN
    expected_per_mu, unpriced = per_mu_value(inp.crop_probs, params, uncertain, region)
    low_per_mu, high_per_mu = per_mu_range(inp.crop_probs, params, uncertain, region)
    low_per_mu, high_per_mu = min(low_per_mu, expected_per_mu), max(high_per_mu, expected_per_mu)
    top = params.econ(inp.crop or "", region)
    regional_top = region is not None and inp.crop in params.regional.get(region, {})
    failed = "crop_failure" in inp.reason_codes
    health = params.crop_failure_factor if failed else 1.0
    health_steps: list[dict[str, Any]] = []
    if params.crop_health is not None:  # a lagging crop lowers the value; the step never raises it
        judged_as, h, by_fit = _judge(inp.crop, inp.crop_probs, inp.ndvi_season, params)
        health = min(health, h.factor)
        best_fit = f" (the crop call is uncertain; of its likely crops, {judged_as} fits best)" if by_fit else ""
        health_steps.append({
            # the factor applied (a crop failure's, when lower), so the steps multiply out; the curve's own too
            "step": "crop_health", "value": health, "curve_factor": h.factor,
            "ratio": None if h.ratio is None else round(h.ratio, 4),
            "curve": h.curve, "dates": h.dates,
            "text": (f"NDVI at {h.ratio:.0%} of the expected {h.curve} curve over {h.dates} recent date(s)" + best_fit
                     + (f": x {h.factor:.2f}" if h.factor < 1 else ": on track, no change")
                     + f" (curve: {h.why})" if h.ratio is not None
                     else f"crop health not judged ({h.why}): x {h.factor:.2f}")
                    + (f"; crop failure this season: x {params.crop_failure_factor:.2f}, the lower one applies"
                       if failed else "")})
    value = area_mu * expected_per_mu * health
    margin, margin_why = area_margin(inp, params)
    area_low_mu = area_mu * (1 - margin)
    area_high_mu = min(area_mu * (1 + margin), max(ha_to_mu(inp.claimed_area_ha), area_mu))
    value_low, value_high = area_low_mu * low_per_mu * health, area_high_mu * high_per_mu * health
    explanation: list[dict[str, Any]] = [
        {"step": "area", "value": round(area_mu, 2), "unit": "mu",
         "text": f"{inp.verified_area_ha:.2f} ha verified = {area_mu:.1f} mu (of {inp.claimed_area_ha:.2f} ha claimed)"},
        {"step": "crop", "value": inp.crop, "probability": round(inp.crop_probability, 4),
         "text": (f"crop not recognised with confidence (the likeliest crop has probability {inp.crop_probability:.0%})"
                  if inp.crop == legend.UNKNOWN
                  else f"crop recognised as {inp.crop} with probability {inp.crop_probability:.0%}")},
        *health_steps,
        {"step": "value_per_mu", "value": round(expected_per_mu, 2), "unit": "CNY/mu",
         "text": ("lowest value per mu among the likely crops (the crop call is uncertain)" if inp.crop == legend.UNKNOWN
                  else "expected harvest value per mu over the crop probabilities")
                 + (f" ({inp.crop}: {top.yield_kg_per_mu:.0f} kg/mu x {top.price_cny_per_kg:.2f} CNY/kg)" if top else "")
                 + ((f"; no price set for {', '.join(unpriced)}, so the lowest is taken among the priced ones"
                     if inp.crop == legend.UNKNOWN else f"; no price set for {', '.join(unpriced)}, counted as 0")
                    if unpriced else "")},
        {"step": "value", "value": round(value, 2), "unit": "CNY",
         "text": f"{area_mu:.1f} mu x {expected_per_mu:.0f} CNY/mu"
                 + (f" x {health:.0%} (" + ("crop failure this season" if failed and health == params.crop_failure_factor
                                             else "crop health below its curve") + ")" if health != 1.0 else "")
                 + f" = {value:,.0f} CNY"},
        {"step": "area_range", "value": [round(area_low_mu, 2), round(area_high_mu, 2)], "unit": "mu",
         "margin": round(margin, 4), "text": f"area {area_low_mu:.1f}-{area_high_mu:.1f} mu (+-{margin:.0%}: "
                                              + ", ".join(margin_why)
                                              + ("; the high end is the area claimed, no more"
                                                 if area_high_mu < area_mu * (1 + margin) - 1e-9 else "") + ")"},
        {"step": "value_per_mu_range", "value": [round(low_per_mu, 2), round(high_per_mu, 2)], "unit": "CNY/mu",
         "text": f"{low_per_mu:.0f}-{high_per_mu:.0f} CNY/mu: low and high yield x price over the crop "
                 "probabilities" + (" (low: the least valuable likely crop)" if inp.crop == legend.UNKNOWN else "")
                 + (f" ({inp.crop} in region {region}: {top.source})" if top and top.source and regional_top
                    else f" ({inp.crop}, national range: {top.source})" if top and top.source else "")},
        {"step": "value_range", "value": [round(value_low, 2), round(value, 2), round(value_high, 2)], "unit": "CNY",
         "text": f"value low {value_low:,.0f} / expected {value:,.0f} / high {value_high:,.0f} CNY"},
    ]
    limit, rate, limit_steps = field_limit(inp, params, value_low)
    explanation.extend(limit_steps)
    return Valuation(
        area_ha=inp.verified_area_ha, area_mu=area_mu, crop=inp.crop, crop_probability=inp.crop_probability,
        value_cny=value, yield_kg_per_mu=top.yield_kg_per_mu if top else None,
        price_cny_per_kg=top.price_cny_per_kg if top else None, limit_cny=limit, advance_rate=rate,
        params_version=params.version, explanation=explanation, value_low_cny=value_low, value_high_cny=value_high,
        inputs=inp,
    )
