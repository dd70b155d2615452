"""Boundary agreement (#12) on small synthetic rasters: each fabrication kind gets its verdict."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest

from assets import boundary as bnd
from assets.config import Settings
from assets.observe import ClaimObservation, DateObservation
from assets.verify import ReviewDecision, verify_claim

S = Settings()
H = W = 60
WHEAT = [0.7, 0.8, 0.6, 0.3, 0.2, 0.2]
MAIZE = [0.2, 0.2, 0.4, 0.8, 0.8, 0.4]
GRASS = [0.6, 0.6, 0.7, 0.7, 0.6, 0.6]


def world(boundaries: bool = True):
    """Fields A (rows 5-24, cols 5-24, wheat), B (rows 5-24, cols 27-50, maize), C (rows 28-54,
    cols 5-50, grass); 2-px boundaries between A and B, a 3-px road between them and C."""
    probs = np.zeros((3, H, W), np.float32)
    probs[0] = 1.0
    labels = np.zeros((H, W), int)
    labels[5:25, 5:25], labels[5:25, 27:51], labels[28:55, 5:51] = 1, 2, 3
    field = labels > 0
    probs[:, field] = np.array([0.02, 0.96, 0.02])[:, None]
    gap = np.zeros((H, W), bool)
    gap[5:25, 25:27] = True
    probs[:, gap] = (np.array([0.1, 0.3, 0.6]) if boundaries else np.array([0.02, 0.96, 0.02]))[:, None]
    ndvi = np.full((len(WHEAT), H, W), 0.15, np.float32)  # roads and yards
    for k, season in ((1, WHEAT), (2, MAIZE), (3, GRASS)):
        ndvi[:, labels == k] = np.array(season, np.float32)[:, None]
    ndvi[:, gap] = np.array(WHEAT, np.float32)[:, None]
    ndvi += np.random.default_rng(0).normal(0, 0.005, ndvi.shape).astype(np.float32)
    return probs, ndvi


def mask(r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
    m = np.zeros((H, W), bool)
    m[max(r0, 0):r1, max(c0, 0):c1] = True
    return m


def judge(drawing: np.ndarray, boundaries: bool = True) -> bnd.BoundaryJudgement:
    probs, ndvi = world(boundaries)
    labels = bnd.field_instances(probs, ndvi, S)
    return bnd.judge(bnd.measure(drawing, labels, ndvi, S), S)


def test_instances_follow_the_fields() -> None:
    probs, ndvi = world()
    labels = bnd.field_instances(probs, ndvi, S)
    assert len(np.unique(labels[labels > 0])) == 3
    assert len({labels[10, 10], labels[10, 40], labels[40, 20]}) == 3


def test_merged_instances_are_split_by_their_seasons() -> None:
    probs, ndvi = world(boundaries=False)  # the network saw no boundary between A and B
    labels = bnd.field_instances(probs, ndvi, S)
    assert labels[10, 10] != labels[10, 40] and labels[10, 10] > 0 and labels[10, 40] > 0
    assert judge(mask(5, 25, 15, 38), boundaries=False).kind == bnd.MISMATCH  # half of A + half of B


def test_the_field_as_drawn_matches() -> None:
    assert judge(mask(5, 25, 5, 25)).kind == bnd.MATCH


def test_half_a_field_matches_at_its_own_area() -> None:
    j = judge(mask(5, 25, 5, 15))
    assert j.kind == bnd.MATCH and j.field_fraction > 0.95


def test_whole_neighbouring_fields_merged_match() -> None:
    assert judge(mask(5, 25, 5, 51)).kind == bnd.MATCH  # A + boundary + B
    assert judge(mask(5, 55, 5, 51)).kind == bnd.MATCH  # A, B, C and the road between


def test_inflated_drawing_is_valued_at_the_field() -> None:
    drawing = mask(1, 28, 1, 29)  # A plus its margins, the boundary, a strip of B and the road
    j = judge(drawing)
    assert j.kind == bnd.INFLATED and j.code == "boundary_inflated"
    assert j.field_fraction == pytest.approx(400 / drawing.sum(), abs=0.05)


def test_shifted_drawing_across_fields_goes_to_review() -> None:
    j = judge(mask(15, 35, 15, 35))  # the size of A, moved 10 px (100 m) down and right
    assert j.kind == bnd.MISMATCH and j.code == "boundary_mismatch"
    assert "follows no field" in j.message


def test_season_spread_inside_one_detected_field() -> None:
    probs, ndvi = world()
    ndvi[:, 5:25, 15:25] = np.array(MAIZE, np.float32)[:, None, None]  # half of A is another crop
    labels = bnd.field_instances(probs, np.zeros((0, H, W), np.float32), S)  # instances without seasons
    b = bnd.measure(mask(5, 25, 5, 25), labels, ndvi, S)
    assert b.season_spread == pytest.approx(0.5, abs=0.05)
    assert bnd.judge(b, S).code == "mixed_seasons"


def _observation(agreement: bnd.BoundaryAgreement) -> ClaimObservation:
    dates = [DateObservation(f"t{i}", date(2016, 4 + i, 10), 1.0, v, v, v) for i, v in enumerate((0.3, 0.6, 0.8, 0.7))]
    return ClaimObservation(claim_id="c1", coverage_fraction=1.0, dates=dates, farmland_fraction=0.95,
                            planted_fraction=0.95, crop_probs={"wheat": 0.9, "barley": 0.1}, boundary=agreement)


def _verify(agreement: bnd.BoundaryAgreement, review: ReviewDecision | None = None):
    return verify_claim(claim_id="c1", claimed_area_ha=10.0, observation=_observation(agreement), overlap_area_ha=0.0,
                        sensor_evidence=None, settings=S, review=review)


def _agreement(drawing: np.ndarray) -> bnd.BoundaryAgreement:
    probs, ndvi = world()
    return bnd.measure(drawing, bnd.field_instances(probs, ndvi, S), ndvi, S)


def test_verdicts_for_each_kind() -> None:
    assert _verify(_agreement(mask(5, 25, 5, 25))).status == "verified"
    inflated = _agreement(mask(1, 28, 1, 29))
    v = _verify(inflated)
    assert v.status == "partial" and v.verified_area_ha == pytest.approx(10.0 * 400 / 756, rel=0.06)
    assert "boundary_inflated" in [r.code for r in v.reasons] and v.boundary["verdict"] == "inflated"
    shifted = _agreement(mask(15, 35, 15, 35))
    v = _verify(shifted)
    assert v.status == "review" and not v.rejected and v.verified_area_ha > 0  # what approval would value
    assert [r.code for r in v.reasons][-1] == "boundary_mismatch"
    approved = _verify(shifted, ReviewDecision("rv-1", "approve", "li", "walked the field", ("boundary_mismatch",)))
    assert approved.status == "verified" and "review_approved" in [r.code for r in approved.reasons]
    # QA 2026-12-07: an approval of another question (old imagery) used to settle the boundary too.
    assert _verify(shifted, ReviewDecision("rv-1", "approve", "li", "old image ok", ("stale_imagery",))).status == "review"
    rejected = _verify(shifted, ReviewDecision("rv-2", "reject", "li", "neighbour's land"))
    assert rejected.status == "rejected" and rejected.verified_area_ha == 0.0
    assert "neighbour's land" in rejected.summary()
    # A rejected review stays rejected even when the imagery later agrees with the drawing.
    assert _verify(_agreement(mask(5, 25, 5, 25)), ReviewDecision("rv-3", "reject", "li", "no")).status == "rejected"


def test_no_boundary_evidence_changes_nothing() -> None:
    v = _verify(None)  # type: ignore[arg-type]
    assert v.status == "verified" and v.boundary is None


def test_edge_contrast_follows_field_edges() -> None:
    probs, ndvi = world()
    labels = bnd.field_instances(probs, ndvi, S)
    assert bnd.edge_contrast(mask(5, 25, 5, 25), labels) > 0.8  # field A as registered
    assert 0.5 < bnd.edge_contrast(mask(5, 25, 5, 15), labels) < 0.9  # half of A: three sides on edges
    assert bnd.edge_contrast(mask(35, 48, 15, 35), labels) < 0.2  # a patch in the middle of C
    assert bnd.edge_contrast(mask(10, 12, 10, 12), labels) is None  # no interior to compare with


def test_drawing_inside_a_field_but_on_no_edge_goes_to_review() -> None:
    """A rectangle moved into the middle of a large field lies wholly on it (like half a field),
    but its rim follows no edge: the officer checks it instead of a limit on someone's land."""
    j = judge(mask(35, 48, 15, 35))
    assert j.kind == bnd.MISMATCH and j.code == "boundary_unaligned"
    assert "does not follow the field edges" in j.message
    assert judge(mask(5, 25, 5, 15)).kind == bnd.MATCH  # half of A still matches


def test_inflated_drawing_is_not_valued_for_swallowed_slivers() -> None:
    """Whole fields holding under `boundary_cut_field_min` of an inflated drawing (hedges, corners
    of neighbours) are not added to the valued area."""
    b = bnd.BoundaryAgreement(drawing_px=700, fields=(bnd.FieldCover(400, 400), bnd.FieldCover(30, 30)),
                              edge_contrast=0.1)
    j = bnd.judge(b, S)
    assert j.kind == bnd.INFLATED and j.field_fraction == pytest.approx(400 / 700)
    assert "1 detected field(s)" in j.message


def test_rim_pixels_are_those_next_to_land_with_no_field() -> None:
    """A field's outer rim (mixed pixels) is counted; its edge against a touching field is not."""
    labels = np.zeros((12, 14), int)
    labels[2:8, 2:7], labels[2:8, 7:12] = 1, 2  # two 6 x 5 fields touching along a column
    b = bnd.measure(np.ones(labels.shape, bool), labels, None, S)
    assert [(f.field_px, f.inside_px) for f in b.fields] == [(30, 30), (30, 30)]
    # each field: 6 x 5 = 30 px, of which the 3 x 4 = 12 px core and the column on the other field
    # (4 px besides the corners) are not next to land with no field
    assert [f.inside_rim_px for f in b.fields] == [30 - 12 - 4, 30 - 12 - 4]
    assert b.fields[0].inside_area_px(0.75) == pytest.approx(30 - 0.25 * 14)
    half = bnd.measure(np.pad(np.ones((12, 5), bool), ((0, 0), (0, 9))), labels, None, S)  # columns 0-4
    assert half.fields[0].inside_px == 18 and half.fields[0].inside_rim_px == 10  # 3 of field 1's columns


def test_inflated_drawing_is_valued_with_its_rim_pixels_weighted() -> None:
    """Whole-pixel counting pays an inflated drawing for the detected field's mixed rim."""
    b = bnd.BoundaryAgreement(drawing_px=700, fields=(bnd.FieldCover(400, 400, inside_rim_px=80),),
                              edge_contrast=0.6)
    j = bnd.judge(b, S)
    assert j.kind == bnd.INFLATED
    assert j.field_fraction == pytest.approx((400 - (1 - S.boundary_rim_weight) * 80) / 700)
    whole_pixels = bnd.judge(b, S.model_copy(update={"boundary_rim_weight": 1.0}))
    assert whole_pixels.field_fraction == pytest.approx(400 / 700)


def test_a_match_is_not_valued_for_bites_out_of_neighbouring_fields() -> None:
    """A drawing that follows its field but reaches into the next one is valued without the bite;
    a neighbouring field drawn whole is the farmer's (a few whole fields) and stays valued."""
    bite = bnd.BoundaryAgreement(drawing_px=500, fields=(bnd.FieldCover(440, 430), bnd.FieldCover(900, 60)),
                                 edge_contrast=0.6)
    j = bnd.judge(bite, S)
    assert j.kind == bnd.MATCH and j.field_fraction == pytest.approx(1 - 60 / 500)
    whole = bnd.BoundaryAgreement(drawing_px=500, fields=(bnd.FieldCover(440, 430), bnd.FieldCover(62, 60)),
                                  edge_contrast=0.6)
    assert bnd.judge(whole, S).field_fraction == pytest.approx(1.0)
    v = _verify(bite)
    assert v.status == "verified" and v.verified_area_ha == pytest.approx(10.0 * (1 - 60 / 500))
    assert "boundary_neighbours" in [r.code for r in v.reasons]
    # With 0.4 ha of it pledged before, the field's share no longer reaches 80 %: partial, and
    # the reason is the neighbours' land, not planting.
    deep = bnd.BoundaryAgreement(drawing_px=500, fields=(bnd.FieldCover(420, 400), bnd.FieldCover(900, 100)),
                                 edge_contrast=0.6)
    v = verify_claim(claim_id="c1", claimed_area_ha=10.0, observation=_observation(deep), overlap_area_ha=0.4,
                     sensor_evidence=None, settings=S)
    assert v.status == "partial" and v.verified_area_ha == pytest.approx(10.0 * 400 / 500 - 0.4)
    assert "boundary_neighbours" in [r.code for r in v.reasons]
    assert "partly_planted" not in [r.code for r in v.reasons]  # the boundary reason says what is valued


def test_a_ring_of_verge_around_a_whole_field_is_not_valued() -> None:
    """Fraud QA 2026-12-07: a field drawn with a 10 m ring of verge got 21 % more credit, unflagged."""
    exact = judge(mask(5, 25, 5, 25))
    assert exact.kind == bnd.MATCH and exact.code == "ok" and exact.field_fraction == pytest.approx(1.0)
    ringed = judge(mask(4, 26, 4, 26))  # one pixel (10 m) all round: 484 px for a 400 px field
    assert ringed.kind == bnd.MATCH and ringed.code == "boundary_verge" and "beyond the field" in ringed.message
    # the detected field (400 px and the 20 px of boundary beside it), not the ring
    assert ringed.field_fraction * 484 <= 420 * (1 + S.boundary_match_slack) < 484
    half = judge(mask(5, 25, 5, 15))  # part of a field: nothing to cap by
    assert half.code == "ok"
