"""Read labelled or unlabelled crop seasons from files into `seasons.Season` + legend labels.

Two formats:

* ``.npz`` (WorldCereal style, as in ``shared/data/s2-crops``): ``X`` (n, dates, bands)
  reflectance with NaN for missing, ``bands`` names, ``dates`` (dates,) or (n, dates) ISO dates
  or ``start/end`` intervals, optional ``mask`` (n, dates), ``labels`` (n,), ``spatial_block``
  or ``region`` or ``groups`` (n,) for spatial splits, optional ``season_year``, optional
  ``X_s1`` (n, dates, 2) Sentinel-1 VV / VH on the same dates (``bands_s1``), either in dB or in
  WorldCereal's uint16 encoding (dB = 20 log10(DN) - 83, recognised by values above 30).
* UCR style ``.npy`` / ``.tsv`` / ``.csv`` NDVI tables (label, then 46 values). UCR publishes no
  dates; they are taken as one every 8 days from 1 January (documented assumption).

Labels from any source the legend knows are mapped to legend crops (`legend.to_crops`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from assets.errors import InputError
from assets.models import legend
from assets.models.seasons import RADAR_BANDS, SEASON_TURN_DAYS, Season, known_bands, make_season, with_radar

UCR_CLASSES: tuple[str, ...] = (
    "corn", "wheat", "dense building", "industrial building", "diffuse building",
    "temporary meadow", "hardwood", "wasteland", "fallow", "soy", "water", "meadow",
    "softwood", "sunflower", "sorghum", "eucalyptus", "rapeseed", "silage maize", "barley",
    "peas", "poplars", "mineral surface", "gravel pit", "lake",
)  # fmt: skip
UCR_DATES = 46
UCR_DAYS = 8.0 * np.arange(UCR_DATES)  # assumed: day 1 + 8 i of the year (UCR gives no dates)
# Where a file says each row is, for splits: places first (0.1 degree cells, regions; cells from
# `lat`/`lon` when a file has no `spatial_block`), field ids (`groups`) only when nothing else is.
PLACE_KEYS = ("spatial_block", "region")
BLOCK_CELL_DEG = 0.1  # the WorldCereal files' spatial_block: a 0.1 degree cell


@dataclass
class LabelledSeasons:
    season: Season
    labels: np.ndarray | None  # (n,) legend crop names
    raw_labels: np.ndarray | None  # (n,) labels as the file gave them
    blocks: np.ndarray | None  # (n,) spatial block / region ids for splits
    source: str = ""
    dropped_bands: list[str] = field(default_factory=list)  # layers in the file that are not bands
    block_key: str | None = "spatial_block"  # what ``blocks`` are: a place key, "lat/lon" cells, "groups" (fields)

    @property
    def blocks_are_places(self) -> bool:
        """Whether splitting by ``blocks`` keeps places apart (not merely fields or rows)."""
        return self.blocks is not None and self.block_key not in (None, "groups")

    def __len__(self) -> int:
        return len(self.season)


def _table(path: Path) -> np.ndarray:
    try:
        if path.suffix == ".npy":
            arr = np.load(path, allow_pickle=False)
        else:
            arr = np.loadtxt(path, delimiter="," if path.suffix == ".csv" else None, dtype=np.float64, ndmin=2)
    except (ValueError, OSError, EOFError) as exc:
        raise InputError(f"cannot read {path} as a UCR-style table ({exc}); expected label then one NDVI per date") from exc
    if arr.ndim != 2 or arr.shape[1] < 2 or arr.shape[0] == 0:
        raise InputError(f"{path} must be a 2-D table (rows x (label + dates)), got shape {arr.shape}")
    return arr.astype(np.float64)


def read_ucr(path: Path, labelled: bool | None = None) -> LabelledSeasons:
    """UCR "Crop" style NDVI table; ``labelled`` None decides by width (46 columns: no labels)."""
    arr = _table(path)
    if labelled is None:
        labelled = arr.shape[1] != UCR_DATES
    raw = None
    if labelled:
        codes = arr[:, 0]
        if not np.isfinite(codes).all() or np.any(codes != np.rint(codes)):
            raise InputError(f"{path}: column 0 (the label) must hold whole numbers")
        ints = codes.astype(np.int64)
        if ints.min() < 1 or ints.max() > len(UCR_CLASSES):
            raise InputError(f"{path}: UCR Crop labels are 1..{len(UCR_CLASSES)}, found {ints.min()}..{ints.max()}")
        raw = np.array(UCR_CLASSES, dtype=object)[ints - 1].astype(str)
        arr = arr[:, 1:]
    if arr.shape[1] != UCR_DATES:
        raise InputError(f"{path}: a UCR Crop table has {UCR_DATES} dates, this one {arr.shape[1]}; "
                         "give other data as .npz with X, bands and dates")
    season = make_season(arr[:, :, None], ["ndvi"], days=UCR_DAYS)
    labels = None if raw is None else np.array(legend.to_crops(list(raw)))
    return LabelledSeasons(season, labels, raw, None, str(path))


def _text(values: np.ndarray) -> np.ndarray:
    """Names and dates as str, whether saved as str or as bytes (dtype S: decoded, never "b'B02'")."""
    return values.astype(str) if values.dtype.kind in "SU" else values


def read_npz(path: Path, season_year: int | None = None, strict_labels: bool = True,
             turn_days: int = SEASON_TURN_DAYS) -> LabelledSeasons:
    """An .npz season file; with ``strict_labels`` False a label outside the legend is kept as
    written (`assets crop predict` only reports labels beside its calls) instead of an error."""
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (ValueError, OSError, EOFError) as exc:
        raise InputError(f"cannot read {path} as .npz ({exc}); save with numpy.savez and no object arrays") from exc
    if "X" not in data:
        raise InputError(f"{path} has no array 'X'; expected X (n, dates, bands), bands, dates [labels, mask]")
    x = data["X"]
    if x.ndim == 2:
        x = x[:, :, None]
    if x.ndim != 3:
        raise InputError(f"{path}: X must be (n, dates, bands), got shape {x.shape}")
    n = x.shape[0]
    if "bands" not in data:
        if x.shape[2] != 1:
            raise InputError(f"{path} has {x.shape[2]} bands but no 'bands' names; add bands=['B02', 'B03', ...]")
        bands = ["ndvi"]
    else:
        bands = [str(b) for b in _text(data["bands"]).tolist()]
    keep, dropped = known_bands(bands)
    if not keep:
        raise InputError(f"{path}: none of the bands {bands} is a Sentinel-2 band; name them B02..B12 or blue, red, nir ...")
    if dropped and len(bands) == x.shape[2]:
        x, bands = x[:, :, keep], [bands[i] for i in keep]
    if "dates" not in data:
        raise InputError(f"{path} has no 'dates'; give the ISO date of each column (dates=['2023-04-01', ...])")
    if season_year is None and "season_year" in data:
        given = np.asarray(data["season_year"]).ravel()
        try:
            season_year = int(given[0])
        except (IndexError, ValueError, TypeError):
            raise InputError(f"{path}: season_year must be one harvest year such as 2023, got "
                             f"{given.tolist()[:3]!r}; fix it or leave it out (it is read from the dates)") from None
    season = make_season(x, bands, _text(data["dates"]), mask=data.get("mask"), season_year=season_year,
                         turn_days=turn_days)
    if "X_s1" in data:
        season = with_radar(season, _radar_db(path, data))
    raw = labels = None
    if "labels" in data:
        raw = data["labels"].astype(str)
        if raw.shape != (n,):
            raise InputError(f"{path}: labels must be (n,) = ({n},), got {raw.shape}")
        labels = np.array(legend.to_crops(list(raw)) if strict_labels else [_as_crop(r) for r in raw])
    blocks, key = _blocks(data, n)
    return LabelledSeasons(season, labels, raw, blocks, str(path), dropped, key)


def _blocks(data: Any, n: int) -> tuple[np.ndarray | None, str | None]:
    """Each row's place for splits, and which key gave it."""
    for key in PLACE_KEYS:
        if key in data and data[key].shape == (n,):
            return data[key].astype(str), key
    if "lat" in data and "lon" in data and data["lat"].shape == data["lon"].shape == (n,):
        # named as WorldCereal names its cells ("47.9_0.1": the cell's south-west corner, lat_lon), so a
        # file with lat/lon and one with spatial_block meet in one block where they share a place
        lat, lon = (np.floor(np.round(np.asarray(data[k], dtype=np.float64) / BLOCK_CELL_DEG, 9)) * BLOCK_CELL_DEG
                    for k in ("lat", "lon"))  # rounded first: 0.3 / 0.1 is 2.9999999999999996
        return np.array([f"{a:.1f}_{o:.1f}" for a, o in zip(lat, lon)]), "lat/lon"
    if "groups" in data and data["groups"].shape == (n,):
        return data["groups"].astype(str), "groups"
    return None, None


WORLDCEREAL_S1_MIN_DN = 30.0  # encoded DN start near 60 (-47 dB); dB values never reach +30


def _radar_db(path: Path, data: dict[str, np.ndarray]) -> np.ndarray:
    """The file's Sentinel-1 layers as VV, VH dB (n, dates, 2)."""
    s1 = data["X_s1"].astype(np.float64)
    names = [str(b).upper() for b in data["bands_s1"].tolist()] if "bands_s1" in data else list(RADAR_BANDS)
    if sorted(names) != sorted(RADAR_BANDS) or s1.ndim != 3 or s1.shape[2] != 2:
        raise InputError(f"{path}: X_s1 must be (n, dates, 2) with bands_s1 VV and VH, got shape {s1.shape} "
                         f"and bands {names}")
    s1 = s1[:, :, [names.index(b) for b in RADAR_BANDS]]
    finite = s1[np.isfinite(s1)]
    if finite.size and finite.max() > WORLDCEREAL_S1_MIN_DN:  # WorldCereal's uint16 encoding
        with np.errstate(divide="ignore", invalid="ignore"):
            s1 = np.where(s1 > 0, 20.0 * np.log10(s1) - 83.0, np.nan)
    return s1


def _as_crop(label: str) -> str:
    try:
        return legend.to_crop(label)
    except InputError:
        return str(label)


def read_seasons(path: str | Path, labelled: bool | None = None, season_year: int | None = None, *,
                 strict_labels: bool = True, turn_days: int = SEASON_TURN_DAYS) -> LabelledSeasons:
    """Read either format (see the module docstring); ``turn_days`` is `Settings.season_turn_days`."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"data file {path} not found")
    if path.stat().st_size == 0:
        raise InputError(f"data file {path} is empty")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return read_npz(path, season_year, strict_labels, turn_days)
    if suffix in (".npy", ".tsv", ".txt", ".csv"):
        return read_ucr(path, labelled)
    raise InputError(f"unsupported data file {path.name}: use an .npz with X, bands, dates (or a UCR-style table)")
