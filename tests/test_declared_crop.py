"""The crop a farmer declares (`properties.crop`, free text): kept, compared with the imagery, never
what the value rests on."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from assets.config import Settings
from assets.errors import InputError
from assets.fields.geometry import read_drawings
from assets.models import legend
from assets.verify import declared_crop_reason, verify_claim

REPO = Path(__file__).resolve().parents[1]
PROBS = {"maize": 0.7, "wheat": 0.2, "grasslands": 0.1}


def test_the_declared_crop_is_read_as_text() -> None:
    square = {"type": "Polygon", "coordinates": [[[9.2, 56.3], [9.21, 56.3], [9.21, 56.31], [9.2, 56.31], [9.2, 56.3]]]}
    doc = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"name": "a", "crop": "  blé "}, "geometry": square},
        {"type": "Feature", "properties": {"name": "b"}, "geometry": square}]}
    assert [d.declared_crop for d in read_drawings(doc)] == ["blé", None]
    doc["features"][0]["properties"]["crop"] = ["maize"]
    with pytest.raises(InputError, match="declares its crop as"):
        read_drawings(doc)


def test_what_the_verdict_says_of_a_declared_crop() -> None:
    assert declared_crop_reason(None, "maize", 0.7, PROBS) is None
    assert declared_crop_reason("玉米", "maize", 0.7, PROBS) is None  # agrees: nothing to say
    differs = declared_crop_reason("winter wheat", "maize", 0.7, PROBS)
    assert differs is not None and differs.code == "declared_crop_differs" and not differs.blocking
    assert "declared wheat ('winter wheat') but the imagery shows maize (70%; wheat 20%)" in differs.message
    unconfirmed = declared_crop_reason("rice", legend.UNKNOWN, 0.4, PROBS)
    assert unconfirmed is not None and unconfirmed.code == "declared_crop_unconfirmed" and "rice 0%" in unconfirmed.message
    unknown = declared_crop_reason("moonbeans", "maize", 0.7, PROBS)
    assert unknown is not None and unknown.code == "declared_crop_unknown" and not unknown.blocking
    assert declared_crop_reason("wheat", None, 0.0, {}) is None  # no crop call (no imagery): nothing to compare


def test_a_rejected_claim_is_not_said_to_be_valued_as_a_crop() -> None:
    """QA 2026-12-07: a claim rejected for overlap said "the field is valued as maize"."""
    from tests.test_verify_valuation import observation

    def verdict(overlap_ha: float):
        return verify_claim(claim_id="c1", claimed_area_ha=10.0, observation=observation(), overlap_area_ha=overlap_ha,
                            sensor_evidence=None, settings=Settings(), declared_crop="sunflower")

    valued, refused = verdict(0.0), verdict(9.0)
    (said,) = [r.message for r in valued.reasons if r.code.startswith("declared_crop")]
    assert "valued as" in said and valued.status != "rejected"
    (said,) = [r.message for r in refused.reasons if r.code.startswith("declared_crop")]
    assert refused.status == "rejected" and "valued" not in said and "declared sunflower" in said


@pytest.mark.slow
def test_a_declared_crop_is_stored_and_a_disagreement_is_said(tmp_path: Path) -> None:
    from assets.pipeline import load_models, submit_and_assess
    from assets.store import connect

    settings = Settings(db_path=tmp_path / "assets.duckdb", tiles_dir=REPO / "sample_tiles")
    doc = json.loads((REPO / "sample_tiles/claims/farmer-001.geojson").read_text())
    doc["features"] = doc["features"][1:]  # maize by the road
    doc["features"][0]["properties"]["crop"] = "Winterweizen"  # not in the legend: said, not guessed
    (row,) = submit_and_assess(settings, doc, "farmer-001", as_of=date(2016, 9, 30), models=load_models(settings))
    assert row["status"] == "verified" and row["crop"] == "maize"
    codes = [r["code"] for r in row["reasons"]]
    assert "declared_crop_unknown" in codes, codes
    with connect(settings.db_path) as con:
        assert con.execute("SELECT declared_crop FROM claims").fetchone()[0] == "Winterweizen"
    doc["features"][0]["geometry"]["coordinates"][0][1][0] += 0.0004  # another drawing: a new claim
    doc["features"][0]["properties"]["crop"] = "winter wheat"
    (other,) = submit_and_assess(Settings(db_path=tmp_path / "b.duckdb", tiles_dir=REPO / "sample_tiles"), doc,
                                 "farmer-001", as_of=date(2016, 9, 30), models=load_models(settings))
    differs = [r for r in other["reasons"] if r["code"] == "declared_crop_differs"]
    assert differs and "the field is valued as maize" in differs[0]["message"] and other["crop"] == "maize"
