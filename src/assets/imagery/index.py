"""Tile catalogue: what each GeoTIFF is (scene, date, footprint, clouds) without reading it twice.

A tile is identified by the checksum of its bytes, so re-ingesting the same file under another
name (or re-running the nightly job) never duplicates it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import numpy as np
from rasterio.warp import transform_bounds

from assets.errors import ImageryError
from assets.imagery.tiles import file_checksum, open_tile

_DATE_IN_NAME = re.compile(r"(20\d{2})(\d{2})(\d{2})")
TIFF_SUFFIXES = {".tif", ".tiff"}


@dataclass(frozen=True)
class TileRecord:
    tile_id: str
    scene_id: str
    acquired_on: date
    path: Path
    crs: str
    width: int
    height: int
    res_m: float
    bounds: tuple[float, float, float, float]  # native CRS
    bounds_lonlat: tuple[float, float, float, float]
    bands: tuple[str, ...]
    cloud_fraction: float
    nodata_fraction: float
    checksum: str

    def row(self, ingested_at: datetime) -> dict[str, object]:
        """The `tiles` table row."""
        return {
            "tile_id": self.tile_id, "scene_id": self.scene_id, "acquired_on": self.acquired_on,
            "path": str(self.path), "crs": self.crs, "width": self.width, "height": self.height,
            "res_m": self.res_m, "minx": self.bounds[0], "miny": self.bounds[1], "maxx": self.bounds[2],
            "maxy": self.bounds[3], "min_lon": self.bounds_lonlat[0], "min_lat": self.bounds_lonlat[1],
            "max_lon": self.bounds_lonlat[2], "max_lat": self.bounds_lonlat[3], "bands": list(self.bands),
            "cloud_fraction": self.cloud_fraction, "nodata_fraction": self.nodata_fraction,
            "checksum": self.checksum, "ingested_at": ingested_at,
        }


def tile_from_row(row: dict[str, object]) -> TileRecord:
    """Inverse of `TileRecord.row`: a catalogued tile read back from the store."""
    return TileRecord(
        tile_id=row["tile_id"], scene_id=row["scene_id"], acquired_on=row["acquired_on"], path=Path(row["path"]),
        crs=row["crs"], width=row["width"], height=row["height"], res_m=row["res_m"],
        bounds=(row["minx"], row["miny"], row["maxx"], row["maxy"]),
        bounds_lonlat=(row["min_lon"], row["min_lat"], row["max_lon"], row["max_lat"]),
        bands=tuple(row["bands"]), cloud_fraction=row["cloud_fraction"], nodata_fraction=row["nodata_fraction"],
        checksum=row["checksum"],
    )


def acquisition_date(tags: dict[str, str], path: Path) -> date:
    """From the ACQUISITION_DATE tag, else a YYYYMMDD in the file name."""
    raw = tags.get("ACQUISITION_DATE") or tags.get("TIFFTAG_DATETIME", "")[:10].replace(":", "-")
    if raw:
        try:
            return date.fromisoformat(raw[:10])
        except ValueError:
            pass
    match = _DATE_IN_NAME.search(path.name)
    if match:
        try:
            return date(*map(int, match.groups()))
        except ValueError:
            pass
    raise ImageryError(
        f"{path}: no acquisition date; set the ACQUISITION_DATE tag or put YYYYMMDD in the file name"
    )


def describe_tile(path: str | Path, band_order: str | None = None) -> TileRecord:
    """Open, validate and summarise one tile (reads the pixels once, by block)."""
    path = Path(path)
    with open_tile(path, band_order) as handle:
        src, info = handle.src, handle.info
        tags = src.tags()
        nodata = info.nodata if info.nodata is not None else 0
        invalid = 0
        try:
            for _, window in src.block_windows(1):
                block = src.read(window=window)
                invalid += int(np.all(block == nodata, axis=0).sum())
        except Exception as exc:  # GDAL raises on truncated or corrupt blocks
            raise ImageryError(f"{path} is corrupt or truncated ({exc}); re-download it") from exc
        nodata_fraction = invalid / (info.width * info.height)
        if nodata_fraction >= 1.0:
            raise ImageryError(f"{path} holds only nodata; nothing can be observed in it")
        cloud = tags.get("CLOUD_FRACTION")
        cloud_fraction = float(cloud) if cloud is not None else nodata_fraction
        lonlat = transform_bounds(info.crs, "EPSG:4326", *info.bounds)
        checksum = file_checksum(path)
        return TileRecord(
            tile_id="t-" + checksum[:16], scene_id=tags.get("SCENE_ID", path.stem),
            acquired_on=acquisition_date(tags, path), path=path.resolve(), crs=info.crs.to_string(),
            width=info.width, height=info.height, res_m=info.res_m, bounds=info.bounds,
            bounds_lonlat=tuple(lonlat), bands=info.bands, cloud_fraction=cloud_fraction,
            nodata_fraction=nodata_fraction, checksum=checksum,
        )


def scan_tiles(folder: str | Path, *, until: date | None = None) -> list[TileRecord]:
    """Every GeoTIFF in ``folder`` acquired on or before ``until``, oldest first."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ImageryError(f"tile folder {folder} does not exist; pass --tiles DIR")
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in TIFF_SUFFIXES)
    if not paths:
        raise ImageryError(f"no GeoTIFF tiles (*.tif) in {folder}")
    records = [describe_tile(p) for p in paths]
    if until is not None:
        records = [r for r in records if r.acquired_on <= until]
    return sorted(records, key=lambda r: (r.acquired_on, r.scene_id))
