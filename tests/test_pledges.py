"""One pledge per piece of land: the same field drawn again any way is one claim and one limit."""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path

import pytest
from shapely.geometry import mapping

from assets.claims import load_claims, overlaps_ha, prepare_claims, store_claims
from assets.config import Settings
from assets.fields.geometry import Drawing
from assets.store import connect
from tests.test_geometry import square_lonlat

FIELD = mapping(square_lonlat(side=200))  # 4 ha
RING = [list(p) for p in FIELD["coordinates"][0]]  # closed: first corner repeated last


def _rotated(ring: list, k: int) -> list:
    body = ring[:-1]
    body = body[k:] + body[:k]
    return body + [body[0]]


def _densified(ring: list) -> list:
    out = []
    for a, b in zip(ring[:-1], ring[1:]):
        out += [a, [(a[0] + b[0]) / 2, (a[1] + b[1]) / 2], [a[0] + 0.9 * (b[0] - a[0]), a[1] + 0.9 * (b[1] - a[1])]]
    return out + [ring[-1]]


VARIANTS = {
    "rotated start": _rotated(RING, 2),
    "reversed": RING[::-1],
    "densified": _densified(RING),
    "rotated, reversed and densified": _densified(_rotated(RING, 1)[::-1]),
}


def _store(db_path: Path, borrower: str, rings: list[list], when: datetime) -> list:
    drawings = [Drawing(f"f{i}", {"type": "Polygon", "coordinates": [r]}) for i, r in enumerate(rings)]
    claims = prepare_claims(borrower, drawings, Settings(), submitted_at=when)
    with connect(db_path) as con:
        return store_claims(con, claims, drawings, source="test")


def _count(db_path: Path) -> int:
    with connect(db_path) as con:
        return con.execute("SELECT count(*) FROM claims").fetchone()[0]


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_the_same_field_drawn_again_is_the_stored_claim(db_path: Path, variant: str) -> None:
    first = _store(db_path, "farmer-1", [RING], datetime(2024, 1, 1))
    again = _store(db_path, "farmer-1", [VARIANTS[variant]], datetime(2024, 2, 1))
    assert again[0].claim_id == first[0].claim_id and again[0].submitted_at == datetime(2024, 1, 1)
    assert _count(db_path) == 1


def test_the_same_field_twice_in_one_file_is_one_claim(db_path: Path) -> None:
    claims = _store(db_path, "farmer-1", [RING, VARIANTS["reversed"], VARIANTS["densified"]], datetime(2024, 1, 1))
    assert len({c.claim_id for c in claims}) == 1 and len(claims) == 3  # one answer per drawing, in order
    assert _count(db_path) == 1


def test_another_borrower_drawing_the_field_is_a_new_claim_carrying_the_overlap(db_path: Path) -> None:
    mine = _store(db_path, "farmer-1", [RING], datetime(2024, 1, 1))
    theirs = _store(db_path, "farmer-2", [VARIANTS["rotated start"]], datetime(2024, 1, 2))
    assert theirs[0].claim_id != mine[0].claim_id
    with connect(db_path) as con:
        overlaps = overlaps_ha(load_claims(con))
    assert overlaps[mine[0].claim_id] == 0.0
    assert overlaps[theirs[0].claim_id] == pytest.approx(4.0, rel=1e-3)


def test_own_overlapping_field_is_an_overlap_like_anyone_elses(db_path: Path) -> None:
    half_over = mapping(square_lonlat(x0=512600, side=200))  # shares half of FIELD: IoU 1/3
    first = _store(db_path, "farmer-1", [RING], datetime(2024, 1, 1))
    second = _store(db_path, "farmer-1", [[list(p) for p in half_over["coordinates"][0]]], datetime(2024, 1, 2))
    assert second[0].claim_id != first[0].claim_id and _count(db_path) == 2
    with connect(db_path) as con:
        overlaps = overlaps_ha(load_claims(con))
    assert overlaps[first[0].claim_id] == 0.0  # first come, first served
    assert overlaps[second[0].claim_id] == pytest.approx(2.0, rel=1e-3)


def test_pledges_already_stored_twice_are_caught_by_area(db_path: Path) -> None:
    """Claims stored before the fix (one per exact drawing) are never both valued."""
    from assets.claims import _row

    drawings = [Drawing("a", {"type": "Polygon", "coordinates": [RING]}),
                Drawing("b", {"type": "Polygon", "coordinates": [VARIANTS["reversed"]]})]
    claims = [prepare_claims("farmer-1", [d], Settings(), submitted_at=datetime(2024, 1, i + 1))[0]
              for i, d in enumerate(drawings)]
    from assets.store import append, transaction
    with connect(db_path) as con, transaction(con):
        append(con, "borrowers", [{"borrower_id": "farmer-1"}])
        append(con, "claims", [_row(c, d, "old") for c, d in zip(claims, drawings)])
    with connect(db_path) as con:
        overlaps = overlaps_ha(load_claims(con))
    assert overlaps[claims[0].claim_id] == 0.0 and overlaps[claims[1].claim_id] == pytest.approx(4.0, rel=1e-3)


@pytest.mark.slow
def test_double_pledge_of_a_real_field_gives_one_claim_and_one_limit(repo: Path, tmp_path: Path) -> None:
    """The fraud team's case end to end: the same field resubmitted, started at another corner."""
    from assets.pipeline import load_models, submit_and_assess

    settings = Settings(db_path=tmp_path / "assets.duckdb", tiles_dir=repo / "sample_tiles")
    models = load_models(settings)
    doc = json.loads((repo / "sample_tiles/claims/farmer-001.geojson").read_text())
    doc["features"] = doc["features"][:1]
    first = submit_and_assess(settings, doc, "farmer-001", as_of=date(2016, 9, 30), models=models)
    ring = doc["features"][0]["geometry"]["coordinates"][0]
    redrawn = json.loads(json.dumps(doc))
    redrawn["features"][0]["geometry"]["coordinates"][0] = _densified(_rotated(ring, 3))[::-1]
    redrawn["features"][0]["properties"]["name"] = "the same field again"
    again = submit_and_assess(settings, redrawn, "farmer-001", as_of=date(2016, 9, 30), models=models)
    assert first[0]["limit_cny"] and first[0]["limit_cny"] > 0
    assert [r["claim_id"] for r in again] == [first[0]["claim_id"]]
    assert again[0]["limit_cny"] == first[0]["limit_cny"]
    # submitted again weeks later (the API's date is today's): the stored verdict, not a new decision
    later = submit_and_assess(settings, redrawn, "farmer-001", as_of=date(2016, 10, 30), models=models)
    assert later[0]["decision_id"] == first[0]["decision_id"] and later[0]["as_of"] == first[0]["as_of"]
    assert later[0]["reasons"] == first[0]["reasons"] and later[0]["reasons"][0]["code"]
    from assets.store.queries import portfolio

    with connect(settings.db_path) as con:
        (row,) = portfolio(con)
        assert row["claims"] == 1 and row["limit_cny"] == first[0]["limit_cny"]
        decisions = con.execute("SELECT count(*) FROM decisions WHERE claim_id = ?", [first[0]["claim_id"]]).fetchone()
        assert decisions == (1,)


def test_several_borrowers_stored_in_one_transaction(db_path: Path) -> None:
    """`store_drawings_of` (bulk import): each borrower gets their own claims back, in order; a field
    drawn twice by one borrower in the batch is one claim; another borrower's drawing is a new one."""
    from assets.pipeline import store_drawings_of

    other = mapping(square_lonlat(x0=513000, side=200))
    polygon = lambda name, ring: Drawing(name, {"type": "Polygon", "coordinates": [ring]})  # noqa: E731
    batch = [
        ("farmer-1", [polygon("home", RING), polygon("home again", VARIANTS["densified"])]),
        ("farmer-2", [polygon("far", [list(p) for p in other["coordinates"][0]])]),
        ("farmer-3", [polygon("same land", VARIANTS["reversed"]), polygon("open ring", RING[:-1])]),
    ]
    out = store_drawings_of(db_path, batch, Settings(db_path=db_path), "test")
    assert [[c.borrower_id for c in claims] for claims in out] == [["farmer-1"] * 2, ["farmer-2"], ["farmer-3"] * 2]
    assert out[0][0].claim_id == out[0][1].claim_id  # drawn twice: one claim
    assert out[2][0].claim_id != out[0][0].claim_id  # another borrower's drawing of the land: its own claim
    assert out[2][1].status == "rejected" and out[2][1].geometry is None  # the unclosed ring, with its reason
    assert _count(db_path) == 4
    # stored as one borrower at a time would be: the same claim ids
    again = store_drawings_of(db_path, batch[1:2], Settings(db_path=db_path), "test")
    assert again == [out[1]]


def test_a_rejected_claim_holds_no_land(db_path: Path) -> None:
    """QA 2026-12-07: a refused grab around a field kept blocking the real field submitted after it."""
    from assets.claims import Pledges

    grab = mapping(square_lonlat(x0=512300, side=800))  # 64 ha around FIELD
    big = _store(db_path, "farmer-9", [[list(p) for p in grab["coordinates"][0]]], datetime(2024, 1, 1))[0]
    real = _store(db_path, "farmer-1", [RING], datetime(2024, 1, 2))[0]
    with connect(db_path) as con:
        claims = load_claims(con)
    assert overlaps_ha(claims)[real.claim_id] == pytest.approx(4.0, rel=1e-3)  # the grab, pending, holds it
    assert overlaps_ha(claims, {big.claim_id: Pledges.RELEASED})[real.claim_id] == 0.0  # rejected: released
    pledges = Pledges(claims, {big.claim_id: Pledges.RELEASED})
    pledges.settle(big.claim_id, Pledges.FIRM)  # re-assessed and accepted this run: first come again
    assert pledges.overlap_ha(real) == pytest.approx(4.0, rel=1e-3)


@pytest.mark.slow
def test_a_refused_grab_does_not_block_the_real_field_inside_it(repo: Path, tmp_path: Path) -> None:
    from assets.pipeline import load_models, submit_and_assess

    settings = Settings(db_path=tmp_path / "assets.duckdb", tiles_dir=repo / "sample_tiles")
    models = load_models(settings)
    doc = json.loads((repo / "sample_tiles/claims/farmer-001.geojson").read_text())
    doc["features"] = doc["features"][1:]  # maize by the road
    w, s, e, n = 9.18, 56.340, 9.256, 56.360  # around it, reaching west off the imagery (it starts at 9.2007)
    grab = {"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {"name": "everything"},
            "geometry": {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]}}]}
    (refused,) = submit_and_assess(settings, grab, "farmer-017", as_of=date(2016, 9, 30), models=models)
    assert refused["status"] == "rejected", refused["reason"]
    (field,) = submit_and_assess(settings, doc, "farmer-016", as_of=date(2016, 9, 30), models=models)
    assert field["status"] == "verified" and field["limit_cny"] > 0, field["reason"]


def test_land_inside_an_inflated_drawing_is_contested_not_taken(db_path: Path) -> None:
    """QA 2026-12-07: a drawing valued only at its detected field (boundary_inflated) blocked the real
    neighbour's field it swallowed. Such land is contested: an officer decides, the neighbour is not refused."""
    from assets.claims import Pledges

    grab = mapping(square_lonlat(x0=512300, side=800))  # 64 ha over FIELD (and more)
    big = _store(db_path, "farmer-9", [[list(p) for p in grab["coordinates"][0]]], datetime(2024, 1, 1))[0]
    real = _store(db_path, "farmer-1", [RING], datetime(2024, 1, 2))[0]
    with connect(db_path) as con:
        claims = load_claims(con)
    pledges = Pledges(claims, {big.claim_id: Pledges.CONTESTED})
    assert pledges.overlap_ha(real) == 0.0 and pledges.contested_ha(real) == pytest.approx(4.0, rel=1e-3)
    pledges.settle(big.claim_id, Pledges.FIRM)  # judged a true field this night: firm again
    assert pledges.overlap_ha(real) == pytest.approx(4.0, rel=1e-3) and pledges.contested_ha(real) == 0.0


def test_a_contested_overlap_waits_for_an_officer() -> None:
    from assets.verify import ReviewDecision, verify_claim
    from tests.test_verify_valuation import observation

    def verdict(review=None):
        return verify_claim(claim_id="c1", claimed_area_ha=10.0, observation=observation(), overlap_area_ha=0.0,
                            contested_overlap_ha=4.0, sensor_evidence=None, settings=Settings(), review=review)

    waiting = verdict()
    assert waiting.status == "review" and waiting.reasons[-1].code == "overlap_contested"
    assert "a credit officer decides whose land it is" in waiting.reasons[-1].message
    approved = verdict(ReviewDecision(review_id="rv-1", decision="approve", decided_by="li", note="site visit: theirs",
                                      reviewed=("overlap_contested",)))
    assert approved.status == "verified" and approved.verified_area_ha == pytest.approx(9.0)
    other = verdict(ReviewDecision(review_id="rv-0", decision="approve", decided_by="li", note="boundary fine",
                                   reviewed=("boundary_mismatch",)))
    assert other.status == "review"  # an approval of another question does not settle whose land this is
    assert any(r.code == "review_approved" and "site visit" in r.message for r in approved.reasons)


def test_land_goes_to_the_claim_stored_first_not_the_one_prepared_first(db_path: Path) -> None:
    """Fraud QA 2026-12-07: four borrowers posting one field at the same moment got two or three
    winners. A claim's time was taken before it was stored, so a claim prepared first but stored
    second was the earlier one to its own assessment and the later one to the other's."""
    drawings = [Drawing("f", {"type": "Polygon", "coordinates": [RING]})]
    slow = prepare_claims("farmer-1", drawings, Settings(), submitted_at=datetime(2024, 1, 1, 12, 0, 0))
    fast = prepare_claims("farmer-2", drawings, Settings(), submitted_at=datetime(2024, 1, 1, 12, 0, 1))
    with connect(db_path) as con:
        (second,) = store_claims(con, fast, drawings, source="test")  # stored first
        (first_prepared,) = store_claims(con, slow, drawings, source="test")
        claims = load_claims(con)
    assert first_prepared.submitted_at > second.submitted_at  # stored order is pledge order
    overlaps = overlaps_ha(claims)
    assert overlaps[second.claim_id] == 0.0 and overlaps[first_prepared.claim_id] == pytest.approx(4.0, rel=1e-3)


def test_awarded_land_is_taken_from_the_inflated_drawing_only(db_path: Path) -> None:
    """An officer's award of contested land (fraud QA 2026-12-07) is carried by the inflated drawing that
    held it loosely, on every later night (also once that drawing was refused for it); a claim that held
    its land firmly before keeps it."""
    from assets.claims import Pledges

    grab = mapping(square_lonlat(x0=512300, side=800))  # 64 ha over FIELD (and more)
    big = _store(db_path, "farmer-9", [[list(p) for p in grab["coordinates"][0]]], datetime(2024, 1, 1))[0]
    real = _store(db_path, "farmer-1", [RING], datetime(2024, 1, 2))[0]
    with connect(db_path) as con:
        claims = load_claims(con)
    for state in (Pledges.CONTESTED, Pledges.RELEASED):
        pledges = Pledges(claims, {big.claim_id: state}, awarded={real.claim_id})
        assert pledges.overlap_ha(big) == pytest.approx(4.0, rel=1e-3)  # the awarded field is not the grab's
        pledges.settle(big.claim_id, Pledges.RELEASED)  # refused for it this night (the officer's approval
        assert pledges.overlap_ha(real) == 0.0 and pledges.contested_ha(real) == 0.0  # answered the rest)
    firm = Pledges(claims, awarded={real.claim_id})  # the earlier claim held its land firmly: it keeps it
    assert firm.overlap_ha(big) == 0.0 and firm.overlap_ha(real) == pytest.approx(4.0, rel=1e-3)


def test_a_field_that_bit_its_neighbour_holds_only_the_bite_loosely(db_path: Path) -> None:
    """Fraud QA 2026-12-08: a drawing 40 m into the next field was valued without the bite, yet the bite
    refused the neighbour's whole field. The bite is contested now; a copy of the biter's own field is
    still refused (it holds its field firmly)."""
    from assets.claims import Pledges

    def ring(x0: float, side: float) -> list:
        return [list(p) for p in mapping(square_lonlat(x0=x0, side=side))["coordinates"][0]]

    biter = _store(db_path, "farmer-9", [ring(512300, 240)], datetime(2024, 1, 1))[0]  # 40 m into the next field
    neighbour = _store(db_path, "farmer-1", [ring(512500, 200)], datetime(2024, 1, 2))[0]
    thief = _store(db_path, "farmer-2", [ring(512300, 230)], datetime(2024, 1, 3))[0]  # a copy of the biter's field
    with connect(db_path) as con:
        claims = load_claims(con)
    pledges = Pledges(claims, {biter.claim_id: Pledges.EDGED})
    assert pledges.overlap_ha(neighbour) == 0.0 and pledges.contested_ha(neighbour) > 0.7  # 0.8 ha bite of 4 ha
    assert pledges.contesting_ids(neighbour) == [biter.claim_id]
    assert pledges.overlap_ha(thief) > 4.0 and pledges.contested_ha(thief) == 0.0  # refused, not contested
    firm = Pledges(claims)
    assert firm.overlap_ha(neighbour) > 0.7 and firm.contested_ha(neighbour) == 0.0


def test_a_field_plus_an_equal_strip_beside_it_does_not_contest_an_edged_field(db_path: Path) -> None:
    """Code review 2026-12-08: measured against the later claim only, the victim's field plus an equal
    strip beside it shared exactly half of itself and contested the whole field."""
    from shapely.geometry import box

    from assets.claims import Pledges
    from assets.fields.geometry import reproject

    def rect(x0: float, x1: float) -> list:
        utm = box(x0, 6245000, x1, 6245240)
        return [list(p) for p in mapping(reproject(utm, "EPSG:32632", "EPSG:4326"))["coordinates"][0]]

    biter = _store(db_path, "farmer-9", [rect(512300, 512540)], datetime(2024, 1, 1))[0]
    grab = _store(db_path, "farmer-2", [rect(512060, 512540)], datetime(2024, 1, 2))[0]  # the field + a strip
    with connect(db_path) as con:
        claims = load_claims(con)
    pledges = Pledges(claims, {biter.claim_id: Pledges.EDGED})
    assert pledges.contested_ha(grab) == 0.0 and pledges.overlap_ha(grab) > 5.0  # refused, not contested


def test_one_rule_tells_how_a_verdict_holds_its_land() -> None:
    """`hold_of` serves the stored verdicts (`pledge_states`) and a run's own (`Pledges.settle`) alike."""
    from assets.claims import Pledges, hold_of

    assert hold_of("rejected", ["boundary_inflated"]) == Pledges.RELEASED
    assert hold_of("review", []) == Pledges.CONTESTED
    assert hold_of("partial", ["boundary_inflated"]) == Pledges.CONTESTED
    assert hold_of("verified", ["ok", "boundary_neighbours"]) == hold_of("verified", ["boundary_verge"]) == Pledges.EDGED
    assert hold_of("verified", ["ok"]) == Pledges.FIRM
