"""Field segmentation U-Net: reflectance bands in, background / field / boundary probabilities out.

The network is deliberately small (16-32-64-128 channels by default) so that a full Sentinel-2
tile runs on a CPU in minutes. Inputs are reflectance 0..1 in the band order the checkpoint
names (``bands``); normalisation constants travel inside the checkpoint so inference never
depends on per-window statistics (which would make windows disagree and leave seams).
Training lives in `assets.models.segment_train`; this module only builds, loads and predicts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from assets.errors import InputError, ModelError

ARCH = "unet-seg-v1"
CLASSES = ("background", "field", "boundary")
#: Inputs are padded to, and windows aligned on, multiples of this: it covers up to 4 poolings
#: (5 widths), so every supported network sees the same pooling phase in every window.
SIZE_MULTIPLE = 16


def build_unet(in_channels: int = 3, widths: Sequence[int] = (16, 32, 64, 128), n_classes: int = 3) -> Any:
    """Build the U-Net; lazily imports torch so importing this module stays cheap."""
    import torch
    from torch import nn

    if not 2 <= len(widths) <= 5:
        raise ModelError(f"U-Net needs 2..5 widths (at most {SIZE_MULTIPLE}x downsampling), got {tuple(widths)}")

    def block(cin: int, cout: int) -> nn.Sequential:
        return nn.Sequential(
            nn.Conv2d(cin, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        )

    class UNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            w = list(widths)
            self.downs = nn.ModuleList()
            cin = in_channels
            for c in w:
                self.downs.append(block(cin, c))
                cin = c
            self.pool = nn.MaxPool2d(2)
            self.ups = nn.ModuleList()
            self.up_blocks = nn.ModuleList()
            for c_hi, c_lo in zip(reversed(w[:-1]), reversed(w[1:])):
                self.ups.append(nn.ConvTranspose2d(c_lo, c_hi, 2, stride=2))
                self.up_blocks.append(block(2 * c_hi, c_hi))
            self.head = nn.Conv2d(w[0], n_classes, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            skips = []
            for i, down in enumerate(self.downs):
                x = down(x)
                if i < len(self.downs) - 1:
                    skips.append(x)
                    x = self.pool(x)
            for up, blk, skip in zip(self.ups, self.up_blocks, reversed(skips)):
                x = blk(torch.cat([up(x), skip], dim=1))
            return self.head(x)

    return UNet()


@dataclass
class Segmenter:
    """A loaded segmentation model; `predict_proba` maps reflectance to class probabilities."""

    version: str
    bands: tuple[str, ...]
    net: Any = field(repr=False)
    mean: np.ndarray = field(repr=False)
    std: np.ndarray = field(repr=False)
    classes: tuple[str, ...] = CLASSES
    metrics: dict[str, float] = field(default_factory=dict)
    #: Run convolutions in bfloat16 autocast: ~2x faster on CPUs with AMX/AVX512-BF16, ~10x
    #: slower on AVX2-only CPUs (emulated). `load` switches it on only where the CPU has it.
    bf16: bool = False

    def __post_init__(self) -> None:
        self.net.eval()
        self._infer = inference_module(self.net)

    def normalise(self, x: np.ndarray) -> np.ndarray:
        """Reflectance -> network input, using the training scene's constants."""
        return (x - self.mean[:, None, None]) / self.std[:, None, None]

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """``x`` (bands, h, w) float32 reflectance 0..1 -> (3, h, w) float32 probabilities.

        Any h, w >= 1 works: the input is reflect-padded to a multiple of 16 and cropped back.
        """
        out = self.predict_proba_batch(np.asarray(x, dtype=np.float32)[None])
        return out[0]

    def predict_proba_batch(self, x: np.ndarray) -> np.ndarray:
        """Batched `predict_proba`: (n, bands, h, w) -> (n, 3, h, w)."""
        import torch

        if x.ndim != 4 or x.shape[1] != len(self.bands):
            raise InputError(
                f"segmenter expects (n, {len(self.bands)}, h, w) reflectance for bands {self.bands}, got shape {x.shape}"
            )
        n, _, h, w = x.shape
        if h < 1 or w < 1:
            raise InputError(f"cannot segment an empty {h}x{w} window")
        xn = self.normalise_batch(np.nan_to_num(x, nan=0.0))
        ph = (-h) % SIZE_MULTIPLE
        pw = (-w) % SIZE_MULTIPLE
        t = torch.from_numpy(np.ascontiguousarray(xn, dtype=np.float32))
        if ph or pw:
            mode = "reflect" if h > ph and w > pw else "replicate"
            t = torch.nn.functional.pad(t, (0, pw, 0, ph), mode=mode)
        t = t.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            if self.bf16:
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    logits = self._infer(t)
                logits = logits.float()
            else:
                logits = self._infer(t)
            probs = torch.softmax(logits, dim=1)[:, :, :h, :w]
        return np.ascontiguousarray(probs.numpy(), dtype=np.float32)

    def normalise_batch(self, x: np.ndarray) -> np.ndarray:
        return (x - self.mean[None, :, None, None]) / self.std[None, :, None, None]


def inference_module(net: Any) -> Any:
    """An eval-only copy with BatchNorm folded into the convolutions, in channels_last layout.

    Folding removes a third of the CPU time (BatchNorm + an extra memory pass per layer) and
    channels_last lets oneDNN use its fast NHWC kernels: together about 2x over eager NCHW on AVX2,
    with outputs equal to 1e-5.
    """
    import torch

    from assets.models.fusion import fold_batchnorm

    return fold_batchnorm(net).to(memory_format=torch.channels_last)


def cpu_has_fast_bf16() -> bool:
    """True when the CPU executes bfloat16 matrix maths natively (AMX or AVX512-BF16)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="ignore") as fh:
            for line in fh:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool({"amx_bf16", "avx512_bf16"} & flags)
    except OSError:
        pass
    return False


def from_checkpoint(ckpt: dict[str, Any], *, bf16: bool | None = None) -> Segmenter:
    """Build a `Segmenter` from an already-read checkpoint dict (see `assets.models.registry`)."""
    cfg = ckpt.get("config", {})
    try:
        net = build_unet(len(cfg["bands"]), tuple(cfg["widths"]), len(CLASSES))
        net.load_state_dict(ckpt["state_dict"])
        return Segmenter(
            version=str(ckpt.get("version", "unknown")),
            bands=tuple(cfg["bands"]),
            net=net,
            mean=np.asarray(cfg["mean"], dtype=np.float32),
            std=np.asarray(cfg["std"], dtype=np.float32),
            metrics=dict(ckpt.get("metrics", {})),
            bf16=cpu_has_fast_bf16() if bf16 is None else bf16,
        )
    except (KeyError, RuntimeError, TypeError, ValueError) as exc:
        raise ModelError(
            f"segmentation checkpoint {ckpt.get('path', '?')} is inconsistent ({exc.__class__.__name__}: "
            f"{str(exc)[:200]}); retrain it with scripts/train_segment.py"
        ) from exc


def load(path: str | Path | None = None, *, bf16: bool | None = None) -> Segmenter:
    """Load the committed segmentation weights (``models/segment.pt`` when ``path`` is None).

    ``bf16=None`` enables bfloat16 autocast only on CPUs with native bf16 (see `cpu_has_fast_bf16`).
    """
    from assets.models.registry import load_checkpoint

    return from_checkpoint(load_checkpoint(path, task="segment", expected_arch=ARCH), bf16=bf16)


def save(path: str | Path, net: Any, *, version: str, bands: Sequence[str], widths: Sequence[int],
         mean: Sequence[float], std: Sequence[float], metrics: dict[str, float] | None = None,
         extra: dict[str, Any] | None = None) -> Path:
    """Write a checkpoint `load` can read; fp16 weights keep the file small."""
    import torch

    state = {k: (v.half() if v.is_floating_point() else v) for k, v in net.state_dict().items()}
    ckpt = {
        "arch": ARCH,
        "version": version,
        "config": {"bands": list(bands), "widths": list(widths), "mean": list(map(float, mean)),
                   "std": list(map(float, std)), "classes": list(CLASSES)},
        "state_dict": state,
        "metrics": dict(metrics or {}),
        **(extra or {}),
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(ckpt, tmp)
    tmp.replace(path)
    return path
