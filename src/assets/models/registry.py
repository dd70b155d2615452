"""One place that knows where committed weights live and what each checkpoint claims to be.

A checkpoint is a ``torch.save`` dict with at least ``arch`` (builder name), ``version``,
``config`` (builder kwargs) and ``state_dict``. Loading checks ``arch`` so a file from another
architecture fails with a clear `ModelError` instead of a wall of missing-key messages.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from assets.config import settings
from assets.errors import ModelError

DEFAULT_WEIGHTS = {"crop": "crop.pt", "segment": "segment.pt"}


def default_path(task: str) -> Path:
    """Path of the committed production weights for ``task`` ("crop" or "segment")."""
    try:
        return settings().models_dir / DEFAULT_WEIGHTS[task]
    except KeyError:
        raise ModelError(f"unknown model task {task!r}; expected one of {sorted(DEFAULT_WEIGHTS)}") from None


def load_checkpoint(path: str | Path | None, *, task: str, expected_arch: str | tuple[str, ...]) -> dict[str, Any]:
    """Read a checkpoint and check it was built by ``expected_arch``."""
    import torch

    path = Path(path) if path is not None else default_path(task)
    if not path.is_file():
        raise ModelError(f"model file {path} not found; pass --model PATH or train one with `assets {task} train`")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch raises many types for a corrupt file
        raise ModelError(f"model file {path} is not a readable torch checkpoint ({exc.__class__.__name__}); retrain or restore it") from exc
    if not isinstance(ckpt, dict) or "arch" not in ckpt or "state_dict" not in ckpt:
        raise ModelError(f"model file {path} is not an assets checkpoint (no 'arch'/'state_dict'); retrain it")
    allowed = (expected_arch,) if isinstance(expected_arch, str) else expected_arch
    if ckpt["arch"] not in allowed:
        raise ModelError(
            f"model file {path} holds a {ckpt['arch']!r} model but a {task} model ({', '.join(allowed)}) is needed"
        )
    ckpt.setdefault("version", path.stem)
    ckpt["path"] = str(path)
    return ckpt
