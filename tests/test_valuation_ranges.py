"""Value ranges and the credit policy (#14): low <= expected <= high, the limit on the low estimate,
never a higher limit on weaker evidence, and parameter files that are refused by name."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from assets.errors import InputError
from assets.valuation import ValuationInput, load_params, parse_params, value_inputs

PARAMS = load_params()


def inp(**kw) -> ValuationInput:
    base = dict(status="verified", verified_area_ha=10.0, claimed_area_ha=10.0, crop="maize", crop_probability=0.9,
                crop_probs={"maize": 0.9, "wheat": 0.1}, sensor_status="no_devices", reason_codes=("ok",),
                usable_dates=6)
    return ValuationInput(**{**base, **kw})


def test_every_priced_crop_has_a_range_and_a_source() -> None:
    for name, econ in PARAMS.crops.items():
        assert econ.yield_range and econ.price_range and econ.source, name
        assert econ.low_cny_per_mu <= econ.value_cny_per_mu <= econ.high_cny_per_mu


def test_low_expected_high_and_the_limit_on_the_low_estimate() -> None:
    val = value_inputs(inp(), PARAMS)
    assert 0 < val.value_low_cny < val.value_cny < val.value_high_cny
    assert val.limit_cny == (val.value_low_cny * PARAMS.advance_rate * PARAMS.sensor_factor["no_devices"]) // 100 * 100
    names = [s["step"] for s in val.explanation]
    assert names[:5] == ["area", "crop", "crop_health", "value_per_mu", "value"] and "value_range" in names
    assert names[-1] == "limit"
    rng = next(s for s in val.explanation if s["step"] == "value_range")
    assert rng["value"][0] == pytest.approx(val.value_low_cny, abs=0.01)
    assert "illustrative" in next(s for s in val.explanation if s["step"] == "value_per_mu_range")["text"]


@pytest.mark.parametrize("weaker", [
    dict(usable_dates=3),                                                     # fewer cloud-free dates
    dict(reason_codes=("partly_planted",), status="partial"),                 # part of the field planted
    dict(crop_probs={"maize": 0.6, "wheat": 0.1, "open_water": 0.3}, crop_probability=0.6),  # less sure crop
    dict(crop="unknown", crop_probs={"maize": 0.4, "wheat": 0.35, "grasslands": 0.25}, crop_probability=0.4,
         reason_codes=("crop_uncertain",)),
    dict(sensor_status="silent", reason_codes=("sensor_silent",)),
    dict(sensor_status="implausible"),
    dict(reason_codes=("crop_failure",)),
])
def test_weaker_evidence_never_raises_the_limit(weaker: dict) -> None:
    strong, weak = value_inputs(inp(), PARAMS), value_inputs(inp(**weaker), PARAMS)
    assert weak.limit_cny <= strong.limit_cny and weak.value_low_cny <= strong.value_low_cny
    assert weak.limit_cny < strong.limit_cny, weaker  # each of these is strictly worse evidence


def test_each_adjustment_is_a_named_step() -> None:
    val = value_inputs(inp(reason_codes=("partly_planted", "crop_uncertain"), status="partial", usable_dates=4),
                       PARAMS)
    names = [s["step"] for s in val.explanation]
    assert {"haircut_partly_planted", "haircut_crop_uncertain"} <= set(names)
    area = next(s for s in val.explanation if s["step"] == "area_range")
    assert "4 cloud-free dates" in area["text"] and "partly planted" in area["text"]


def test_the_printed_limit_step_multiplies_out_to_the_limit() -> None:
    """A silent probe: 50 % x 0.75 is printed 37.5 % (not 38 %), so a credit officer can redo the sum."""
    import re

    val = value_inputs(inp(sensor_status="silent", reason_codes=("sensor_silent",)), PARAMS)
    text = next(s["text"] for s in val.explanation if s["step"] == "limit")
    low, *rates = re.findall(r"([\d,.]+)(?: CNY \(low\)|%)", text)
    assert "x 37.5%" in text and rates
    product = float(low.replace(",", "")) * np.prod([float(r) / 100 for r in rates])
    assert val.limit_cny == product // PARAMS.round_down_to_cny * PARAMS.round_down_to_cny


def test_field_cap_and_no_limit_under_review() -> None:
    big = value_inputs(inp(verified_area_ha=1500.0, claimed_area_ha=1500.0), PARAMS)
    assert big.limit_cny == PARAMS.field_cap_cny and "field_cap" in [s["step"] for s in big.explanation]
    held = value_inputs(inp(reason_codes=("under_review",)), PARAMS)
    assert held.limit_cny == 0 and held.value_cny > 0 and "no_limit" in [s["step"] for s in held.explanation]


def test_inputs_round_trip_through_json_to_the_same_number() -> None:
    import json

    i = inp(crop_probs={"maize": 0.712345, "wheat": 0.287655})
    again = ValuationInput.from_json(json.loads(json.dumps(i.to_json())))
    assert again == i and value_inputs(again, PARAMS).limit_cny == value_inputs(i, PARAMS).limit_cny


BASE = PARAMS.text


@pytest.mark.parametrize("change, match", [
    (lambda t: t.replace("[crops.maize]\nyield_kg_per_mu = 450\n", "[crops.maize]\n"), r"'maize' is missing \['yield"),
    (lambda t: t.replace("price_cny_per_kg_range = [1.95, 2.58]", "price_cny_per_kg_range = [-1.95, 2.58]"), "negative"),
    (lambda t: t.replace("yield_kg_per_mu = 450", "yield_kg_per_mu = -450"), "negative"),
    (lambda t: t.replace('currency = "CNY"', 'currency = "USD"'), "currency 'USD'"),
    (lambda t: t.replace("yield_kg_per_mu_range = [360, 518]", "yield_kg_per_mu_range = [518, 360]"),
     "low <= expected <= high"),
    (lambda t: t.replace("price_cny_per_kg_range = [1.95, 2.58]", "price_cny_per_kg_range = [2.4, 2.58]"),
     "low <= expected <= high"),
    (lambda t: t.replace("silent = 0.75", "silent = 0.95"), "never raise a limit"),
    (lambda t: t.split("[crops.maize]")[0], "no crop is priced"),
])
def test_bad_parameter_files_are_refused_by_name(change, match: str) -> None:
    text = change(BASE)
    assert text != BASE
    with pytest.raises(InputError, match=match):
        parse_params(text, "p.toml")


def test_a_source_is_required_for_a_range() -> None:
    text = BASE.replace('[crops.maize]', '[crops.maize]\n#', 1)
    lines = text.split("\n")
    i = lines.index("[crops.maize]")
    j = next(k for k in range(i, len(lines)) if lines[k].startswith("source ="))
    del lines[j]
    with pytest.raises(InputError, match="without a source"):
        parse_params("\n".join(lines), "p.toml")


def test_parameters_carry_their_text_and_hash() -> None:
    again = parse_params(PARAMS.text)
    assert again.sha256 == PARAMS.sha256 and dataclasses.replace(again, text="x").sha256 != PARAMS.sha256
