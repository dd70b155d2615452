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
