"""Crop health this season: the field's NDVI against its crop's expected curve at the same dates.

Each crop group (or a single crop) has an expected NDVI curve in the versioned parameters file
(``[crop_health.curves.<group or crop>]``: day of year -> NDVI, with its source). The field's
cloud-free NDVI dates are divided by the curve at their day of year, keeping the dates where the
curve is at least ``min_expected_ndvi`` (in season: bare soil says nothing) and within
``window_days`` of the newest such date; the mean of those ratios is the field's health. At or above ``tolerance`` nothing
changes; below it the value is scaled by ``ratio / tolerance`` (never under ``min_factor``). With
``stop_at_harvest`` (parameters 2026.12-6 on), dates on or after the crop's harvest day (``harvest_doy``
of its economics) are not compared: from then on the canopy senesces and the field may be harvested at
any time, so a bare field is the expected outcome, not a lagging crop (the `harvest_reached` alert
reports it); parameter files without it compare every date, so older decisions recompute unchanged.
An uncertain crop call is judged against its most probable crop, or with ``uncertain_crop =
"best_fit"`` (2026.12-6 on) against the likely crop whose curve the season fits best
(`valuation.judge_health`). A field
whose health cannot be judged (no NDVI this season, no curve for its crop, or only dates where the
curve is too low to compare) takes ``no_evidence_factor``, which is never above the factor of a
healthy field, so less evidence can only lower a limit. The factor is at most 1: the step never
raises a value.

The same arithmetic runs per field (`health`) and over whole columns (`health_columns`, the
revaluation); both use ``numpy.interp`` and add the ratios in the same order (`ordered_sums`), so
they agree to the bit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np

from assets.errors import InputError
from assets.models import legend


@dataclass(frozen=True)
class Curve:
    doy: tuple[float, ...]
    ndvi: tuple[float, ...]
    source: str


@dataclass(frozen=True)
class CropHealthParams:
    tolerance: float = 0.85
    min_factor: float = 0.5
    no_evidence_factor: float = 0.95
    window_days: int = 30
    min_expected_ndvi: float = 0.2  # dates where the curve is under this (bare soil) say nothing about health
    stop_at_harvest: bool = False  # compare only dates before the crop's harvest_doy (absent from files before 2026.12-6)
    uncertain_crop: str = "top"  # an uncertain call is judged against: "top" (most probable crop) or "best_fit"
    curves: dict[str, Curve] = field(default_factory=dict)  # crop group or crop name -> curve

    def curve_key(self, crop: str | None) -> str | None:
        """The curve a crop is judged against: its own, else its group's; None when neither exists."""
        if crop is None or crop not in legend.CROPS:
            return None
        if crop in self.curves:
            return crop
        group = legend.CROPS[crop].group
        return group if group in self.curves else None


def parse_crop_health(raw: Any, name: str) -> CropHealthParams | None:
    """The ``[crop_health]`` table (None when the file has none: the step is then not applied)."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise InputError(f"valuation parameters {name}: [crop_health] must be a table")
    curves: dict[str, Curve] = {}
    for key, c in (raw.get("curves") or {}).items():
        if key not in legend.CROPS and key not in legend.GROUP_GENERIC:
            raise InputError(f"valuation parameters {name}: crop_health curve {key!r} is neither a crop nor a crop "
                             f"group of the legend; use e.g. cereals, oilseeds, root_tuber, grass_fodder or maize")
        try:
            doy, ndvi = [float(x) for x in c["doy"]], [float(x) for x in c["ndvi"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"valuation parameters {name}: crop_health curve {key!r} needs doy = [...] and "
                             f"ndvi = [...] numbers ({exc!r})") from exc
        if len(doy) < 2 or len(doy) != len(ndvi) or any(b <= a for a, b in zip(doy, doy[1:])):
            raise InputError(f"valuation parameters {name}: crop_health curve {key!r} needs at least two points "
                             "with strictly increasing doy and one ndvi per doy")
        if not all(1 <= d <= 366 for d in doy) or not all(0 <= v <= 1 for v in ndvi):
            raise InputError(f"valuation parameters {name}: crop_health curve {key!r} has a doy outside 1..366 "
                             "or an ndvi outside 0..1")
        if not str(c.get("source", "")).strip():
            raise InputError(f"valuation parameters {name}: crop_health curve {key!r} has no source; add "
                             "source = \"where the expected NDVI curve comes from\"")
        curves[key] = Curve(tuple(doy), tuple(ndvi), str(c["source"]))
    try:
        p = CropHealthParams(tolerance=float(raw.get("tolerance", 0.85)), min_factor=float(raw.get("min_factor", 0.5)),
                             no_evidence_factor=float(raw.get("no_evidence_factor", 0.95)),
                             window_days=int(raw.get("window_days", 30)),
                             min_expected_ndvi=float(raw.get("min_expected_ndvi", 0.2)), curves=curves,
                             stop_at_harvest=raw.get("stop_at_harvest", False),
                             uncertain_crop=raw.get("uncertain_crop", "top"))
    except (TypeError, ValueError) as exc:
        raise InputError(f"valuation parameters {name}: [crop_health] has an unusable number ({exc})") from exc
    if not isinstance(p.stop_at_harvest, bool):
        raise InputError(f"valuation parameters {name}: [crop_health] stop_at_harvest must be true or false")
    if p.uncertain_crop not in ("top", "best_fit"):
        raise InputError(f"valuation parameters {name}: [crop_health] uncertain_crop must be \"top\" (the most "
                         f"probable crop's curve) or \"best_fit\" (the likely crop whose curve fits best), "
                         f"not {p.uncertain_crop!r}")
    if not (0 < p.tolerance <= 1 and 0 <= p.min_factor <= 1 and 0 <= p.no_evidence_factor <= 1 and p.window_days > 0):
        raise InputError(f"valuation parameters {name}: [crop_health] needs 0 < tolerance <= 1, min_factor and "
                         "no_evidence_factor in 0..1 and window_days > 0")
    return p


@dataclass(frozen=True)
class Health:
    factor: float
    ratio: float | None  # mean observed / expected NDVI; None when health could not be judged
    dates: int  # NDVI dates compared
    curve: str | None
    why: str


def _ordinal_doy(on: str) -> tuple[int, int]:
    d = date.fromisoformat(on)
    return d.toordinal(), d.timetuple().tm_yday


def factor_of(ratio: float, p: CropHealthParams) -> float:
    return 1.0 if ratio >= p.tolerance else max(p.min_factor, ratio / p.tolerance)


def health(crop: str | None, ndvi_season: Any, p: CropHealthParams, harvest_doy: int | None = None) -> Health:
    """The crop-health factor of one field (see the module docstring); ``harvest_doy``: the crop's
    harvest day, from which on dates are not compared (None: every date is)."""
    key = p.curve_key(crop)
    seen = [(*_ordinal_doy(str(on)), float(v)) for on, v in (ndvi_season or ())]
    obs = [o for o in seen if harvest_doy is None or o[1] < harvest_doy]
    if key is None or not obs:
        why = (f"no expected NDVI curve for {crop}" if key is None and seen
               else f"no cloud-free NDVI before the {crop} harvest day (day {harvest_doy})" if seen
               else "no cloud-free NDVI this season")
        return Health(p.no_evidence_factor, None, 0, key, why)
    curve = p.curves[key]
    informative = [(o, v, e) for o, doy, v in obs
                   if (e := float(np.interp(float(doy), curve.doy, curve.ndvi))) >= p.min_expected_ndvi]
    if not informative:
        return Health(p.no_evidence_factor, None, 0, key, f"the {key} curve is under {p.min_expected_ndvi:g} "
                                                            "on every date observed (nothing to compare)")
    newest = max(o for o, _, _ in informative)
    total, n = 0.0, 0
    for ordinal, v, expected in informative:
        if ordinal >= newest - p.window_days:
            total += v / expected
            n += 1
    ratio = total / n
    return Health(factor_of(ratio, p), ratio, n, key, f"{curve.source}")


def ordered_sums(rows: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """Per row, ``0.0 + v1 + v2 + ...`` in the given order, as Python's ``sum`` adds (``np.bincount``
    and ``np.add.reduceat`` may pair terms differently). ``rows`` must be non-decreasing."""
    out = np.zeros(n)
    if rows.size == 0:
        return out
    pos = np.arange(rows.shape[0]) - np.searchsorted(rows, rows, side="left")
    for k in range(int(pos.max()) + 1):
        sel = pos == k
        out[rows[sel]] += values[sel]  # one term per row at each position
    return out


def health_columns(curve_idx: np.ndarray, obs_row: np.ndarray, obs_ordinal: np.ndarray, obs_doy: np.ndarray,
                   obs_ndvi: np.ndarray, keys: list[str], p: CropHealthParams,
                   harvest_doy: np.ndarray | None = None) -> np.ndarray:
    """`health(...).factor` for many fields at once.

    ``curve_idx[i]``: index into ``keys`` of field i's curve (-1: none); ``harvest_doy[i]``: its crop's
    harvest day (367 or more: none); the observations are flat arrays with ``obs_row`` the field each
    belongs to, in each field's stored order."""
    n = curve_idx.shape[0]
    factor = np.full(n, p.no_evidence_factor)
    if obs_row.size == 0:
        return factor
    cidx = curve_idx[obs_row]
    expected = np.zeros(obs_row.shape[0])
    for k, key in enumerate(keys):
        sel = cidx == k
        if sel.any():
            c = p.curves[key]
            expected[sel] = np.interp(obs_doy[sel].astype(np.float64), c.doy, c.ndvi)
    informative = (cidx >= 0) & (expected >= p.min_expected_ndvi)
    if harvest_doy is not None:
        informative &= obs_doy < harvest_doy[obs_row]
    newest = np.full(n, np.iinfo(np.int64).min, dtype=np.int64)
    np.maximum.at(newest, obs_row[informative], obs_ordinal[informative])
    use = informative & (obs_ordinal >= newest[obs_row] - p.window_days)
    ratio = np.divide(obs_ndvi, expected, out=np.zeros_like(obs_ndvi), where=use)
    total = ordered_sums(obs_row[use], ratio[use], n)  # adds in stored order, as `health` does
    count = np.bincount(obs_row[use], minlength=n)
    judged = count > 0
    mean = np.divide(total, count, out=np.zeros(n), where=judged)
    f = np.where(mean >= p.tolerance, 1.0, np.maximum(p.min_factor, mean / p.tolerance))
    factor[judged] = f[judged]
    return factor
