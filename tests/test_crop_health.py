"""Crop health (#14): this season's NDVI against the crop's expected curve at the same dates, a
named step that lowers the value when the field lags, never raises it on weaker evidence; and the
regional yield and price ranges, each with its source, falling back to the national range."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pytest

from assets.crop_health import health, health_columns
from assets.errors import InputError
from assets.valuation import ValuationInput, calendar_crop, judge_health, load_params, parse_params, value_inputs

PARAMS = load_params()
CURVE = PARAMS.crop_health.curves["cereals"]  # type: ignore[union-attr]


def season(scale: float, days: tuple[int, ...] = (100, 115, 130, 145)) -> tuple[tuple[str, float], ...]:
    """Wheat NDVI at ``scale`` x the cereal curve on the given days of 2026."""
    return tuple(((date(2026, 1, 1) + timedelta(days=d - 1)).isoformat(),
                  round(scale * float(np.interp(d, CURVE.doy, CURVE.ndvi)), 4)) for d in days)


def field(**kw) -> ValuationInput:
    base = dict(status="verified", verified_area_ha=10.0, claimed_area_ha=10.0, crop="wheat", crop_probability=0.9,
                crop_probs={"wheat": 0.9, "barley": 0.1}, sensor_status="no_devices", reason_codes=("ok",),
                usable_dates=6, ndvi_season=season(1.0))
    return ValuationInput(**{**base, **kw})


def step(v, name: str) -> dict:
    return next(s for s in v.explanation if s["step"] == name)


def test_a_field_on_its_curve_is_not_adjusted() -> None:
    v = value_inputs(field(ndvi_season=season(1.05)), PARAMS)
    s = step(v, "crop_health")
    assert s["value"] == 1.0 and s["curve"] == "cereals" and "on track" in s["text"] and "illustrative" in s["text"]
    assert v.value_cny == pytest.approx(150 * 0.9 * 960 + 150 * 0.1 * 798)  # area_mu x sum P x yield x price


def test_a_lagging_field_is_valued_lower_and_the_step_says_why() -> None:
    on, lag, bad = (value_inputs(field(ndvi_season=season(x)), PARAMS) for x in (1.0, 0.6, 0.2))
    s = step(lag, "crop_health")
    assert s["ratio"] == pytest.approx(0.6, abs=0.01) and s["value"] == pytest.approx(0.6 / 0.85, abs=0.01)
    assert "60% of the expected cereals curve" in s["text"]
    assert bad.value_cny < lag.value_cny < on.value_cny and lag.limit_cny < on.limit_cny
    assert step(bad, "crop_health")["value"] == PARAMS.crop_health.min_factor  # type: ignore[union-attr]
    assert "crop health below its curve" in step(lag, "value")["text"]


@pytest.mark.parametrize("weaker", [
    dict(ndvi_season=None),                      # recorded before crop health was kept
    dict(ndvi_season=()),                        # no cloud-free date this season
    dict(ndvi_season=season(1.0, (230, 250))),   # only after harvest: the curve is too low to compare
    dict(crop="fibre_crops", crop_probs={"fibre_crops": 0.9, "wheat": 0.1}),  # no curve for the crop
])
def test_less_evidence_never_gives_a_higher_value_than_a_healthy_field(weaker: dict) -> None:
    healthy, weak = value_inputs(field(ndvi_season=season(1.1)), PARAMS), value_inputs(field(**weaker), PARAMS)
    s = step(weak, "crop_health")
    assert s["ratio"] is None and "not judged" in s["text"] and s["value"] <= 1.0
    if weak.crop == healthy.crop:
        assert weak.value_cny <= healthy.value_cny and weak.limit_cny <= healthy.limit_cny


def test_the_factor_never_exceeds_one_and_only_the_recent_window_counts() -> None:
    p = PARAMS.crop_health
    assert p is not None
    for scale in (0.1, 0.5, 0.85, 1.0, 3.0):
        assert 0 < health("wheat", season(scale), p).factor <= 1.0
    old_bad_new_good = season(0.3, (100, 110)) + season(1.0, (150, 160))  # recovered: only the last 30 days count
    assert health("wheat", old_bad_new_good, p).factor == 1.0


def test_a_field_harvested_after_its_harvest_day_is_not_a_lagging_crop() -> None:
    """Maize on its curve all summer, then bare (NDVI 0.25) three weeks after its harvest day: the
    bare date is the harvest, not poor health, so the value is not cut (it was halved before)."""
    maize = PARAMS.crop_health.curves["maize"]  # type: ignore[union-attr]
    harvest_doy = PARAMS.crops["maize"].harvest_doy
    days = (180, 200, 225, harvest_doy + 19)
    ndvi = [float(np.interp(d, maize.doy, maize.ndvi)) for d in days[:-1]] + [0.25]
    harvested = tuple(((date(2026, 1, 1) + timedelta(days=d - 1)).isoformat(), v) for d, v in zip(days, ndvi))
    kw = dict(crop="maize", crop_probs={"maize": 1.0})
    v = value_inputs(field(ndvi_season=harvested, **kw), PARAMS)
    s = step(v, "crop_health")
    assert s["value"] == 1.0 and s["dates"] == 2 and "on track" in s["text"]  # 200 and 225: before the harvest day
    assert v.value_cny == value_inputs(field(ndvi_season=harvested[:-1], **kw), PARAMS).value_cny
    # without the harvest day the bare date would count against the crop
    assert health("maize", harvested, PARAMS.crop_health).factor < 1.0  # type: ignore[arg-type]
    # a collapse before the harvest day still lowers the value
    wilted = harvested[:-1] + (((date(2026, 1, 1) + timedelta(days=harvest_doy - 6)).isoformat(), 0.25),)
    assert step(value_inputs(field(ndvi_season=wilted, **kw), PARAMS), "crop_health")["value"] < 1.0
    only_after = value_inputs(field(ndvi_season=harvested[-1:], **kw), PARAMS)
    assert "not judged" in step(only_after, "crop_health")["text"] and "harvest day" in step(only_after, "crop_health")["text"]


def test_parameter_files_before_stop_at_harvest_recompute_unchanged() -> None:
    """Decisions valued under 2026.12-5 and earlier compared every date: without the key they still do."""
    older = parse_params(BASE.replace("stop_at_harvest = true", ""), "older.toml")
    assert older.crop_health is not None and not older.crop_health.stop_at_harvest
    maize = PARAMS.crop_health.curves["maize"]  # type: ignore[union-attr]
    days = (200, 225, PARAMS.crops["maize"].harvest_doy + 19)
    ndvi = [float(np.interp(d, maize.doy, maize.ndvi)) for d in days[:-1]] + [0.25]
    harvested = tuple(((date(2026, 1, 1) + timedelta(days=d - 1)).isoformat(), v) for d, v in zip(days, ndvi))
    f = field(crop="maize", crop_probs={"maize": 1.0}, ndvi_season=harvested)
    assert step(value_inputs(f, older), "crop_health")["value"] < 1.0 == step(value_inputs(f, PARAMS), "crop_health")["value"]


def test_an_uncertain_call_is_judged_against_the_likely_crop_its_season_fits() -> None:
    """A spring-barley season on its curve in late June and early July (senescing while maize greens
    up), the crop call uncertain (maize 45 %, spring barley 35 %): judged against the maize curve it
    would lag; against spring barley's (the cereals curve) it is on track."""
    kw = dict(crop="unknown", crop_probability=0.45,
              crop_probs={"maize": 0.45, "spring_barley": 0.35, "wheat": 0.2},
              ndvi_season=season(1.0, (178, 183, 188)))
    v = value_inputs(field(**kw), PARAMS)
    s = step(v, "crop_health")
    assert s["value"] == 1.0 and s["curve"] == "cereals" and "likely crops, spring_barley fits best" in s["text"]
    assert step(v, "crop")["text"] == "crop not recognised with confidence (the likeliest crop has probability 45%)"
    top = parse_params(BASE.replace('uncertain_crop = "best_fit"', ""), "older.toml")  # files before 2026.12-6
    t = step(value_inputs(field(**kw), top), "crop_health")
    assert t["curve"] == "maize" and t["value"] < 1.0 and "fits best" not in t["text"]
    assert value_inputs(field(**kw), top).value_cny < v.value_cny
    # a season that lags every likely crop's curve is still cut
    lagging = value_inputs(field(**{**kw, "ndvi_season": season(0.4, (178, 183, 188))}), PARAMS)
    assert step(lagging, "crop_health")["value"] < 1.0 and lagging.value_cny < v.value_cny
    # a known crop is judged against its own curve only
    known = step(value_inputs(field(crop="maize", crop_probs=kw["crop_probs"], ndvi_season=kw["ndvi_season"]), PARAMS),
                 "crop_health")
    assert known["curve"] == "maize" and "fits best" not in known["text"]


def _without_crop_health(text: str) -> str:
    """A parameter file from before crop health: every ``[crop_health...]`` table dropped."""
    kept, skipping = [], False
    for line in text.splitlines(keepends=True):
        if line.startswith("["):
            skipping = line.startswith("[crop_health")
        if not skipping:
            kept.append(line)
    return "".join(kept)


def test_an_uncertain_call_takes_the_calendar_of_the_crop_its_health_is_judged_by() -> None:
    """The alerts' calendar (harvest day, season start) follows the crop the value judged the season
    by, so an alert never speaks of maize while the value treats the field as spring barley."""
    probs = {"maize": 0.450000004, "spring_barley": 0.35, "wheat": 0.2}
    summer = season(1.0, (178, 183, 188))
    assert calendar_crop("unknown", probs, summer, PARAMS) == ("spring_barley", True)
    judged_as, _ = judge_health(field(crop="unknown", crop_probability=0.45, crop_probs=probs, ndvi_season=summer),
                                PARAMS)
    assert judged_as == "spring_barley"  # the same crop as the valuation's health step
    top = parse_params(BASE.replace('uncertain_crop = "best_fit"', ""), "older.toml")
    assert calendar_crop("unknown", probs, summer, top) == ("maize", False)  # files before 2026.12-6
    assert calendar_crop("maize", probs, summer, PARAMS) == ("maize", False)  # a called crop is its own calendar
    no_health = parse_params(_without_crop_health(BASE), "no-health.toml")
    assert no_health.crop_health is None and calendar_crop("unknown", probs, summer, no_health) == ("maize", False)


def test_a_crop_failure_and_a_lagging_curve_are_not_counted_twice() -> None:
    failed = value_inputs(field(reason_codes=("crop_failure",), ndvi_season=season(0.5)), PARAMS)
    assert "the lower one applies" in step(failed, "crop_health")["text"]
    healthy = value_inputs(field(), PARAMS)
    assert failed.value_cny == pytest.approx(healthy.value_cny * PARAMS.crop_failure_factor)


def test_columns_and_the_per_field_step_agree() -> None:
    p = PARAMS.crop_health
    assert p is not None
    seasons = [season(x) for x in (0.3, 0.7, 0.9, 1.2)] + [(), season(1.0, (230, 250)),
                                                           season(1.0, (100, 115)) + season(0.3, (140, 150))]
    rows, days, doy, ndvi = [], [], [], []
    for i, s in enumerate(seasons):
        for on, v in s:
            d = date.fromisoformat(on)
            rows.append(i), days.append(d.toordinal()), doy.append(d.timetuple().tm_yday), ndvi.append(v)
    keys = sorted(p.curves)
    got = health_columns(np.full(len(seasons), keys.index("cereals")), np.array(rows), np.array(days),
                         np.array(doy), np.array(ndvi), keys, p)
    assert got.tolist() == [health("wheat", s, p).factor for s in seasons]
    harvest = np.array([120, 367, 140, 135, 155, 155, 135])  # cut some seasons short by a harvest day
    got = health_columns(np.full(len(seasons), keys.index("cereals")), np.array(rows), np.array(days),
                         np.array(doy), np.array(ndvi), keys, p, harvest)
    want = [health("wheat", s, p, int(h) if h < 367 else None).factor for s, h in zip(seasons, harvest)]
    assert got.tolist() == want and want != [health("wheat", s, p).factor for s in seasons]


# Regional yield and price ranges.

def test_a_field_in_a_region_uses_its_regional_range_and_names_it() -> None:
    north_china = value_inputs(field(crop="maize", crop_probs={"maize": 1.0}, centre_lon=116.0, centre_lat=36.0,
                                     ndvi_season=None), PARAMS)
    national = value_inputs(field(crop="maize", crop_probs={"maize": 1.0}, centre_lon=9.1, centre_lat=56.1,
                                  ndvi_season=None), PARAMS)
    text = step(north_china, "value_per_mu_range")["text"]
    assert "maize in region north_china_plain" in text and "NBS" in text
    assert "national range" in step(national, "value_per_mu_range")["text"]
    regional = PARAMS.regional["north_china_plain"]["maize"]
    assert step(north_china, "value_per_mu_range")["value"][0] == pytest.approx(regional.low_cny_per_mu, abs=0.01)
    assert north_china.value_low_cny > national.value_low_cny  # a better-known, higher floor in the wheat-maize belt
    assert north_china.value_cny == national.value_cny  # the expected value stays national unless the region sets it


def test_a_crop_without_a_table_for_its_region_falls_back_to_its_national_range() -> None:
    potatoes = field(crop="potatoes", crop_probs={"potatoes": 1.0}, centre_lon=116.0, centre_lat=36.0, ndvi_season=None)
    elsewhere = field(crop="potatoes", crop_probs={"potatoes": 1.0}, ndvi_season=None)
    assert value_inputs(potatoes, PARAMS).value_low_cny == value_inputs(elsewhere, PARAMS).value_low_cny


BASE = PARAMS.text


@pytest.mark.parametrize("change, match", [
    (lambda t: t.replace("[crops.maize.regions.northeast]", "[crops.maize.regions.atlantis]"), "unknown region 'atlantis'"),
    (lambda t: t.replace("bbox = [118.0, 38.5, 135.5, 53.6]", "bbox = [110.0, 30.0, 135.5, 53.6]"), "overlap"),
    (lambda t: t.replace("bbox = [118.0, 38.5, 135.5, 53.6]", "bbox = [135.5, 38.5, 118.0, 53.6]"), "lon_min < lon_max"),
    (lambda t: t.replace("yield_kg_per_mu_range = [400, 580]", "yield_kg_per_mu_range = [580, 400]"), "low > high"),
    (lambda t: t.replace("yield_kg_per_mu_range = [400, 580]", "yield_kg_per_mu_range = [-4, 580]"), "negative"),
    (lambda t: t.replace("price_cny_per_kg_range = [1.95, 2.50]", "price_cny_per_kg_range = [2.4, 2.50]"),
     "keeps the national expected value"),
    (lambda t: t.replace('source = "Heilongjiang', 'nosource = "Heilongjiang'), "region 'northeast' has no source"),
    (lambda t: t.replace("[crop_health.curves.maize]", "[crop_health.curves.maize_x]"), "neither a crop nor a crop group"),
    (lambda t: t.replace("ndvi = [0.20, 0.22, 0.35, 0.65, 0.82, 0.78, 0.55, 0.30, 0.20]", "ndvi = [0.2, 0.3]"),
     "one ndvi per doy"),
    (lambda t: t.replace("tolerance = 0.85", "tolerance = 1.5"), "0 < tolerance <= 1"),
    (lambda t: t.replace('currency = "CNY"', 'currency = "USD"'), "currency 'USD'"),
    (lambda t: t.replace("stop_at_harvest = true", 'stop_at_harvest = "yes"'), "stop_at_harvest must be true or false"),
    (lambda t: t.replace('uncertain_crop = "best_fit"', 'uncertain_crop = "mean"'), "uncertain_crop must be"),
])
def test_bad_regional_and_crop_health_parameters_are_refused_by_name(change, match: str) -> None:
    text = change(BASE)
    assert text != BASE
    with pytest.raises(InputError, match=match):
        parse_params(text, "p.toml")
