"""A true-colour PNG of a tile in Web Mercator, for the farmer's map to draw on.

Leaflet stretches an image overlay linearly between two corners in Web Mercator, so the tile is
warped to EPSG:3857 first; an overlay in the tile's own UTM grid would be visibly skewed.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from affine import Affine
from PIL import Image
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.warp import calculate_default_transform, reproject, transform_bounds

from assets.imagery.tiles import TileInfo, open_tile, read_reflectance

WEB_MERCATOR = CRS.from_epsg(3857)


@dataclass(frozen=True)
class Preview:
    png: bytes
    bounds_lonlat: tuple[float, float, float, float]  # west, south, east, north


def _mercator_grid(info: TileInfo, max_px: int) -> tuple[Affine, int, int, tuple[float, float, float, float]]:
    """The Web Mercator grid the preview is drawn on, and its corners in lon/lat."""
    dst_transform, w, h = calculate_default_transform(info.crs, WEB_MERCATOR, info.width, info.height, *info.bounds)
    scale = max(1.0, max(w, h) / max_px)
    w, h = int(w / scale), int(h / scale)
    dst_transform = dst_transform @ Affine.scale(scale, scale)
    west, north = dst_transform @ (0, 0)
    east, south = dst_transform @ (w, h)
    return dst_transform, w, h, tuple(transform_bounds(WEB_MERCATOR, "EPSG:4326", west, south, east, north))


def preview_bounds(path: str, *, max_px: int = 1024) -> tuple[float, float, float, float]:
    """(west, south, east, north) of `render_preview`'s image, without rendering it."""
    with open_tile(path) as handle:
        return _mercator_grid(handle.info, max_px)[3]


def render_preview(path: str, *, gain: float, max_px: int = 1024) -> Preview:
    """RGB reflectance x ``gain`` (clipped), nodata transparent, at most ``max_px`` wide."""
    with open_tile(path) as handle:
        rgb, valid = read_reflectance(handle, ["red", "green", "blue"])
        info = handle.info
    dst_transform, w, h, lonlat = _mercator_grid(info, max_px)
    src_crs, src_transform = info.crs, info.transform
    rgba = np.zeros((4, h, w), np.float32)
    src = np.concatenate([rgb, valid[None].astype(np.float32)])
    for band in range(4):
        reproject(src[band], rgba[band], src_transform=src_transform, src_crs=src_crs,
                  dst_transform=dst_transform, dst_crs=WEB_MERCATOR, resampling=Resampling.bilinear)
    image = np.clip(rgba[:3] * gain, 0, 1) * 255
    alpha = (rgba[3] > 0.5) * 255
    pixels = np.concatenate([image, alpha[None]]).astype(np.uint8).transpose(1, 2, 0)
    buf = io.BytesIO()
    Image.fromarray(pixels, "RGBA").save(buf, format="PNG", optimize=True)
    return Preview(png=buf.getvalue(), bounds_lonlat=lonlat)
