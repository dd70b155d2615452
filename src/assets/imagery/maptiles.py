"""XYZ map tiles (Web Mercator, 256 px PNG) rendered from the tile catalogue, for the farmer's map.

Each XYZ tile is its own small warp: a `WarpedVRT` whose grid *is* the map tile (EPSG:3857,
256 x 256 px), so GDAL reads only the source blocks under it, whatever the size of the scene.
Per pixel grid (scene footprint) the newest clean tile is drawn; outside the imagery a tile is
transparent. Rendered PNGs are kept in a small LRU cache (tile ids are checksums of the file
bytes, so a cached PNG can never be stale).
"""

from __future__ import annotations

import io
import math
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import rasterio
import rasterio.warp
from affine import Affine
from PIL import Image
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.errors import RasterioError
from rasterio.vrt import WarpedVRT

from assets.errors import ImageryError, InputError
from assets.imagery.tiles import REFLECTANCE_SCALE, resolve_band_order

WEB_MERCATOR = CRS.from_epsg(3857)
HALF_WORLD_M = math.pi * 6378137.0  # Web Mercator spans [-HALF_WORLD_M, HALF_WORLD_M] on both axes
TILE_PX = 256


@dataclass(frozen=True)
class MapSource:
    """A catalogued tile drawn on the map: the newest clean one of its pixel grid."""

    tile_id: str
    path: str
    acquired_on: date
    cloud_fraction: float
    bounds_lonlat: tuple[float, float, float, float]  # west, south, east, north


@dataclass(frozen=True)
class MapImagery:
    """What the map shows: one source per scene footprint, and the dates the catalogue holds."""

    sources: tuple[MapSource, ...]
    latest_date: date | None
    cloud_free_dates: tuple[date, ...]

    @property
    def bounds_lonlat(self) -> tuple[float, float, float, float] | None:
        if not self.sources:
            return None
        b = np.array([s.bounds_lonlat for s in self.sources])
        return float(b[:, 0].min()), float(b[:, 1].min()), float(b[:, 2].max()), float(b[:, 3].max())


def choose_imagery(rows: Sequence[dict[str, Any]], max_cloud_fraction: float) -> MapImagery:
    """Per pixel grid, the newest tile with at most ``max_cloud_fraction`` cloud (or nodata); a grid
    with no clean tile shows its clearest one. ``rows`` are `tiles` table rows (not quarantined)."""
    grids: dict[tuple, list[dict[str, Any]]] = {}
    for r in rows:
        key = (r["crs"], r["width"], r["height"], round(r["minx"], 3), round(r["miny"], 3))
        grids.setdefault(key, []).append(r)
    sources = []
    for group in grids.values():
        clean = [r for r in group if _dirt(r) <= max_cloud_fraction]
        pick = max(clean, key=lambda r: r["acquired_on"]) if clean else min(
            group, key=lambda r: (_dirt(r), -r["acquired_on"].toordinal()))
        sources.append(MapSource(pick["tile_id"], str(pick["path"]), pick["acquired_on"], float(pick["cloud_fraction"]),
                                 (pick["min_lon"], pick["min_lat"], pick["max_lon"], pick["max_lat"])))
    sources.sort(key=lambda s: s.acquired_on, reverse=True)  # newest first: drawn on top where scenes overlap
    dates = sorted({r["acquired_on"] for r in rows if _dirt(r) <= max_cloud_fraction})
    latest = max((r["acquired_on"] for r in rows), default=None)
    return MapImagery(tuple(sources), latest, tuple(dates))


def _dirt(row: dict[str, Any]) -> float:
    return max(float(row["cloud_fraction"]), float(row.get("nodata_fraction") or 0.0))


def check_xyz(z: int, x: int, y: int, max_zoom: int) -> None:
    """Refuse coordinates that name no tile (`InputError`, HTTP 422)."""
    if not 0 <= z <= max_zoom:
        raise InputError(f"zoom {z} is outside 0-{max_zoom} (map_max_zoom); ask for a zoom in that range")
    n = 1 << z
    if not (0 <= x < n and 0 <= y < n):
        raise InputError(f"tile {z}/{x}/{y} does not exist: at zoom {z}, x and y run from 0 to {n - 1}")


def xyz_transform(z: int, x: int, y: int, size: int = TILE_PX) -> Affine:
    """The Web Mercator pixel grid of XYZ tile z/x/y (``size`` px square)."""
    span = 2 * HALF_WORLD_M / (1 << z)
    return Affine(span / size, 0.0, -HALF_WORLD_M + x * span, 0.0, -span / size, HALF_WORLD_M - y * span)


def xyz_bounds_lonlat(z: int, x: int, y: int) -> tuple[float, float, float, float]:
    """(west, south, east, north) of tile z/x/y in degrees."""
    n = 1 << z

    def lat(row: int) -> float:
        return math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * row / n))))

    return x / n * 360.0 - 180.0, lat(y + 1), (x + 1) / n * 360.0 - 180.0, lat(y)


def _meets(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def render_xyz(sources: Sequence[MapSource], z: int, x: int, y: int, *, gain: float = 3.5,
               size: int = TILE_PX, images: "MercatorImages | None" = None) -> bytes | None:
    """True-colour RGBA PNG of tile z/x/y, or None when no source reaches it (the caller answers
    with a transparent tile). Reflectance x ``gain``, clipped; nodata transparent.

    With ``images`` (one per server), each source is warped to Web Mercator once, at about its own
    resolution, and a map tile is a nearest-neighbour sample of that picture: a few milliseconds
    instead of a warp per tile. A scene too big for the cache's budget at a zoom is warped per tile.
    """
    box = xyz_bounds_lonlat(z, x, y)
    hits = [s for s in sources if _meets(box, s.bounds_lonlat)]
    if not hits:
        return None
    out = np.zeros((size, size, 4), np.uint8)
    for source in hits:  # newest first: an earlier source keeps its pixels
        picture = images.get(source, gain) if images is not None else None
        if picture is not None and z <= picture.max_zoom:
            rgba = picture.sample(z, x, y, size)
        else:
            colour, valid = _warp(source, xyz_transform(z, x, y, size), size)
            rgba = _to_rgba(colour, valid, gain).transpose(1, 2, 0)
        fill = (rgba[..., 3] > 0) & (out[..., 3] == 0)
        out[fill] = rgba[fill]
        if (out[..., 3] > 0).all():
            break
    if not (out[..., 3] > 0).any():
        return None
    return encode_png(out)


def _to_rgba(colour: np.ndarray, valid: np.ndarray, gain: float) -> np.ndarray:
    """(4, h, w) uint8: reflectance x gain as true colour, alpha 255 where valid."""
    rgb = np.where(valid, np.clip(colour * gain * 255.0, 0, 255), 0)
    return np.concatenate([rgb, valid[None] * 255.0]).astype(np.uint8)


@dataclass(frozen=True)
class MercatorPicture:
    """One source warped to the Web Mercator pixel grid of zoom ``zoom``: (h, w, 4) RGBA whose
    top-left pixel is global pixel (col0, row0) of that zoom."""

    zoom: int
    col0: int
    row0: int
    rgba: np.ndarray
    max_zoom: int  # tiles up to this zoom are sampled from the picture

    def sample(self, z: int, x: int, y: int, size: int = TILE_PX) -> np.ndarray:
        """(size, size, 4) RGBA of tile z/x/y, nearest neighbour (transparent outside the picture)."""
        scale = 2.0 ** (self.zoom - z) * TILE_PX / size  # picture pixels per output pixel
        offsets = np.arange(size) + 0.5
        cols = np.floor((x * size + offsets) * scale).astype(np.int64) - self.col0
        rows = np.floor((y * size + offsets) * scale).astype(np.int64) - self.row0
        h, w = self.rgba.shape[:2]
        col_ok, row_ok = (cols >= 0) & (cols < w), (rows >= 0) & (rows < h)
        out = np.zeros((size, size, 4), np.uint8)
        if col_ok.any() and row_ok.any():
            out[np.ix_(row_ok, col_ok)] = self.rgba[np.ix_(rows[row_ok], cols[col_ok])]
        return out


def mercator_picture(source: MapSource, gain: float, max_pixels: int, max_zoom: int) -> MercatorPicture | None:
    """Warp ``source`` once to the first zoom whose pixels are no coarser than the scene's own; a
    coarser zoom when that picture would exceed ``max_pixels``; None when even zoom 0 would."""
    path = Path(source.path)
    try:
        with rasterio.open(path) as src:
            west, south, east, north = rasterio.warp.transform_bounds(src.crs, WEB_MERCATOR, *src.bounds)
            native = (east - west) / src.width  # the scene's pixel, in Web Mercator metres
    except RasterioError as exc:
        raise ImageryError(f"{path} cannot be read for the map ({exc}); re-download it or run `assets nightly`") from exc
    fine = min(max_zoom, max(0, math.ceil(math.log2(2 * HALF_WORLD_M / (TILE_PX * native)))))
    for zoom in range(fine, -1, -1):
        res = 2 * HALF_WORLD_M / (TILE_PX << zoom)
        col0, col1 = math.floor((west + HALF_WORLD_M) / res), math.ceil((east + HALF_WORLD_M) / res)
        row0, row1 = math.floor((HALF_WORLD_M - north) / res), math.ceil((HALF_WORLD_M - south) / res)
        if (col1 - col0) * (row1 - row0) <= max_pixels:
            break
    else:
        return None
    transform = Affine(res, 0.0, -HALF_WORLD_M + col0 * res, 0.0, -res, HALF_WORLD_M - row0 * res)
    colour, valid = _warp(source, transform, (col1 - col0, row1 - row0))
    # Tiles finer than the picture only blow its pixels up, so the picture serves every deeper zoom
    # when it is at the scene's resolution; a coarsened picture serves only zooms up to its own.
    return MercatorPicture(zoom, col0, row0, _to_rgba(colour, valid, gain).transpose(1, 2, 0).copy(),
                           max_zoom if zoom == fine else zoom)


class MercatorImages:
    """Per server: the `MercatorPicture` of each source (keyed by tile id, a content checksum, so
    never stale), least recently used dropped beyond ``max_pixels`` in all."""

    def __init__(self, max_pixels: int, max_zoom: int) -> None:
        self.max_pixels, self.max_zoom = max_pixels, max_zoom
        self._items: OrderedDict[tuple[str, float], MercatorPicture | None] = OrderedDict()
        self._lock = threading.Lock()
        self._building: dict[tuple[str, float], threading.Lock] = {}

    def get(self, source: MapSource, gain: float) -> MercatorPicture | None:
        key = (source.tile_id, gain)
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            building = self._building.setdefault(key, threading.Lock())
        with building:  # one warp per source, however many tiles ask for it at once
            with self._lock:
                if key in self._items:
                    return self._items[key]
            picture = mercator_picture(source, gain, self.max_pixels, self.max_zoom)
            with self._lock:
                self._items[key] = picture
                self._building.pop(key, None)
                total = sum(p.rgba.shape[0] * p.rgba.shape[1] for p in self._items.values() if p is not None)
                while total > self.max_pixels and len(self._items) > 1:
                    _, dropped = self._items.popitem(last=False)
                    total -= 0 if dropped is None else dropped.rgba.shape[0] * dropped.rgba.shape[1]
        return picture


def _warp(source: MapSource, transform: Affine, size: int | tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(3, h, w) reflectance and the valid mask of ``source`` on the grid ``transform`` of ``size``
    (w, h) pixels (a square when one number)."""
    width, height = (size, size) if isinstance(size, int) else size
    path = Path(source.path)
    try:
        with rasterio.open(path) as src:
            names = resolve_band_order(src, None)
            try:
                bands = [names.index(n) + 1 for n in ("red", "green", "blue")]
            except ValueError as exc:
                raise ImageryError(f"{path} has no red, green and blue bands; it cannot be drawn on the map") from exc
            nodata = src.nodata if src.nodata is not None else 0
            with WarpedVRT(src, crs=WEB_MERCATOR, transform=transform, width=width, height=height,
                           resampling=Resampling.bilinear, src_nodata=nodata, nodata=nodata, add_alpha=True) as vrt:
                raw = vrt.read(bands + [vrt.count])
    except RasterioError as exc:
        raise ImageryError(f"{path} cannot be read for the map ({exc}); re-download it or run `assets nightly`") from exc
    colour = raw[:3].astype(np.float32)
    if raw.dtype.kind in "ui":
        colour /= REFLECTANCE_SCALE
    valid = (raw[3] > 0) & np.all(raw[:3] != nodata, axis=0)
    return np.nan_to_num(colour), valid


def encode_png(rgba: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def transparent_png(size: int = TILE_PX) -> bytes:
    return encode_png(np.zeros((size, size, 4), np.uint8))


class TileCache:
    """A thread-safe LRU of rendered PNGs, one per app (kept on ``app.state``)."""

    def __init__(self, max_items: int) -> None:
        self.max_items = max_items
        self._items: OrderedDict[tuple, bytes] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, key: tuple) -> bytes | None:
        with self._lock:
            png = self._items.get(key)
            if png is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return png

    def put(self, key: tuple, png: bytes) -> None:
        if self.max_items <= 0:
            return
        with self._lock:
            self._items[key] = png
            self._items.move_to_end(key)
            while len(self._items) > self.max_items:
                self._items.popitem(last=False)


class CatalogueCache:
    """The `MapImagery` of the catalogue, re-read at most every ``ttl_s`` seconds (one per app)."""

    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self._value: tuple[MapImagery, float] | None = None
        self._lock = threading.Lock()

    def get(self, read: Callable[[], MapImagery]) -> MapImagery:
        with self._lock:
            now = time.monotonic()
            if self._value is None or self._value[1] <= now:
                self._value = (read(), now + self.ttl_s)
            return self._value[0]
