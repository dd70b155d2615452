from datetime import date

import pytest

from assets.config import Settings
from assets.monitor import crop_failure
from assets.observe import ClaimObservation, DateObservation
from assets.valuation import ValuationParams, cap_borrower_limits, load_params, value_claim
from assets.verify import verify_claim

PARAMS = load_params()


def observation(farmland=0.95, planted=0.9, probs=None, ndvi=(0.3, 0.5, 0.75, 0.8, 0.7, 0.5), coverage=1.0, valid=1.0,
                first_month=4):
    dates = [DateObservation(f"t{i}", date(2016, first_month + i, 10), valid, v, v - 0.05, v + 0.05) for i, v in enumerate(ndvi)]
    return ClaimObservation(claim_id="c1", coverage_fraction=coverage, dates=dates, farmland_fraction=farmland,
                            planted_fraction=planted, crop_probs=probs if probs is not None else {"wheat": 0.9, "barley": 0.08, "meadow": 0.02})


def check(obs, overlap=0.0, sensors=None, area=10.0):
    return verify_claim(claim_id="c1", claimed_area_ha=area, observation=obs, overlap_area_ha=overlap,
                        sensor_evidence=sensors, settings=Settings())


def test_verified_claim_is_valued_by_expected_harvest() -> None:
    v = check(observation())
    assert v.status == "verified" and v.verified_area_ha == pytest.approx(9.0) and v.crop == "wheat"
    val = value_claim(v, PARAMS)
    wheat, barley = PARAMS.crops["wheat"], PARAMS.crops["barley"]
    per_mu = 0.9 * wheat.value_cny_per_mu + 0.08 * barley.value_cny_per_mu  # meadow is worth nothing
    assert val.area_mu == pytest.approx(135.0)
    assert val.value_cny == pytest.approx(135.0 * per_mu)
    expected_limit = (135.0 * per_mu * PARAMS.advance_rate * PARAMS.sensor_factor["no_devices"]) // 100 * 100
    assert val.limit_cny == expected_limit and val.params_version == PARAMS.version
    assert [s["step"] for s in val.explanation] == ["area", "crop", "value_per_mu", "value", "advance_rate", "limit"]


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


def test_crop_failure_alert_only_for_early_collapse() -> None:
    harvest = PARAMS.crops["wheat"].harvest_doy
    healthy = observation(ndvi=(0.3, 0.6, 0.8, 0.75, 0.3, 0.2), first_month=1)  # senesces after harvest
    assert date(2016, 5, 10).timetuple().tm_yday >= harvest
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
