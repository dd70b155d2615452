"""Tile catalogue: what each GeoTIFF is (scene, date, footprint, clouds) without reading it twice.

A tile is identified by the checksum of its bytes, so re-ingesting the same file under another
name (or re-running the nightly job) never duplicates it. Every tile passes the quality gate
(`imagery.quality`) while it is read; `survey_tiles` keeps the good ones and quarantines the
rest with their reasons, so one bad file never stops the others.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from rasterio.errors import RasterioError
from rasterio.warp import transform_bounds

from assets.config import Settings
from assets.errors import ImageryError
from assets.imagery.quality import PixelStats, QuarantinedTile, TileQualityError, check_pixels, parse_tags, quarantine
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


def tile_from_row(row: dict[str, Any]) -> TileRecord:
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
    """From the ACQUISITION_DATE tag (strict: a bad one is refused), else TIFFTAG_DATETIME or a
    YYYYMMDD in the file name."""
    tagged = parse_tags(tags, path).acquired_on
    if tagged is not None:
        return tagged
    raw = tags.get("TIFFTAG_DATETIME", "")[:10].replace(":", "-")
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


def describe_tile(path: str | Path, band_order: str | None = None, settings: Settings | None = None) -> TileRecord:
    """Open, validate, quality-check and summarise one tile (reads the pixels once, by block).

    Raises `ImageryError` (a `TileQualityError` with a ``code`` for the gate's checks).
    """
    settings = settings or Settings()
    path = Path(path)
    with open_tile(path, band_order) as handle:
        src, info = handle.src, handle.info
        tags = src.tags()
        parsed = parse_tags(tags, path)
        stats = PixelStats.for_tile(info.width, info.height, info.dtype, info.nodata, settings)
        try:
            for _, window in src.block_windows(1):
                stats.add(src.read(window=window))
        except Exception as exc:  # GDAL raises on truncated or corrupt blocks
            raise ImageryError(f"{path} is corrupt or truncated ({exc}); re-download it") from exc
        nodata_fraction = stats.nodata_fraction
        if nodata_fraction >= 1.0:
            raise TileQualityError("valid_pixels", f"{path} holds only nodata (or NaN); nothing can be observed in it")
        check_pixels(stats, path, info.bands, info.dtype, parsed.cloud_fraction, settings)
        cloud_fraction = parsed.cloud_fraction if parsed.cloud_fraction is not None else nodata_fraction
        lonlat = transform_bounds(info.crs, "EPSG:4326", *info.bounds)
        checksum = file_checksum(path)
        return TileRecord(
            tile_id="t-" + checksum[:16], scene_id=tags.get("SCENE_ID", path.stem),
            acquired_on=acquisition_date(tags, path), path=path.resolve(), crs=info.crs.to_string(),
            width=info.width, height=info.height, res_m=info.res_m, bounds=info.bounds,
            bounds_lonlat=tuple(lonlat), bands=info.bands, cloud_fraction=cloud_fraction,
            nodata_fraction=nodata_fraction, checksum=checksum,
        )


def inspect_tile(path: str | Path, settings: Settings | None = None) -> TileRecord | QuarantinedTile:
    """`describe_tile`, or the tile's quarantine record when it is unusable: never raises for one bad file."""
    path = Path(path)
    try:
        return describe_tile(path, settings=settings)
    except (ImageryError, RasterioError, OSError, ValueError) as exc:
        try:
            checksum = file_checksum(path)
        except OSError:
            checksum = None
        return quarantine(path, exc, checksum)


@dataclass(frozen=True)
class TileSurvey:
    tiles: list[TileRecord]  # usable, acquired on or before the as-of date, oldest first
    quarantined: list[QuarantinedTile]


def tile_paths(folder: str | Path) -> list[Path]:
    """Every GeoTIFF in ``folder`` (sorted), or `ImageryError` naming the folder."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ImageryError(f"tile folder {folder} does not exist; pass --tiles DIR")
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in TIFF_SUFFIXES)
    if not paths:
        raise ImageryError(f"no GeoTIFF tiles (*.tif) in {folder}")
    return paths


def survey_tiles(folder: str | Path, *, until: date | None = None, settings: Settings | None = None) -> TileSurvey:
    """Gate every tile in ``folder``: the usable ones acquired up to ``until``, and the quarantined."""
    results = [inspect_tile(p, settings) for p in tile_paths(folder)]
    return split_survey(results, until)


def split_survey(results: list[TileRecord | QuarantinedTile], until: date | None) -> TileSurvey:
    tiles = [r for r in results if isinstance(r, TileRecord) and (until is None or r.acquired_on <= until)]
    return TileSurvey(tiles=sorted(tiles, key=lambda r: (r.acquired_on, r.scene_id)),
                      quarantined=[r for r in results if isinstance(r, QuarantinedTile)])


def scan_tiles(folder: str | Path, *, until: date | None = None) -> list[TileRecord]:
    """Every usable GeoTIFF in ``folder`` acquired on or before ``until``, oldest first.

    Unusable tiles are skipped (`survey_tiles` says why); only a folder without one usable tile raises.
    """
    survey = survey_tiles(folder, until=until)
    if survey.quarantined and not survey.tiles and until is None:
        raise no_usable_tiles(folder, survey.quarantined)
    return survey.tiles


def no_usable_tiles(folder: str | Path, quarantined: list[QuarantinedTile]) -> ImageryError:
    reasons = "; ".join(q.reason for q in quarantined[:5])
    return ImageryError(f"no usable tile in {folder}: {len(quarantined)} quarantined ({reasons})")
