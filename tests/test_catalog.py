"""The imagery catalogue: fsspec inboxes, COGs, STAC items and collection, duplicates by checksum, quarantine."""

from __future__ import annotations

import json
import shutil
import uuid
from datetime import date
from pathlib import Path

import fsspec
import numpy as np
import pytest
import rasterio

from assets.cli import main
from assets.config import Settings
from assets.errors import ImageryError, NotFoundError
from assets.imagery.catalog import ingest, quarantine_tile, record_from_item, tile_sources
from assets.store import connect
from assets.store.catalog import catalogue_entry, catalogue_rows, collection_document
from assets.store.tiles import usable_tile_rows

GOOD = "S2_DK_20160921.tif"
EARLY = "S2_DK_20160210.tif"


def _settings(tmp_path: Path) -> Settings:
    return Settings(db_path=tmp_path / "cat.duckdb")


def _inbox(repo: Path, folder: Path, *names: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for n in names:
        shutil.copy(repo / "sample_tiles" / n, folder / n)
    return folder


def test_a_file_url_inbox_becomes_cogs_with_stac_items(repo: Path, tmp_path: Path) -> None:
    inbox = _inbox(repo, tmp_path / "inbox", GOOD, EARLY)
    s = _settings(tmp_path)
    result = ingest(inbox.as_uri(), s)  # file:///...
    assert len(result.ingested) == 2 and result.duplicates == []
    tiles = {t.acquired_on: t for t in result.survey.tiles}
    cog = tiles[date(2016, 9, 21)].path
    assert cog.parent == s.catalogue_dir and cog.name == f"{tiles[date(2016, 9, 21)].tile_id}.tif"
    with rasterio.open(cog) as got, rasterio.open(inbox / GOOD) as want:
        assert got.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
        assert got.descriptions == want.descriptions and got.tags()["ACQUISITION_DATE"] == "2016-09-21"
        assert got.crs == want.crs and got.transform == want.transform
        np.testing.assert_array_equal(got.read(), want.read())  # lossless
    item = json.loads((s.catalogue_dir / f"{cog.stem}.json").read_text())
    assert item["type"] == "Feature" and item["stac_version"].startswith("1.")
    assert item["collection"] == s.stac_collection_id and item["properties"]["proj:code"] == "EPSG:32632"
    asset = item["assets"]["data"]
    assert asset["type"] == "image/tiff; application=geotiff; profile=cloud-optimized" and asset["href"] == str(cog)
    assert [b["name"] for b in asset["eo:bands"]][:4] == ["red", "green", "blue", "nir"]
    assert record_from_item(item) == tiles[date(2016, 9, 21)]  # the item alone rebuilds the catalogue record
    with connect(s.db_path) as con:
        col = collection_document(con, s.stac_collection_id)
        stored = catalogue_entry(con, cog.stem)
        assert [t["path"] for t in usable_tile_rows(con, date(2016, 12, 31))] == [str(t.path) for t in
                                                                                 sorted(tiles.values(), key=lambda t: t.acquired_on)]
    assert col is not None and col["type"] == "Collection"
    assert col["extent"]["temporal"]["interval"][0][0].startswith("2016-02-10")
    assert sorted(link["href"] for link in col["links"] if link["rel"] == "item") == sorted(
        f"./{t.tile_id}.json" for t in tiles.values())
    assert json.loads((s.catalogue_dir / "collection.json").read_text())["id"] == s.stac_collection_id
    assert stored is not None and stored["item"] == item and stored["source"] == str(inbox / GOOD)


def test_a_memory_inbox_is_fetched_and_a_bad_tile_kept_in_quarantine(repo: Path, tmp_path: Path) -> None:
    fs = fsspec.filesystem("memory")
    root = f"/inbox-{uuid.uuid4().hex[:8]}"
    fs.pipe(f"{root}/{GOOD}", (repo / "sample_tiles" / GOOD).read_bytes())
    fs.pipe(f"{root}/S2_DK_20160926.tif", (repo / "sample_tiles" / GOOD).read_bytes()[:40_000])  # truncated
    fs.pipe(f"{root}/notes.txt", b"not a tile")
    s = _settings(tmp_path)
    assert tile_sources(f"memory://{root}") == [f"memory://{root}/{GOOD}", f"memory://{root}/S2_DK_20160926.tif"]
    result = ingest(f"memory://{root}", s)
    assert len(result.ingested) == 1 and len(result.survey.tiles) == 1
    (bad,) = result.survey.quarantined
    assert bad.code in {"unreadable", "invalid"} and "re-download" in bad.reason
    assert bad.path.parent == s.catalogue_dir / "quarantine" and bad.path.name.endswith("S2_DK_20160926.tif")
    assert bad.path.stat().st_size == 40_000  # the fetched file is kept for inspection
    assert not list((s.catalogue_dir / ".staging").iterdir())  # nothing left half-fetched
    with connect(s.db_path) as con:
        rows = {r["status"]: r for r in catalogue_rows(con)}
        entry = catalogue_entry(con, bad.tile_id)
    assert rows["usable"]["source"] == f"memory://{root}/{GOOD}"
    assert rows["quarantined"]["quarantine_reason"] == bad.reason
    assert entry is not None and entry["deliveries"][0]["outcome"] == "quarantined"


def test_the_same_bytes_under_another_name_are_one_item(repo: Path, tmp_path: Path) -> None:
    inbox = _inbox(repo, tmp_path / "inbox", GOOD)
    shutil.copy(inbox / GOOD, inbox / "copy_of_S2_DK_20160921.tif")  # same night, second name
    s = _settings(tmp_path)
    first = ingest(inbox, s)
    assert len(first.ingested) == 1 and len(first.survey.tiles) == 1
    (dup,) = first.duplicates
    assert dup["source"].endswith("copy_of_S2_DK_20160921.tif") and dup["duplicate_of"] == str(inbox / GOOD)
    later = _inbox(repo, tmp_path / "later", GOOD)
    (later / GOOD).rename(later / "S2_DK_20160921_redelivered.tif")  # a later night, a third name
    again = ingest(later, s)
    assert again.ingested == [] and len(again.duplicates) == 1 and len(again.survey.tiles) == 1
    assert ingest(inbox, s).known == [first.ingested[0]]  # the same files again: nothing new
    with connect(s.db_path) as con:
        (row,) = catalogue_rows(con)
        entry = catalogue_entry(con, first.ingested[0])
    assert row["deliveries"] == 3 and sorted(d["outcome"] for d in entry["deliveries"]) == [
        "duplicate", "duplicate", "ingested"]
    assert len(list(s.catalogue_dir.glob("t-*.json"))) == 1 and len(list(s.catalogue_dir.glob("t-*.tif"))) == 1


def test_missing_or_empty_inboxes_are_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(ImageryError, match="does not exist"):
        tile_sources(tmp_path / "nowhere")
    fsspec.filesystem("memory").mkdir("/empty-inbox")
    with pytest.raises(ImageryError, match="no GeoTIFF tiles"):
        tile_sources("memory:///empty-inbox")


def test_tiles_commands_list_show_and_quarantine(repo: Path, tmp_path: Path, capsys) -> None:
    s = _settings(tmp_path)
    result = ingest(_inbox(repo, tmp_path / "inbox", GOOD, EARLY), s)
    late = max(result.survey.tiles, key=lambda t: t.acquired_on).tile_id
    db = str(s.db_path)
    assert main(["tiles", "list", "--db", db]) == 0
    out = capsys.readouterr().out
    assert out.count("usable") == 2 and late in out
    assert main(["tiles", "show", late, "--db", db, "--format", "json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["item"]["id"] == late and shown["deliveries"][0]["outcome"] == "ingested"
    assert main(["tiles", "quarantine", late, "--reason", "smoke over the fields", "--db", db]) == 0
    assert "smoke over the fields" in capsys.readouterr().out
    with connect(s.db_path) as con:
        assert [r["tile_id"] for r in usable_tile_rows(con, date(2016, 12, 31))] != [] and late not in {
            r["tile_id"] for r in usable_tile_rows(con, date(2016, 12, 31))}
    assert main(["tiles", "list", "--status", "quarantined", "--db", db]) == 0
    assert "smoke over the fields" in capsys.readouterr().out
    assert late not in {t.tile_id for t in ingest(tmp_path / "inbox", s).survey.tiles}  # later nights leave it out
    assert main(["tiles", "show", "t-nope", "--db", db]) == 2
    assert capsys.readouterr().err.startswith("error: no tile t-nope")
    with pytest.raises(NotFoundError, match="assets tiles list"):
        quarantine_tile(s, "t-nope", "why")
    with pytest.raises(ImageryError, match="--reason"):
        quarantine_tile(s, late, "  ")
