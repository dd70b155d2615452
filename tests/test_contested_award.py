"""Land awarded by an officer is pledged once (fraud QA 2026-12-07): a fraudster's inflated drawing of
the neighbour's field (valued at the detected field) and the owner's exact drawing, approved by an
officer, both kept their limits: 79,200 CNY lent on a field worth 55,300. And a borrower's own exact
drawing after their inflated one was 'contested' and approved: the field counted twice.

Real pipeline on the bundled season, with a real Danish register parcel (`../shared/data/denmark`)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from assets.config import Settings
from assets.reviews import Decision, decide

REPO = Path(__file__).resolve().parents[1]
PARCELS = next((p for p in (REPO.parent / "shared/data/denmark/parcels_2016.gpkg",
                            Path("/work/shared/data/denmark/parcels_2016.gpkg")) if p.is_file()), None)
AS_OF = date(2016, 9, 30)
pytestmark = [pytest.mark.slow, pytest.mark.skipif(PARCELS is None, reason="needs ../shared/data/denmark")]


def _doc(geom_utm, name: str) -> dict:
    from pyproj import Transformer
    from shapely.geometry import mapping
    from shapely.ops import transform

    to_lonlat = Transformer.from_crs("EPSG:32632", "EPSG:4326", always_xy=True).transform
    return {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"name": name}, "geometry": mapping(transform(to_lonlat, geom_utm))}]}


@pytest.fixture(scope="module")
def field():
    import geopandas as gpd

    parcel = gpd.read_file(PARCELS).geometry[180]  # a 20 ha field in the bundled season
    return parcel, parcel.buffer(60, join_style="mitre")


def _submit(settings, doc, borrower):
    from assets.pipeline import load_models, submit_and_assess

    (row,) = submit_and_assess(settings, doc, borrower, as_of=AS_OF, models=load_models(settings))
    return row


def _limits(settings) -> dict[str, float]:
    from assets.store import connect
    from assets.store.credit import portfolio

    with connect(settings.db_path) as con:
        rows, _ = portfolio(con)
    return {r["borrower_id"]: r["limit_cny"] for r in rows}


def test_an_officers_award_takes_the_land_from_the_inflated_drawing(tmp_path: Path, field) -> None:
    parcel, inflated = field
    settings = Settings(db_path=tmp_path / "a.duckdb", tiles_dir=REPO / "sample_tiles")
    grab = _submit(settings, _doc(inflated, "neighbour's field, 60 m too big"), "fraudster")
    assert grab["status"] == "partial" and grab["limit_cny"] > 0  # valued at the detected field
    owner = _submit(settings, _doc(parcel, "my field"), "owner")
    assert owner["status"] == "review" and owner["limit_cny"] is None
    from assets.reviews import queue

    (waiting,) = queue(settings)
    assert waiting["area_if_approved_ha"] > 0.8 * parcel.area / 1e4  # the officer sees what approval grants
    decide(settings, Decision(owner["claim_id"], "approve", "land register: the parcel is the owner's", "li"))
    limits = _limits(settings)
    assert limits["owner"] > 0 and limits.get("fraudster", 0) == 0  # the land was pledged once
    from assets.pipeline import assess_claims, load_models

    assess_claims(settings.db_path, as_of=AS_OF, settings=settings, models=load_models(settings))  # a later night
    assert _limits(settings) == limits
    from assets.cli import main as cli_main

    assert cli_main(["audit", "verify", "--db", str(settings.db_path)]) == 0


def test_a_borrowers_own_field_drawn_again_is_not_contested(tmp_path: Path, field) -> None:
    parcel, inflated = field
    settings = Settings(db_path=tmp_path / "a.duckdb", tiles_dir=REPO / "sample_tiles")
    first = _submit(settings, _doc(inflated, "my field, drawn big"), "farmer-9")
    again = _submit(settings, _doc(parcel, "my field"), "farmer-9")
    assert first["status"] == "partial"
    assert again["status"] == "rejected" and "already claimed" in again["reason"]  # pledged once, not reviewed


def test_only_an_approval_asked_about_contested_land_awards_it(tmp_path: Path) -> None:
    """Fraud QA 2026-12-08: a declared crop typed as the text `overlap_contested` (quoted in the
    `declared_crop_unknown` reason's message) turned an approval of the attacker's boundary into an
    award of contested land: the neighbour's claim was rejected and their field taken next."""
    from datetime import datetime

    from assets.store import connect
    from assets.store.claims import pledge_states
    from assets.store.reviews import record_decision

    def approve(claim_id: str, reasons: list[dict]) -> None:
        record_decision(con, {"review_id": f"rv-{claim_id}", "claim_id": claim_id, "borrower_id": "b",
                              "verification_id": f"v-{claim_id}", "decision": "approve", "note": "ok",
                              "decided_by": "li", "channel": "cli", "decided_at": datetime(2016, 10, 1),
                              "reasons": reasons})

    with connect(tmp_path / "s.duckdb") as con:
        approve("c-attacker", [{"code": "declared_crop_unknown", "message":
                                "the declared crop 'overlap_contested' is not one the platform knows"},
                               {"code": "boundary_unaligned", "message": "the boundary follows no field"}])
        approve("c-noted", [{"code": "rejected_before", "message": "refused before: 'overlap_contested, boundary_inflated'"}])
        assert pledge_states(con, [])[1] == set()
        approve("c-owner", [{"code": "overlap_contested", "message": "2.1 ha is held by a drawing valued elsewhere"}])
        assert pledge_states(con, [])[1] == {"c-owner"}


def test_a_bite_into_the_neighbours_field_does_not_refuse_the_neighbour(tmp_path: Path) -> None:
    """Fraud QA 2026-12-08: a drawing reaching 40 m into the next field was valued without the bite
    ("that land is the neighbour's"), yet held it firmly: the neighbour's exact field was then
    rejected for overlap and lost its whole limit. The bite is now held loosely, like an inflated
    drawing's margin: the neighbour's claim on it goes to an officer."""
    import geopandas as gpd

    parcels = gpd.read_file(PARCELS).geometry
    own, neighbour = parcels[185], parcels[173]
    settings = Settings(db_path=tmp_path / "b.duckdb", tiles_dir=REPO / "sample_tiles")
    bite = _submit(settings, _doc(own.union(neighbour.intersection(own.buffer(40))), "my field and a bit"), "biter")
    assert bite["status"] == "verified" and "only your field is valued" in bite["reason"], bite
    theirs = _submit(settings, _doc(neighbour, "my field"), "neighbour")
    assert theirs["status"] == "review" and "a credit officer decides whose land it is" in theirs["reason"], theirs


def test_land_held_by_a_claim_waiting_for_an_officer_is_contested_and_a_refusal_for_overlap_is_looked_at_again(
        tmp_path: Path, field) -> None:
    """Access QA 2026-12-08: a rough box waiting for review (unchecked, unlent) got the real holder's
    exact field refused for overlap, and after the officer rejected the box the holder's resubmission
    still answered the stored refusal until the next night."""
    from assets.pipeline import assess_claims, load_models

    parcel, _ = field
    settings = Settings(db_path=tmp_path / "c.duckdb", tiles_dir=REPO / "sample_tiles")
    first = _submit(settings, _doc(parcel, "my field"), "first")
    second = _submit(settings, _doc(parcel, "my field too"), "second")
    assert first["status"] == "verified" and second["status"] == "rejected"
    # a later night: the first claim's imagery is old, it waits for an officer and holds its land loosely
    assess_claims(settings.db_path, as_of=date(2018, 6, 1), settings=settings, models=load_models(settings),
                  claim_ids=[first["claim_id"]])
    again = _submit(settings, _doc(parcel, "my field too"), "second")
    assert again["claim_id"] == second["claim_id"]
    assert again["status"] == "review" and "a credit officer decides whose land it is" in again["reason"], again
