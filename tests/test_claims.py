from datetime import datetime
from pathlib import Path

import pytest
from shapely.geometry import mapping

from assets.claims import check_borrower_id, load_claims, overlaps_ha, prepare_claims, store_claims
from assets.config import Settings
from assets.errors import InputError, NotFoundError
from assets.fields.geometry import Drawing
from assets.store import connect
from tests.test_geometry import square_lonlat

BOWTIE = {"type": "Polygon", "coordinates": [[[9.2, 56.3], [9.21, 56.31], [9.21, 56.3], [9.2, 56.31], [9.2, 56.3]]]}


def _store(db_path: Path, borrower: str, drawings: list[Drawing], when: datetime):
    claims = prepare_claims(borrower, drawings, Settings(), submitted_at=when)
    with connect(db_path) as con:
        return store_claims(con, claims, drawings, source="test")


def test_store_is_idempotent_and_keeps_rejections(db_path: Path) -> None:
    drawings = [Drawing("good", mapping(square_lonlat())), Drawing("bowtie", BOWTIE)]
    first = _store(db_path, "farmer-1", drawings, datetime(2024, 1, 1))
    again = _store(db_path, "farmer-1", drawings, datetime(2024, 2, 1))
    assert [c.claim_id for c in first] == [c.claim_id for c in again]
    assert again[0].submitted_at == datetime(2024, 1, 1)  # the original submission is kept
    with connect(db_path) as con:
        assert con.execute("SELECT count(*) FROM claims").fetchone()[0] == 2
        status, code, reason = con.execute("SELECT status, reason_code, reason FROM claims WHERE name='bowtie'").fetchone()
    assert (status, code) == ("rejected", "self_intersection") and "redraw" in reason
    assert first[0].claimed_area_ha == pytest.approx(1.0, rel=1e-3)


def test_overlap_goes_to_the_later_claim_of_another_borrower(db_path: Path) -> None:
    a = _store(db_path, "first", [Drawing("a", mapping(square_lonlat(side=100)))], datetime(2024, 1, 1))
    b = _store(db_path, "second", [Drawing("b", mapping(square_lonlat(x0=512550, side=100)))], datetime(2024, 1, 2))
    c = _store(db_path, "first", [Drawing("c", mapping(square_lonlat(x0=512550, y0=6245050, side=100)))], datetime(2024, 1, 3))
    with connect(db_path) as con:
        overlaps = overlaps_ha(load_claims(con))
    assert overlaps[a[0].claim_id] == 0.0
    assert overlaps[b[0].claim_id] == pytest.approx(0.5, rel=1e-2)
    # c overlaps its own borrower's a and second's earlier b: the union of both, which lies inside b.
    assert overlaps[c[0].claim_id] == pytest.approx(0.5, rel=1e-2)


def test_unknown_claim_and_bad_borrower(db_path: Path) -> None:
    with connect(db_path) as con:
        with pytest.raises(NotFoundError):
            load_claims(con, ["c-missing"])
    with pytest.raises(InputError, match="borrower id"):
        check_borrower_id("bad id; drop table")


@pytest.mark.slow
def test_a_submission_answers_in_the_order_drawn(tmp_path) -> None:
    """Fraud QA 2026-12-07: parcels sent as 77, 253, 185 came back as 77, 185, 253 (by claim id), so a
    client pairing verdicts with drawings by position showed one field's verdict on another."""
    import json
    from datetime import date
    from pathlib import Path

    from assets.pipeline import load_models, submit_and_assess

    repo = Path(__file__).resolve().parents[1]
    doc = json.loads((repo / "sample_tiles/claims/farmer-003.geojson").read_text())
    for order in (doc["features"], doc["features"][::-1]):
        settings = Settings(db_path=tmp_path / f"{len(order)}-{order[0]['properties']['name']}.duckdb",
                            tiles_dir=repo / "sample_tiles")
        rows = submit_and_assess(settings, {**doc, "features": order}, "farmer-003", as_of=date(2016, 9, 30),
                                 models=load_models(settings))
        assert [r["name"] for r in rows] == [f["properties"]["name"] for f in order]


@pytest.mark.parametrize("lookalike", ["FARMER-001", "farmer-001.", "farmer_001", "farmer-0O1", "Farmer-00l"])
def test_an_id_that_reads_as_an_existing_borrower_is_refused(tmp_path, lookalike: str) -> None:
    """Fraud QA 2026-12-07: FARMER-001 and farmer-001. became borrowers beside farmer-001, each with a
    borrower cap of its own; only full-width look-alikes were refused."""
    from shapely.geometry import mapping

    from assets import access
    from assets.errors import InputError
    from assets.fields.geometry import Drawing
    from assets.store import connect
    from tests.test_geometry import square_lonlat

    drawing = [Drawing("f", mapping(square_lonlat(side=200)))]
    db = tmp_path / "a.duckdb"
    with connect(db) as con:
        store_claims(con, prepare_claims("farmer-001", drawing, Settings()), drawing, source="test")
        with pytest.raises(InputError, match="reads like the existing borrower 'farmer-001'"):
            store_claims(con, prepare_claims(lookalike, drawing, Settings()), drawing, source="test")
        assert con.execute("SELECT count(*) FROM borrowers").fetchone()[0] == 1
        store_claims(con, prepare_claims("farmer-002", drawing, Settings()), drawing, source="test")  # a new one
    with pytest.raises(InputError, match="reads like"):
        access.add_user(db, "wang", "farmer", lookalike)
    access.add_user(db, "wang", "farmer", "farmer-001")
