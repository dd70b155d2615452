import dataclasses
from datetime import date

import pytest

from assets.config import Settings
from assets.fields.geometry import ha_to_mu
from assets.monitor import crop_failure
from assets.observe import ClaimObservation, DateObservation
from assets.valuation import ValuationParams, cap_borrower_limits, load_params, value_claim
from assets.verify import Reason, verify_claim

# The valuation arithmetic without the crop-health step (tested in test_crop_health.py): these fields carry no NDVI.
PARAMS = dataclasses.replace(load_params(), crop_health=None)


def observation(farmland=0.95, planted=0.9, probs=None, ndvi=(0.3, 0.5, 0.75, 0.8, 0.7, 0.5), coverage=1.0, valid=1.0,
                first_month=4):
    dates = [DateObservation(f"t{i}", date(2016, first_month + i, 10), valid, v, v - 0.05, v + 0.05) for i, v in enumerate(ndvi)]
    probs = probs if probs is not None else {"wheat": 0.9, "barley": 0.08, "open_water": 0.02}
    return ClaimObservation(claim_id="c1", coverage_fraction=coverage, dates=dates, farmland_fraction=farmland,
                            planted_fraction=planted, crop_probs=probs)


def check(obs, overlap=0.0, sensors=None, area=10.0):
    return verify_claim(claim_id="c1", claimed_area_ha=area, observation=obs, overlap_area_ha=overlap,
                        sensor_evidence=sensors, settings=Settings())


def test_verified_claim_is_valued_by_expected_harvest() -> None:
    v = check(observation())
    assert v.status == "verified" and v.verified_area_ha == pytest.approx(9.0) and v.crop == "wheat"
    val = value_claim(v, PARAMS)
    wheat, barley = PARAMS.crops["wheat"], PARAMS.crops["barley"]
    per_mu = 0.9 * wheat.value_cny_per_mu + 0.08 * barley.value_cny_per_mu  # water is worth nothing
    assert val.area_mu == pytest.approx(135.0)
    assert val.value_cny == pytest.approx(135.0 * per_mu)
    # The limit lends against the LOW estimate (#14): area less its margin, low yield x low price per crop.
    low = 135.0 * (1 - PARAMS.uncertainty.area_margin) * (0.9 * wheat.low_cny_per_mu + 0.08 * barley.low_cny_per_mu)
    assert val.value_low_cny == pytest.approx(low) and val.value_low_cny < val.value_cny < val.value_high_cny
    expected_limit = (low * PARAMS.advance_rate * PARAMS.sensor_factor["no_devices"]) // 100 * 100
    assert val.limit_cny == expected_limit and val.params_version == PARAMS.version
    assert [s["step"] for s in val.explanation] == ["area", "crop", "value_per_mu", "value", "area_range",
                                                    "value_per_mu_range", "value_range", "advance_rate", "limit"]


def test_sensor_status_changes_the_advance_rate() -> None:
    good = value_claim(check(observation(), sensors={"status": "corroborated"}), PARAMS)
    silent_v = check(observation(), sensors={"status": "silent", "message": "probe silent for 10 days"})
    silent = value_claim(silent_v, PARAMS)
    assert good.limit_cny > silent.limit_cny > 0
    assert any(r.code == "sensor_silent" and not r.blocking for r in silent_v.reasons)


@pytest.mark.parametrize("obs, overlap, code", [
    (observation(coverage=0.5), 0.0, "no_imagery"),
    (observation(farmland=0.1, planted=0.05), 0.0, "not_farmland"),
    (observation(probs={"dense building": 0.7, "wheat": 0.3}), 0.0, "not_cropland"),
    (observation(), 3.0, "overlap"),
    (observation(valid=0.2), 0.0, "insufficient_imagery"),
])
def test_rejections_carry_a_reason(obs, overlap, code) -> None:
    v = check(obs, overlap=overlap)
    assert v.status == "rejected" and code in {r.code for r in v.reasons if r.blocking}
    assert value_claim(v, PARAMS) is None
    assert v.summary()


def test_partly_planted_claim_is_partial() -> None:
    v = check(observation(farmland=0.9, planted=0.4))
    assert v.status == "partial" and v.verified_area_ha == pytest.approx(4.0)
    assert value_claim(v, PARAMS).area_ha == pytest.approx(4.0)


def test_borrower_cap_scales_limits_down() -> None:
    params = ValuationParams(**{**PARAMS.__dict__, "borrower_cap_cny": 1000.0})
    assert cap_borrower_limits([1500.0, 500.0], params) == [700.0, 200.0]
    assert cap_borrower_limits([300.0, 200.0], params) == [300.0, 200.0]
    # Code review 2026-12-07: 10,000 x 0.57 is 5,699.999... in floating point and was rounded down to 5,600.
    assert cap_borrower_limits([10_000.0], PARAMS, room_cny=5_700.0) == [5_700.0]


def test_crop_failure_alert_only_for_early_collapse() -> None:
    harvest = PARAMS.crops["wheat"].harvest_doy
    healthy = observation(ndvi=(0.3, 0.6, 0.8, 0.75, 0.7, 0.3, 0.2), first_month=1)  # senesces after harvest
    assert date(2016, 6, 10).timetuple().tm_yday >= harvest
    assert crop_failure("b", "wheat", healthy, PARAMS, date(2016, 9, 30)) is None
    failed = observation(ndvi=(0.3, 0.7, 0.25, 0.2, 0.2), first_month=1)  # collapses in March
    alert = crop_failure("b", "wheat", failed, PARAMS, date(2016, 9, 30))
    assert alert is not None and alert.kind == "crop_failure" and "0.70" in alert.message
    assert alert.alert_id == crop_failure("b", "wheat", failed, PARAMS, date(2016, 9, 30)).alert_id
    assert crop_failure("b", "dense building", failed, PARAMS, date(2016, 9, 30)) is None


def test_crop_failure_cuts_the_value_but_keeps_the_claim() -> None:
    healthy = value_claim(check(observation()), PARAMS)
    v = verify_claim(claim_id="c1", claimed_area_ha=10.0, observation=observation(), overlap_area_ha=0.0,
                     sensor_evidence=None, settings=Settings(), crop_failure="wheat canopy collapsed in May")
    failed = value_claim(v, PARAMS)
    assert v.status == "verified" and any(r.code == "crop_failure" and not r.blocking for r in v.reasons)
    assert failed.value_cny == pytest.approx(healthy.value_cny * PARAMS.crop_failure_factor)
    assert "crop failure" in failed.explanation[3]["text"]
    assert "wheat canopy collapsed" in v.summary()


def test_grass_and_fodder_are_farmland_with_a_value() -> None:
    v = check(observation(probs={"grasslands": 0.7, "grass_fodder_crops": 0.3}))
    assert v.status == "verified" and v.cropland_probability == pytest.approx(1.0)
    assert value_claim(v, PARAMS).value_cny > 0


def test_forest_is_not_farmland() -> None:
    v = check(observation(probs={"trees_unspecified": 0.8, "grasslands": 0.2}))
    assert v.rejected and any(r.code == "not_cropland" and "trees unspecified" in r.message for r in v.reasons)


def test_uncertain_crop_is_unknown_and_valued_at_the_least_valuable_likely_crop() -> None:
    probs = {"maize": 0.40, "wheat": 0.35, "grasslands": 0.25}
    v = check(observation(probs=probs))
    assert v.crop == "unknown" and any(r.code == "crop_uncertain" for r in v.reasons)
    val = value_claim(v, PARAMS)
    lowest = min(PARAMS.crops[c].value_cny_per_mu for c in probs)
    mixture = sum(p * PARAMS.crops[c].value_cny_per_mu for c, p in probs.items())
    assert lowest < mixture and val.value_cny == pytest.approx(ha_to_mu(v.verified_area_ha) * lowest)
    assert "uncertain" in val.explanation[2]["text"]


def test_an_uncertain_call_is_confirmed_as_cropland_not_as_unknown() -> None:
    v = check(observation(probs={"maize": 0.40, "wheat": 0.35, "grasslands": 0.25}))
    assert v.status == "verified" and v.crop == "unknown"
    (ok,) = [r for r in v.reasons if r.code == "ok"]
    assert "ha of cropland (crop uncertain) confirmed by 6 satellite dates" in ok.message and "unknown" not in ok.message


def test_a_rejected_uncertain_call_does_not_say_how_it_would_be_valued() -> None:
    """Rejected claims are worth nothing: their reasons must not promise a valuation."""
    v = check(observation(farmland=0.1, probs={"maize": 0.40, "wheat": 0.35, "grasslands": 0.25}))
    assert v.rejected and [r.code for r in v.reasons] == ["crop_uncertain", "not_farmland"]
    assert v.reasons[0].message == "the crop is uncertain (best guess maize, 40%)" and "valued" not in v.summary()


def test_a_crop_the_model_knows_but_the_bank_does_not_price_is_named() -> None:
    v = check(observation(probs={"grapes": 0.9, "wheat": 0.1}))
    val = value_claim(v, PARAMS)
    assert v.crop == "grapes" and "grapes" not in PARAMS.crops
    assert val.value_cny == pytest.approx(ha_to_mu(v.verified_area_ha) * 0.1 * PARAMS.crops["wheat"].value_cny_per_mu)
    assert "no price set for grapes" in val.explanation[2]["text"]


@pytest.mark.parametrize("crop_block, match", [
    ('[crops."moon cheese"]\nyield_kg_per_mu = 1\nprice_cny_per_kg = 1\nharvest_doy = 100\n', "outside the crop legend"),
    ("[crops.maize]\nyield_kg_per_mu = -5\nprice_cny_per_kg = 1\nharvest_doy = 100\n", "negative"),
])  # fmt: skip
def test_bad_valuation_parameters_are_named(tmp_path, crop_block: str, match: str) -> None:
    from assets.errors import InputError
    from assets.valuation import load_params

    base = "version = 't'\nadvance_rate = 0.5\nround_down_to_cny = 100\nborrower_cap_cny = 1e6\ncrop_failure_factor = 0.2\n"
    path = tmp_path / "p.toml"
    path.write_text(base + "[sensor_factor]\nno_devices = 0.9\n" + crop_block)
    with pytest.raises(InputError, match=match):
        load_params(str(path))


def test_an_uncertain_call_with_an_unpriced_candidate_keeps_the_least_valuable_priced_crop() -> None:
    """Unpriced candidates lower the value by their probability, not to a 0 floor."""
    probs = {"maize": 0.40, "fibre_crops": 0.30, "wheat": 0.30}
    v = check(observation(probs=probs))
    val = value_claim(v, PARAMS)
    assert v.crop == "unknown" and "fibre_crops" not in PARAMS.crops
    per_mu = val.value_cny / ha_to_mu(v.verified_area_ha)
    floor = min(PARAMS.crops[c].value_cny_per_mu for c in ("maize", "wheat"))
    mixture = sum(p * PARAMS.crops[c].value_cny_per_mu for c, p in probs.items() if c in PARAMS.crops)
    assert 0 < per_mu == pytest.approx(min(floor, mixture))


def test_a_long_tail_of_unlikely_crops_does_not_zero_an_uncertain_call() -> None:
    """A diffuse call (maize 40 %, grass 15 %, then many crops under 10 %, one of them fallow at 0)
    is floored at its least valuable *plausible* crop, grass, not at the 3 % fallow."""
    probs = {"maize": 0.40, "grasslands": 0.15, "sorghum": 0.08, "cereals": 0.08, "dry_pulses_legumes": 0.08,
             "wheat": 0.08, "not_cultivated_fallow": 0.03, "open_water": 0.10}
    v = check(observation(probs=probs))
    val = value_claim(v, PARAMS)
    per_mu = val.value_cny / ha_to_mu(v.verified_area_ha)
    mixture = sum(p * PARAMS.crops[c].value_cny_per_mu for c, p in probs.items() if c in PARAMS.crops)
    floor = min(PARAMS.crops[c].value_cny_per_mu for c in ("maize", "grasslands"))
    assert v.crop == "unknown" and per_mu == pytest.approx(min(mixture, floor)) and per_mu > 0


def test_imagery_older_than_a_season_sends_the_claim_to_review() -> None:
    """The newest clear image is from September 2016 (the observation's last date): assessed as of
    2017-06-01 it still speaks for the season; as of 2026 it shows an earlier season, so the claim
    waits for a credit officer with the reason, and an approval values it."""
    from assets.verify import ReviewDecision

    obs = observation()  # clear dates 2016-04-10 .. 2016-09-10
    fresh = verify_claim(claim_id="c1", claimed_area_ha=10.0, observation=obs, overlap_area_ha=0.0,
                         sensor_evidence=None, settings=Settings(), as_of=date(2017, 6, 1))
    assert fresh.status == "verified"
    old = verify_claim(claim_id="c1", claimed_area_ha=10.0, observation=obs, overlap_area_ha=0.0,
                       sensor_evidence=None, settings=Settings(), as_of=date(2026, 12, 7))
    assert old.status == "review" and value_claim(old, PARAMS).limit_cny == 0
    (stale,) = [r for r in old.reasons if r.code == "stale_imagery"]
    assert "from 2016-09-10, 3,740 days before 2026-12-07" in stale.message and not stale.blocking
    approved = verify_claim(claim_id="c1", claimed_area_ha=10.0, observation=obs, overlap_area_ha=0.0,
                            sensor_evidence=None, settings=Settings(), as_of=date(2026, 12, 7),
                            review=ReviewDecision("rv-1", "approve", "li", "visited the field in November",
                                                  ("stale_imagery",)))
    assert approved.status == "verified" and any(r.code == "review_approved" for r in approved.reasons)
    # QA 2026-12-07: an approval given on the boundary used to let a field be lent on two-year-old imagery.
    boundary_only = verify_claim(claim_id="c1", claimed_area_ha=10.0, observation=obs, overlap_area_ha=0.0,
                                 sensor_evidence=None, settings=Settings(), as_of=date(2026, 12, 7),
                                 review=ReviewDecision("rv-1", "approve", "li", "edge fine", ("boundary_mismatch",)))
    assert boundary_only.status == "review" and boundary_only.reasons[-1].code == "stale_imagery"
    unlimited = verify_claim(claim_id="c1", claimed_area_ha=10.0, observation=obs, overlap_area_ha=0.0,
                             sensor_evidence=None, settings=Settings(max_imagery_age_days=None), as_of=date(2026, 12, 7))
    assert unlimited.status == "verified"


def test_the_structured_steps_multiply_out_when_a_crop_failed() -> None:
    """QA 2026-12-07: the crop_health step said 0.5 where the crop failure's 0.2 was applied."""
    v = check(observation(), area=10.0)
    v.reasons.append(Reason("crop_failure", "canopy collapsed"))
    params = load_params()  # with its crop_health table
    val = value_claim(v, params, 6)
    steps = {s["step"]: s for s in val.explanation}
    assert steps["crop_health"]["value"] == pytest.approx(params.crop_failure_factor)
    per_mu = steps["value_per_mu"]["value"]
    assert steps["area"]["value"] * per_mu * steps["crop_health"]["value"] == pytest.approx(val.value_cny, rel=1e-4)
    assert val.value_cny == pytest.approx(135.0 * per_mu * params.crop_failure_factor, rel=1e-4)


def test_the_area_range_says_when_its_high_end_is_the_claimed_area() -> None:
    whole = value_claim(check(observation(farmland=1.0, planted=1.0)), PARAMS, 6)
    text = next(s["text"] for s in whole.explanation if s["step"] == "area_range")
    assert "the high end is the area claimed" in text  # +-5% printed, +0% applied: said
    part = value_claim(check(observation()), PARAMS, 6)  # 9 of 10 ha: the margin fits under the claim
    assert "the high end is the area claimed" not in next(s["text"] for s in part.explanation if s["step"] == "area_range")


def test_land_outside_the_imagery_is_not_verified() -> None:
    """Fraud QA 2026-12-08: a drawing with 4.5 % of it off the tile's edge was verified (and lent on) at
    its whole area: the planted share of the pixels inside was applied to the whole drawing."""
    whole = check(observation(coverage=1.0))
    edge = check(observation(coverage=0.96))
    assert edge.status == "verified" and edge.verified_area_ha == pytest.approx(whole.verified_area_ha * 0.96)
    (outside,) = [r for r in edge.reasons if r.code == "outside_imagery"]
    assert "0.40 ha (4%)" in outside.message and not outside.blocking
    assert not [r for r in whole.reasons if r.code == "outside_imagery"]
