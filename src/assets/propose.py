"""Tap inside a field, get its boundary: the detected field under a point, as a drawing to accept.

The proposal is the same field instance that verification compares a drawing with
(`boundary.field_instances` on the segmentation of the grid's reference tile, split where the
per-pixel NDVI season changes), so a farmer who accepts it submits a boundary the boundary check
agrees with. Windowed: only ``Settings.proposal_search_m`` around the point is read.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np
import rasterio
import rasterio.windows
import shapely
from rasterio.features import shapes
from rasterio.windows import Window

from assets import boundary as bnd
from assets.config import Settings
from assets.errors import InputError, NoFieldHere, NoImageryHere
from assets.fields.geometry import area_ha, ha_to_mu, reproject
from assets.imagery.index import TileRecord
from assets.imagery.tiles import open_tile, read_reflectance

if TYPE_CHECKING:
    from assets.models.segment import Segmenter

# The farmer tapped outside the tiles we hold / on no detected field: two different 404s.
NO_IMAGERY = ("no satellite imagery at {lon:.5f}, {lat:.5f}; the map shows where we hold imagery: tap inside it, "
              "or draw the field by hand")
NO_FIELD = ("no field detected at {lon:.5f}, {lat:.5f} (a road, building, wood or water, or a field the "
            "segmentation misses); tap inside the field again or draw it by hand")


@dataclass(frozen=True)
class Proposal:
    """A detected field: EPSG:4326 polygon, its area, and what it was detected on."""

    geometry: shapely.Polygon
    area_ha: float
    tile_id: str
    acquired_on: date
    pixels: int
    cut_by_search_window: bool  # the field reaches the edge of the searched window (larger than shown)

    def to_geojson(self) -> dict[str, Any]:
        return {"type": "Feature", "geometry": shapely.geometry.mapping(self.geometry), "properties": {
            "source": "segmentation", "area_ha": round(self.area_ha, 4), "area_mu": round(ha_to_mu(self.area_ha), 2),
            "tile_id": self.tile_id, "acquired_on": self.acquired_on.isoformat(), "pixels": self.pixels,
            "vertices": len(self.geometry.exterior.coords) - 1, "cut_by_search_window": self.cut_by_search_window}}


def check_point(lon: float, lat: float) -> None:
    if not (math.isfinite(lon) and math.isfinite(lat)):
        raise InputError("lon and lat must be finite numbers (degrees, EPSG:4326)")
    if not (-180.0 <= lon <= 180.0 and -90.0 <= lat <= 90.0):
        raise InputError(f"lon={lon}, lat={lat} is not a place on Earth: lon runs -180..180, lat -90..90 "
                         "(were they swapped?)")


def grid_at(tiles: Sequence[TileRecord], lon: float, lat: float) -> list[TileRecord]:
    """The tiles of the pixel grid holding the point (the grid with most dates when several do)."""
    from assets.observe import group_by_grid

    best: list[TileRecord] = []
    for group in group_by_grid(tiles):
        x, y = reproject(shapely.Point(lon, lat), "EPSG:4326", group[0].crs).coords[0]
        minx, miny, maxx, maxy = group[0].bounds
        if minx <= x < maxx and miny < y <= maxy and len(group) > len(best):
            best = group
    if not best:
        raise NoImageryHere(NO_IMAGERY.format(lon=lon, lat=lat))
    return best


def propose_field(lon: float, lat: float, tiles: Sequence[TileRecord], segmentation: Callable[[TileRecord], Path],
                  settings: Settings) -> Proposal:
    """The detected field under (lon, lat). ``segmentation(tile)`` gives the class-probability
    GeoTIFF of a grid's reference tile (cached per tile and model). `NotFoundError` when the point
    is outside the imagery or on no detected field; `InputError` for a point that is not one."""
    from assets.observe import reference_tile

    check_point(lon, lat)
    group = grid_at(tiles, lon, lat)
    ref = reference_tile(group)
    with rasterio.open(segmentation(ref)) as seg:
        x, y = reproject(shapely.Point(lon, lat), "EPSG:4326", seg.crs).coords[0]
        row, col = rasterio.transform.rowcol(seg.transform, x, y)
        pad = int(math.ceil(settings.proposal_search_m / abs(seg.transform.a)))
        full = Window(0, 0, seg.width, seg.height)
        window = Window(col - pad, row - pad, 2 * pad + 1, 2 * pad + 1).intersection(full)
        win_transform = rasterio.windows.transform(window, seg.transform)
        probs = seg.read([1, 2, 3], window=window) if seg.count >= 3 else None
    if probs is None:
        raise NoFieldHere(NO_FIELD.format(lon=lon, lat=lat))
    ndvi = _ndvi(group, window)
    labels = bnd.field_instances(probs, ndvi, settings)
    r, c = row - int(window.row_off), col - int(window.col_off)
    label = _label_near(labels, r, c, settings.proposal_snap_px)
    if label == 0:
        raise NoFieldHere(NO_FIELD.format(lon=lon, lat=lat))
    mask = labels == label
    col0, row0 = int(window.col_off), int(window.row_off)
    cut = bool((mask[:, 0].any() and col0 > 0) or (mask[0].any() and row0 > 0)
               or (mask[:, -1].any() and col0 + int(window.width) < full.width)
               or (mask[-1].any() and row0 + int(window.height) < full.height))
    local = _outline(mask, win_transform, settings.proposal_simplify_px * abs(seg.transform.a))
    geom = reproject(local, seg.crs, "EPSG:4326")
    geom = shapely.set_precision(geom, 1e-7)  # ~1 cm: the precision the page submits with
    if not isinstance(geom, shapely.Polygon) or geom.is_empty or not geom.is_valid:
        geom = max(getattr(shapely.make_valid(geom), "geoms", [shapely.make_valid(geom)]), key=lambda g: g.area)
    return Proposal(geom, area_ha(geom), ref.tile_id, ref.acquired_on, int(mask.sum()), cut)


def _ndvi(group: Sequence[TileRecord], window: Window) -> np.ndarray | None:
    """(T, H, W) NDVI of the grid's dates with red and NIR over the window (NaN where unclear)."""
    stack = []
    for tile in group:
        with open_tile(tile.path) as handle:
            if not {"red", "nir"} <= set(handle.bands):
                continue
            refl, valid = read_reflectance(handle, ["red", "nir"], window=window)
        stack.append((refl[0], refl[1], valid))
    return bnd.ndvi_stack(stack) if stack else None


def _label_near(labels: np.ndarray, r: int, c: int, radius: int) -> int:
    """The field label at (r, c), else the commonest label within ``radius`` px (a tap on an edge)."""
    h, w = labels.shape
    if 0 <= r < h and 0 <= c < w and labels[r, c]:
        return int(labels[r, c])
    near = labels[max(0, r - radius): r + radius + 1, max(0, c - radius): c + radius + 1]
    ids, counts = np.unique(near[near > 0], return_counts=True)
    return int(ids[np.argmax(counts)]) if ids.size else 0


def _outline(mask: np.ndarray, transform: Any, tolerance_m: float) -> shapely.Polygon:
    """The field's outer ring (holes such as a tree in the field dropped), pixel staircase
    simplified by ``tolerance_m``; the largest piece when the mask is in several."""
    pieces = [shapely.geometry.shape(g) for g, v in shapes(mask.astype(np.uint8), mask=mask, transform=transform,
                                                           connectivity=4) if v]
    poly = max(pieces, key=lambda p: p.area)
    outer = shapely.Polygon(poly.exterior)
    simple = shapely.simplify(outer, tolerance_m, preserve_topology=True)
    return simple if isinstance(simple, shapely.Polygon) and simple.is_valid and not simple.is_empty else outer


class Segmentations:
    """Class probabilities of a grid's reference tile, for proposals: the cache the nightly run
    writes (`pipeline.segment_tile`), computed once here when missing. The segmentation model is
    loaded on first need and kept; one lock, so two taps never write the same cache file."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._model: Segmenter | None = None
        self._lock = threading.Lock()

    def __call__(self, tile: TileRecord) -> Path:
        from assets.pipeline import segment_tile, segmentation_cache

        with self._lock:
            if self._model is None:
                from assets.models import segment

                self._model = segment.load(self.settings.models_dir / "segment.pt")
            return segment_tile(tile, self._model, segmentation_cache(self.settings.db_path))
