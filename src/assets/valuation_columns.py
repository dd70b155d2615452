"""`valuation.value_inputs` over whole columns: the same numbers for a million fields in seconds.

The revaluation after a price change values every current decision's stored inputs again. Doing
that one `ValuationInput` at a time costs ~50 us of Python per field; here each step of
`value_inputs` is one numpy operation over all fields, in the same order of floating-point
operations (probability-weighted sums add in each input's key order, as Python's ``sum`` does:
`crop_health.ordered_sums`), so every value and limit is bit-for-bit the one the per-field
function gives (tested on a varied sample: regions, unknown crops, unpriced crops, caps, haircuts,
review, crop health). Only the numbers are computed here; the explanation of a revalued decision is
`value_inputs` itself, rendered when it is read (`explain`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from assets.crop_health import health_columns, ordered_sums
from assets.fields.geometry import MU_PER_HA
from assets.models import legend
from assets.valuation import ValuationParams
from assets.valuation_policy import ROUNDING_SLACK


@dataclass(frozen=True)
class ValueColumns:
    value_low_cny: np.ndarray
    value_cny: np.ndarray
    value_high_cny: np.ndarray
    limit_cny: np.ndarray  # per field, before the per-borrower cap


def _f64(col: pa.ChunkedArray | pa.Array, fill: float = np.nan) -> np.ndarray:
    return np.asarray(pc.fill_null(col.cast(pa.float64()), fill).to_numpy(zero_copy_only=False), dtype=np.float64)


def _strings(col: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, list[str | None]]:
    """Dictionary codes (-1 for null) and the distinct values of a string column."""
    enc = pc.dictionary_encode(col).combine_chunks() if isinstance(col, pa.ChunkedArray) else pc.dictionary_encode(col)
    codes = np.asarray(pc.fill_null(enc.indices, -1).to_numpy(zero_copy_only=False), dtype=np.int64)
    return codes, enc.dictionary.to_pylist()


def _flat_list(col: pa.ChunkedArray) -> tuple[np.ndarray, pa.Array]:
    """(row of each element, the elements in order) of a list or map column; null lists are empty."""
    arr = col.combine_chunks()
    offsets = np.asarray(arr.offsets.to_numpy(zero_copy_only=False), dtype=np.int64)
    lengths = np.diff(offsets)
    values = arr.values.slice(int(offsets[0]), int(offsets[-1] - offsets[0])) if len(arr) else arr.values.slice(0, 0)
    keep = np.repeat(np.asarray(arr.is_valid().to_numpy(zero_copy_only=False), dtype=bool), lengths)
    rows = np.repeat(np.arange(len(arr), dtype=np.int64), lengths)
    if not keep.all():
        rows, values = rows[keep], values.filter(pa.array(keep))
    return rows, values


def _rows_with(codes_row: np.ndarray, codes: list[str | None], code_idx: np.ndarray, code: str, n: int) -> np.ndarray:
    mask = np.zeros(n, dtype=bool)
    if code in codes:
        mask[codes_row[code_idx == codes.index(code)]] = True
    return mask


def value_columns(t: pa.Table, params: ValuationParams) -> ValueColumns:
    """Value every row of ``store.history.stage_current_inputs`` under ``params`` (see the module docstring)."""
    n = t.num_rows
    u = params.uncertainty
    area_mu = _f64(t.column("in_verified_area_ha")) * MU_PER_HA
    claimed_mu = _f64(t.column("in_claimed_area_ha")) * MU_PER_HA
    crop_codes, crop_names = _strings(t.column("in_crop"))
    unknown_idx = crop_names.index(legend.UNKNOWN) if legend.UNKNOWN in crop_names else -2
    uncertain = crop_codes == unknown_idx

    # Region of each field's centre: the first of the sorted region names whose box holds it.
    region_names = sorted(params.regions)
    region = np.full(n, -1, dtype=np.int64)  # -1: national
    lon, lat = _f64(t.column("in_centre_lon")), _f64(t.column("in_centre_lat"))
    for r, name in enumerate(region_names):
        x0, y0, x1, y1 = params.regions[name].bbox
        inside = (region < 0) & (x0 <= lon) & (lon < x1) & (y0 <= lat) & (lat < y1)
        region[inside] = r

    # Crop probabilities, one element per (field, crop) in each field's key order.
    prow, entries = _flat_list(t.column("in_crop_probs"))
    p = _f64(entries.field("value"), 0.0)
    kcode, knames = _strings(entries.field("key"))
    nk, nr = len(knames), len(region_names) + 1
    value_t, low_t, high_t = np.zeros((nr, nk)), np.zeros((nr, nk)), np.zeros((nr, nk))
    priced = np.array([c in params.crops for c in knames], dtype=bool)
    for ri, rname in enumerate([None, *region_names]):
        for ki, c in enumerate(knames):
            econ = params.econ(str(c), rname)
            if econ is not None:
                value_t[ri, ki], low_t[ri, ki], high_t[ri, ki] = econ.value_cny_per_mu, econ.low_cny_per_mu, \
                    econ.high_cny_per_mu
    er = region[prow] + 1
    has_probs = np.bincount(prow, minlength=n) > 0
    expected = ordered_sums(prow, p * value_t[er, kcode], n)
    w_low = ordered_sums(prow, p * low_t[er, kcode], n)
    w_high = ordered_sums(prow, p * high_t[er, kcode], n)

    # Likely crops of each field, most probable first (ties in key order, as a stable sort keeps them).
    pos = np.arange(prow.shape[0]) - np.searchsorted(prow, prow, side="left")
    order = np.lexsort((pos, -p, prow))
    s_row, s_p, s_k = prow[order], p[order], kcode[order]
    rank = np.arange(order.shape[0]) - np.searchsorted(s_row, s_row, side="left")
    likely = np.zeros(order.shape[0], dtype=bool)
    going = np.ones(n, dtype=bool)  # the field's list is still growing
    mass = np.zeros(n)
    stop_at = u.likely_crop_mass - 1e-9
    for k in range(int(rank.max()) + 1 if rank.size else 0):
        sel = np.flatnonzero(rank == k)
        rows = s_row[sel]
        take = going[rows] & ((k == 0) | (s_p[sel] >= u.likely_crop_min_probability))
        likely[sel[take]] = True
        mass[rows[take]] += s_p[sel[take]]
        going[rows] = take & (mass[rows] < stop_at)
    use = likely & priced[s_k] & uncertain[s_row]
    floor_value, floor_low = np.full(n, np.inf), np.full(n, np.inf)
    s_er = region[s_row] + 1
    np.minimum.at(floor_value, s_row[use], value_t[s_er[use], s_k[use]])
    np.minimum.at(floor_low, s_row[use], low_t[s_er[use], s_k[use]])
    floor_value[np.isinf(floor_value)] = 0.0
    floor_low[np.isinf(floor_low)] = 0.0
    doubt = uncertain & has_probs
    expected = np.where(doubt, np.minimum(expected, floor_value), expected)
    w_low = np.where(doubt, np.minimum(w_low, floor_low), w_low)
    low_per_mu, high_per_mu = np.minimum(w_low, expected), np.maximum(w_high, expected)

    # Reasons.
    rrow, rflat = _flat_list(t.column("in_reason_codes"))
    rcode, rnames = _strings(rflat)

    def has(code: str) -> np.ndarray:
        return _rows_with(rrow, rnames, rcode, code, n)

    failed = has("crop_failure")
    health = np.where(failed, params.crop_failure_factor, 1.0)
    if params.crop_health is not None:
        ch = params.crop_health
        top = np.full(n, -1, dtype=np.int64)  # the most probable key of each field
        first = rank == 0
        top[s_row[first]] = s_k[first]
        keys = sorted(ch.curves)
        no_harvest = 367  # later than any day of year: every date is compared

        def lookup(names: Sequence[Any], value: Callable[[str], int], missing: int) -> np.ndarray:
            """One entry per name, then ``missing`` for the "no name" code."""
            return np.array([value(str(c)) for c in names] + [missing], dtype=np.int64)

        def curve_of(c: str) -> int:
            return keys.index(ck) if (ck := ch.curve_key(c)) else -1

        def harvest_of(c: str) -> int:
            return params.crops[c].harvest_doy if c in params.crops else no_harvest

        curve_of_key, harvest_of_key = lookup(knames, curve_of, -1), lookup(knames, harvest_of, no_harvest)
        in_legend = np.array([c in legend.CROPS for c in crop_names] + [False], dtype=bool)
        called = np.where(crop_codes >= 0, crop_codes, len(crop_names))
        top_key = np.where(top >= 0, top, nk)

        def judged_crop(of_crop: np.ndarray, of_key: np.ndarray) -> np.ndarray:
            """Per field, for the crop it is judged as: the called crop, else its most probable key."""
            return np.where(in_legend[called], of_crop[called], of_key[top_key])

        curve = judged_crop(lookup(crop_names, curve_of, -1), curve_of_key)
        harvest = judged_crop(lookup(crop_names, harvest_of, no_harvest), harvest_of_key)
        orow, dates = _flat_list(t.column("in_ndvi_dates"))
        _, ndvi_list = _flat_list(t.column("in_ndvi"))
        ndvi = _f64(ndvi_list)
        day = np.asarray(dates.cast(pa.int32()).to_numpy(zero_copy_only=False), dtype=np.int64)
        doy = np.asarray(pc.day_of_year(dates).to_numpy(zero_copy_only=False), dtype=np.int64)
        judged = health_columns(curve, orow, day, doy, ndvi, keys, ch, harvest if ch.stop_at_harvest else None)
        if ch.uncertain_crop == "best_fit":  # an uncertain call: the best factor over its likely crops with a curve
            s_curve = curve_of_key[s_k]
            candidate = likely & (s_curve >= 0) & uncertain[s_row]
            best = np.full(n, -np.inf)
            for k in range(int(rank[candidate].max()) + 1 if candidate.any() else 0):
                at = np.flatnonzero(candidate & (rank == k))
                curve_k = np.full(n, -1, dtype=np.int64)
                curve_k[s_row[at]] = s_curve[at]
                harvest_k = np.full(n, no_harvest, dtype=np.int64)
                harvest_k[s_row[at]] = harvest_of_key[s_k[at]]
                f_k = health_columns(curve_k, orow, day, doy, ndvi, keys, ch, harvest_k if ch.stop_at_harvest else None)
                best[s_row[at]] = np.maximum(best[s_row[at]], f_k[s_row[at]])
            judged = np.where(np.isfinite(best), best, judged)
        health = np.minimum(health, judged)

    value = area_mu * expected * health
    margin = np.full(n, u.area_margin)
    dates_n = _f64(t.column("in_usable_dates"))
    short = u.full_confidence_dates - dates_n
    margin = np.where(dates_n < u.full_confidence_dates, margin + short * u.area_margin_per_missing_date, margin)
    for code in sorted(u.reason_area_margin):
        margin = np.where(has(code), margin + u.reason_area_margin[code], margin)
    margin = np.minimum(margin, 0.95)
    area_low = area_mu * (1 - margin)
    area_high = np.minimum(area_mu * (1 + margin), np.maximum(claimed_mu, area_mu))
    value_low, value_high = area_low * low_per_mu * health, area_high * high_per_mu * health

    scodes, snames = _strings(t.column("in_sensor_status"))
    factors = np.array([params.sensor_factor.get(str(s), params.sensor_factor["no_devices"]) for s in snames]
                       + [params.sensor_factor["no_devices"]])
    rate = params.advance_rate * factors[np.where(scodes >= 0, scodes, len(snames))]
    limit = value_low * rate
    for code in sorted(params.haircuts):
        limit = np.where(has(code), limit * (1 - params.haircuts[code]), limit)
    limit = np.where(limit > params.field_cap_cny, params.field_cap_cny, limit)
    held = np.zeros(n, dtype=bool)
    for code in params.no_limit_reasons:
        held |= has(code)
    stat_codes, stat_names = _strings(t.column("in_status"))
    ok = np.array([s in ("verified", "partial") for s in stat_names] + [False], dtype=bool)
    held |= ~ok[np.where(stat_codes >= 0, stat_codes, len(stat_names))]
    limit = np.where(held, 0.0, limit)
    limit = np.floor(limit / params.round_down_to_cny + ROUNDING_SLACK) * params.round_down_to_cny
    return ValueColumns(value_low, value, value_high, limit)


def cap_borrowers(borrower: np.ndarray, limits: np.ndarray, params: ValuationParams) -> np.ndarray:
    """`valuation.cap_borrower_limits` per borrower; rows sorted by borrower code, in the cap's order."""
    n_b = int(borrower.max()) + 1 if borrower.size else 0
    order = np.argsort(borrower, kind="stable")
    total = ordered_sums(borrower[order], limits[order], n_b)
    over = (total > params.borrower_cap_cny) & (total != 0)
    if not over.any():
        return limits
    scale = np.divide(params.borrower_cap_cny, total, out=np.ones(n_b), where=over)
    scaled = np.floor(limits * scale[borrower] / params.round_down_to_cny + ROUNDING_SLACK) * params.round_down_to_cny
    return np.where(over[borrower], scaled, limits)
