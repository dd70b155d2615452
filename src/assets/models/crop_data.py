"""Read labelled or unlabelled crop time series from the two supported file formats.

(a) UCR style ``.npy`` / ``.tsv`` / ``.csv``: one row per series, column 0 the label, then one
value per date on the model grid. (b) ``.npz`` with ``X`` (n, dates, bands), optional ``labels``
(n,) strings or ints, ``bands`` names, ``dates`` (n, dates) or (dates,) ISO strings and ``mask``
(n, dates) booleans (True = valid). Anything else fails with an `InputError` saying what to fix.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from assets.errors import InputError
from assets.models.crop import N_SLOTS, UCR_CROP_CLASSES


@dataclass
class SeriesSet:
    """Series with optional labels; ``doy``/``mask`` None mean "on the grid" / "all valid"."""

    x: np.ndarray  # (n, dates, bands) float32
    labels: np.ndarray | None  # (n,) str
    bands: list[str]
    doy: np.ndarray | None = None  # (n, dates) day of year
    mask: np.ndarray | None = None  # (n, dates) bool
    source: str = ""

    def __len__(self) -> int:
        return len(self.x)


def ucr_label_names(codes: np.ndarray, n_dates: int) -> np.ndarray:
    """UCR Crop integer labels 1..24 become English class names; other integer labels stay digits."""
    if np.any(codes != np.rint(codes)):
        raise InputError("column 0 (the label) must hold whole numbers in a UCR-style file")
    ints = codes.astype(np.int64)
    if n_dates == N_SLOTS and ints.min() >= 1 and ints.max() <= len(UCR_CROP_CLASSES):
        return np.array(UCR_CROP_CLASSES, dtype=object)[ints - 1].astype(str)
    return ints.astype(str)


def _read_table(path: Path) -> np.ndarray:
    try:
        if path.suffix == ".npy":
            arr = np.load(path, allow_pickle=False)
        else:
            delim = "," if path.suffix == ".csv" else None
            arr = np.loadtxt(path, delimiter=delim, dtype=np.float64, ndmin=2)
    except (ValueError, OSError, EOFError) as exc:
        raise InputError(f"cannot read {path} as a UCR-style table ({exc}); expected label then one number per date") from exc
    return arr


def read_ucr(path: Path, labelled: bool | None = True) -> SeriesSet:
    """UCR style table: label column then values.

    ``labelled=False`` treats every column as a date; None decides by width (46 columns: no
    labels, anything else: column 0 is the label).
    """
    arr = _read_table(path)
    if arr.size == 0:
        raise InputError(f"{path} is empty; it needs one row per series")
    if arr.ndim != 2 or arr.shape[1] < 2:
        raise InputError(f"{path} must be a 2-D table (rows x (label + dates)), got shape {arr.shape}")
    if labelled is None:
        labelled = arr.shape[1] != N_SLOTS
    if not np.issubdtype(arr.dtype, np.number):
        raise InputError(f"{path} must hold numbers, got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    if labelled:
        if not np.isfinite(arr[:, 0]).all():
            raise InputError(f"{path}: the label column (column 0) has NaN/inf values")
        labels = ucr_label_names(arr[:, 0], arr.shape[1] - 1)
        values = arr[:, 1:]
    else:
        labels, values = None, arr
    if not np.isfinite(values).all():
        bad = np.flatnonzero(~np.isfinite(values).all(axis=1))[:5].tolist()
        raise InputError(f"{path}: series values contain NaN/inf (first rows {bad}); UCR-style files must be complete")
    return SeriesSet(values[:, :, None].astype(np.float32), labels, ["ndvi"], source=str(path))


def _doy(dates: np.ndarray) -> np.ndarray:
    out = np.full(dates.shape, np.nan)
    for idx, value in np.ndenumerate(dates):
        text = str(value).strip()
        if not text or text.lower() in ("nan", "nat", "none"):
            continue
        try:
            out[idx] = dt.date.fromisoformat(text[:10]).timetuple().tm_yday
        except ValueError:
            raise InputError(f"date {text!r} is not an ISO date (YYYY-MM-DD)") from None
    return out


def read_npz(path: Path) -> SeriesSet:
    """``.npz`` with X (n, dates, bands) and optional labels, bands, dates, mask."""
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (ValueError, OSError, EOFError) as exc:
        raise InputError(f"cannot read {path} as .npz ({exc}); save with numpy.savez and no object arrays") from exc
    if "X" not in data:
        raise InputError(f"{path} has no array 'X'; expected X (n, dates, bands) [labels, bands, dates, mask]")
    x = data["X"]
    if x.ndim == 2:
        x = x[:, :, None]
    if x.ndim != 3:
        raise InputError(f"{path}: X must be (n, dates, bands), got shape {x.shape}")
    if x.shape[0] == 0:
        raise InputError(f"{path} is empty (X has 0 rows)")
    if not np.issubdtype(x.dtype, np.number):
        raise InputError(f"{path}: X must be numeric, got dtype {x.dtype}")
    n, t, b = x.shape
    bands = [str(s) for s in data["bands"].tolist()] if "bands" in data else (["ndvi"] if b == 1 else [f"b{i}" for i in range(b)])
    if len(bands) != b:
        raise InputError(f"{path}: 'bands' names {len(bands)} bands but X has {b}")
    labels = None
    if "labels" in data:
        labels = data["labels"]
        if labels.shape != (n,):
            raise InputError(f"{path}: labels must be (n,) = ({n},), got {labels.shape}")
        if np.issubdtype(labels.dtype, np.number):
            labels = ucr_label_names(labels.astype(np.float64), t)
        labels = labels.astype(str)
    mask = None
    if "mask" in data:
        mask = data["mask"].astype(bool)
        if mask.shape != (n, t):
            raise InputError(f"{path}: mask must be (n, dates) = {(n, t)}, got {mask.shape}")
    doy = None
    if "dates" in data:
        dates = data["dates"]
        if dates.ndim == 1:
            dates = np.broadcast_to(dates, (n, t)) if dates.shape == (t,) else dates
        if dates.shape != (n, t):
            raise InputError(f"{path}: dates must be (n, dates) or (dates,) matching X {(n, t)}, got {dates.shape}")
        doy = _doy(dates) if not np.issubdtype(dates.dtype, np.number) else dates.astype(np.float64)
        missing = ~np.isfinite(doy)
        if missing.any():
            mask = ~missing if mask is None else mask & ~missing
    return SeriesSet(x.astype(np.float32), labels, bands, doy=doy, mask=mask, source=str(path))


def read_series(path: str | Path, labelled: bool | None = None) -> SeriesSet:
    """Read either format. For UCR tables ``labelled`` says whether column 0 is a label (None: by width)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"data file {path} not found")
    if path.stat().st_size == 0:
        raise InputError(f"data file {path} is empty")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return read_npz(path)
    if suffix in (".npy", ".tsv", ".txt", ".csv"):
        return read_ucr(path, labelled=labelled)
    raise InputError(f"unsupported data file {path.name}: use UCR-style .npy/.tsv/.csv or an .npz with X, labels, dates")


def select_bands(data: SeriesSet, wanted: list[str]) -> np.ndarray:
    """``data.x`` with the model's bands in the model's order; NDVI is computed from red + nir if needed."""
    if data.bands == wanted:
        return data.x
    lower = [b.lower() for b in data.bands]
    cols = []
    for name in wanted:
        if name.lower() in lower:
            cols.append(data.x[:, :, lower.index(name.lower())])
        elif name.lower() == "ndvi" and ({"red", "nir"} <= set(lower) or {"b04", "b08"} <= set(lower)):
            red = data.x[:, :, lower.index("red" if "red" in lower else "b04")]
            nir = data.x[:, :, lower.index("nir" if "nir" in lower else "b08")]
            with np.errstate(divide="ignore", invalid="ignore"):
                cols.append(np.where(nir + red != 0, (nir - red) / (nir + red), 0.0).astype(np.float32))
        elif len(wanted) == len(data.bands) == 1:
            cols.append(data.x[:, :, 0])  # a single unnamed band is taken as the model's band
        else:
            raise InputError(f"input bands {data.bands} lack {name!r} that the model needs (model bands {wanted})")
    return np.stack(cols, axis=2)
