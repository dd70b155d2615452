"""Class probabilities -> field polygons (EPSG:4326) with areas measured in the local UTM zone.

Instances are the connected components of *interior* pixels (argmax = field). The boundary class
sits between neighbouring fields, so two touching fields stay two components even where their
extents merge; each component is then grown back by one pixel into the surrounding
field/boundary pixels (the network's boundary is the parcels' one-pixel rim), which restores the
field's real area. Components smaller than ``min_area_m2`` (slivers, hedges) are dropped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from assets.errors import InputError

#: Default smallest field kept (0.1 ha = 10 Sentinel-2 pixels).
MIN_AREA_M2 = 1000.0
#: A seed pixel's field probability must exceed background and boundary by this much: confident
#: interiors only, so weak boundaries still split neighbours (tuned on the training region).
SEED_MARGIN = 0.4
#: Pixels a seed grows back into the field extent (the seed margin shrinks fields by ~2-3 px).
GROW_PX = 3
#: Douglas-Peucker tolerance in pixels: removes pixel staircases (5-10x fewer vertices) while
#: moving edges by at most half a pixel, so areas change by well under 1 %.
SIMPLIFY_PX = 0.5
_STRIP = 512  # rows vectorised at a time (bounds the per-vertex Python objects GDAL hands back)


def label_fields(probs: np.ndarray, valid: np.ndarray | None = None, *, grow_px: int | None = None,
                 min_seed_px: int = 3) -> np.ndarray:
    """(3, H, W) probabilities -> (H, W) int32 instance labels, 0 = no field.

    ``probs`` may be float 0..1 or uint8 0..255 (as written by `predict_raster_to_file`).
    """
    if probs.ndim != 3 or probs.shape[0] != 3:
        raise InputError(f"expected (3, H, W) class probabilities, got shape {probs.shape}")
    seeds, extent = seed_and_extent(probs, valid)
    return label_masks(seeds, extent, grow_px=grow_px, min_seed_px=min_seed_px)


def label_masks(seeds: np.ndarray, extent: np.ndarray, *, grow_px: int | None = None,
                min_seed_px: int = 3) -> np.ndarray:
    """Connected interior seeds (4-connected) grown ``grow_px`` pixels into the field extent."""
    from scipy import ndimage

    grow_px = GROW_PX if grow_px is None else grow_px
    labels, n = ndimage.label(seeds)
    labels = labels.astype(np.int32, copy=False)
    del seeds
    if n and min_seed_px > 1:
        small = label_counts(labels, n) < min_seed_px
        small[0] = False
        if small.any():
            for r0 in range(0, labels.shape[0], _STRIP):
                block = labels[r0:r0 + _STRIP]
                block[small[block]] = 0
    for _ in range(grow_px):
        _grow_once(labels, extent)
    return labels


def label_counts(labels: np.ndarray, n: int) -> np.ndarray:
    """Pixels per label 0..n, strip by strip: `np.bincount` on the whole raster would first copy
    int32 labels to int64 (8 bytes per pixel, ~1 GB for a full tile)."""
    counts = np.zeros(n + 1, dtype=np.int64)
    for r0 in range(0, labels.shape[0], _STRIP):
        counts += np.bincount(labels[r0:r0 + _STRIP].ravel(), minlength=n + 1)
    return counts


def seed_and_extent(probs: np.ndarray, valid: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Interior seeds (field prob beats both others by `SEED_MARGIN`) and field extent (background
    prob < 0.5), both False where invalid."""
    p0, p1, p2 = probs[0], probs[1], probs[2]
    if probs.dtype == np.uint8:
        margin = int(round(SEED_MARGIN * 255))
        p1 = p1.astype(np.int16)
        seeds = (p1 - np.maximum(p0, p2)) > margin
    else:
        seeds = (p1 - np.maximum(p0, p2)) > SEED_MARGIN
    extent = p0 < (128 if probs.dtype == np.uint8 else 0.5)
    if valid is not None:
        seeds &= valid
        extent &= valid
    return seeds, extent


def _grow_once(labels: np.ndarray, extent: np.ndarray, strip: int = 256) -> None:
    """Give unlabelled extent pixels the label of a 4-neighbour (in place, strip by strip)."""
    H = labels.shape[0]
    above = None  # the previous strip's last row as it was before this pass grew it
    for r0 in range(0, H, strip):
        r1 = min(H, r0 + strip)
        a0, a1 = max(0, r0 - 1), min(H, r1 + 1)
        pad = np.pad(labels[a0:a1], 1)
        if above is not None:
            pad[1, 1:-1] = above
        above = labels[r1 - 1].copy()
        c0 = r0 - a0 + 1  # first core row inside pad
        n = r1 - r0
        neigh = np.maximum(pad[c0 - 1:c0 - 1 + n, 1:-1], pad[c0 + 1:c0 + 1 + n, 1:-1])
        np.maximum(neigh, pad[c0:c0 + n, :-2], out=neigh)
        np.maximum(neigh, pad[c0:c0 + n, 2:], out=neigh)
        core = labels[r0:r1]
        todo = (core == 0) & extent[r0:r1] & (neigh > 0)
        core[todo] = neigh[todo]


def polygonize(result_or_probs: Any, transform: Any = None, crs: Any = None, *, valid: np.ndarray | None = None,
               min_area_m2: float = MIN_AREA_M2, simplify_px: float = SIMPLIFY_PX) -> Any:
    """Field polygons from a `SegmentationResult` or a (3, H, W) probability array.

    Returns a GeoDataFrame in EPSG:4326 with ``field_id``, ``area_ha`` (computed in the local UTM
    zone, never in degrees), ``field_prob`` (mean field+boundary probability inside the field)
    and ``n_pixels``. An empty frame with the same columns when nothing is found.
    """
    if hasattr(result_or_probs, "probs"):
        res = result_or_probs
        probs, valid = res.probs, res.valid if valid is None else valid
        transform = transform if transform is not None else res.transform
        crs = crs if crs is not None else res.crs
    else:
        probs = np.asarray(result_or_probs)
    if transform is None or crs is None:
        raise InputError("polygonize needs the raster's transform and CRS (pass a SegmentationResult or both)")
    labels = label_fields(probs, valid)
    scale = 255.0 if probs.dtype == np.uint8 else 1.0
    ext = 1.0 - probs[0].astype(np.float64) / scale
    prob_sum = np.bincount(labels.ravel(), weights=ext.ravel(), minlength=int(labels.max()) + 1)
    return labels_to_frame(labels, prob_sum, transform, crs, min_area_m2=min_area_m2, simplify_px=simplify_px)


def polygonize_file(probs_tif: str | Path, *, min_area_m2: float = MIN_AREA_M2,
                    simplify_px: float = SIMPLIFY_PX) -> Any:
    """Field polygons from a probabilities GeoTIFF written by `predict_raster_to_file`.

    Reads the file in row strips; the only whole-raster state is the int32 label array and,
    while labelling, two boolean masks (about 6 bytes per pixel: ~0.7 GB for a 10,980^2 tile).
    """
    import rasterio
    from rasterio.windows import Window

    try:
        src = rasterio.open(probs_tif)
    except rasterio.errors.RasterioError as exc:
        raise InputError(f"{probs_tif} is not a readable probabilities GeoTIFF ({exc})") from exc
    with src:
        if src.count != 3 or src.dtypes[0] != "uint8":
            raise InputError(f"{probs_tif} is not a probabilities file (3 uint8 bands expected, found "
                             f"{src.count} {src.dtypes[0]}); write it with `assets fields detect --probabilities`")
        H, W = src.height, src.width
        step = max(1, min(H, (1 << 22) // max(W, 1)))
        seeds = np.empty((H, W), dtype=bool)
        extent = np.empty((H, W), dtype=bool)
        for r0 in range(0, H, step):
            n = min(step, H - r0)
            seeds[r0:r0 + n], extent[r0:r0 + n] = seed_and_extent(src.read(window=Window(0, r0, W, n)), None)
        labels = label_masks(seeds, extent)
        del seeds, extent
        n_labels = int(labels.max())
        prob_sum = np.zeros(n_labels + 1, dtype=np.float64)
        for r0 in range(0, H, step):  # second pass: mean field probability per label, strip by strip
            n = min(step, H - r0)
            p0 = src.read(1, window=Window(0, r0, W, n))
            prob_sum += np.bincount(labels[r0:r0 + n].ravel(), weights=(255 - p0).ravel().astype(np.float64),
                                    minlength=n_labels + 1)
        transform, crs = src.transform, src.crs
    counts, keep = _kept_labels(labels, transform, crs, min_area_m2)
    ids, polys = _vectorise(labels, keep, transform, simplify_px) if keep.any() else (np.zeros(0, np.int64), [])
    del labels  # the largest array: free it before the vector stage allocates
    return _frame(ids, polys, counts, prob_sum / 255.0, transform, crs, min_area_m2=min_area_m2,
                  simplify_px=simplify_px)


def labels_to_frame(labels: np.ndarray, prob_sum: np.ndarray | None, transform: Any, crs: Any, *,
                    min_area_m2: float = MIN_AREA_M2, simplify_px: float = SIMPLIFY_PX) -> Any:
    """Instance label raster -> EPSG:4326 GeoDataFrame (see `polygonize`).

    ``prob_sum[k]`` is the sum of field probability over label k's pixels. Vectorises the label
    raster strip by strip (bounded temporary memory) and re-joins fields cut by strip edges.
    """
    counts, keep = _kept_labels(labels, transform, crs, min_area_m2)
    ids, polys = _vectorise(labels, keep, transform, simplify_px) if keep.any() else (np.zeros(0, np.int64), [])
    return _frame(ids, polys, counts, prob_sum, transform, crs, min_area_m2=min_area_m2, simplify_px=simplify_px)


def _kept_labels(labels: np.ndarray, transform: Any, crs: Any, min_area_m2: float) -> tuple[np.ndarray, np.ndarray]:
    """Pixel count per label and which labels are big enough to vectorise (a cheap pre-filter in
    pixel units; the exact UTM area filter runs on the polygons)."""
    n = int(labels.max()) if labels.size else 0
    counts = label_counts(labels, n)
    px_area = abs(transform.a * transform.e - transform.b * transform.d)
    keep = counts * px_area >= 0.5 * min_area_m2 if crs.is_projected else counts >= 1
    keep[0] = False
    return counts, keep


def _frame(ids: np.ndarray, polys: list[Any], counts: np.ndarray, prob_sum: np.ndarray | None, transform: Any,
           crs: Any, *, min_area_m2: float, simplify_px: float) -> Any:
    import geopandas as gpd

    if not len(ids):
        return gpd.GeoDataFrame({c: [] for c in ("field_id", "area_ha", "field_prob", "n_pixels")},
                                geometry=[], crs="EPSG:4326")
    gs = gpd.GeoSeries(polys, crs=crs)
    del polys
    utm = gs.to_crs(gs.estimate_utm_crs()) if not _is_utm(crs) else gs
    area_m2 = utm.area.to_numpy()
    field_prob = prob_sum[ids] / counts[ids] if prob_sum is not None else np.ones(len(ids))
    frame = gpd.GeoDataFrame(
        {
            "field_id": np.arange(1, len(ids) + 1, dtype=np.int64),
            "area_ha": np.round(area_m2 / 1e4, 4),
            "field_prob": np.round(field_prob.astype(np.float64), 4),
            "n_pixels": counts[ids].astype(np.int64),
        },
        geometry=gs.values,
        crs=crs,
    )
    frame = frame[area_m2 >= min_area_m2].reset_index(drop=True)
    frame["field_id"] = np.arange(1, len(frame) + 1, dtype=np.int64)
    return frame.to_crs("EPSG:4326")


def _vectorise(labels: np.ndarray, keep: np.ndarray, transform: Any,
               simplify_px: float = SIMPLIFY_PX) -> tuple[np.ndarray, list[Any]]:
    """Polygons of the kept labels, strip by strip; each strip's rings become GEOS geometries in one
    vectorised call (GeoArrow layout) so no per-vertex Python objects outlive a strip. Pixel
    staircases are simplified at once (pieces cut by a strip edge only after they are re-joined
    by a union), which keeps memory at a few vertices per field instead of one per edge pixel."""
    import shapely
    from rasterio import features

    tol = simplify_px * abs(transform.a)

    piece_arrays, value_arrays = [], []
    for r0 in range(0, labels.shape[0], _STRIP):
        lab = labels[r0:r0 + _STRIP]
        mask = keep[lab]
        if not mask.any():
            continue
        t = transform @ transform.translation(0, r0)
        coords: list[Any] = []
        ring_off, poly_off, values = [0], [0], []
        for geom, value in features.shapes(lab, mask=mask, transform=t, connectivity=4):
            rings = geom["coordinates"]
            for ring in rings:
                coords.extend(ring)
                ring_off.append(ring_off[-1] + len(ring))
            poly_off.append(poly_off[-1] + len(rings))
            values.append(int(value))
        del mask
        if values:
            geoms = shapely.from_ragged_array(
                shapely.GeometryType.POLYGON, np.asarray(coords, dtype=np.float64),
                (np.asarray(ring_off, dtype=np.int64), np.asarray(poly_off, dtype=np.int64)),
            )
            vals = np.asarray(values, dtype=np.int64)
            if tol > 0:
                cut = np.isin(vals, np.concatenate([lab[0], lab[-1]]))  # may continue in another strip
                geoms[~cut] = shapely.simplify(geoms[~cut], tol, preserve_topology=True)
            piece_arrays.append(geoms)
            value_arrays.append(vals)
        del coords
    if not value_arrays:
        return np.zeros(0, dtype=np.int64), []
    pieces = np.concatenate(piece_arrays)
    vals = np.concatenate(value_arrays)
    order = np.argsort(vals, kind="stable")
    vals, pieces = vals[order], pieces[order]
    ids, starts, counts = np.unique(vals, return_index=True, return_counts=True)
    polys = list(pieces[starts])
    for j in np.flatnonzero(counts > 1):
        polys[j] = shapely.union_all(pieces[starts[j]:starts[j] + counts[j]])
        if tol > 0:
            polys[j] = shapely.simplify(polys[j], tol, preserve_topology=True)
    return ids, polys


def _is_utm(crs: Any) -> bool:
    from pyproj.exceptions import CRSError
    from rasterio.errors import CRSError as RasterioCRSError

    try:
        return bool(crs.to_epsg()) and (32601 <= crs.to_epsg() <= 32660 or 32701 <= crs.to_epsg() <= 32760)
    except (CRSError, RasterioCRSError):  # a custom CRS pyproj cannot match to an EPSG code
        return False


def write_fields(frame: Any, out: str | Path) -> Path:
    """Write polygons by extension: .parquet (GeoParquet), .geojson/.json, .gpkg. Atomic replace."""
    out = Path(out)
    suffix = out.suffix.lower()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp{suffix}")
    if tmp.exists():
        tmp.unlink()
    if suffix in (".parquet", ".geoparquet"):
        frame.to_parquet(tmp)
    elif suffix in (".geojson", ".json"):
        frame.to_file(tmp, driver="GeoJSON")
    elif suffix == ".gpkg":
        frame.to_file(tmp, driver="GPKG", layer="fields")
    else:
        raise InputError(f"unknown output format {out.suffix!r}; use .gpkg, .geojson or .parquet")
    tmp.replace(out)
    return out
