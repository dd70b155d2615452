"""The borrower cap holds over the borrower's whole limit, however the fields are submitted
(QA 2026-12-07: two files got 57,200 CNY under a 40,000 CNY cap, one file 39,900)."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from assets.config import Settings
from assets.valuation import load_params, parse_params

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow
CAP = 100_000  # the first field (75,300 CNY alone) fits; the second (154,400 alone) gets what is left


@pytest.fixture
def small_cap(tmp_path: Path, monkeypatch):
    """(settings, models, farmer-001's two fields as a document) with the borrower cap lowered to `CAP`."""
    import assets.pipeline as pipeline

    params = parse_params(load_params().text.replace("borrower_cap_cny = 3000000", f"borrower_cap_cny = {CAP}"),
                          "small cap")
    monkeypatch.setattr(pipeline, "load_params", lambda: params)
    settings = Settings(db_path=tmp_path / "assets.duckdb", tiles_dir=REPO / "sample_tiles")
    return settings, pipeline.load_models(settings), json.loads((REPO / "sample_tiles/claims/farmer-001.geojson").read_text())


def test_fields_submitted_one_by_one_share_one_cap(small_cap) -> None:
    import assets.pipeline as pipeline
    from assets.explain import explain
    from assets.store import connect
    from assets.store.queries import portfolio

    settings, models, doc = small_cap
    cap = CAP
    rows = []
    for feature in doc["features"]:  # two submissions of one field each
        one = {**doc, "features": [feature]}
        rows += pipeline.submit_and_assess(settings, one, "farmer-001", as_of=date(2016, 9, 30), models=models)
    assert [r["status"] for r in rows] == ["verified", "verified"]
    with connect(settings.db_path) as con:
        (b,) = portfolio(con)
        assert 0.99 * cap < b["limit_cny"] <= cap  # the second field got what the first left, not a cap of its own
        why = explain(con, "farmer-001", recompute=True)
    assert rows[0]["limit_cny"] == 75_300 and rows[1]["limit_cny"] == pytest.approx(cap - 75_300, abs=100)
    assert why["recompute_matches"], why
    steps = [s for c in why["claims"] for s in c["explanation"] if s.get("step") == "borrower_cap"]
    assert steps and "other fields already hold" in steps[-1]["text"] and "CNY scaled to" in steps[-1]["text"]


def test_submissions_side_by_side_share_one_cap(small_cap, monkeypatch) -> None:
    """Code review 2026-12-07: two submissions of one borrower assessed at the same time each read the
    other limits before the other wrote, and together passed the cap. The cap is now checked again in
    the write transaction, and a run that finds the borrower's other limits changed caps again."""
    import assets.pipeline as pipeline
    from assets.store import connect
    from assets.store.queries import portfolio

    settings, models, doc = small_cap
    cap = CAP
    first, second = ({**doc, "features": [f]} for f in doc["features"])
    observe, other = pipeline.observe_claims, []

    def observe_while_another_submits(*args, **kwargs):  # the second run's compute phase
        if not other:
            other.append(None)
            other.extend(pipeline.submit_and_assess(settings, first, "farmer-001", as_of=date(2016, 9, 30),
                                                    models=models))
        return observe(*args, **kwargs)

    monkeypatch.setattr(pipeline, "observe_claims", observe_while_another_submits)
    (late,) = pipeline.submit_and_assess(settings, second, "farmer-001", as_of=date(2016, 9, 30), models=models)
    early = other[1]
    assert early["limit_cny"] == 75_300  # alone under the cap
    assert late["limit_cny"] == pytest.approx(cap - 75_300, abs=100)  # what the early one left, not a fresh cap
    with connect(settings.db_path) as con:
        (b,) = portfolio(con)
    assert b["limit_cny"] <= cap
