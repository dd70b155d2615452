"""Imagery catalogue: tiles in from an inbox folder or any fsspec URL, out as COGs with STAC items.

One delivery (a file under some name) goes through `ingest_tile`: fetched to local disk when it is
not already local, identified by the sha256 of its bytes, gated by the quality checks
(`imagery.quality`, through `index.describe_tile`), converted to a Cloud-Optimised GeoTIFF (GDAL's
COG driver, lossless) in the catalogue folder and described by a STAC Item (pystac). Bytes already
catalogued are recognised by checksum, whatever their name, and cost no second gate, COG or item.
`record_deliveries` then stores the batch (tiles, items, deliveries, quarantine) in one
transaction, writes each item and the collection as JSON beside the COGs, and answers what the
night can use. The nightly flow runs `ingest_tile` as one Prefect task per delivery; `ingest`
runs the same steps in-process (claims submitted before any night).

    <catalogue>/t-<sha256[:16]>.tif     the COG           <catalogue>/collection.json
    <catalogue>/t-<sha256[:16]>.json    its STAC Item     <catalogue>/quarantine/  fetched files that failed
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import uuid
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timezone
from pathlib import Path
from typing import Any, Sequence

import fsspec
import pystac
import rasterio
import rasterio.shutil
from pystac.extensions.eo import Band, EOExtension
from pystac.extensions.file import FileExtension
from pystac.extensions.projection import ProjectionExtension
from rasterio.warp import transform_geom

from assets.config import Settings
from assets.errors import ImageryError, NotFoundError
from assets.imagery.index import TIFF_SUFFIXES, TileRecord, TileSurvey, inspect_tile, split_survey
from assets.imagery.quality import QuarantinedTile
from assets.imagery.tiles import file_checksum
from assets.store import writer

log = logging.getLogger(__name__)

# Band names the tiles use (imagery/tiles.py) -> STAC eo common names.
_COMMON_NAMES = {"red": "red", "green": "green", "blue": "blue", "nir": "nir", "re1": "rededge", "re2": "rededge",
                 "re3": "rededge", "nir08": "nir08", "swir1": "swir16", "swir2": "swir22"}


@dataclass(frozen=True)
class Delivery:
    """What became of one delivered file."""

    source: str  # the path or URL it was delivered under
    tile_id: str
    checksum: str | None
    outcome: str  # new (COG made) | known (bytes already catalogued) | quarantined
    tile: TileRecord | None = None  # path = the COG
    item: dict[str, Any] | None = None
    quarantined: QuarantinedTile | None = None
    worker: str = "local"  # the Dask worker that did the work, when one did
    seconds: float = 0.0


@dataclass
class CatalogueResult:
    """One batch as stored: new items, other names of catalogued bytes, quarantined files."""

    survey: TileSurvey  # the usable tiles of this batch (operator quarantines applied) and the quarantined
    ingested: list[str] = field(default_factory=list)  # tile ids that got their first item now
    known: list[str] = field(default_factory=list)  # delivered again under the same name: nothing new
    duplicates: list[dict[str, str]] = field(default_factory=list)  # {source, tile_id, duplicate_of}
    deliveries: list[Delivery] = field(default_factory=list)
    catalogue_error: str | None = None  # the STAC collection document could not be written (the tiles are recorded)


def has_catalogued_tiles(settings: Settings, until: date) -> bool:
    """Whether the catalogue holds a usable tile acquired up to ``until`` (what a night can assess with)."""
    from assets.store.tiles import has_tiles_up_to

    with writer.read(settings.db_path) as con:
        return has_tiles_up_to(con, until)


def tile_sources(location: str | os.PathLike[str], *, allow_empty: bool = False) -> list[str]:
    """Every GeoTIFF directly inside a folder or fsspec URL (file://, memory://, s3://...), sorted;
    `ImageryError` when the location is missing or (unless ``allow_empty``) holds no tile."""
    text = str(location)
    try:
        fs, root = fsspec.core.url_to_fs(text)
    except (ImportError, ValueError) as exc:
        raise ImageryError(f"cannot open tile source {text} ({exc}); use a folder or an fsspec URL such as "
                           "file:///data/inbox or s3://bucket/inbox (with its fsspec package installed)") from exc
    if not fs.isdir(root):
        raise ImageryError(f"tile folder {text} does not exist; pass --tiles DIR (a folder or an fsspec URL)")
    names = sorted(p for p in fs.ls(root, detail=False) if Path(p).suffix.lower() in TIFF_SUFFIXES)
    if not names and not allow_empty:
        raise ImageryError(f"no GeoTIFF tiles (*.tif) in {text}")
    if _is_local(fs):
        return [str(Path(p)) for p in names]
    return [fs.unstrip_protocol(p) for p in names]


def _is_local(fs: Any) -> bool:
    return "file" in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,))


def _worker() -> str:
    try:
        from distributed import get_worker

        return str(get_worker().name)
    except (ImportError, ValueError):
        return "local"


def ingest_tile(source: str, settings: Settings) -> Delivery:
    """Fetch, identify, gate, convert and describe one delivered file (never raises for a bad file)."""
    started = datetime.now(timezone.utc)
    catalogue = settings.catalogue_dir
    catalogue.mkdir(parents=True, exist_ok=True)
    fs, remote = fsspec.core.url_to_fs(source)
    staged: Path | None = None
    if _is_local(fs):
        local = Path(remote)
    else:
        staged = catalogue / ".staging" / f"{uuid.uuid4().hex[:8]}_{Path(remote).name}"
        staged.parent.mkdir(parents=True, exist_ok=True)
        fs.get_file(remote, str(staged))
        local = staged
    try:
        delivery = _ingest_local(source, local, staged, catalogue, settings)
    finally:
        if staged is not None:
            staged.unlink(missing_ok=True)
    elapsed = (datetime.now(timezone.utc) - started).total_seconds()
    return replace(delivery, worker=_worker(), seconds=elapsed)


def _ingest_local(source: str, local: Path, staged: Path | None, catalogue: Path, settings: Settings) -> Delivery:
    try:
        checksum: str | None = file_checksum(local)
    except OSError:
        checksum = None
    if checksum is not None:
        tile_id = "t-" + checksum[:16]
        item_path, cog = catalogue / f"{tile_id}.json", catalogue / f"{tile_id}.tif"
        if item_path.is_file() and cog.is_file():  # these bytes are catalogued: no second gate, COG or item
            item = json.loads(item_path.read_text(encoding="utf-8"))
            return Delivery(source, tile_id, checksum, "known", tile=record_from_item(item), item=item)
    verdict = inspect_tile(local, settings)
    if isinstance(verdict, QuarantinedTile):
        if staged is not None:  # keep the fetched file for inspection, under its delivered name
            kept = catalogue / "quarantine" / f"{verdict.tile_id}_{staged.name.split('_', 1)[1]}"
            kept.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(staged, kept)
            verdict = replace(verdict, path=kept)
        return Delivery(source, verdict.tile_id, checksum, "quarantined", quarantined=verdict)
    cog = catalogue / f"{verdict.tile_id}.tif"
    to_cog(local, cog, settings)
    tile = replace(verdict, path=cog.resolve())
    return Delivery(source, tile.tile_id, checksum, "new", tile=tile, item=stac_item(tile, source, settings))


def to_cog(src_path: Path, out: Path, settings: Settings) -> None:
    """A lossless Cloud-Optimised GeoTIFF copy (tags and band descriptions kept), written atomically."""
    tmp = out.with_name(f".{out.stem}.{uuid.uuid4().hex[:8]}.tmp.tif")
    try:
        with rasterio.open(src_path) as src:
            rasterio.shutil.copy(src, tmp, driver="COG", COMPRESS=settings.cog_compress, PREDICTOR="YES",
                                 BLOCKSIZE=settings.cog_blocksize, OVERVIEWS="AUTO", BIGTIFF="IF_SAFER")
        os.replace(tmp, out)  # a crash never leaves a half-written COG under the tile's name
    except (rasterio.errors.RasterioError, OSError) as exc:
        raise ImageryError(f"{src_path}: conversion to a COG in {out.parent} failed ({exc}); check the disk "
                           "space and permissions of the catalogue folder (Settings.catalog_dir)") from exc
    finally:
        tmp.unlink(missing_ok=True)


def stac_item(tile: TileRecord, source: str, settings: Settings) -> dict[str, Any]:
    """The STAC Item of a catalogued tile (projection, eo and file extensions); the asset is the COG."""
    minx, miny, maxx, maxy = tile.bounds
    footprint = {"type": "Polygon", "coordinates": [[(minx, miny), (maxx, miny), (maxx, maxy), (minx, maxy),
                                                     (minx, miny)]]}
    geometry = transform_geom(tile.crs, "EPSG:4326", footprint)
    item = pystac.Item(
        id=tile.tile_id, geometry=geometry, bbox=list(tile.bounds_lonlat),
        datetime=datetime.combine(tile.acquired_on, time(), tzinfo=timezone.utc),
        collection=settings.stac_collection_id,
        properties={"title": tile.scene_id, "platform": "sentinel-2", "assets:scene_id": tile.scene_id,
                    "assets:acquired_on": tile.acquired_on.isoformat(), "assets:source": source,
                    "assets:checksum": tile.checksum, "assets:bands": list(tile.bands),
                    "assets:cloud_fraction": tile.cloud_fraction, "assets:nodata_fraction": tile.nodata_fraction},
    )
    proj = ProjectionExtension.ext(item, add_if_missing=True)
    proj.code = tile.crs
    proj.shape = [tile.height, tile.width]
    proj.bbox = list(tile.bounds)
    proj.transform = [tile.res_m, 0.0, minx, 0.0, -tile.res_m, maxy]
    EOExtension.ext(item, add_if_missing=True).cloud_cover = round(100.0 * tile.cloud_fraction, 3)
    asset = pystac.Asset(href=str(tile.path), media_type=pystac.MediaType.COG, roles=["data"],
                         title=f"{tile.scene_id} surface reflectance (COG)")
    item.add_asset("data", asset)
    EOExtension.ext(asset, add_if_missing=True).bands = [
        Band.create(name=b, common_name=_COMMON_NAMES.get(b)) for b in tile.bands]
    file_ext = FileExtension.ext(asset, add_if_missing=True)
    file_ext.checksum = "1220" + file_checksum(tile.path)  # multihash sha2-256 of the COG itself
    file_ext.size = tile.path.stat().st_size
    return item.to_dict(include_self_link=False)


def record_from_item(item: dict[str, Any]) -> TileRecord:
    """A catalogued tile read back from its STAC Item (inverse of `stac_item`)."""
    p = item["properties"]
    t = p["proj:transform"]
    return TileRecord(
        tile_id=item["id"], scene_id=p["assets:scene_id"], acquired_on=date.fromisoformat(p["assets:acquired_on"]),
        path=Path(item["assets"]["data"]["href"]), crs=p["proj:code"], width=p["proj:shape"][1],
        height=p["proj:shape"][0], res_m=float(t[0]), bounds=tuple(p["proj:bbox"]),
        bounds_lonlat=tuple(item["bbox"]), bands=tuple(p["assets:bands"]),
        cloud_fraction=p["assets:cloud_fraction"], nodata_fraction=p["assets:nodata_fraction"],
        checksum=p["assets:checksum"],
    )


def collection(items: Sequence[dict[str, Any]], settings: Settings) -> dict[str, Any]:
    """The STAC Collection over every catalogued item (extent = union of footprints and dates)."""
    if items:
        boxes = [i["bbox"] for i in items]
        bbox = [min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes)]
        days = sorted(i["properties"]["datetime"] for i in items)
        interval: list[datetime | None] = [datetime.fromisoformat(days[0].replace("Z", "+00:00")),
                    datetime.fromisoformat(days[-1].replace("Z", "+00:00"))]
    else:
        bbox, interval = [-180.0, -90.0, 180.0, 90.0], [None, None]
    col = pystac.Collection(
        id=settings.stac_collection_id, license="other",
        description="Sentinel-2 L2A surface-reflectance tiles the credit platform has verified claims with "
                    "(quality-gated, lossless Cloud-Optimised GeoTIFFs).",
        extent=pystac.Extent(pystac.SpatialExtent([bbox]), pystac.TemporalExtent([interval])),
    )
    for i in items:
        col.add_link(pystac.Link("item", target=f"./{i['id']}.json", media_type=pystac.MediaType.JSON))
    return col.to_dict(include_self_link=False)


def _write_json(path: Path, document: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_text(json.dumps(document, indent=1), encoding="utf-8")
    os.replace(tmp, path)


def record_deliveries(deliveries: Sequence[Delivery], settings: Settings, until: date | None = None) -> CatalogueResult:
    """Store a batch in one transaction and write the items and collection as JSON beside the COGs.

    The first source of some bytes (in sorted order within a batch) owns the item; every other
    name is recorded as a `duplicate` delivery of it. Returns the batch's usable tiles up to
    ``until`` (tiles an operator quarantined are left out) and its quarantined files."""
    from assets.store import catalog as store

    now = datetime.now(timezone.utc).replace(tzinfo=None)
    batch = sorted(deliveries, key=lambda d: d.source)
    catalogue = settings.catalogue_dir
    with writer.read(settings.db_path) as con:
        first_source = store.catalogued_sources(con, [d.tile_id for d in batch if d.tile is not None])
    result = CatalogueResult(survey=TileSurvey([], []), deliveries=list(batch))
    tiles: list[dict[str, object]] = []
    items: list[dict[str, object]] = []
    rows: list[dict[str, object]] = []
    quarantined: list[QuarantinedTile] = []
    usable: dict[str, TileRecord] = {}
    for d in batch:
        delivery = {"delivery_id": "d-" + hashlib.sha256(f"{d.source}|{d.checksum}".encode()).hexdigest()[:16],
                    "source": d.source, "checksum": d.checksum, "tile_id": d.tile_id, "delivered_at": now,
                    "duplicate_of": None, "reason": None}
        if d.quarantined is not None:
            quarantined.append(d.quarantined)
            rows.append({**delivery, "outcome": "quarantined", "reason": d.quarantined.reason})
            continue
        if d.tile is None or d.item is None:
            raise ValueError(f"delivery of {d.source} holds neither a tile nor a quarantine")  # a bug, not input
        owner = first_source.get(d.tile_id)
        if owner is None:  # first sight of these bytes
            first_source[d.tile_id] = d.source
            item = d.item if d.item["properties"]["assets:source"] == d.source else _with_source(d.item, d.source)
            tiles.append(d.tile.row(now))
            items.append({"tile_id": d.tile_id, "collection_id": settings.stac_collection_id,
                          "acquired_on": d.tile.acquired_on, "cog_path": str(d.tile.path),
                          "item_path": str(catalogue / f"{d.tile_id}.json"), "source": d.source,
                          "item": json.dumps(item), "created_at": now})
            _write_json(catalogue / f"{d.tile_id}.json", item)
            rows.append({**delivery, "outcome": "ingested"})
            result.ingested.append(d.tile_id)
        elif owner == d.source:
            result.known.append(d.tile_id)
        else:
            rows.append({**delivery, "outcome": "duplicate", "duplicate_of": owner,
                         "reason": f"same bytes (sha256) as {owner}"})
            result.duplicates.append({"source": d.source, "tile_id": d.tile_id, "duplicate_of": owner})
        usable.setdefault(d.tile_id, d.tile)
    recorded = writer.call(settings.db_path, record_batch, tiles=tiles, items=items, deliveries=rows,
                           quarantined=[q.row(now) for q in quarantined], collection_id=settings.stac_collection_id,
                           now=now)
    document, held = recorded["collection"], set(recorded["quarantined_ids"])
    try:  # the database is the record; the STAC document is derived from it and rewritten every night
        _write_json(catalogue / "collection.json", document)
    except OSError as exc:
        result.catalogue_error = (f"could not write {catalogue / 'collection.json'} ({exc.strerror or exc}); the tiles "
                                  "are recorded and used tonight, the STAC collection is written again next night: "
                                  "check that the catalogue folder is writable")
        log.error(result.catalogue_error)
    kept: list[TileRecord | QuarantinedTile] = [t for t in usable.values() if t.tile_id not in held]
    result.survey = split_survey([*kept, *quarantined], until)
    return result


@writer.write_op
def record_batch(con: Any, *, tiles: list[dict[str, Any]], items: list[dict[str, Any]],
                 deliveries: list[dict[str, Any]], quarantined: list[dict[str, Any]], collection_id: str,
                 now: datetime) -> dict[str, Any]:
    """One write transaction (the database's one writer runs it): the batch, then the Collection over
    every item now stored. Returns the Collection and the ids quarantined."""
    from assets.store import catalog as store

    store.record_catalogue(con, tiles=tiles, items=items, deliveries=deliveries, quarantined=quarantined)
    document = collection(store.item_documents(con, collection_id), Settings(stac_collection_id=collection_id))
    store.save_collection(con, collection_id, document, now)
    return {"collection": document, "quarantined_ids": sorted(store.quarantined_ids(con))}


def _with_source(item: dict[str, Any], source: str) -> dict[str, Any]:
    return {**item, "properties": {**item["properties"], "assets:source": source}}


def ingest(location: str | os.PathLike[str], settings: Settings, until: date | None = None) -> CatalogueResult:
    """Catalogue every tile at ``location`` in this process (the flow runs `ingest_tile` as tasks)."""
    return record_deliveries([ingest_tile(s, settings) for s in tile_sources(location)], settings, until)


def catalogue_listing(settings: Settings, status: str | None = None) -> list[dict[str, Any]]:
    from assets.store import connect
    from assets.store.catalog import catalogue_rows

    with connect(settings.db_path, read_only=True) as con:
        return catalogue_rows(con, status=status)


def catalogue_tile(settings: Settings, tile_id: str) -> dict[str, Any]:
    """One tile's catalogue entry, STAC item and deliveries; `NotFoundError` naming the fix."""
    from assets.store import connect
    from assets.store.catalog import catalogue_entry

    with connect(settings.db_path, read_only=True) as con:
        entry = catalogue_entry(con, tile_id)
    if entry is None:
        raise NotFoundError(f"no tile {tile_id} in the catalogue of {settings.db_path}; `assets tiles list` shows them")
    return entry


def quarantine_tile(settings: Settings, tile_id: str, reason: str) -> dict[str, Any]:
    """Take a catalogued tile out of every later assessment, with the operator's reason."""
    from assets.store.catalog import quarantine_catalogued

    if not reason.strip():
        raise ImageryError("a quarantine needs a reason operators can act on; pass --reason '...'")
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    entry = writer.call(settings.db_path, quarantine_catalogued, tile_id=tile_id, reason=reason.strip(), now=now)
    if entry is None:
        raise NotFoundError(f"no catalogued tile {tile_id} in {settings.db_path}; `assets tiles list` shows them")
    return dict(entry)
