"""Value a verified field and set its credit limit, every number explained.

The value is the expected harvest under the crop model's calibrated probabilities:
``area_mu x sum_c P(c) x yield_c x price_c``; a doubtful crop call lowers the value instead of
betting on the top class. Parameters live in a versioned TOML file; each row records the version.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from assets.errors import InputError
from assets.fields.geometry import ha_to_mu
from assets.models import legend
from assets.verify import Verification


@dataclass(frozen=True)
class CropEconomics:
    yield_kg_per_mu: float
    price_cny_per_kg: float
    harvest_doy: int
    season_start_doy: int = 0

    @property
    def value_cny_per_mu(self) -> float:
        return self.yield_kg_per_mu * self.price_cny_per_kg


@dataclass(frozen=True)
class ValuationParams:
    version: str
    advance_rate: float
    round_down_to_cny: float
    borrower_cap_cny: float
    crop_failure_factor: float
    sensor_factor: dict[str, float]
    crops: dict[str, CropEconomics]


@lru_cache(maxsize=8)
def load_params(path: str | None = None) -> ValuationParams:
    """The packaged parameters, or a TOML file given by path; checked against the crop legend."""
    name = path or "valuation_params.toml"
    try:
        text = Path(path).read_text() if path else resources.files("assets").joinpath("valuation_params.toml").read_text()
        raw = tomllib.loads(text)
        params = ValuationParams(
            version=str(raw["version"]), advance_rate=float(raw["advance_rate"]),
            round_down_to_cny=float(raw["round_down_to_cny"]), borrower_cap_cny=float(raw["borrower_cap_cny"]),
            crop_failure_factor=float(raw["crop_failure_factor"]),
            sensor_factor={k: float(v) for k, v in raw["sensor_factor"].items()},
            crops={k: CropEconomics(float(v["yield_kg_per_mu"]), float(v["price_cny_per_kg"]), int(v["harvest_doy"]),
                                    int(v.get("season_start_doy", 0)))
                   for k, v in raw["crops"].items()},
        )  # fmt: skip
    except (OSError, KeyError, ValueError, TypeError, tomllib.TOMLDecodeError) as exc:
        raise InputError(f"valuation parameters {name} are unusable ({exc!r})") from exc
    outside = sorted(set(params.crops) - set(legend.CROPS))
    if outside:
        raise InputError(f"valuation parameters {name} price crops outside the crop legend: {outside}; "
                         "use legend names (assets/models/legend.py), e.g. maize, wheat, grasslands")
    negative = sorted(c for c, e in params.crops.items() if e.yield_kg_per_mu < 0 or e.price_cny_per_kg < 0)
    if negative:
        raise InputError(f"valuation parameters {name} have a negative yield or price for {negative}")
    return params


def per_mu_value(crop_probs: dict[str, float], params: ValuationParams, uncertain: bool) -> tuple[float, list[str]]:
    """Expected CNY per mu over the crop probabilities, and the likely crops that have no price.

    Crops the legend knows but the parameters do not price count as 0 and are named, so the
    explanation shows why they add nothing. For an uncertain (``unknown``) crop call the value is
    the lowest per-mu value among the crops that hold 90 % of the probability: a doubtful call
    never borrows the value of the most valuable candidate.
    """
    def value(c: str) -> float:
        econ = params.crops.get(c)
        return econ.value_cny_per_mu if econ else 0.0

    expected = sum(p * value(c) for c, p in crop_probs.items())
    unpriced = sorted(c for c, p in crop_probs.items() if p >= 0.05 and c not in params.crops)
    if uncertain and crop_probs:
        likely, mass = [], 0.0
        for c, p in sorted(crop_probs.items(), key=lambda kv: -kv[1]):
            likely.append(c)
            mass += p
            if mass >= 0.9:
                break
        expected = min(expected, min(value(c) for c in likely))
    return expected, unpriced


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


def value_claim(v: Verification, params: ValuationParams) -> Valuation | None:
    """Value and limit for a verified or partial claim; None for a rejected one."""
    if v.rejected:
        return None
    area_mu = ha_to_mu(v.verified_area_ha)
    expected_per_mu, unpriced = per_mu_value(v.crop_probs, params, uncertain=v.crop == legend.UNKNOWN)
    top = params.crops.get(v.crop or "")
    failed = any(r.code == "crop_failure" for r in v.reasons)
    health = params.crop_failure_factor if failed else 1.0
    value = area_mu * expected_per_mu * health
    sensor_status = (v.sensor_evidence or {}).get("status", "no_devices")
    factor = params.sensor_factor.get(sensor_status, params.sensor_factor["no_devices"])
    rate = params.advance_rate * factor
    limit = math.floor(value * rate / params.round_down_to_cny) * params.round_down_to_cny
    explanation = [
        {"step": "area", "value": round(area_mu, 2), "unit": "mu",
         "text": f"{v.verified_area_ha:.2f} ha verified = {area_mu:.1f} mu (of {v.claimed_area_ha:.2f} ha claimed)"},
        {"step": "crop", "value": v.crop, "probability": round(v.crop_probability, 4),
         "text": f"crop recognised as {v.crop} with probability {v.crop_probability:.0%}"},
        {"step": "value_per_mu", "value": round(expected_per_mu, 2), "unit": "CNY/mu",
         "text": ("lowest value per mu among the likely crops (the crop call is uncertain)" if v.crop == legend.UNKNOWN
                  else "expected harvest value per mu over the crop probabilities")
                 + (f" ({v.crop}: {top.yield_kg_per_mu:.0f} kg/mu x {top.price_cny_per_kg:.2f} CNY/kg)" if top else "")
                 + (f"; no price set for {', '.join(unpriced)}, counted as 0" if unpriced else "")},
        {"step": "value", "value": round(value, 2), "unit": "CNY",
         "text": f"{area_mu:.1f} mu x {expected_per_mu:.0f} CNY/mu"
                 + (f" x {health:.0%} (crop failure this season)" if failed else "") + f" = {value:,.0f} CNY"},
        {"step": "advance_rate", "value": round(rate, 4),
         "text": f"advance rate {params.advance_rate:.0%} x sensor factor {factor:.2f} ({sensor_status})"},
        {"step": "limit", "value": limit, "unit": "CNY",
         "text": f"{value:,.0f} CNY x {rate:.0%}, rounded down to {params.round_down_to_cny:.0f} = {limit:,.0f} CNY"},
    ]
    return Valuation(
        area_ha=v.verified_area_ha, area_mu=area_mu, crop=v.crop, crop_probability=v.crop_probability,
        value_cny=value, yield_kg_per_mu=top.yield_kg_per_mu if top else None,
        price_cny_per_kg=top.price_cny_per_kg if top else None, limit_cny=limit, advance_rate=rate,
        params_version=params.version, explanation=explanation,
    )


def cap_borrower_limits(limits_cny: list[float], params: ValuationParams) -> list[float]:
    """Scale one borrower's claim limits down proportionally so their sum respects the cap."""
    total = sum(limits_cny)
    if total <= params.borrower_cap_cny or total == 0:
        return limits_cny
    scale = params.borrower_cap_cny / total
    return [math.floor(x * scale / params.round_down_to_cny) * params.round_down_to_cny for x in limits_cny]
