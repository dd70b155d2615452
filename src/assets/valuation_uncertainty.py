"""The uncertainty of a valuation: which crops are plausible, the expected and the low / high value
per mu over the crop probabilities, and the margin on the verified area (`valuation.value_inputs`
puts them together)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from assets.valuation_params import ValuationParams

if TYPE_CHECKING:
    from assets.valuation import ValuationInput


def likely_crops(crop_probs: dict[str, float], params: ValuationParams) -> list[str]:
    """The plausible crops of an uncertain call: the most probable ones that together hold
    ``likely_crop_mass`` of the probability, less the long tail under ``likely_crop_min_probability``
    (with a diffuse call a 3 % fallow would otherwise value every uncertain field at 0; the tail
    already lowers the probability-weighted value by its share). The top crop always counts."""
    u = params.uncertainty
    likely: list[str] = []
    mass = 0.0
    for c, p in sorted(crop_probs.items(), key=lambda kv: -kv[1]):
        if likely and p < u.likely_crop_min_probability:
            break
        likely.append(c)
        mass += p
        if mass >= u.likely_crop_mass - 1e-9:  # 0.7 + 0.2 is 0.8999...
            break
    return likely


def _floor_for_uncertain(crop_probs: dict[str, float], params: ValuationParams, per_mu: Callable[[str], float]) -> float:
    """Per-mu value of the least valuable *priced* likely crop (0 when none is priced).

    Unpriced or non-crop classes already pull the probability-weighted value down by their
    share; counting them again as a 0 floor would zero every uncertain call that has any
    unpriced candidate.
    """
    priced = [per_mu(c) for c in likely_crops(crop_probs, params) if c in params.crops]
    return min(priced, default=0.0)


def per_mu_value(crop_probs: dict[str, float], params: ValuationParams, uncertain: bool,
                 region: str | None = None) -> tuple[float, list[str]]:
    """Expected CNY per mu over the crop probabilities, and the likely crops that have no price.

    Crops the legend knows but the parameters do not price count as 0 and are named, so the
    explanation shows why they add nothing. For an uncertain (``unknown``) crop call the value is
    at most that of the least valuable priced crop among those holding 90 % of the probability:
    a doubtful call never borrows the value of the most valuable candidate.
    """
    def value(c: str) -> float:
        econ = params.econ(c, region)
        return econ.value_cny_per_mu if econ else 0.0

    expected = sum(p * value(c) for c, p in crop_probs.items())
    unpriced = sorted(c for c, p in crop_probs.items() if p >= 0.05 and c not in params.crops)
    if uncertain and crop_probs:
        expected = min(expected, _floor_for_uncertain(crop_probs, params, value))
    return expected, unpriced


def per_mu_range(crop_probs: dict[str, float], params: ValuationParams, uncertain: bool,
                 region: str | None = None) -> tuple[float, float]:
    """(low, high) CNY per mu over the crop probabilities.

    Low: the probability-weighted low yield x low price (mass on unpriced or non-crop classes
    counts as 0, so a less certain call lowers it); for an uncertain (``unknown``) call, at most
    the least valuable priced likely crop at its low yield and price, as the expected value does.
    High: the probability-weighted high yield x high price.
    """
    def low(c: str) -> float:
        econ = params.econ(c, region)
        return econ.low_cny_per_mu if econ else 0.0

    def high(c: str) -> float:
        econ = params.econ(c, region)
        return econ.high_cny_per_mu if econ else 0.0

    if not crop_probs:
        return 0.0, 0.0
    weighted_low = sum(p * low(c) for c, p in crop_probs.items())
    if uncertain:
        weighted_low = min(weighted_low, _floor_for_uncertain(crop_probs, params, low))
    return weighted_low, sum(p * high(c) for c, p in crop_probs.items())


def area_margin(inp: "ValuationInput", params: ValuationParams) -> tuple[float, list[str]]:
    """Relative uncertainty of the verified area and the evidence that widened it."""
    u = params.uncertainty
    why = [f"{u.area_margin:.0%} for the boundary and pixel edges"]
    margin = u.area_margin
    if inp.usable_dates is not None and inp.usable_dates < u.full_confidence_dates:
        short = u.full_confidence_dates - inp.usable_dates
        margin += short * u.area_margin_per_missing_date
        why.append(f"{short * u.area_margin_per_missing_date:.0%} for {inp.usable_dates} cloud-free dates "
                   f"(of {u.full_confidence_dates} for full confidence)")
    for code in sorted(set(inp.reason_codes) & set(u.reason_area_margin)):
        margin += u.reason_area_margin[code]
        why.append(f"{u.reason_area_margin[code]:.0%} for {code.replace('_', ' ')}")
    return min(margin, 0.95), why
