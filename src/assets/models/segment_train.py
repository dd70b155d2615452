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
from typing import Any, Callable

import numpy as np

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
    columns from ``split_col`` on are held out (`assets.fields.scenes.extent_scores`)."""

    image: np.ndarray  # (3, H, W) float32 reflectance, red, green, blue
    extent: np.ndarray  # (H, W) uint8: 0 not farmland, 1 farmland, 255 unlabelled (ignored)
    landuse: np.ndarray  # (H, W) int16 index into ``names`` (-1: none), for per-class scores
    names: tuple[str, ...]
    split_col: int
    polygons: np.ndarray  # (H, W) int32 polygon number + 1 (0: none), for per-polygon scores


def boundary_classes(ids: np.ndarray) -> np.ndarray:
    """Instance ids -> 0 background / 1 interior / 2 rim (pixel with a differing 4-neighbour)."""
    pad = np.pad(ids, 1, mode="edge")
    differs = np.zeros(ids.shape, dtype=bool)
    for dy, dx in ((0, 1), (2, 1), (1, 0), (1, 2)):
        differs |= pad[dy:dy + ids.shape[0], dx:dx + ids.shape[1]] != ids
    classes = np.where(ids > 0, 1, 0).astype(np.uint8)
    classes[(ids > 0) & differs] = 2
    return classes


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
          extent: ExtentScene | None = None,
          scorer: Callable[[Segmenter], dict[str, float]] | None = None) -> Segmenter:
    """Train on the columns left of the hold-out strip, save the checkpoint, return the model.

    ``scorer`` gives the held-out metrics stored in the checkpoint (`assets.fields.scenes.scorer`
    scores the strip with the production post-processing); without it none are stored.

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
    metrics = scorer(model) if scorer is not None else {}
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


