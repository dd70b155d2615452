"""The credit policy: from a field's LOW value to its limit (advance rate x sensor factor, haircuts,
the per-field cap, no limit under review or while a blocking reason holds, rounding down), and the
per-borrower cap. Weaker evidence only ever lowers a limit: the sensor factors fall from
corroborated to implausible (`valuation_params.parse_params` checks it) and the limit lends
against the low estimate only."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from assets.valuation_params import ValuationParams

if TYPE_CHECKING:
    from assets.valuation import ValuationInput


ROUNDING_SLACK = 1e-9  # in steps: 10,000 x 0.57 is 5,699.999... in floating point, and must round to 5,700


def _round_down(x: float, params: ValuationParams) -> float:
    return math.floor(x / params.round_down_to_cny + ROUNDING_SLACK) * params.round_down_to_cny


def percent(x: float) -> str:
    """A rate as a percentage with the decimals it needs (37.5%, 50%), so the printed steps multiply
    out to the printed limit."""
    return f"{round(x * 100, 2):g}%"


def field_limit(inp: "ValuationInput", params: ValuationParams,
                value_low: float) -> tuple[float, float, list[dict[str, Any]]]:
    """(limit, advance rate, its explanation steps) of one field whose low estimate is ``value_low`` CNY."""
    factor = params.sensor_factor.get(inp.sensor_status, params.sensor_factor["no_devices"])
    rate = params.advance_rate * factor
    explanation: list[dict[str, Any]] = [
        {"step": "advance_rate", "value": round(rate, 4),
         "text": f"advance rate {percent(params.advance_rate)} of the LOW value x sensor factor {factor:.2f} "
                 f"({inp.sensor_status})"},
    ]
    limit = value_low * rate
    for code in sorted(set(inp.reason_codes) & set(params.haircuts)):
        cut = params.haircuts[code]
        limit *= 1 - cut
        explanation.append({"step": f"haircut_{code}", "value": cut,
                            "text": f"-{percent(cut)} haircut: {code.replace('_', ' ')}"})
    if limit > params.field_cap_cny:
        explanation.append({"step": "field_cap", "value": params.field_cap_cny, "unit": "CNY",
                            "text": f"{limit:,.0f} CNY capped at the {params.field_cap_cny:,.0f} CNY per-field cap"})
        limit = params.field_cap_cny
    held = sorted(set(inp.reason_codes) & set(params.no_limit_reasons))
    if held or inp.status not in ("verified", "partial"):
        explanation.append({"step": "no_limit", "value": 0, "text": f"no limit while {', '.join(held) or inp.status}"})
        limit = 0.0
    limit = _round_down(limit, params)
    explanation.append({"step": "limit", "value": limit, "unit": "CNY",
                        "text": f"{value_low:,.0f} CNY (low) x {percent(rate)}"
                                + "".join(f" x {percent(1 - params.haircuts[c])}"
                                          for c in sorted(set(inp.reason_codes) & set(params.haircuts)))
                                + f", capped and rounded down to {params.round_down_to_cny:.0f} = {limit:,.0f} CNY"})
    return limit, rate, explanation


def cap_borrower_limits(limits_cny: list[float], params: ValuationParams, room_cny: float | None = None) -> list[float]:
    """Scale one borrower's claim limits down proportionally so their sum respects the cap, or the
    ``room_cny`` left under it by the borrower's other fields (limits decided in earlier runs)."""
    cap = params.borrower_cap_cny if room_cny is None else max(0.0, min(room_cny, params.borrower_cap_cny))
    total = sum(limits_cny)
    if total <= cap or total == 0:
        return limits_cny
    scale = cap / total
    return [_round_down(x * scale, params) for x in limits_cny]
