"""Tiled inference over rasters of any size: overlapping windows, seam-free blending, bounded memory.

Windows start on a grid of multiples of 16 (covering the U-Net's pooling factor), so every window
sees the same pooling phase as a single whole-raster pass, and overlapping predictions are blended
with weights that are ~0 at window edges (where zero padding makes the CNN least reliable). Rows
are finished and handed on one window-row ("strip") at a time, so memory is
O(window_px x raster width) whatever the raster height; `predict_raster_to_file` never holds
the whole tile.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
from affine import Affine
from rasterio.crs import CRS
from rasterio.windows import Window

from assets.errors import ImageryError, InputError
from assets.imagery.masks import apply_mask, usable_mask, water_mask
from assets.imagery.tiles import TileHandle, open_tile, read_reflectance
from assets.models.segment import SIZE_MULTIPLE, Segmenter

#: Floor of the blending weight so a pixel covered by one window only keeps that window's value.
_MIN_WEIGHT = 1e-3


@dataclass
class SegmentationResult:
    """Whole-raster probabilities (background, field, boundary) and the usable-pixel mask."""

    probs: np.ndarray  # (3, H, W) float32
    valid: np.ndarray  # (H, W) bool: not nodata and not cloud
    transform: Affine
    crs: CRS
    #: Why nothing can be found (e.g. every pixel nodata/cloud); None when the raster had usable pixels.
    reason: str | None = None

    @property
    def valid_fraction(self) -> float:
        return float(self.valid.mean()) if self.valid.size else 0.0


@dataclass
class RasterSummary:
    """What `predict_raster_to_file` wrote."""

    path: Path
    width: int
    height: int
    valid_fraction: float
    transform: Affine
    crs: CRS
    reason: str | None = None


def window_grid(height: int, width: int, window_px: int = 512, overlap_px: int = 64
                ) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """(row windows, column windows) as (start, size) pairs covering the raster.

    Starts are multiples of 16 and windows never run past the raster: the last one is pulled back
    (and may be up to 15 px longer than ``window_px``) so it keeps full context instead of being a
    thin sliver; consecutive windows overlap by at least ``overlap_px``.
    """
    window_px, stride = _check_sizes(window_px, overlap_px)

    def axis(n: int) -> list[tuple[int, int]]:
        if n < window_px + SIZE_MULTIPLE:
            return [(0, n)]
        starts = [0]
        while starts[-1] + stride + window_px < n:
            starts.append(starts[-1] + stride)
        last = (n - window_px) // SIZE_MULTIPLE * SIZE_MULTIPLE
        if last > starts[-1]:
            starts.append(last)
        return [(s, window_px if i + 1 < len(starts) else n - s) for i, s in enumerate(starts)]

    return axis(height), axis(width)


def _check_sizes(window_px: int, overlap_px: int) -> tuple[int, int]:
    if window_px < 32:
        raise InputError(f"window_px={window_px} is too small; use at least 32 (default 512)")
    if overlap_px < 0 or overlap_px >= window_px // 2:
        raise InputError(f"overlap_px={overlap_px} must be >= 0 and less than half of window_px={window_px}")
    window_px -= window_px % SIZE_MULTIPLE
    stride = window_px - overlap_px
    stride -= stride % SIZE_MULTIPLE  # keep every window on the network's pooling grid
    return window_px, stride


@lru_cache(maxsize=16)
def blend_weights(h: int, w: int, overlap_px: int) -> np.ndarray:
    """(h, w) weights: 1 in the centre, ~0 in the outer quarter of the overlap, a linear ramp between.

    The outermost pixels of a window are the least reliable (the CNN sees zero padding there),
    so where two windows overlap the inner one dominates; where only one window covers a pixel
    (raster edges) normalising by the summed weight gives back that window's value exactly.
    """
    if overlap_px <= 0:
        return np.ones((h, w), dtype=np.float32)
    margin = overlap_px / 4.0

    def ramp(n: int) -> np.ndarray:
        d = np.minimum(np.arange(n), np.arange(n)[::-1]).astype(np.float32)
        return np.clip((d + 0.5 - margin) / (overlap_px - margin), _MIN_WEIGHT, 1.0)

    weights = np.outer(ramp(h), ramp(w)).astype(np.float32)
    weights.flags.writeable = False  # cached and shared between windows
    return weights


def iter_strips(handle: TileHandle, model: Segmenter, *, window_px: int = 512, overlap_px: int = 64,
                clouds: bool = True, progress: bool = False) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """Yield (row0, probs (3, rows, W) float32, usable (rows, W) bool) for consecutive final row blocks."""
    missing = [b for b in model.bands if b not in handle.bands]
    if missing:
        raise ImageryError(
            f"{handle.info.path}: the model needs bands {list(model.bands)} but {missing} are not in "
            f"{list(handle.bands)}; pass --band-order to name the file's bands"
        )
    H, W = handle.info.height, handle.info.width
    rows, cols = window_grid(H, W, window_px, overlap_px)
    # Read NIR too when the tile has it (even if the model does not use it): it finds open water.
    names = tuple(model.bands)
    use_nir = "nir" in handle.bands and "green" in handle.bands
    if use_nir and "nir" not in names:
        names += ("nir",)
    nb = len(model.bands)
    buf_h = max(h for _, h in rows)
    fill = model.mean.astype(np.float32)[:, None, None]
    acc = np.zeros((3, buf_h, W), dtype=np.float32)
    wsum = np.zeros((buf_h, W), dtype=np.float32)
    usable = np.ones((buf_h, W), dtype=bool)
    bar = _progress(len(rows) * len(cols), progress)
    try:
        for i, (r0, h) in enumerate(rows):
            for c0, w in cols:
                x, valid = read_reflectance(handle, names, Window(c0, r0, w, h))
                ok = usable_mask(x, valid, names, clouds=clouds)
                if ok.any():
                    p = model.predict_proba(np.where(ok[None], x[:nb], fill))
                    if use_nir:
                        apply_mask(p, ~water_mask(x[names.index("green")], x[names.index("nir")]))
                else:
                    p = np.zeros((3, h, w), dtype=np.float32)
                    p[0] = 1.0
                wt = blend_weights(h, w, overlap_px)
                acc[:, :h, c0:c0 + w] += p * wt
                wsum[:h, c0:c0 + w] += wt
                usable[:h, c0:c0 + w] &= ok
                if bar is not None:
                    bar.update(1)
            n = rows[i + 1][0] - r0 if i + 1 < len(rows) else h  # rows no later window touches
            probs = acc[:, :n] / wsum[None, :n]
            ok_rows = usable[:n].copy()
            apply_mask(probs, ok_rows)
            yield r0, probs, ok_rows
            if i + 1 < len(rows):
                keep = buf_h - n
                acc[:, :keep] = acc[:, n:]
                acc[:, keep:] = 0.0
                wsum[:keep] = wsum[n:]
                wsum[keep:] = 0.0
                usable[:keep] = usable[n:]
                usable[keep:] = True
    finally:
        if bar is not None:
            bar.close()


def _progress(total: int, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="win", desc="segmenting", leave=False)


def predict_raster(path: str | Path, model: Segmenter, *, band_order: str | Sequence[str] | None = None,
                   window_px: int = 512, overlap_px: int = 64, progress: bool = False,
                   clouds: bool = True) -> SegmentationResult:
    """Segment a raster that fits in memory; invalid (nodata/cloud) pixels get probs (1, 0, 0)."""
    with open_tile(path, band_order) as handle:
        H, W = handle.info.height, handle.info.width
        probs = np.empty((3, H, W), dtype=np.float32)
        usable = np.empty((H, W), dtype=bool)
        for r0, p, ok in iter_strips(handle, model, window_px=window_px, overlap_px=overlap_px,
                                     clouds=clouds, progress=progress):
            probs[:, r0:r0 + p.shape[1]] = p
            usable[r0:r0 + p.shape[1]] = ok
        reason = None if usable.any() else "every pixel is nodata or cloud: no fields can be detected"
        return SegmentationResult(probs, usable, handle.info.transform, handle.info.crs, reason)


def predict_raster_to_file(path: str | Path, model: Segmenter, out_tif: str | Path, *,
                           band_order: str | Sequence[str] | None = None, window_px: int = 1024,
                           overlap_px: int = 64, progress: bool = False, clouds: bool = True) -> RasterSummary:
    """Segment a raster of any size into a 3-band uint8 GeoTIFF (probability x 255), bounded memory.

    Bands are background, field, boundary; unusable pixels are written as (255, 0, 0). The default
    1024-px window is ~1.8x faster than 512 on a 2-core CPU (less overlap, better conv efficiency)
    for ~250 MB more memory. The file is
    written under a temporary name and renamed at the end, so a failure never leaves a partial file.
    """
    import rasterio

    out_tif = Path(out_tif)
    out_tif.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_tif.with_name(f".{out_tif.name}.{os.getpid()}.tmp.tif")
    n_usable = 0
    try:
        with open_tile(path, band_order) as handle:
            info = handle.info
            profile = {
                "driver": "GTiff", "width": info.width, "height": info.height, "count": 3, "dtype": "uint8",
                "crs": info.crs, "transform": info.transform, "compress": "deflate", "predictor": 2,
                "tiled": False, "blockysize": SIZE_MULTIPLE, "interleave": "pixel",  # strips align with rows handed on
            }
            with rasterio.open(tmp, "w", **profile) as dst:
                dst.descriptions = tuple(model.classes)
                dst.update_tags(model_version=model.version, model_bands=",".join(model.bands), scale="1/255")
                for r0, p, ok in iter_strips(handle, model, window_px=window_px, overlap_px=overlap_px,
                                             clouds=clouds, progress=progress):
                    q = np.rint(p * 255.0).astype(np.uint8)
                    dst.write(q, window=Window(0, r0, info.width, p.shape[1]))
                    n_usable += int(ok.sum())
        tmp.replace(out_tif)
    finally:
        if tmp.exists():
            tmp.unlink()
    frac = n_usable / float(info.width * info.height)
    reason = None if n_usable else "every pixel is nodata or cloud: no fields can be detected"
    return RasterSummary(out_tif, info.width, info.height, frac, info.transform, info.crs, reason)
