"""The tile quality gate: a bad tile is quarantined with its reason and never decides a limit."""

from __future__ import annotations

import json
import shutil
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pytest
import rasterio

from assets.config import Settings
from assets.imagery.index import TileRecord, describe_tile, inspect_tile, scan_tiles, survey_tiles
from assets.imagery.quality import QuarantinedTile, TileQualityError, parse_tags
from assets.observe import reference_tile

GOOD = "S2_DK_20160921.tif"


def _like(repo: Path, out: Path, data: np.ndarray, tags: dict[str, str], nodata: float | None = 0) -> Path:
    """A tile on the bundled season's pixel grid with other pixels and tags."""
    with rasterio.open(repo / "sample_tiles" / GOOD) as src:
        profile = {**src.profile, "dtype": data.dtype.name, "nodata": nodata}
    with rasterio.open(out, "w", **profile) as dst:
        dst.write(data)
        dst.update_tags(**tags)
    return out


def _pixels(repo: Path) -> np.ndarray:
    with rasterio.open(repo / "sample_tiles" / GOOD) as src:
        return src.read()


def bad_tiles(repo: Path, folder: Path) -> dict[str, Path]:
    """The fraud team's tiles, each dated after the last good one with a clean cloud tag."""
    dn = _pixels(repo)
    clean = {"CLOUD_FRACTION": "0.0"}
    truncated = folder / "S2_DK_20160926.tif"
    truncated.write_bytes((repo / "sample_tiles" / GOOD).read_bytes()[:40_000])
    return {
        "all_nan": _like(repo, folder / "S2_DK_20160929.tif", np.full(dn.shape, np.nan, np.float32),
                         {**clean, "ACQUISITION_DATE": "2016-09-29"}, nodata=None),
        "raw_dn": _like(repo, folder / "S2_DK_20160928.tif", dn.astype(np.float32),
                        {**clean, "ACQUISITION_DATE": "2016-09-28"}),
        "lots": _like(repo, folder / "S2_DK_20160927.tif", dn, {"CLOUD_FRACTION": "lots", "ACQUISITION_DATE": "2016-09-27"}),
        "truncated": truncated,
    }


def test_each_bad_tile_is_quarantined_with_a_reason(repo: Path, tmp_path: Path) -> None:
    tiles = bad_tiles(repo, tmp_path)
    verdicts = {k: inspect_tile(p) for k, p in tiles.items()}
    assert all(isinstance(v, QuarantinedTile) for v in verdicts.values()), verdicts
    codes = {k: v.code for k, v in verdicts.items()}
    assert codes["all_nan"] == "valid_pixels" and "NaN" in verdicts["all_nan"].reason
    assert codes["raw_dn"] == "scale" and "reflectance 0-1" in verdicts["raw_dn"].reason
    assert codes["lots"] == "bad_tag" and "'lots'" in verdicts["lots"].reason
    assert codes["truncated"] in ("invalid", "unreadable") and "re-download" in verdicts["truncated"].reason
    assert all(v.tile_id.startswith("t-") for v in verdicts.values())  # keyed by the bytes, like `tiles`
    assert isinstance(inspect_tile(repo / "sample_tiles" / GOOD), TileRecord)


@pytest.mark.parametrize("make, code, fragment", [
    (lambda dn: (dn // 40).astype(np.uint16), "scale", "8-bit"),  # 0-255 digital numbers in a uint16 file
    (lambda dn: dn.astype(np.float32) / 1e8, "scale", "scaled twice"),
    (lambda dn: (dn * 4).astype(np.uint16), "scale", "not reflectance x 10000"),
    (lambda dn: dn.astype(np.float32) / 1e4 - 0.3, "range", "cannot be negative"),
    (lambda dn: np.where(np.arange(len(dn))[:, None, None] == 0, 900, dn).astype(np.uint16), "band_stats", "band red"),
    # code review 2026-12-07: L2A baseline 04.00+ (x 10000 + 1000) passed the gate and biased NDVI low
    (lambda dn: np.where(dn > 0, dn + 1000, 0).astype(np.uint16), "offset", "subtract the 1000 offset"),
])
def test_scale_range_and_band_statistics(repo: Path, tmp_path: Path, make, code, fragment) -> None:
    dn = _pixels(repo)
    path = _like(repo, tmp_path / "S2_DK_20160920.tif", make(dn), {"CLOUD_FRACTION": "0.0"})
    with pytest.raises(TileQualityError, match=fragment) as info:
        describe_tile(path)
    assert info.value.code == code


def test_cloud_tag_is_checked_against_the_pixels(repo: Path, tmp_path: Path) -> None:
    dn = _pixels(repo)
    cloudy = dn.copy()
    cloudy[:3, : dn.shape[1] * 2 // 3, :] = 7000  # two thirds bright white cloud, not masked
    path = _like(repo, tmp_path / "S2_DK_20160920.tif", cloudy, {"CLOUD_FRACTION": "0.0"})
    with pytest.raises(TileQualityError, match="CLOUD_FRACTION tag says 0%") as info:
        describe_tile(path)
    assert info.value.code == "cloud_tag"
    honest = _like(repo, tmp_path / "S2_DK_20160919.tif", cloudy, {"CLOUD_FRACTION": "0.66"})
    assert describe_tile(honest).cloud_fraction == pytest.approx(0.66)


@pytest.mark.parametrize("tags, fragment", [
    ({"CLOUD_FRACTION": "lots"}, "'lots' is not a fraction"),
    ({"CLOUD_FRACTION": "nan"}, "not a fraction"),
    ({"CLOUD_FRACTION": "1.7"}, "not a fraction"),
    ({"ACQUISITION_DATE": "last tuesday"}, "is not a date"),
    ({"ACQUISITION_DATE": "2016-02-30"}, "is not a date"),
    ({"ACQUISITION_DATE": "2099-01-01"}, "in the future"),
])
def test_tags_are_parsed_strictly(tags: dict, fragment: str) -> None:
    with pytest.raises(TileQualityError, match=fragment) as info:
        parse_tags(tags, Path("x.tif"), today=date(2026, 12, 2))
    assert info.value.code == "bad_tag"
    assert parse_tags({"CLOUD_FRACTION": " 0.25 ", "ACQUISITION_DATE": "2016-09-21T10:30:00"}, Path("x.tif")) \
        .__eq__(parse_tags({"CLOUD_FRACTION": "0.25", "ACQUISITION_DATE": "2016-09-21"}, Path("x.tif")))


def test_scanning_goes_on_past_bad_tiles(repo: Path, tmp_path: Path) -> None:
    for p in (repo / "sample_tiles").glob("*.tif"):
        shutil.copy(p, tmp_path / p.name)
    bad = bad_tiles(repo, tmp_path)
    survey = survey_tiles(tmp_path)
    assert len(survey.tiles) == 7 and {q.path for q in survey.quarantined} == set(bad.values())
    assert [t.acquired_on for t in scan_tiles(tmp_path)] == [t.acquired_on for t in survey.tiles]
    assert reference_tile(survey.tiles).path.name == GOOD


def test_reference_tile_prefers_clear_pixels_over_a_clean_tag(repo: Path) -> None:
    good = describe_tile(repo / "sample_tiles" / GOOD)
    empty_but_tagged_clean = TileRecord(**{**good.__dict__, "tile_id": "t-x", "acquired_on": date(2016, 9, 29),
                                            "nodata_fraction": 0.9, "cloud_fraction": 0.0})
    assert reference_tile([good, empty_but_tagged_clean]) is good


def test_a_scene_delivered_twice_in_other_bytes_is_one_date(repo: Path) -> None:
    """QA 2026-12-07: a re-exported copy of a catalogued scene (same grid and date, other bytes) made
    every later night fail with "dates are out of order (or repeated)"."""
    from assets.observe import group_by_grid

    good = describe_tile(repo / "sample_tiles" / GOOD)
    copy = TileRecord(**{**good.__dict__, "tile_id": "t-copy", "cloud_fraction": good.cloud_fraction + 0.01})
    other_day = TileRecord(**{**good.__dict__, "tile_id": "t-later", "acquired_on": date(2016, 9, 30)})
    (grid,) = group_by_grid([copy, good, other_day])
    assert [t.tile_id for t in grid] == [good.tile_id, "t-later"]  # the clearer copy, dates unique and in order


def test_quarantined_tiles_are_stored_and_never_used(repo: Path, tmp_path: Path, db_path: Path) -> None:
    from assets.pipeline import catalogue_tiles, stored_tiles
    from assets.store import connect, transaction
    from assets.store.tiles import quarantined_tiles, record_quarantine

    folder = tmp_path / "tiles"
    folder.mkdir()
    shutil.copy(repo / "sample_tiles" / GOOD, folder / GOOD)
    bad_tiles(repo, folder)
    good = catalogue_tiles(db_path, folder)
    assert [t.acquired_on for t in good] == [date(2016, 9, 21)]  # stored as its COG (imagery/catalog.py)
    catalogue_tiles(db_path, folder)  # idempotent
    with connect(db_path) as con:
        rows = quarantined_tiles(con)
        assert len(rows) == 4 and all(r["reason"] and r["code"] for r in rows)
        assert [t.tile_id for t in stored_tiles(con, date(2016, 12, 31))] == [good[0].tile_id]
        # A tile catalogued before the gate existed is left out once it is quarantined.
        with transaction(con):
            record_quarantine(con, [QuarantinedTile(good[0].tile_id, good[0].path, "scale", "test").row(datetime(2026, 1, 1))])
        assert stored_tiles(con, date(2016, 12, 31)) == []


@pytest.mark.slow
def test_the_night_finishes_with_the_good_tiles_and_limits_are_not_zeroed(prefect_harness, repo: Path,
                                                                          tmp_path: Path) -> None:
    from assets.flows.nightly import NightlyConfig, nightly
    from assets.pipeline import register_claims
    from assets.store import connect
    from assets.store.queries import portfolio
    from tests.conftest import run_cli

    claims = repo / "sample_tiles/claims/farmer-001.geojson"
    clean_db, dirty_db = tmp_path / "clean" / "assets.duckdb", tmp_path / "dirty" / "assets.duckdb"
    dirty_tiles = tmp_path / "tiles"
    dirty_tiles.mkdir()
    for p in (repo / "sample_tiles").glob("*.tif"):
        shutil.copy(p, dirty_tiles / p.name)
    bad = bad_tiles(repo, dirty_tiles)
    for db in (clean_db, dirty_db):
        db.parent.mkdir()
        register_claims(db, claims, "farmer-001", Settings(db_path=db))
    clean = nightly(NightlyConfig(db_path=str(clean_db), tiles_dir=str(repo / "sample_tiles"), as_of=date(2016, 9, 30)))
    out = run_cli("nightly", "--db", str(dirty_db), "--tiles", str(dirty_tiles), "--date", "2016-09-30", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    dirty, _ = json.JSONDecoder().raw_decode(out.stdout[out.stdout.index("{"):])  # the run report follows
    assert clean["quarantined"] == []
    assert {q["tile"] for q in dirty["quarantined"]} == {p.name for p in bad.values()}
    assert all(q["reason"] for q in dirty["quarantined"])
    assert dirty["tiles"] == clean["tiles"] == 7 and dirty["verified"] == clean["verified"]
    with connect(clean_db) as con:
        (want,) = portfolio(con)
    with connect(dirty_db) as con:
        (got,) = portfolio(con)
        used = {t for (ids,) in con.execute("SELECT tile_ids FROM verifications").fetchall() for t in ids}
        quarantined = {r[0] for r in con.execute("SELECT tile_id FROM tile_quarantine").fetchall()}
    assert want["limit_cny"] > 0 and got["limit_cny"] == want["limit_cny"]
    assert used and not used & quarantined
