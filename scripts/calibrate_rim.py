"""Where do detected fields sit against the register's parcels? (`Settings.boundary_rim_weight`)

An inflated drawing is valued at the detected field it holds, so a detected field that carries a
ring of verge pays the fraudster for it. This measures the bias on the bundled season: the
verification's own instances (`boundary.field_instances` on the reference tile's segmentation and
the season's NDVI) against the Danish register's parcels of >= 1 ha, for each parcel the instance
overlapping it most, kept where their IoU is >= 0.7 (a well-detected field; a split or merged one
says nothing about where an edge sits). For each rim weight w it prints the median of
(instance pixels - (1 - w) x outer-rim pixels) / parcel pixels, separately for the segmentation's
training columns (where the weight is chosen) and its held-out eastern strip (x >= 515,800 m E).
Last line: one JSON object.

    python scripts/calibrate_rim.py
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = next((p for p in (REPO.parent / "shared" / "data", Path("/work/shared/data")) if p.is_dir()), None)
HELD_OUT_FROM_X = 515_800.0  # the segmentation card's held-out strip
WEIGHTS = np.round(np.linspace(0.0, 1.0, 21), 2)


def instance_rows(tiles_dir: Path) -> np.ndarray:
    """(n, 4): parcel pixels, instance pixels, instance outer-rim pixels, held out (0/1)."""
    import geopandas as gpd
    import rasterio
    from rasterio.features import rasterize

    from assets import boundary as bnd
    from assets.config import Settings
    from assets.imagery.tiles import open_tile, read_reflectance
    from assets.pipeline import catalogue_tiles, load_models, reference_tiles, segment_tile

    tmp = Path(tempfile.mkdtemp())
    settings = Settings(db_path=tmp / "calibrate.duckdb", tiles_dir=tiles_dir)
    tiles = catalogue_tiles(settings.db_path, tiles_dir, settings=settings)
    ref = reference_tiles(tiles)[0]
    with rasterio.open(segment_tile(ref, load_models(settings).segmenter, tmp / "seg")) as src:
        probs, transform, shape, crs = src.read([1, 2, 3]), src.transform, (src.height, src.width), src.crs
    red_nir = []
    for t in tiles:
        with open_tile(t.path) as h:
            if {"red", "nir"} <= set(h.bands):
                refl, valid = read_reflectance(h, ["red", "nir"])
                red_nir.append((refl[0], refl[1], valid))
    labels = bnd.field_instances(probs, bnd.ndvi_stack(red_nir), settings)
    n = int(labels.max()) + 1
    size = np.bincount(labels.ravel(), minlength=n)
    rim = np.bincount(labels[bnd.outer_rim(labels)], minlength=n)
    parcels = gpd.read_file(SHARED / "denmark" / "parcels_2016.gpkg").to_crs(crs)
    parcels = parcels[parcels.is_valid & ~parcels.is_empty & (parcels.area >= 1e4)].reset_index(drop=True)
    pid = rasterize([(g, i + 1) for i, g in enumerate(parcels.geometry)], out_shape=shape, transform=transform,
                    dtype="int32")
    rows = []
    for i, g in enumerate(parcels.geometry):
        on = pid == i + 1
        ids, counts = np.unique(labels[on], return_counts=True)
        counts, ids = counts[ids > 0], ids[ids > 0]
        if not len(ids):
            continue
        j, inter = ids[np.argmax(counts)], counts.max()
        if inter / (on.sum() + size[j] - inter) >= 0.7:
            rows.append((on.sum(), size[j], rim[j], g.centroid.x >= HELD_OUT_FROM_X))
    return np.array(rows, float)


def main() -> None:
    if SHARED is None:
        sys.exit("../shared/data is needed for the Danish parcels")
    rows = instance_rows(REPO / "sample_tiles")
    out: dict[str, dict] = {}
    for name, sel in (("training_columns", rows[:, 3] == 0), ("held_out_strip", rows[:, 3] == 1)):
        parcel, size, rim = rows[sel, 0], rows[sel, 1], rows[sel, 2]
        medians = {float(w): float(np.median((size - (1 - w) * rim) / parcel)) for w in WEIGHTS}
        best = min(medians, key=lambda w: abs(medians[w] - 1.0))
        out[name] = {"parcels": int(sel.sum()), "median_ratio_rim_whole": round(medians[1.0], 3),
                     "weight_at_median_1": best, "median_ratio_at_0.75": round(medians[0.75], 3)}
        print(name, {w: round(m, 3) for w, m in medians.items()})
    print(json.dumps(out))


if __name__ == "__main__":
    main()
