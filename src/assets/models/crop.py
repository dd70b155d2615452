"""Crop classifier over NDVI (or multi-band) time series: grid placement, networks, inference.

The model sees every series on one fixed date grid (46 slots, one every 8 days of a year) as two
channels per band: the value linearly interpolated from the *valid* observations only, and the
validity mask. Cloudy or missing dates are dropped through the mask, never imputed as zeros, so a
masked slot's raw value cannot change the output. Sparse acquisitions (5-8 Sentinel-2 dates in a
season) go to their nearest grid slot. Probabilities are temperature-scaled logits of a
(possibly ensembled) network; see ``crop_train`` for how they are fitted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from assets.errors import InputError, ModelError
from assets.models import registry
from assets.models.fusion import fold_batchnorm

ARCH = "crop_net_v1"
N_SLOTS = 46
GRID_DOY: np.ndarray = 1 + 8 * np.arange(N_SLOTS)
"""Day of year of each grid slot (UCR Crop dates are taken as one every 8 days from 1 Jan)."""

UCR_CROP_CLASSES: tuple[str, ...] = (
    "corn", "wheat", "dense building", "industrial building", "diffuse building",
    "temporary meadow", "hardwood", "wasteland", "fallow", "soy", "water", "meadow",
    "softwood", "sunflower", "sorghum", "eucalyptus", "rapeseed", "silage maize", "barley",
    "peas", "poplars", "mineral surface", "gravel pit", "lake",
)  # fmt: skip
"""English names of UCR Crop labels 1..24, in label order."""

CROPLAND: frozenset[str] = frozenset(
    {"corn", "wheat", "temporary meadow", "fallow", "soy", "sunflower", "sorghum", "rapeseed",
     "silage maize", "barley", "peas"}
)  # fmt: skip
"""Classes that are cultivated cropland; every other class is not farmland."""

PREDICT_BATCH = 32768
SPARSE_SLOTS, FULL_SLOTS = 12, 40  # valid-slot counts where the sparse / full temperature applies


# --------------------------------------------------------------------------- grid placement
def to_grid(
    x: np.ndarray, doy: np.ndarray | None = None, mask: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Place series on the 46-slot grid: returns values (n, 46, bands) and validity (n, 46).

    ``x`` is (n, T) or (n, T, bands); ``doy`` (T,) or (n, T) day of year of each column (None means
    the columns already are the grid); ``mask`` (n, T) True where the observation is valid.
    Several valid observations falling in one slot are averaged.
    """
    x = np.asarray(x)
    if x.ndim == 2:
        x = x[:, :, None]
    if x.ndim != 3:
        raise InputError(f"series must be (n, dates) or (n, dates, bands), got shape {x.shape}")
    n, t, b = x.shape
    if n == 0:
        raise InputError("no series to classify (0 rows)")
    if t == 0 or b == 0:
        raise InputError(f"series have no dates or no bands (shape {x.shape})")
    if not np.issubdtype(x.dtype, np.number):
        raise InputError(f"series values must be numbers, got dtype {x.dtype}")
    x = x.astype(np.float32, copy=False)
    if mask is None:
        valid = np.ones((n, t), dtype=bool)
    else:
        valid = np.asarray(mask, dtype=bool)
        if valid.shape != (n, t):
            raise InputError(f"mask must be (n, dates) = {(n, t)}, got {valid.shape}")
    finite = np.isfinite(x).all(axis=2)
    bad = valid & ~finite
    if bad.any():
        rows = np.flatnonzero(bad.any(axis=1))[:5].tolist()
        raise InputError(
            f"{int(bad.sum())} valid observations are NaN/inf (first rows {rows}); "
            "mark cloudy/missing dates False in the mask instead of NaN"
        )
    if doy is None:
        if t != N_SLOTS:
            raise InputError(
                f"series have {t} dates but no day-of-year was given; pass doy (one per date) "
                f"or give exactly {N_SLOTS} dates on the model grid"
            )
        values = np.where(valid[:, :, None], x, 0.0).astype(np.float32)
        return values, valid.copy()
    doy = np.asarray(doy, dtype=np.float64)
    if doy.ndim == 1 and doy.shape == (t,):
        doy = np.broadcast_to(doy, (n, t))
    if doy.shape != (n, t):
        raise InputError(f"doy must be (dates,) or (n, dates) matching {(n, t)}, got {doy.shape}")
    if not np.isfinite(doy[valid]).all() or (doy[valid] < 1).any() or (doy[valid] > 366).any():
        raise InputError("day-of-year values must be finite numbers in 1..366")
    slot = np.clip(np.rint((np.nan_to_num(doy, nan=1.0) - 1) / 8.0), 0, N_SLOTS - 1).astype(np.int64)
    flat = (np.arange(n)[:, None] * N_SLOTS + slot)[valid]
    counts = np.bincount(flat, minlength=n * N_SLOTS).reshape(n, N_SLOTS)
    values = np.empty((n, N_SLOTS, b), dtype=np.float32)
    for band in range(b):
        sums = np.bincount(flat, weights=x[:, :, band][valid], minlength=n * N_SLOTS).reshape(n, N_SLOTS)
        values[:, :, band] = sums / np.maximum(counts, 1)
    return values, counts > 0


def features(values: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Network input (n, 2*bands, 46): values interpolated from valid slots only, plus the mask.

    Between two valid slots the value is linear in time; before the first / after the last valid
    slot it is held constant. Invalid slots' own values never enter the result.
    """
    n, t, b = values.shape
    validf = valid.to(values.dtype)
    if bool(valid.all()):
        return torch.cat([values.transpose(1, 2), validf.unsqueeze(1).expand(n, b, t)], dim=1).contiguous()
    idx = torch.arange(t, device=values.device).expand(n, t)
    prev = torch.where(valid, idx, torch.full_like(idx, -1)).cummax(dim=1).values
    nxt = torch.where(valid, idx, torch.full_like(idx, t)).flip(1).cummin(dim=1).values.flip(1)
    has_prev, has_next = prev >= 0, nxt < t
    p = prev.clamp(min=0)
    q = nxt.clamp(max=t - 1)
    p = torch.where(has_prev, p, q)  # before the first valid slot: use the next one
    q = torch.where(has_next, q, p)  # after the last valid slot: use the previous one
    span = (q - p).clamp(min=1).to(values.dtype)
    w = ((idx - p).to(values.dtype) / span).clamp(0, 1).unsqueeze(-1)
    gp = torch.gather(values, 1, p.unsqueeze(-1).expand(n, t, b))
    gq = torch.gather(values, 1, q.unsqueeze(-1).expand(n, t, b))
    interp = gp + w * (gq - gp)
    interp = torch.where(valid.any(dim=1, keepdim=True).unsqueeze(-1), interp, torch.zeros_like(interp))
    return torch.cat([interp.transpose(1, 2), validf.unsqueeze(1).expand(n, b, t)], dim=1).contiguous()


# --------------------------------------------------------------------------- networks
class TempCNN(nn.Module):
    """TempCNN (Pelletier et al. 2019): conv blocks keep the time axis, a dense head reads phenology."""

    def __init__(self, in_ch: int, n_classes: int, width: int = 64, kernel: int = 5, hidden: int = 256,
                 dropout: float = 0.3, n_slots: int = N_SLOTS) -> None:  # fmt: skip
        super().__init__()
        layers: list[nn.Module] = []
        ch = in_ch
        for _ in range(3):
            layers += [nn.Conv1d(ch, width, kernel, padding=kernel // 2, bias=False), nn.BatchNorm1d(width),
                       nn.ReLU(inplace=True), nn.Dropout(dropout)]  # fmt: skip
            ch = width
        self.conv = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(width * n_slots, hidden, bias=False), nn.BatchNorm1d(hidden),
            nn.ReLU(inplace=True), nn.Dropout(dropout), nn.Linear(hidden, n_classes),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.conv(x))


class MLP(nn.Module):
    """Dense student: a few matrix products per batch, which a CPU runs far faster than convolutions."""

    def __init__(self, in_ch: int, n_classes: int, hidden: int = 512, depth: int = 2, dropout: float = 0.1,
                 n_slots: int = N_SLOTS) -> None:  # fmt: skip
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        dim = in_ch * n_slots
        for _ in range(depth):
            layers += [nn.Linear(dim, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout)]
            dim = hidden
        layers.append(nn.Linear(dim, n_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class ConvStudent(nn.Module):
    """Distilled student: two narrow conv layers give the dense head TempCNN's sense of time
    (shapes shifted by a date) at a few hundred thousand multiply-adds per series. It learns the
    same teachers better than the `MLP` (dev split, complete series: 0.760 vs 0.747; models/crop_card.md)."""

    def __init__(self, in_ch: int, n_classes: int, width: int = 16, kernel: int = 5, hidden: int = 256,
                 dropout: float = 0.2, n_slots: int = N_SLOTS) -> None:  # fmt: skip
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv1d(in_ch, width, kernel, padding=kernel // 2), nn.BatchNorm1d(width), nn.ReLU(inplace=True),
            nn.Conv1d(width, width, kernel, padding=kernel // 2), nn.BatchNorm1d(width), nn.ReLU(inplace=True),
            nn.Flatten(), nn.Dropout(dropout), nn.Linear(width * n_slots, hidden), nn.ReLU(inplace=True),
            nn.Dropout(dropout), nn.Linear(hidden, n_classes),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


BUILDERS: dict[str, type[nn.Module]] = {"tempcnn": TempCNN, "mlp": MLP, "conv": ConvStudent}


class CropNet(nn.Module):
    """Mean of member logits (one member for a distilled student, several for an ensemble)."""

    def __init__(self, members: list[nn.Module]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.members[0](x)
        for m in self.members[1:]:
            out = out + m(x)
        return out / len(self.members)


def build_member(spec: dict[str, Any], in_ch: int, n_classes: int) -> nn.Module:
    """One network from its spec ``{"kind": "tempcnn"|"mlp"|"conv", **kwargs}``."""
    spec = dict(spec)
    kind = spec.pop("kind", None)
    if kind not in BUILDERS:
        raise ModelError(f"unknown crop network kind {kind!r}; expected one of {sorted(BUILDERS)}")
    return BUILDERS[kind](in_ch, n_classes, **spec)


def build_net(config: dict[str, Any]) -> CropNet:
    """The network a checkpoint ``config`` describes (members, bands, classes)."""
    in_ch = 2 * len(config["bands"])
    n_classes = len(config["classes"])
    return CropNet([build_member(s, in_ch, n_classes) for s in config["members"]])


# --------------------------------------------------------------------------- the served model
@dataclass
class CropModel:
    """A loaded crop classifier: calibrated class probabilities for series on any dates."""

    classes: list[str]
    version: str
    net: CropNet
    bands: list[str] = field(default_factory=lambda: ["ndvi"])
    temperature: float = 1.0
    temperature_sparse: float | None = None  # for series with few valid dates (None: same as full)
    config: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.net.eval()
        self._infer = fold_batchnorm(self.net)  # same outputs, faster on a CPU; `net` stays trainable

    def logits(self, x: np.ndarray, doy: np.ndarray | None = None, mask: np.ndarray | None = None) -> np.ndarray:
        """Raw (uncalibrated) ensemble logits, (n, n_classes)."""
        return self._logits(x, doy, mask)[0]

    def _logits(self, x: np.ndarray, doy: np.ndarray | None, mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        x = np.asarray(x)
        if x.ndim == 2 and len(self.bands) != 1:
            raise InputError(f"model needs {len(self.bands)} bands {self.bands}; got single-band (n, dates) input")
        if x.ndim == 3 and x.shape[2] != len(self.bands):
            raise InputError(f"model needs {len(self.bands)} bands {self.bands}; input has {x.shape[2]}")
        values, valid = to_grid(x, doy, mask)
        empty = ~valid.any(axis=1)
        if empty.any():
            rows = np.flatnonzero(empty)[:5].tolist()
            raise InputError(
                f"{int(empty.sum())} series have no valid date at all (first rows {rows}); drop them before classifying"
            )
        out = np.empty((len(values), len(self.classes)), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(values), PREDICT_BATCH):
                v = torch.from_numpy(values[start : start + PREDICT_BATCH])
                m = torch.from_numpy(valid[start : start + PREDICT_BATCH])
                out[start : start + len(v)] = self._infer(features(v, m)).numpy()
        return out, valid.sum(axis=1)

    def temperatures(self, n_valid: np.ndarray) -> np.ndarray:
        """Per-row temperature: the sparse one up to 12 valid slots, the full one from 40, linear between."""
        if self.temperature_sparse is None:
            return np.full(len(n_valid), self.temperature)
        w = np.clip((np.asarray(n_valid, dtype=np.float64) - SPARSE_SLOTS) / (FULL_SLOTS - SPARSE_SLOTS), 0, 1)
        return w * self.temperature + (1 - w) * self.temperature_sparse

    def predict_proba(self, x: np.ndarray, doy: np.ndarray | None = None, mask: np.ndarray | None = None) -> np.ndarray:
        """Calibrated probabilities (n, n_classes), rows summing to 1, columns in ``classes`` order."""
        z, n_valid = self._logits(x, doy, mask)
        if self.temperature_sparse is None or (n_valid >= FULL_SLOTS).all():
            return softmax(z / self.temperature)
        return softmax(z / self.temperatures(n_valid)[:, None])

    def predict(self, x: np.ndarray, doy: np.ndarray | None = None, mask: np.ndarray | None = None) -> list[str]:
        """Most probable class name per series."""
        proba = self.predict_proba(x, doy, mask)
        return [self.classes[i] for i in proba.argmax(axis=1)]

    def is_cropland(self, proba: np.ndarray) -> np.ndarray:
        """Probability that each series is cultivated cropland (sum over the CROPLAND classes)."""
        cols = [i for i, c in enumerate(self.classes) if c in CROPLAND]
        return np.asarray(proba)[:, cols].sum(axis=1)


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def checkpoint(model: CropModel) -> dict[str, Any]:
    """The registry checkpoint dict for ``model``."""
    config = dict(model.config, classes=list(model.classes), bands=list(model.bands))
    state = {k: v.detach().clone() for k, v in model.net.state_dict().items()}
    return {"arch": ARCH, "version": model.version, "config": config, "state_dict": state,
            "temperature": float(model.temperature), "temperature_sparse": model.temperature_sparse,
            "meta": dict(model.meta)}  # fmt: skip


def save(model: CropModel, path: str | Path) -> Path:
    """Write ``model`` as a checkpoint that `load` reads back."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(checkpoint(model), path)
    return path


def from_checkpoint(ckpt: dict[str, Any]) -> CropModel:
    """Rebuild a `CropModel` from a checkpoint dict (already arch-checked)."""
    config = ckpt.get("config") or {}
    try:
        net = build_net(config)
        net.load_state_dict(ckpt["state_dict"])
    except (KeyError, TypeError, RuntimeError) as exc:
        raise ModelError(
            f"crop checkpoint {ckpt.get('path', '')} does not match its own config ({exc.__class__.__name__}: "
            f"{str(exc)[:200]}); retrain it with `assets crop train`"
        ) from exc
    return CropModel(
        classes=list(config["classes"]), version=str(ckpt.get("version", "")), net=net,
        bands=list(config["bands"]), temperature=float(ckpt.get("temperature", 1.0)),
        temperature_sparse=None if ckpt.get("temperature_sparse") is None else float(ckpt["temperature_sparse"]),
        config={k: v for k, v in config.items() if k not in ("classes", "bands")}, meta=dict(ckpt.get("meta") or {}),
    )  # fmt: skip


def load(path: str | Path | None = None) -> CropModel:
    """Load crop weights (default: the committed production model ``models/crop.pt``)."""
    ckpt = registry.load_checkpoint(path, task="crop", expected_arch=ARCH)
    return from_checkpoint(ckpt)
