"""Labelled scenes the segmentation is trained and scored on, read from files.

A parcel register rasterised over a scene (`load_scene`) gives the training labels and the
held-out strip's per-parcel scores; a land-use map (`load_extent_scene`) gives farmland vs not in
a landscape the register lacks. Scoring polygonises with the production post-processing
(`label_fields`), so the figures are those of the fields the platform would detect. Kept out of
`assets.models` so the models stay torch only (no files but weights, no domain imports).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from assets.errors import InputError
from assets.fields.polygonize import label_fields
from assets.imagery.masks import usable_mask
from assets.models.segment import Segmenter
from assets.models.segment_train import ExtentScene, SceneLabels, boundary_classes


def load_extent_scene(band_paths: Sequence[str | Path], landuse_path: str | Path, farmland: Sequence[str],
                      not_farmland: Sequence[str], *, column: str = "fclass", holdout_frac: float = 0.5) -> ExtentScene:
    """Red, green, blue rasters (uint16 reflectance x 10000, one file each) and land-use polygons
    whose ``column`` names a class: those in ``farmland`` are 1, in ``not_farmland`` 0, others ignored."""
    import geopandas as gpd
    import rasterio
    from rasterio import features

    bands = []
    for path in band_paths:
        with rasterio.open(path) as src:
            bands.append(src.read(1).astype(np.float32) / 10000.0)
            transform, crs, shape = src.transform, src.crs, (src.height, src.width)
    polys = gpd.read_file(landuse_path).to_crs(crs)
    names = tuple(sorted(set(polys[column])))
    landuse = features.rasterize([(g, names.index(c)) for g, c in zip(polys.geometry, polys[column])],
                                 out_shape=shape, transform=transform, dtype="int16", fill=-1)
    polygons = features.rasterize([(g, i + 1) for i, g in enumerate(polys.geometry)], out_shape=shape,
                                  transform=transform, dtype="int32", fill=0)
    extent = np.full(shape, 255, dtype=np.uint8)
    for value, classes in ((1, farmland), (0, not_farmland)):
        for c in classes:
            if c in names:
                extent[landuse == names.index(c)] = value
    return ExtentScene(np.stack(bands), extent, landuse, names, int(round(shape[1] * (1 - holdout_frac))), polygons)


def extent_scores(model: Segmenter, scene: ExtentScene, *, min_polygon_px: int = 100,
                  farmland_fraction: float = 0.5) -> dict[str, float]:
    """On the held-out columns (predicted on them alone, clouds left out as in production): the share
    of each land-use class's pixels called field, and the share of its polygons (wholly held out, >=
    ``min_polygon_px`` clear pixels) that a claim drawn on them would pass as farmland (field on >=
    ``farmland_fraction`` of it, `Settings.min_farmland_fraction`)."""
    s = scene.split_col
    img = scene.image[:, :, s:]
    usable = usable_mask(img, np.ones(img.shape[1:], bool), ("red", "green", "blue"))
    field = model.predict_proba(img)[0] < 0.5
    polys = scene.polygons[:, s:]
    whole = set(np.unique(polys[polys > 0]).tolist()) - set(np.unique(scene.polygons[:, :s]).tolist())
    out: dict[str, float] = {}
    for i, name in enumerate(scene.names):
        m = (scene.landuse[:, s:] == i) & usable
        if m.sum() >= min_polygon_px:
            out[f"holdout_field_share_{name}"] = round(float(field[m].mean()), 4)
        passed = []
        for pid in np.unique(polys[m]).tolist():
            pm = (polys == pid) & m
            if pid in whole and pm.sum() >= min_polygon_px:
                passed.append(float(field[pm].mean()) >= farmland_fraction)
        if passed:
            out[f"holdout_polygons_farmland_{name}"] = round(float(np.mean(passed)), 4)
            out[f"holdout_polygons_n_{name}"] = len(passed)
    return out


def rasterise_labels(parcels: Any, shape: tuple[int, int], transform: Any) -> tuple[np.ndarray, np.ndarray]:
    """Parcel polygons -> (classes uint8, ids int32). Boundary = pixels whose 4-neighbour differs."""
    from rasterio import features

    geoms = [(geom, i + 1) for i, geom in enumerate(parcels.geometry) if geom is not None and not geom.is_empty]
    ids = features.rasterize(geoms, out_shape=shape, transform=transform, dtype="int32", fill=0)
    classes = boundary_classes(ids)
    return classes, ids


def load_scene(image_path: str | Path, parcels_path: str | Path, holdout_frac: float = 0.25) -> SceneLabels:
    """Read the labelled scene (uint16 reflectance x 10000, bands red, green, blue)."""
    import geopandas as gpd
    import rasterio

    with rasterio.open(image_path) as src:
        if src.count < 3:
            raise InputError(f"{image_path}: training needs red, green, blue bands, found {src.count}")
        img = src.read([1, 2, 3]).astype(np.float32) / 10000.0
        transform, crs = src.transform, src.crs
    parcels = gpd.read_file(parcels_path).to_crs(crs)
    classes, ids = rasterise_labels(parcels, img.shape[1:], transform)
    split_col = int(round(img.shape[2] * (1 - holdout_frac)))
    return SceneLabels(img, classes, ids, transform, crs, split_col)


def scorer(scene: SceneLabels, extent: ExtentScene | None = None) -> Callable[[Segmenter], dict[str, float]]:
    """The held-out metrics `segment_train.train` stores in a checkpoint: the strip's field and
    per-parcel IoU, and with ``extent`` the farmland-vs-not scores of its held-out half."""
    def score_model(model: Segmenter) -> dict[str, float]:
        metrics = evaluate(model, scene)
        if extent is not None:
            metrics.update(extent_scores(model, extent))
        return metrics
    return score_model


def holdout_region(scene: SceneLabels) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The held-out strip's image, classes and parcel ids."""
    s = scene.split_col
    return scene.image[:, :, s:], scene.classes[:, s:], scene.parcel_ids[:, s:]


def evaluate(model: Segmenter, scene: SceneLabels) -> dict[str, float]:
    """Field-pixel IoU and per-parcel IoU on the held-out strip (predicted on the strip alone)."""
    img, classes, ids = holdout_region(scene)
    probs = model.predict_proba(img)
    valid = np.ones(classes.shape, dtype=bool)
    return score(probs, valid, classes, ids, label_fields(probs, valid))


def score(probs: np.ndarray, valid: np.ndarray, classes: np.ndarray, ids: np.ndarray,
          labels: np.ndarray, min_parcel_px: int = 20) -> dict[str, float]:
    """Pixel IoU of the field extent and mean/median best-match IoU over parcels."""
    pred_ext = (probs[0] < 0.5) & valid
    true_ext = classes > 0
    inter = np.logical_and(pred_ext, true_ext).sum()
    union = np.logical_or(pred_ext, true_ext).sum()
    pred_cls = probs.argmax(0)
    b_inter = np.logical_and(pred_cls == 2, classes == 2).sum()
    b_union = np.logical_or(pred_cls == 2, classes == 2).sum()
    ious = []
    for pid in np.unique(ids[ids > 0]):
        m = ids == pid
        if m.sum() < min_parcel_px:
            continue
        cand = labels[m]
        cand = cand[cand > 0]
        if cand.size == 0:
            ious.append(0.0)
            continue
        best = np.bincount(cand).argmax()
        pm = labels == best
        ious.append(float(np.logical_and(m, pm).sum() / np.logical_or(m, pm).sum()))
    arr = np.asarray(ious) if ious else np.zeros(1)
    return {
        "field_pixel_iou": round(float(inter / max(union, 1)), 4),
        "boundary_pixel_iou": round(float(b_inter / max(b_union, 1)), 4),
        "parcel_iou_mean": round(float(arr.mean()), 4),
        "parcel_iou_median": round(float(np.median(arr)), 4),
        "parcels_iou_gt_0_5": round(float((arr > 0.5).mean()), 4),
        "n_parcels": int(len(ious)),
    }


def overlay_figure(model: Segmenter, scene: SceneLabels, out_png: str | Path) -> Path:
    """Card figure: held-out strip with parcels (yellow) vs predicted fields (cyan), and the
    predicted class probabilities (red background, green field, blue boundary)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from rasterio import features

    img, classes, ids = holdout_region(scene)
    probs = model.predict_proba(img)
    labels = label_fields(probs, np.ones(classes.shape, dtype=bool))
    rgb = np.clip(img.transpose(1, 2, 0) / np.percentile(img, 99.5), 0, 1)
    fig, axes = plt.subplots(1, 3, figsize=(12, 8.5))
    for ax, title in zip(axes, ("parcels (yellow) vs predicted fields (cyan)", "probabilities: bg / field / boundary",
                                "predicted field instances")):
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    axes[0].imshow(rgb)
    for lab, colour in ((ids, "yellow"), (labels, "cyan")):
        for geom, _ in features.shapes(lab, mask=lab > 0, connectivity=4):
            for ring in geom["coordinates"]:
                xy = np.asarray(ring) - 0.5
                axes[0].plot(xy[:, 0], xy[:, 1], color=colour, lw=0.8)
    axes[1].imshow(probs.transpose(1, 2, 0))
    rng = np.random.default_rng(0)
    colours = rng.uniform(0.2, 1.0, size=(int(labels.max()) + 1, 3))
    colours[0] = 0
    axes[2].imshow(colours[labels])
    m = model.metrics or {}
    fig.suptitle(f"held-out strip (eastern {scene.image.shape[2] - scene.split_col} columns): field IoU "
                 f"{m.get('field_pixel_iou', float('nan')):.3f}, mean parcel IoU {m.get('parcel_iou_mean', float('nan')):.3f}",
                 fontsize=10)
    fig.tight_layout()
    out_png = Path(out_png)
    fig.savefig(out_png, dpi=90)
    plt.close(fig)
    return out_png
