"""Train the field segmentation U-Net on a labelled scene with a spatial hold-out strip.

Labels come from rasterising a parcel register: class 1 = parcel interior, class 2 = the
one-pixel inner rim of every parcel (so two touching parcels are separated by a two-pixel
boundary), class 0 = everything else. The eastern strip of the scene (``holdout_frac`` of the
columns) is never seen in training; a ``gap_px`` band between the two parts is dropped from both
so that training crops cannot overlap validation pixels.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from assets.errors import InputError
from assets.models.segment import CLASSES, Segmenter, build_unet, save


@dataclass
class TrainConfig:
    widths: tuple[int, ...] = (8, 16, 32, 64)
    bands: tuple[str, ...] = ("red", "green", "blue")
    crop: int = 128
    batch: int = 8
    steps: int = 1500
    lr: float = 3e-3
    weight_decay: float = 1e-4
    class_weights: tuple[float, float, float] = (1.0, 1.0, 2.5)
    holdout_frac: float = 0.25
    gap_px: int = 8
    seed: int = 0
    threads: int = 1
    extent_crops: int = 0  # crops per batch from an extent scene (`ExtentScene`), besides ``batch``
    extent_weight: float = 1.0


@dataclass
class SceneLabels:
    """A labelled scene: reflectance, class mask, parcel ids and the geo frame."""

    image: np.ndarray  # (bands, H, W) float32 reflectance
    classes: np.ndarray  # (H, W) uint8 0/1/2
    parcel_ids: np.ndarray  # (H, W) int32, 0 = no parcel
    transform: Any
    crs: Any
    split_col: int  # first held-out column


@dataclass
class ExtentScene:
    """A scene labelled only farmland / not farmland (e.g. OpenStreetMap land use), no parcels.

    It teaches what is *not* a field in a landscape the parcel scene lacks (forest, scrub, water,
    villages) and what farmland looks like there; its boundary class is never supervised. The
    columns from ``split_col`` on are held out for `extent_scores`."""

    image: np.ndarray  # (3, H, W) float32 reflectance, red, green, blue
    extent: np.ndarray  # (H, W) uint8: 0 not farmland, 1 farmland, 255 unlabelled (ignored)
    landuse: np.ndarray  # (H, W) int16 index into ``names`` (-1: none), for per-class scores
    names: tuple[str, ...]
    split_col: int
    polygons: np.ndarray  # (H, W) int32 polygon number + 1 (0: none), for per-polygon scores


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
    from assets.imagery.masks import usable_mask

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


def boundary_classes(ids: np.ndarray) -> np.ndarray:
    """Instance ids -> 0 background / 1 interior / 2 rim (pixel with a differing 4-neighbour)."""
    pad = np.pad(ids, 1, mode="edge")
    differs = np.zeros(ids.shape, dtype=bool)
    for dy, dx in ((0, 1), (2, 1), (1, 0), (1, 2)):
        differs |= pad[dy:dy + ids.shape[0], dx:dx + ids.shape[1]] != ids
    classes = np.where(ids > 0, 1, 0).astype(np.uint8)
    classes[(ids > 0) & differs] = 2
    return classes


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


def _augment(x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Dihedral flips/rotations plus radiometric jitter (brightness, per-band gain, gamma, haze, noise)."""
    k = int(rng.integers(4))
    x, y = np.rot90(x, k, axes=(1, 2)), np.rot90(y, k, axes=(0, 1))
    if rng.random() < 0.5:
        x, y = x[:, :, ::-1], y[:, ::-1]
    x = np.clip(x, 0, None)
    x = x * rng.uniform(0.6, 1.6) * rng.uniform(0.85, 1.15, size=(x.shape[0], 1, 1))
    x = np.power(np.clip(x, 1e-4, None), rng.uniform(0.8, 1.25))
    x = x + rng.uniform(-0.02, 0.05)
    x = x + rng.normal(0, rng.uniform(0, 0.01), size=x.shape)
    return np.ascontiguousarray(x, dtype=np.float32), np.ascontiguousarray(y)


def train(scene: SceneLabels, cfg: TrainConfig, out: str | Path, *, version: str, log: Any = print,
          extent: ExtentScene | None = None) -> Segmenter:
    """Train on the columns left of the hold-out strip, save the checkpoint, return the model.

    With ``extent`` (and ``cfg.extent_crops``), each step also sees crops of that scene's training
    columns, supervised as farmland (field or boundary) vs not (background) where labelled."""
    import torch

    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    rng = np.random.default_rng(cfg.seed)
    train_w = scene.split_col - cfg.gap_px
    img = scene.image[:, :, :train_w]
    lab = scene.classes[:, :train_w]
    mean = img.reshape(img.shape[0], -1).mean(1)
    std = img.reshape(img.shape[0], -1).std(1) + 1e-6
    net = build_unet(len(cfg.bands), cfg.widths, len(CLASSES)).to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps, pct_start=0.1)
    weights = torch.tensor(cfg.class_weights, dtype=torch.float32)
    H, W = lab.shape
    c = cfg.crop
    t0 = time.perf_counter()
    net.train()
    for step in range(cfg.steps):
        xs, ys = [], []
        for _ in range(cfg.batch):
            r0, c0 = int(rng.integers(0, H - c + 1)), int(rng.integers(0, W - c + 1))
            x, y = _augment(img[:, r0:r0 + c, c0:c0 + c], lab[r0:r0 + c, c0:c0 + c], rng)
            xs.append((x - mean[:, None, None]) / std[:, None, None])
            ys.append(y)
        xb = torch.from_numpy(np.stack(xs)).contiguous(memory_format=torch.channels_last)
        yb = torch.from_numpy(np.stack(ys).astype(np.int64))
        logits = net(xb)
        loss = torch.nn.functional.cross_entropy(logits, yb, weight=weights)
        ext_loss = torch.zeros(())
        if extent is not None and cfg.extent_crops:
            ext_loss = _extent_loss(net, extent, cfg, mean, std, rng)
        # Soft Dice on the field extent (interior + boundary) sharpens the extent IoU we report.
        p = torch.softmax(logits, 1)
        ext_p = 1 - p[:, 0]
        ext_t = (yb > 0).float()
        dice = 1 - (2 * (ext_p * ext_t).sum() + 1) / (ext_p.sum() + ext_t.sum() + 1)
        total = loss + 0.5 * dice + cfg.extent_weight * ext_loss
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()
        sched.step()
        if step % 100 == 0 or step == cfg.steps - 1:
            log(f"step {step:5d} ce {loss.item():.4f} dice {dice.item():.4f} extent {ext_loss.item():.4f} "
                f"{time.perf_counter() - t0:.0f}s")
    net.eval()
    model = Segmenter(version=version, bands=cfg.bands, net=net, mean=mean.astype(np.float32), std=std.astype(np.float32))
    metrics = evaluate(model, scene)
    if extent is not None:
        metrics.update(extent_scores(model, extent))
    model.metrics = metrics
    log(json.dumps(metrics))
    save(out, net, version=version, bands=cfg.bands, widths=cfg.widths, mean=mean, std=std, metrics=metrics,
         extra={"train_config": asdict(cfg), "train_seconds": round(time.perf_counter() - t0, 1)})
    return model


def _extent_loss(net: Any, scene: ExtentScene, cfg: TrainConfig, mean: np.ndarray, std: np.ndarray,
                 rng: np.random.Generator) -> Any:
    """Farmland-vs-not NLL on crops of the extent scene's training columns (unlabelled pixels ignored)."""
    import torch

    c = cfg.crop
    H, W = scene.extent.shape[0], scene.split_col - cfg.gap_px
    xs, ys = [], []
    for _ in range(cfg.extent_crops):
        r0, c0 = int(rng.integers(0, H - c + 1)), int(rng.integers(0, W - c + 1))
        x, y = _augment(scene.image[:, r0:r0 + c, c0:c0 + c], scene.extent[r0:r0 + c, c0:c0 + c], rng)
        xs.append((x - mean[:, None, None]) / std[:, None, None])
        ys.append(y)
    xb = torch.from_numpy(np.stack(xs)).contiguous(memory_format=torch.channels_last)
    yb = torch.from_numpy(np.stack(ys).astype(np.int64))
    logp = torch.log_softmax(net(xb), 1)
    not_farm, farm = yb == 0, yb == 1
    n = int((not_farm | farm).sum())
    if n == 0:
        return torch.zeros(())
    return -(logp[:, 0][not_farm].sum() + torch.logsumexp(logp[:, 1:], 1)[farm].sum()) / n


def holdout_region(scene: SceneLabels) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The held-out strip's image, classes and parcel ids."""
    s = scene.split_col
    return scene.image[:, :, s:], scene.classes[:, s:], scene.parcel_ids[:, s:]


def evaluate(model: Segmenter, scene: SceneLabels) -> dict[str, float]:
    """Field-pixel IoU and per-parcel IoU on the held-out strip (predicted on the strip alone)."""
    from assets.fields.polygonize import label_fields

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

    from assets.fields.polygonize import label_fields

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

