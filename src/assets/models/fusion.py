"""Eval-only copies of networks with BatchNorm folded into the layer before it.

Used by the segmentation model (the crop model's `ServedTempCNN` folds its own while it rebuilds
its 1-D convolutions as channels-last 2-D ones): at inference a BatchNorm is a fixed per-channel
affine map, so folding it into the preceding convolution or linear layer gives the same outputs
(to float rounding) without a separate pass over memory, which on a CPU is a large share of a
small network's time.
"""

from __future__ import annotations

import copy

from torch import nn


def fold_batchnorm(net: nn.Module) -> nn.Module:
    """A deep-copied eval-mode ``net`` with Conv/Linear + BatchNorm pairs fused (torch.fx).

    Falls back to the plain eval copy where the network cannot be traced symbolically.
    """
    base = copy.deepcopy(net).eval()
    try:
        from torch.fx.experimental.optimization import fuse

        return fuse(base)
    except Exception:  # noqa: BLE001 # pragma: no cover - tracing support differs across torch versions
        return base
