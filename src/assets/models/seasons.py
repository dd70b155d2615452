"""Satellite seasons as a crop model sees them: named bands, real dates, a validity mask.

A season is ``x`` (n, dates, bands) surface reflectance (0-1), the dates of its columns and a
mask (n, dates) that is True where every band was observed. NaN in ``x`` means "no clear
observation" and is folded into the mask, never imputed. Dates become days since 1 January of
the *season year* (the harvest year: the newest clear date less 60 days unless given), so an autumn-sown
winter crop has negative days and a season may span two calendar years. The crop network then
reads the season on a fixed grid of 10-day slots from day -180 to day 410.

Checks here turn each kind of bad input into an `InputError` or a documented conversion:
band names (``B4``/``B04``/``red``), reflectance x 10,000 (divided, documented; the scale is read
from the file's median, so a few bad pixels never rescale it), impossible values in a 0-1 file and
all-zero nodata (masked, documented), percent, negative or saturated reflectance, unordered dates,
rows with no clear date.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np

from assets.config import Settings
from assets.errors import InputError

CANONICAL_BANDS = ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12")
CORE_BANDS = ("B02", "B03", "B04", "B08")  # what every tile of the platform has
EXTENDED_BANDS = ("B05", "B06", "B07", "B11", "B12")  # red edge and SWIR: used when a tile has them
INDEX_BANDS = ("ndvi",)  # derived from B04 and B08 when both are present
RADAR_BANDS = ("VV", "VH")  # Sentinel-1 backscatter in dB, when the data carries it (`with_radar`)
RADAR_DB_RANGE = (-60.0, 25.0)  # backscatter outside this is not dB (linear power, raw DN): an error

_ALIASES = {
    "blue": "B02", "b2": "B02", "b02": "B02", "green": "B03", "b3": "B03", "b03": "B03",
    "red": "B04", "b4": "B04", "b04": "B04", "red_edge_1": "B05", "rededge1": "B05", "re1": "B05", "b5": "B05",
    "b05": "B05", "red_edge_2": "B06", "rededge2": "B06", "re2": "B06", "b6": "B06", "b06": "B06",
    "red_edge_3": "B07", "rededge3": "B07", "re3": "B07", "b7": "B07", "b07": "B07", "nir": "B08", "b8": "B08",
    "b08": "B08", "nir_narrow": "B8A", "narrow_nir": "B8A", "nir08": "B8A", "b8a": "B8A", "swir_1": "B11",
    "swir1": "B11", "swir16": "B11", "b11": "B11", "swir_2": "B12", "swir2": "B12", "swir22": "B12", "b12": "B12",
    "ndvi": "ndvi",
}  # fmt: skip

GRID_START_DAY = -180  # 5 July of the year before the harvest year
SLOT_DAYS = 10
N_SLOTS = 60  # -180 .. 410: two-year seasons (winter crops) fit, as do ten-day composites
SEASON_TURN_DAYS: int = Settings.model_fields["season_turn_days"].default  # `Settings.season_turn_days`
SEASON_FIRST_DAY = GRID_START_DAY - SLOT_DAYS / 2  # the grid's reach, days from 1 January of the season year
SEASON_END_DAY = GRID_START_DAY + (N_SLOTS - 0.5) * SLOT_DAYS
MAX_SCALED = 16000.0  # reflectance x 10,000 never exceeds this (saturation is 65535: an error)
MIN_REFLECTANCE = -0.2  # L2A can dip slightly below 0 over water and shadow; below this is wrong
MAX_REFLECTANCE = 2.0  # surface reflectance 0-1 tops out near 1.6 (bright cloud, fresh snow); above is impossible
MIN_SCALED_MEDIAN = 150.0  # a file whose typical value is above this is reflectance x 10,000
# Sentinel-2 L2A from processing baseline 04.00 (25 January 2022 on) stores reflectance x 10,000 + 1,000
# (BOA_ADD_OFFSET). Real land always has a dark band (blue, red or water's NIR: 0.004-0.03 at the 1st
# percentile of each observation's darkest band in every shared file), so when even that is above this,
# the offset is in the numbers.
L2A_OFFSET = 1000.0
OFFSET_DARKEST_P1 = 900.0


def canonical_band(name: str) -> str:
    """``B4``, ``b04``, ``red`` -> ``B04``; unknown names are an error naming the accepted ones."""
    key = str(name).strip().lower().replace(" ", "_").replace("-", "_")
    if key in _ALIASES:
        return _ALIASES[key]
    raise InputError(
        f"band {name!r} is not a Sentinel-2 band we know; use B02..B12/B8A or blue, green, red, nir, "
        "red_edge_1..3, swir_1, swir_2"
    )


def known_bands(names: list[str] | tuple[str, ...]) -> tuple[list[int], list[str]]:
    """Indices of the names that are Sentinel-2 bands (or NDVI) and the names that are not.

    Files such as Digital Earth Africa's carry derived layers (LAI, MNDWI, deviations) beside the
    bands; readers keep the bands, drop the rest and say which (`LabelledSeasons.dropped_bands`).
    """
    keep, dropped = [], []
    for i, name in enumerate(names):
        key = str(name).strip().lower().replace(" ", "_").replace("-", "_")
        (keep.append(i) if key in _ALIASES else dropped.append(str(name)))
    return keep, dropped


def canonical_bands(names: list[str] | tuple[str, ...]) -> list[str]:
    out = [canonical_band(n) for n in names]
    dupes = sorted({b for b in out if out.count(b) > 1})
    if dupes:
        raise InputError(f"bands {list(names)} name {dupes} twice; give each band once")
    return out


@dataclass
class Season:
    """Validated series: reflectance 0-1 in canonical band order, days since 1 Jan of the season year."""

    x: np.ndarray  # (n, t, b) float32, NaN where not observed
    bands: list[str]  # canonical names
    days: np.ndarray  # (n, t) float64 days since 1 January of the season year
    mask: np.ndarray  # (n, t) bool, True where every band is a clear observation
    season_year: int | None = None
    scale_note: str | None = None  # set when a documented conversion was applied
    radar: np.ndarray | None = None  # (n, t, 2) Sentinel-1 VV, VH dB, gaps bridged per row; NaN rows: none

    def __len__(self) -> int:
        return len(self.x)

    @property
    def observed(self) -> np.ndarray:
        """(n,) True for series with at least one clear date (the others cannot be classified)."""
        return np.asarray(self.mask.any(axis=1))

    def rows(self, keep: np.ndarray) -> Season:
        """The same season restricted to the rows ``keep`` selects."""
        radar = None if self.radar is None else self.radar[keep]
        return replace(self, x=self.x[keep], days=self.days[keep], mask=self.mask[keep], radar=radar)


def with_radar(season: Season, db: np.ndarray) -> Season:
    """``season`` with Sentinel-1 VV / VH backscatter (dB) on the same dates.

    Radar sees through cloud, so it is kept on every date the optical mask keeps: a date a row's
    radar missed is bridged linearly in time from that row's own radar dates (never a constant);
    a row with no radar at all stays NaN and the model reads it as "no radar" (`channels`).
    """
    db = np.asarray(db, dtype=np.float64)
    n, t = season.mask.shape
    if db.shape != (n, t, len(RADAR_BANDS)):
        raise InputError(f"Sentinel-1 data must be (n, dates, 2) = {(n, t, 2)} for VV and VH, got {db.shape}")
    finite = db[np.isfinite(db)]
    lo, hi = RADAR_DB_RANGE
    if finite.size and (finite.min() < lo or finite.max() > hi):
        raise InputError(f"Sentinel-1 backscatter ranges {finite.min():.1f} .. {finite.max():.1f}, outside {lo:.0f} .. "
                         f"{hi:.0f} dB: convert it to dB (10 log10 of linear power) first")
    out = np.full((n, t, len(RADAR_BANDS)), np.nan, np.float32)
    for i in range(n):
        for k in range(len(RADAR_BANDS)):
            day = season.days[i]
            ok = np.isfinite(db[i, :, k]) & np.isfinite(day)
            if ok.any():
                out[i, :, k] = 0.0  # undated columns are masked out of the season anyway
                out[i, np.isfinite(day), k] = np.interp(day[np.isfinite(day)], day[ok], db[i, ok, k])
    return replace(season, radar=out)


def parse_date(text: object) -> dt.date | None:
    """ISO date, or the middle of an ISO interval ``start/end``; None for empty/NaT."""
    s = str(text).strip()
    if not s or s.lower() in ("nan", "nat", "none"):
        return None
    try:
        if "/" in s:
            a, b = (dt.date.fromisoformat(p[:10]) for p in s.split("/", 1))
            return a + (b - a) / 2
        return dt.date.fromisoformat(s[:10])
    except ValueError:
        raise InputError(f"date {s!r} is not an ISO date (YYYY-MM-DD) or interval (start/end)") from None


def season_year_of(clear_dates: Sequence[dt.date], turn_days: int = SEASON_TURN_DAYS) -> int:
    """The season a series is classified as, here and in the pipeline (`observe`): the year of its
    newest clear date, less ``turn_days`` (in January and February, the season just harvested, not
    the next one barely sown). A catalogue of several years gives this season, not the middle one."""
    return (max(clear_dates) - dt.timedelta(days=turn_days)).year


def season_days(dates: np.ndarray, season_year: int | None = None, clear: np.ndarray | None = None,
                turn_days: int = SEASON_TURN_DAYS) -> tuple[np.ndarray, int]:
    """Days since 1 January of the season year for dates (t,) or (n, t); NaN where missing.

    The season year defaults to the pipeline's rule for each row (`season_year_of`: the year of its
    newest clear date, ``clear`` (n, t) when given, less ``turn_days``), and the file's is the
    median over its rows: a French winter wheat season of Sept 2022 .. Aug 2023 is season 2023, an
    East African 2017 season is 2017, a file cut mid-season (Sept 2022 .. March 2023) is season 2023
    as the pipeline would judge it, and a stray late date in a few rows, or empty months padded
    after a season, do not move the file's season.
    """
    dates = np.asarray(dates)
    parsed = np.empty(dates.shape, dtype=object)
    for idx, value in np.ndenumerate(dates):
        parsed[idx] = parse_date(value)
    if not any(d is not None for d in parsed.ravel()):
        raise InputError("no dates given: every series needs the date of each observation")
    if season_year is None:
        grid = np.atleast_2d(parsed) if clear is None else np.broadcast_to(parsed, clear.shape)
        seen = np.ones(grid.shape, bool) if clear is None or not clear.any() else clear
        years = sorted(season_year_of([d for d, ok in zip(row, ok_row) if ok and d is not None], turn_days)
                       for row, ok_row in zip(grid, seen) if any(ok and d is not None for d, ok in zip(row, ok_row)))
        if not years:  # no row has a clear date: the dates alone
            years = [season_year_of([d for d in parsed.ravel() if d is not None], turn_days)]
        season_year = years[(len(years) - 1) // 2]
    year = season_year
    ref = dt.date(year, 1, 1)
    days = np.full(dates.shape, np.nan)
    for idx, d in np.ndenumerate(parsed):
        if d is not None:
            days[idx] = (d - ref).days
    return days, year


def check_reflectance(x: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray, str | None]:
    """(reflectance 0-1, validity, note): the file's scale is read from its typical value, never
    from its extremes, so a few bad pixels cannot rescale a whole file.

    - Median above 150: Sentinel-2 L2A integers (x 10,000), divided (and said so); a value above
      16,000 is saturated or raw digital numbers, an error.
    - Median 2-150: percent or another scale; an error naming it.
    - Median 0-2 (reflectance): an observation with a band above 2 (impossible: the brightest cloud
      or snow stays under 1.6) is masked as not clear, and said so, instead of dividing the file.
    - An observation whose bands are all exactly 0 is nodata stored as zero, masked and said so.
    """
    valid = valid.copy()
    zero = valid & np.all(x == 0, axis=2)
    valid &= ~zero
    vals = x[valid]
    vals = vals[np.isfinite(vals)]
    notes = [f"{int(zero.sum())} observation(s) with every band 0 were read as nodata"] if zero.any() else []
    if vals.size == 0:
        return x, valid, "; ".join(notes) or None
    typical = float(np.median(vals))
    if typical > MIN_SCALED_MEDIAN:
        if vals.max() > MAX_SCALED:
            raise InputError(
                f"reflectance up to {vals.max():.0f}: saturated or raw digital numbers; give surface reflectance "
                "(0-1, or x 10,000 as Sentinel-2 L2A stores it)"
            )
        darkest = np.min(np.where(valid[:, :, None], x, np.inf), axis=2)[valid]
        darkest = darkest[np.isfinite(darkest)]
        if darkest.size and float(np.percentile(darkest, 1)) >= OFFSET_DARKEST_P1:
            x = (x - L2A_OFFSET) / 10000.0
            notes.append("reflectance looked like Sentinel-2 L2A integers of processing baseline 04.00 or later (x 10,000 "
                         "+ 1,000: even the darkest band of nearly every observation was above 900): 1,000 was "
                         "subtracted and the rest divided by 10,000")
        else:
            x = x / 10000.0
            notes.append("reflectance looked like Sentinel-2 L2A integers (x 10,000) and was divided by 10,000")
    elif typical > MAX_REFLECTANCE:
        raise InputError(f"typical reflectance {typical:.1f} is neither 0-1 nor x 10,000 (percent?); give surface "
                         "reflectance 0-1, or x 10,000 as Sentinel-2 L2A stores it")
    else:
        bright = valid & np.any(x > MAX_REFLECTANCE, axis=2)
        if bright.any():
            valid &= ~bright
            notes.append(f"{int(bright.sum())} observation(s) with reflectance above {MAX_REFLECTANCE:g} (impossible "
                         "for surface reflectance 0-1) were masked as not clear")
    lo = float(np.nanmin(np.where(valid[:, :, None], x, np.nan))) if valid.any() else 0.0
    if lo < MIN_REFLECTANCE:
        raise InputError(f"reflectance as low as {lo:.3f} (below {MIN_REFLECTANCE}); these are not surface "
                         "reflectance values: check the band scale and offset")
    return x.astype(np.float32, copy=False), valid, "; ".join(notes) or None


def make_season(
    x: np.ndarray, bands: list[str], dates: np.ndarray | None = None, *, days: np.ndarray | None = None,
    mask: np.ndarray | None = None, season_year: int | None = None, turn_days: int = SEASON_TURN_DAYS,
) -> Season:
    """Validate series and their dates into a `Season` (see the module docstring for the rules)."""
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
    names = canonical_bands(bands)
    if len(names) != b:
        raise InputError(f"{len(names)} band names for {b} bands in the data")
    x = x.astype(np.float32)
    valid = np.isfinite(x).all(axis=2)
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != (n, t):
            raise InputError(f"mask must be (n, dates) = {(n, t)}, got {mask.shape}")
        valid &= mask
    if days is None:
        if dates is None:
            raise InputError("series need dates: pass the date of each observation (ISO strings)")
        dates = np.asarray(dates)
        if dates.shape not in ((t,), (n, t)):
            raise InputError(f"dates must be (dates,) or (n, dates) matching {(n, t)}, got {dates.shape}")
        days, season_year = season_days(dates, season_year, clear=valid, turn_days=turn_days)
    days = np.broadcast_to(np.asarray(days, dtype=np.float64), (n, t)).copy()
    valid &= np.isfinite(days)
    outside = valid & ((days < SEASON_FIRST_DAY) | (days >= SEASON_END_DAY))
    notes = []
    if outside.any():  # once pressed into the grid's edge slots, they read as a season that never was
        valid &= ~outside
        notes.append(f"{int(outside.sum())} clear observation(s) outside the season window were left out "
                     f"(days {SEASON_FIRST_DAY:.0f} to {SEASON_END_DAY:.0f} of season {season_year}, 1 January = 0; "
                     "one file holds one season)")
    if _unordered(np.where(valid, days, np.nan)):
        raise InputError("dates are out of order (or repeated) within a series; sort each series by date")
    refl = [i for i, name in enumerate(names) if name not in INDEX_BANDS]
    if refl:
        x[:, :, refl], valid, refl_note = check_reflectance(x[:, :, refl], valid)
        notes += [refl_note] if refl_note else []
    for i, name in enumerate(names):
        if name in INDEX_BANDS:
            x[:, :, i], index_note = check_index(name, x[:, :, i], valid)
            notes += [index_note] if index_note else []
    note = "; ".join(notes) or None
    if not valid.any():
        if outside.any():
            raise InputError(f"no clear date falls in season {season_year} (days {SEASON_FIRST_DAY:.0f} to "
                             f"{SEASON_END_DAY:.0f} of it): check season_year against the dates, or leave it out")
        raise InputError("no series has a single clear date (all cloud or nodata); wait for cloud-free imagery")
    x = np.where(valid[:, :, None], x, np.nan).astype(np.float32)
    return Season(x, names, days, valid, season_year, note)


def check_index(name: str, values: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, str | None]:
    """An index layer (NDVI) on its -1..1 scale: stored x 10,000 (Earth Engine, MODIS exports) it is
    divided back, with a note; anything else out of range is an error naming the layer."""
    seen = values[valid & np.isfinite(values)]
    if seen.size == 0 or float(np.abs(seen).max()) <= 1.0 + 1e-3:
        return values, None
    top = float(np.abs(seen).max())
    if top <= 10_000 * (1 + 1e-3) and float(np.median(np.abs(seen))) > 1.0:
        return values / 10_000.0, f"layer {name!r} looked like an index x 10,000 and was divided by 10,000"
    raise InputError(f"layer {name!r} has values up to {top:g}; an index runs from -1 to 1 (or -10,000 to 10,000 "
                     "scaled): fix the layer or leave it out (it is computed from B04 and B08)")


def _unordered(days: np.ndarray) -> bool:
    """True when the observed (non-NaN) days of any row are not strictly increasing."""
    seen = np.where(np.isfinite(days), days, -np.inf)
    before = np.maximum.accumulate(seen, axis=1)[:, :-1]  # latest observed day up to the previous column
    return bool((np.isfinite(days[:, 1:]) & (days[:, 1:] <= before)).any())


def channels(season: Season, wanted: list[str], optional: tuple[str, ...] | list[str] = ()) -> tuple[np.ndarray, np.ndarray]:
    """(n, t, len(wanted)) values of the model's channels and (n, len(wanted)) which each row has.

    NDVI is derived from B04/B08; VV / VH come from the season's radar, for the rows that have
    it. A channel in ``optional`` that the data lacks is returned as NaN with ``present`` False
    (the model was trained to do without it); any other missing band is an error naming the
    missing bands.
    """
    radar = season.radar is not None
    have = set(season.bands) | ({"ndvi"} if {"B04", "B08"} <= set(season.bands) else set()) \
        | (set(RADAR_BANDS) if radar else set())
    missing = [w for w in wanted if w not in have and w not in optional]
    if not missing and not any(w in have for w in wanted):  # a model whose every band is optional
        missing = list(wanted)
    if missing:
        raise InputError(f"the data has bands {season.bands} but the model needs {wanted}: missing {missing}; "
                         "use a model trained on these bands (`assets crop train --bands ...`)")
    n, t, _ = season.x.shape
    cols, present = [], np.repeat(np.array([w in have for w in wanted])[None, :], n, axis=0)
    bands_ndvi = {"B04", "B08"} <= set(season.bands)
    for j, w in enumerate(wanted):
        if w in season.bands and not (w == "ndvi" and bands_ndvi):  # NDVI from the bands when it can be
            cols.append(season.x[:, :, season.bands.index(w)])
        elif w == "ndvi" and w in have:
            red, nir = season.x[:, :, season.bands.index("B04")], season.x[:, :, season.bands.index("B08")]
            with np.errstate(divide="ignore", invalid="ignore"):
                cols.append((nir - red) / np.maximum(nir + red, 1e-6))
        elif w in RADAR_BANDS and radar:
            assert season.radar is not None
            col = season.radar[:, :, RADAR_BANDS.index(w)]
            present[:, j] = np.isfinite(col).all(axis=1)
            cols.append(np.where(present[:, j : j + 1], col, 0.0))  # rows without radar: absent, not NaN
        else:
            cols.append(np.full((n, t), np.nan, np.float32))
    return np.stack(cols, axis=2).astype(np.float32), present


def to_slots(values: np.ndarray, days: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Average valid observations into the 10-day grid: (n, N_SLOTS, c) values and (n, N_SLOTS) validity.

    Observations before the first or after the last slot go to that slot.
    """
    n, t, c = values.shape
    slot = np.clip(np.rint((np.nan_to_num(days, nan=0.0) - GRID_START_DAY) / SLOT_DAYS), 0, N_SLOTS - 1).astype(np.int64)
    flat = (np.arange(n)[:, None] * N_SLOTS + slot)[mask]
    counts = np.bincount(flat, minlength=n * N_SLOTS).reshape(n, N_SLOTS)
    out = np.zeros((n, N_SLOTS, c), dtype=np.float32)
    for k in range(c):
        column = values[:, :, k][mask]
        if not np.isfinite(column).all():  # an absent optional channel: left at 0, flagged by the caller
            continue
        sums = np.bincount(flat, weights=column, minlength=n * N_SLOTS).reshape(n, N_SLOTS)
        out[:, :, k] = sums / np.maximum(counts, 1)
    return out, counts > 0
