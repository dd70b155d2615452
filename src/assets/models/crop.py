"""Crop classifier for real Sentinel-2 seasons: date-aware TempCNN, calibrated, with "unknown".

Input is a `seasons.Season`: every band the model was trained on (B02, B03, B04, B08 at least,
red-edge and SWIR when the model has them) plus NDVI, on real acquisition or composite dates,
with a validity mask. The network reads the season on a 10-day grid of *days since 1 January of
the season year* (`seasons.GRID_START_DAY` .. +590 days), so the calendar is real, not a slot
index, and winter crops sown the autumn before are in the same frame. Cloudy or missing dates
are dropped through the mask and linearly bridged from the clear ones; their raw values never
reach the network. Outputs are temperature-scaled probabilities over legend crops
(`assets.models.legend`), fitted on spatial blocks the network did not train on; a top
probability under ``unknown_below`` is reported as ``unknown`` instead of a confident wrong crop.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from assets.errors import InputError, ModelError
from assets.models import legend, registry
from assets.models.seasons import GRID_START_DAY, N_SLOTS, RADAR_BANDS, SLOT_DAYS, Season, channels, to_slots

ARCH = "crop_s2_tempcnn_v2"
PREDICT_BATCH = 16384
UNKNOWN_BELOW = 0.45  # top-class probability under which the crop is reported as unknown


def interpolate(values: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Network input (n, c + 2, slots): bridged values, the validity mask and season coverage.

    Between two valid slots a value is linear in time; outside the observed span it is 0 (the
    training mean after normalisation) and the coverage channel says so. Invalid slots' own
    values never enter the result.
    """
    n, t, c = values.shape
    idx = torch.arange(t, device=values.device).expand(n, t)
    prev = torch.where(valid, idx, torch.full_like(idx, -1)).cummax(dim=1).values
    nxt = torch.where(valid, idx, torch.full_like(idx, t)).flip(1).cummin(dim=1).values.flip(1)
    covered = (prev >= 0) & (nxt < t)
    p = torch.where(prev >= 0, prev, nxt).clamp(0, t - 1)
    q = torch.where(nxt < t, nxt, prev).clamp(0, t - 1)
    w = ((idx - p).to(values.dtype) / (q - p).clamp(min=1).to(values.dtype)).clamp(0, 1).unsqueeze(-1)
    gp = torch.gather(values, 1, p.unsqueeze(-1).expand(n, t, c))
    gq = torch.gather(values, 1, q.unsqueeze(-1).expand(n, t, c))
    bridged = torch.where(covered.unsqueeze(-1), gp + w * (gq - gp), torch.zeros_like(gp))
    flags = torch.stack([valid.to(values.dtype), covered.to(values.dtype)], dim=2)
    return torch.cat([bridged, flags], dim=2).transpose(1, 2).contiguous()


def _input_buffers(net: nn.Module, n_channels: int, optional: list[bool] | list[int] | None) -> int:
    """The buffers both networks keep with their weights: the channel normalisation (`mean`,
    `scale`) and which channels are optional, by group (0: required; 1, 2, ...: a group such as
    red edge + SWIR or Sentinel-1 radar, each present or absent as a whole with one input flag).
    Returns the number of optional groups."""
    net.register_buffer("mean", torch.zeros(n_channels))
    net.register_buffer("scale", torch.ones(n_channels))
    groups = torch.tensor([int(g) for g in optional] if optional is not None else [0] * n_channels, dtype=torch.long)
    if groups.shape != (n_channels,) or (groups < 0).any():
        raise ModelError(f"optional flags {optional} do not match {n_channels} channels")
    net.register_buffer("optional", groups > 0)
    net.register_buffer("group", groups, persistent=False)  # rebuilt from the channel names on load
    return len(set(groups[groups > 0].tolist()))


def optional_groups(channel_names: list[str], optional: list[str] | set[str]) -> list[int]:
    """Group id of each channel: 0 required, 1 optional optical bands (red edge, SWIR), 2 radar."""
    return [0 if c not in optional else (2 if c in RADAR_BANDS else 1) for c in channel_names]


def group_flags(net: TempCNN | LTAE, present: torch.Tensor | None, n: int, dtype: torch.dtype) -> torch.Tensor:
    """(n, groups) 1.0 where every channel of an optional group is present, in group order."""
    ids = sorted(set(net.group[net.group > 0].tolist()))
    if present is None:
        return torch.ones(n, len(ids), dtype=dtype)
    return torch.stack([present[:, net.group == g].all(dim=1) for g in ids], dim=1).to(dtype)


class TempCNN(nn.Module):
    """TempCNN (Pelletier et al. 2019) on the dated grid, with the channel normalisation built in.

    The second convolution halves the time axis (20-day steps from there on), which keeps a
    series to about a third of a million multiply-adds: the CPU budget of 50,000 series/s.
    ``optional`` (one group id per channel, `optional_groups`) marks channels the data may lack
    (red edge + SWIR; Sentinel-1 radar); one extra input flag per group says whether it is
    present, so one network serves 4-band tiles, full Sentinel-2 and Sentinel-2 + radar alike.
    """

    mean: torch.Tensor  # buffers of `_input_buffers`
    scale: torch.Tensor
    optional: torch.Tensor
    group: torch.Tensor

    def __init__(self, n_channels: int, n_classes: int, width: int = 32, kernel: int = 5, hidden: int = 128,
                 dropout: float = 0.3, n_slots: int = N_SLOTS, stride: int = 2,
                 optional: list[bool] | list[int] | None = None) -> None:  # fmt: skip
        super().__init__()
        self.n_optional = _input_buffers(self, n_channels, optional)
        layers: list[nn.Module] = []
        ch = n_channels + 2 + self.n_optional
        for i in range(3):
            s = stride if i == 1 else 1
            layers += [nn.Conv1d(ch, width, kernel, stride=s, padding=kernel // 2, bias=False), nn.BatchNorm1d(width),
                       nn.ReLU(inplace=True), nn.Dropout(dropout)]  # fmt: skip
            ch = width
        self.conv = nn.Sequential(*layers)
        steps = (n_slots + 2 * (kernel // 2) - kernel) // stride + 1
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(width * steps, hidden, bias=False), nn.BatchNorm1d(hidden),
            nn.ReLU(inplace=True), nn.Dropout(dropout), nn.Linear(hidden, n_classes),
        )  # fmt: skip

    def normalise(self, values: torch.Tensor, valid: torch.Tensor, present: torch.Tensor | None = None) -> torch.Tensor:
        return _normalise(self, values, valid, present)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.conv(x))


def _normalise(net: TempCNN | LTAE, values: torch.Tensor, valid: torch.Tensor,
               present: torch.Tensor | None) -> torch.Tensor:
    """Channel-normalised values, 0 where the slot is not clear or the channel is absent (masked, not imputed)."""
    z = (values - net.mean) / net.scale
    keep = valid.unsqueeze(-1)
    if present is not None:
        keep = keep & present.unsqueeze(1)
    return torch.where(keep, z, torch.zeros_like(z))


class LTAE(nn.Module):
    """Lightweight temporal attention encoder (L-TAE, Sainte Fare Garnot & Landrieu 2020) on the dated grid.

    Each clear slot is embedded on its own (a linear layer of its normalised channels and flags)
    plus a sinusoidal encoding of its real day (days since 1 January of the season year); each
    head's learned query then attends over the *clear* slots only, so cloudy dates are masked out
    instead of bridged. Same channel normalisation and optional-band flag as `TempCNN`.
    """

    mean: torch.Tensor  # buffers of `_input_buffers`
    scale: torch.Tensor
    optional: torch.Tensor
    group: torch.Tensor
    pe: torch.Tensor

    def __init__(self, n_channels: int, n_classes: int, d_model: int = 64, heads: int = 8, d_k: int = 8,
                 hidden: int = 128, dropout: float = 0.3, n_slots: int = N_SLOTS,
                 optional: list[bool] | list[int] | None = None, **_: Any) -> None:  # fmt: skip
        super().__init__()
        if d_model % heads:
            raise ModelError(f"L-TAE d_model {d_model} must be a multiple of heads {heads}")
        self.n_optional = _input_buffers(self, n_channels, optional)
        self.heads, self.d_k = heads, d_k
        self.embed = nn.Sequential(nn.Linear(n_channels + 1 + self.n_optional, d_model), nn.LayerNorm(d_model))
        day = GRID_START_DAY + SLOT_DAYS * torch.arange(n_slots, dtype=torch.float32)
        freq = 1.0 / (1000.0 ** (torch.arange(0, d_model, 2, dtype=torch.float32) / d_model))
        pe = torch.zeros(n_slots, d_model)
        pe[:, 0::2], pe[:, 1::2] = torch.sin(day[:, None] * freq), torch.cos(day[:, None] * freq)
        self.register_buffer("pe", pe)
        self.key = nn.Linear(d_model, heads * d_k)
        self.query = nn.Parameter(torch.randn(heads, d_k) * d_k**-0.5)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Sequential(nn.LayerNorm(d_model), nn.Linear(d_model, hidden), nn.ReLU(inplace=True),
                                  nn.Dropout(dropout), nn.Linear(hidden, n_classes))  # fmt: skip

    def normalise(self, values: torch.Tensor, valid: torch.Tensor, present: torch.Tensor | None = None) -> torch.Tensor:
        return _normalise(self, values, valid, present)

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """``x`` (n, slots, c + flags) normalised values, ``valid`` (n, slots) clear slots."""
        n, t, _ = x.shape
        e = self.embed(x) + self.pe[:t]
        scores = torch.einsum("nthk,hk->nht", self.key(e).view(n, t, self.heads, self.d_k), self.query) * self.d_k**-0.5
        att = self.drop(scores.masked_fill(~valid[:, None, :], float("-inf")).softmax(dim=2))
        out = torch.einsum("nht,nthd->nhd", att, self.drop(e).view(n, t, self.heads, -1)).reshape(n, -1)
        return self.head(out)


def _folded(weight: torch.Tensor, bias: torch.Tensor | None, bn: nn.BatchNorm1d) -> tuple[torch.Tensor, torch.Tensor]:
    """Weight and bias of a layer followed by an eval-mode BatchNorm, as one affine layer."""
    if bn.running_var is None or bn.running_mean is None:
        raise ModelError("crop network has a BatchNorm without running statistics; it cannot be folded")
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    shape = (-1,) + (1,) * (weight.dim() - 1)
    b = bias if bias is not None else torch.zeros_like(bn.running_mean)
    return weight * scale.reshape(shape), (b - bn.running_mean) * scale + bn.bias


class ServedTempCNN(nn.Module):
    """Inference copy of a `TempCNN`: BatchNorm folded in, convolutions run as channels-last 2-D
    convolutions of height 1, which this CPU's oneDNN kernels run about twice as fast as
    `conv1d` (bench/crop_inference.py). Same logits as the trained network, to float rounding."""

    def __init__(self, net: TempCNN) -> None:
        super().__init__()
        layers = list(net.conv)
        convs = nn.ModuleList()
        for conv, bn in zip(layers[0::4], layers[1::4]):
            if not (isinstance(conv, nn.Conv1d) and isinstance(bn, nn.BatchNorm1d)):
                raise ModelError("crop network is not the TempCNN layout (conv, norm, relu, dropout) x 3")
            w, b = _folded(conv.weight, conv.bias, bn)
            c2 = nn.Conv2d(conv.in_channels, conv.out_channels, (1, conv.kernel_size[0]), stride=(1, conv.stride[0]),
                           padding=(0, int(conv.padding[0])))  # fmt: skip
            c2.weight.data = w.unsqueeze(2).contiguous(memory_format=torch.channels_last)
            c2.bias.data = b  # type: ignore[union-attr]  # Conv2d has a bias unless bias=False
            convs.append(c2)
        self.convs = convs
        lin, bn, out = net.head[1], net.head[2], net.head[5]
        if not (isinstance(lin, nn.Linear) and isinstance(bn, nn.BatchNorm1d)):
            raise ModelError("crop network head is not the TempCNN layout (flatten, linear, norm, ...)")
        w, b = _folded(lin.weight, lin.bias, bn)
        self.hidden = nn.Linear(lin.in_features, lin.out_features)
        self.hidden.weight.data, self.hidden.bias.data = w, b
        self.out = copy.deepcopy(out)  # a copy: training `net` further never changes a served model
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.unsqueeze(2).contiguous(memory_format=torch.channels_last)
        for conv in self.convs:
            x = conv(x).relu_()
        return self.out(self.hidden(x.flatten(1)).relu_())


def logits_of(net: TempCNN | LTAE, values: torch.Tensor, valid: torch.Tensor, present: torch.Tensor | None = None,
              infer: nn.Module | None = None) -> torch.Tensor:  # fmt: skip
    """Logits for slotted values (n, slots, c), validity (n, slots) and channel presence (n, c)."""
    if isinstance(net, LTAE):
        parts = [net.normalise(values, valid, present), valid.to(values.dtype).unsqueeze(-1)]
        if net.n_optional:
            flags = group_flags(net, present, len(values), values.dtype)
            parts.append(flags[:, None, :].expand(len(values), values.shape[1], flags.shape[1]))
        return net(torch.cat(parts, dim=2), valid)
    x = interpolate(net.normalise(values, valid, present), valid)
    if net.n_optional:
        flags = group_flags(net, present, len(x), x.dtype)
        x = torch.cat([x, flags[:, :, None].expand(len(x), flags.shape[1], x.shape[2])], dim=1)
    return (infer or net)(x)


@dataclass
class CropModel:
    """A loaded crop classifier: calibrated probabilities over legend crops for any season."""

    classes: list[str]
    version: str
    net: TempCNN | LTAE
    channels: list[str]  # canonical bands + derived indices, in network order
    optional: list[str] = field(default_factory=list)  # channels the model can do without (red edge, SWIR)
    temperature: float = 1.0
    unknown_below: float = UNKNOWN_BELOW
    config: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.net.eval()
        with torch.no_grad():  # same outputs, faster on a CPU; `net` stays trainable
            self._infer = ServedTempCNN(self.net) if isinstance(self.net, TempCNN) else None

    @property
    def bands(self) -> list[str]:
        """The raw Sentinel-2 bands the model needs (derived indices and optional bands excluded)."""
        return [c for c in self.channels if c != "ndvi" and c not in self.optional]

    def slots(self, season: Season) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The season's model channels on the dated grid: values, validity, channel presence (n, c)."""
        values, present = channels(season, self.channels, self.optional)
        return (*to_slots(values, season.days, season.mask), present)

    def logits(self, season: Season) -> np.ndarray:
        values, valid, present = self.slots(season)
        return self.logits_slotted(values, valid, present)

    def logits_slotted(self, values: np.ndarray, valid: np.ndarray, present: np.ndarray | None = None) -> np.ndarray:
        if not valid.any(axis=1).all():
            raise InputError("a series has no clear date on the model's calendar; drop it before classifying")
        if present is None:
            present = np.ones((len(values), len(self.channels)), bool)
        out = np.empty((len(values), len(self.classes)), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(values), PREDICT_BATCH):
                part = slice(start, start + PREDICT_BATCH)
                v, m, p = (torch.from_numpy(np.ascontiguousarray(a[part])) for a in (values, valid, present))
                out[start : start + len(v)] = logits_of(self.net, v, m, p, self._infer).numpy()
        return out

    def predict_proba(self, season: Season) -> np.ndarray:
        """Calibrated probabilities (n, classes), rows summing to 1, columns in ``classes`` order."""
        return softmax(self.logits(season) / self.temperature)

    def labels(self, proba: np.ndarray) -> list[str]:
        """Most probable crop per row, or ``unknown`` when its probability is under ``unknown_below``."""
        best = proba.argmax(axis=1)
        top = proba[np.arange(len(proba)), best]
        return [self.classes[b] if p >= self.unknown_below else legend.UNKNOWN for b, p in zip(best, top)]

    def predict(self, season: Season) -> list[str]:
        return self.labels(self.predict_proba(season))

    def farmland_probability(self, proba: np.ndarray) -> np.ndarray:
        """P(the land is farmland): crops, fallow and managed grass (legend land classes)."""
        cols = [i for i, c in enumerate(self.classes) if legend.is_farmland(c)]
        return np.asarray(proba)[:, cols].sum(axis=1)


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def build_net(config: dict[str, Any]) -> TempCNN | LTAE:
    """The network a checkpoint ``config`` describes (``net.kind`` "ltae" or, by default, TempCNN)."""
    groups = optional_groups(list(config["channels"]), set(config.get("optional", [])))
    net_cfg = dict(config.get("net", {}))
    if net_cfg.pop("kind", "tempcnn") == "ltae":
        return LTAE(len(config["channels"]), len(config["classes"]), optional=groups, **net_cfg)
    return TempCNN(len(config["channels"]), len(config["classes"]), optional=groups, **config.get("net", {}))


def checkpoint(model: CropModel) -> dict[str, Any]:
    config = dict(model.config, classes=list(model.classes), channels=list(model.channels), optional=list(model.optional))
    state = {k: v.detach().clone() for k, v in model.net.state_dict().items()}
    return {"arch": ARCH, "version": model.version, "config": config, "state_dict": state,
            "temperature": float(model.temperature), "unknown_below": float(model.unknown_below),
            "meta": dict(model.meta)}  # fmt: skip


def save(model: CropModel, path: str | Path) -> Path:
    """Write ``model`` as a checkpoint that `load` reads back."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(checkpoint(model), path)
    return path


def from_checkpoint(ckpt: dict[str, Any]) -> CropModel:
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
        channels=list(config["channels"]), optional=list(config.get("optional", [])),
        temperature=float(ckpt.get("temperature", 1.0)),
        unknown_below=float(ckpt.get("unknown_below", UNKNOWN_BELOW)),
        config={k: v for k, v in config.items() if k not in ("classes", "channels", "optional")},
        meta=dict(ckpt.get("meta") or {}),
    )  # fmt: skip


def load(path: str | Path | None = None) -> CropModel:
    """Load crop weights (default: the committed production model ``models/crop.pt``)."""
    ckpt = registry.load_checkpoint(path, task="crop", expected_arch=ARCH)
    return from_checkpoint(ckpt)
