"""Post-loan monitoring: not planted by the expected date, harvest reached, thresholds in the versioned params."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import pytest

from assets.errors import InputError
from assets.monitor import crop_failure, monitoring_params, post_loan_alerts
from assets.observe import ClaimObservation, DateObservation
from assets.valuation import load_params, parse_params


def _obs(*points: tuple[date, float, float]) -> ClaimObservation:
    """(date, mean NDVI, top-decile NDVI) per clear date."""
    return ClaimObservation(claim_id="c-1", coverage_fraction=1.0, dates=[
        DateObservation(tile_id=f"t-{d:%m%d}", observed_on=d, valid_fraction=1.0, ndvi_mean=mean, ndvi_p10=mean / 2,
                        ndvi_p90=p90) for d, mean, p90 in points])


BARE = _obs((date(2016, 5, 16), 0.2, 0.3), (date(2016, 6, 25), 0.25, 0.35), (date(2016, 8, 12), 0.2, 0.3))
MAIZE = _obs((date(2016, 5, 16), 0.2, 0.3), (date(2016, 6, 25), 0.6, 0.7), (date(2016, 8, 12), 0.8, 0.85),
             (date(2016, 9, 21), 0.3, 0.4))


def _without_monitoring():
    text = load_params().text
    return parse_params(re.sub(r"\[monitoring\][^\[]*", "", text), "no-monitoring")


def test_the_thresholds_live_in_the_versioned_parameters() -> None:
    m = monitoring_params(load_params())
    assert m.enabled and m.version == load_params().version and m.planted_within_days == 90
    assert not monitoring_params(_without_monitoring()).enabled  # an older file: no planting/harvest alerts
    text = load_params().text
    with pytest.raises(InputError, match="planted_ndvi = 1.5 is an NDVI"):
        monitoring_params(parse_params(text.replace("planted_ndvi = 0.5 ", "planted_ndvi = 1.5 "), "bad"))
    with pytest.raises(InputError, match="unknown keys"):
        monitoring_params(parse_params(text.replace("[monitoring]\n", "[monitoring]\nplant_by = 3\n"), "bad"))


def test_a_field_still_bare_after_its_season_started_is_not_planted() -> None:
    params = load_params()
    assert post_loan_alerts("farmer-1", "maize", BARE, params, date(2016, 7, 1)) == []  # still time to sow
    (alert,) = post_loan_alerts("farmer-1", "maize", BARE, params, date(2016, 8, 20))
    assert alert.kind == "not_planted" and alert.claim_id == "c-1" and "not planted by 2016-07-" in alert.message
    assert alert.details["tiles"] == ["t-0516", "t-0625", "t-0812"] and alert.details["params_version"] == params.version
    again = post_loan_alerts("farmer-1", "maize", BARE, params, date(2016, 8, 30))
    assert [a.alert_id for a in again] == [alert.alert_id]  # one alert per field and season, stored once
    assert post_loan_alerts("farmer-1", "maize", MAIZE, params, date(2016, 8, 20)) == []  # green in June
    assert post_loan_alerts("farmer-1", "maize", BARE, _without_monitoring(), date(2016, 8, 20)) == []


def test_harvest_reached_says_repayment_is_due_and_whether_the_imagery_shows_it() -> None:
    params = load_params()
    assert post_loan_alerts("farmer-1", "maize", MAIZE, params, date(2016, 8, 20)) == []  # before harvest day 245
    (alert,) = post_loan_alerts("farmer-1", "maize", MAIZE, params, date(2016, 9, 30))
    assert alert.kind == "harvest_reached" and "repayment due from 2016-09-01" in alert.message
    assert alert.details["harvest_observed"] is True and "shows it harvested (NDVI 0.30 on 2016-09-21)" in alert.message
    standing = _obs(*[(d.observed_on, d.ndvi_mean, d.ndvi_p90) for d in MAIZE.dates[:3]])
    (still,) = post_loan_alerts("farmer-1", "maize", standing, params, date(2016, 9, 30))
    assert still.details["harvest_observed"] is False and "does not show the harvest yet" in still.message
    assert post_loan_alerts("farmer-1", None, MAIZE, params, date(2016, 9, 30)) == []  # no crop, no calendar
    (guessed,) = post_loan_alerts("farmer-1", "maize", MAIZE, params, date(2016, 9, 30), uncertain=True)
    assert guessed.message.startswith("maize (the likeliest crop; the crop call is uncertain) harvest day")
    assert guessed.alert_id == alert.alert_id  # the same alert, worded for a guess
    (fitted,) = post_loan_alerts("farmer-1", "maize", MAIZE, params, date(2016, 9, 30), uncertain=True, best_fit=True)
    assert fitted.message.startswith("maize (the crop call is uncertain; of its likely crops, maize fits the season "
                                      "best) harvest day")


def test_a_harvest_stays_seen_when_the_stubble_greens_again() -> None:
    """Winter wheat cut by August (NDVI 0.32), a catch crop green by September (0.63): harvested."""
    wheat = _obs((date(2016, 5, 16), 0.87, 0.9), (date(2016, 6, 25), 0.45, 0.6), (date(2016, 8, 12), 0.32, 0.4),
                 (date(2016, 9, 21), 0.63, 0.7))
    (alert,) = post_loan_alerts("farmer-1", "wheat", wheat, load_params(), date(2016, 9, 30))
    assert alert.details["harvest_observed"] is True and "shows it harvested (NDVI 0.32 on 2016-08-12)" in alert.message


def test_crop_failure_reads_its_thresholds_from_the_parameters() -> None:
    params = load_params()
    collapsed = _obs((date(2016, 6, 25), 0.8, 0.85), (date(2016, 8, 12), 0.3, 0.4))
    assert crop_failure("farmer-1", "maize", collapsed, params, date(2016, 8, 20)) is not None
    guessed = crop_failure("farmer-1", "maize", collapsed, params, date(2016, 8, 20), uncertain=True)
    assert guessed is not None and "likeliest crop" in guessed.message
    strict = parse_params(params.text.replace("crop_failure_drop_ndvi = 0.35", "crop_failure_drop_ndvi = 0.6"), "x")
    assert crop_failure("farmer-1", "maize", collapsed, strict, date(2016, 8, 20)) is None


def test_the_assessment_raises_harvest_alerts_for_the_sample_season(repo: Path, db_path: Path) -> None:
    from assets.config import Settings
    from assets.pipeline import submit_and_assess
    from assets.store import connect
    from assets.store.queries import alerts

    s = Settings(db_path=db_path)
    rows = submit_and_assess(s, repo / "sample_tiles/claims/farmer-001.geojson", "farmer-001", as_of=date(2016, 9, 30))
    with connect(db_path) as con:
        raised = [a for a in alerts(con) if a["kind"] in {"harvest_reached", "not_planted"}]
    assert {a["claim_id"] for a in raised} == {r["claim_id"] for r in rows if r["status"] != "rejected"}
    assert raised and all(a["kind"] == "harvest_reached" for a in raised)  # both fields were planted and are past harvest


def test_every_alert_kind_the_code_raises_is_a_named_kind(repo: Path) -> None:
    """Filters (`query alerts --kind`, `GET /alerts?kind=`) take only `ALERT_KINDS`: each kind the
    monitoring and sensor code raises must be one of them, and each named kind must be raised."""
    from assets.monitor import ALERT_KINDS

    source = "".join((repo / "src/assets" / f).read_text() for f in ("monitor.py", "sensors/evidence.py"))
    raised = set(re.findall(r'_alert_id\("([a-z_]+)"', source)) | set(re.findall(r'kind="([a-z_]+)"', source))
    assert raised == set(ALERT_KINDS)
