"""Benchmark: the credit team's questions at a real bank's size (#14).

Builds a DuckDB file with 1,000,000 fields, 100,000 borrowers and 10,000,000 sensor readings, and
two decisions per field a year apart (bulk Arrow inserts; `executemany` is ~1,000x slower), then
times one borrower's explanation, the portfolio summary, revaluing every field after a price
change (`revalue.revalue_all`: the stored inputs valued again column-wise, bit-for-bit
`valuation.value_inputs`, checked on 2,000 random fields; hash chained), and an explanation as of
a year back (the machine's 1-minute load average before and after the revaluation is in the JSON: on
a shared machine it explains most of the spread). The synthetic history's values and hashes are
random (the benchmark does not recompute or verify it); its current-state rows (`current_decisions`,
which every decision append keeps) are built once after the bulk load, within build_s; the
revaluation computes and chains its own rows. Last line: one JSON object.

    python bench/portfolio_queries.py [--fields 1000000] [--borrowers 100000] [--readings 10000000]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa

CROPS = ("maize", "wheat", "rice", "soy_soybeans", "potatoes", "grasslands")
YEAR_AGO, NOW = date(2025, 11, 20), date(2026, 11, 20)


def _ids(prefix: str, n: int) -> pa.Array:
    return pa.array([f"{prefix}{i:07d}" for i in range(n)])


def build(con, n_fields: int, n_borrowers: int, n_readings: int, rng: np.random.Generator) -> None:
    from assets.store import append
    from assets.store.history import rebuild_current, record_params
    from assets.valuation import load_params

    t0 = datetime(2026, 1, 1)
    borrowers = _ids("b", n_borrowers)
    append(con, "borrowers", pa.table({"borrower_id": borrowers, "created_at": pa.array([t0] * n_borrowers)}))
    owner = rng.integers(0, n_borrowers, n_fields)
    lon, lat = rng.uniform(100, 120, n_fields), rng.uniform(25, 45, n_fields)
    area = rng.uniform(0.2, 30, n_fields)
    claim_ids = _ids("c", n_fields)
    owner_ids = pa.array(np.asarray(borrowers.to_pylist(), dtype=object)[owner])
    append(con, "claims", pa.table({
        "claim_id": claim_ids, "borrower_id": owner_ids, "name": claim_ids, "submitted_at": pa.array([t0] * n_fields),
        "source": pa.array(["bench"] * n_fields), "geojson": pa.array(["{}"] * n_fields),
        "min_lon": lon, "min_lat": lat, "max_lon": lon + 0.003, "max_lat": lat + 0.003, "claimed_area_ha": area,
        "status": pa.array(["verified"] * n_fields)}))
    devices = _ids("d", n_borrowers)
    append(con, "sensor_devices", pa.table({
        "device_id": devices, "borrower_id": borrowers, "kind": pa.array(["soil_probe"] * n_borrowers),
        "lon": rng.uniform(100, 120, n_borrowers), "lat": rng.uniform(25, 45, n_borrowers),
        "registered_at": pa.array([t0] * n_borrowers)}))
    step = 2_000_000
    for start in range(0, n_readings, step):
        k = min(step, n_readings - start)
        dev = rng.integers(0, n_borrowers, k)
        ts = pa.array(np.datetime64("2025-11-20") + rng.integers(0, 365 * 86400, k).astype("timedelta64[s]"))
        append(con, "sensor_readings", pa.table({
            "device_id": pa.DictionaryArray.from_arrays(pa.array(dev.astype(np.int32)), devices).cast(pa.string()),
            "seq": pa.array(np.arange(start, start + k)), "ts": ts, "received_at": ts,
            "soil_moisture_pct": rng.uniform(10, 40, k), "soil_temp_c": rng.uniform(5, 25, k),
            "battery_v": rng.uniform(3.3, 4.2, k)}))
    params = load_params()
    record_params(con, params.sha256, params.version, params.text, t0)
    crop = rng.integers(0, len(CROPS), n_fields)
    second = (crop + 1) % len(CROPS)
    p = np.round(rng.uniform(0.5, 0.97, n_fields), 4)
    dates = rng.integers(3, 8, n_fields)
    season = [(date(2026, 5, 1) + timedelta(days=int(k))).isoformat() for k in range(0, 150, 30)]
    ndvi = np.round(rng.uniform(0.2, 0.9, (n_fields, len(season))), 4)
    inputs = [json.dumps({"status": "verified", "verified_area_ha": float(a) * 0.9, "claimed_area_ha": float(a),
                          "crop": CROPS[c], "crop_probability": float(q),
                          "crop_probs": {CROPS[c]: float(q), CROPS[s]: round(1 - float(q), 4)},
                          "sensor_status": "no_devices", "reason_codes": ["ok"], "usable_dates": int(d),
                          "centre_lon": round(float(x) + 0.0015, 6), "centre_lat": round(float(y) + 0.0015, 6),
                          "ndvi_season": [[on, float(v)] for on, v in zip(season, nd)]}, sort_keys=True)
              for a, c, s, q, d, x, y, nd in zip(area, crop, second, p, dates, lon, lat, ndvi)]
    seq0 = 0
    for valid_from in (YEAR_AGO, NOW):
        value = area * 0.9 * 15 * rng.uniform(500, 1200, n_fields)
        tag = valid_from.isoformat()
        ids = pa.array([f"lim-{tag}-{i:07d}" for i in range(n_fields)])
        append(con, "decisions", pa.table({
            "decision_seq": pa.array(np.arange(seq0 + 1, seq0 + n_fields + 1)), "decision_id": ids,
            "claim_id": claim_ids, "borrower_id": owner_ids, "run_id": pa.array([f"r-{tag}"] * n_fields),
            "verification_id": ids, "valuation_id": ids, "valid_from": pa.array([valid_from] * n_fields),
            "recorded_at": pa.array([datetime.combine(valid_from, datetime.min.time())] * n_fields),
            "status": pa.array(["verified"] * n_fields), "crop": pa.array(np.asarray(CROPS, dtype=object)[crop]),
            "area_ha": area * 0.9, "value_low_cny": value * 0.7, "value_cny": value, "value_high_cny": value * 1.3,
            "limit_cny": np.floor(value * 0.7 * 0.45 / 100) * 100, "params_version": pa.array([params.version] * n_fields),
            "params_sha256": pa.array([params.sha256] * n_fields), "seg_model_version": pa.array(["seg-1"] * n_fields),
            "crop_model_version": pa.array(["crop-1"] * n_fields),
            "tiles": pa.array(['[{"tile_id": "t-1", "acquired_on": "2026-07-01", "checksum": "abc"}]'] * n_fields),
            "sensor_window": pa.array(['{"from": null, "to": null}'] * n_fields), "inputs": pa.array(inputs),
            "reasons": pa.array(['[{"code": "ok"}]'] * n_fields), "explanation": pa.array(["[]"] * n_fields),
            "prev_hash": pa.array(["0" * 64] * n_fields), "row_hash": pa.array(["0" * 64] * n_fields)}))
        seq0 += n_fields
    rebuild_current(con)  # the current-state rows a decision append keeps (bulk loaded here)


def _matches_per_field(con, params, run_id: str, rng: np.random.Generator, k: int) -> bool:
    """The revalued numbers of k random fields against `valuation.value_inputs` of their stored inputs."""
    from assets.valuation import ValuationInput, value_inputs

    seqs = [int(x) for x in rng.choice(con.execute("SELECT decision_seq FROM decisions WHERE run_id = ?", [run_id])
                                       .fetchnumpy()["decision_seq"], k, replace=False)]
    rows = con.execute("SELECT inputs::VARCHAR, value_low_cny, value_cny, value_high_cny, limit_cny FROM decisions "
                       "WHERE list_contains(?, decision_seq)", [seqs]).fetchall()
    for doc, low, value, high, limit in rows:
        v = value_inputs(ValuationInput.from_json(json.loads(doc)), params)
        if (v.value_low_cny, v.value_cny, v.value_high_cny) != (low, value, high) or v.limit_cny < limit:
            return False  # the limit may only be lower (the per-borrower cap)
    return len(rows) == k


def _median_ms(fn, args_list) -> float:
    times = []
    for args in args_list:
        t = time.perf_counter()
        fn(*args)
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--fields", type=int, default=1_000_000)
    ap.add_argument("--borrowers", type=int, default=100_000)
    ap.add_argument("--readings", type=int, default=10_000_000)
    ap.add_argument("--db", type=Path, default=None, help="where to build the file (default: a temporary folder)")
    args = ap.parse_args()

    from assets.explain import explain
    from assets.revalue import revalue_all
    from assets.store import connect
    from assets.store.credit import PortfolioFilter, portfolio, portfolio_summary
    from assets.valuation import load_params, parse_params

    rng = np.random.default_rng(14)
    with tempfile.TemporaryDirectory() as tmp:
        db = args.db or Path(tmp) / "bank.duckdb"
        t = time.perf_counter()
        with connect(db) as con:
            con.execute("SET memory_limit = '12GB'")
            build(con, args.fields, args.borrowers, args.readings, rng)
        build_s = time.perf_counter() - t
        size_mb = db.stat().st_size / 2**20
        with connect(db) as con:
            con.execute("SET memory_limit = '12GB'")
            picks = [(con, f"b{int(i):07d}") for i in rng.integers(0, args.borrowers, 21)]
            explain(*picks[0])  # warm the file cache once
            explain_ms = _median_ms(lambda c, b: explain(c, b), picks)
            as_of_ms = _median_ms(lambda c, b: explain(c, b, as_of=NOW - timedelta(days=365) + timedelta(days=10)),
                                  picks)
            summary_ms = _median_ms(portfolio_summary, [(con,)] * 5)
            filtered_ms = _median_ms(lambda c: portfolio(c, PortfolioFilter(crop="maize", min_limit_cny=10_000,
                                                                              sort="limit_cny", descending=True,
                                                                              rows=50)), [(con,)] * 3)
            base = load_params()
            dearer = parse_params(base.text.replace(f'version = "{base.version}"', 'version = "bench-price-change"')
                                  .replace("price_cny_per_kg = 2.3\n", "price_cny_per_kg = 2.5\n"), "bench")
            load_before = os.getloadavg()[0]
            t = time.perf_counter()
            revalued = revalue_all(con, dearer, as_of=NOW + timedelta(days=1), recorded_at=datetime(2026, 11, 21, 2),
                                   run_id="r-bench-revalue")
            revalue_s = time.perf_counter() - t
            load_after = os.getloadavg()[0]
            same = _matches_per_field(con, dearer, "r-bench-revalue", rng, 2000)
            after = explain(*picks[0], recompute=True)
            summary = portfolio_summary(con)
    result = {
        "fields": args.fields, "borrowers": args.borrowers, "sensor_readings": args.readings,
        "decisions_before_revalue": 2 * args.fields, "build_s": round(build_s, 1), "db_mib": round(size_mb),
        "borrower_explain_ms": round(explain_ms, 1), "portfolio_summary_ms": round(summary_ms, 1),
        "portfolio_filtered_ms": round(filtered_ms, 1), "revalue_all_s": round(revalue_s, 1),
        "revalued_fields": revalued, "explain_as_of_ms": round(as_of_ms, 1),
        "recompute_matches_after_revalue": after["recompute_matches"], "revalue_matches_per_field_2000": same,
        "limit_cny_total": summary["limit_cny"],
        "cpus": os.cpu_count(), "load_avg_1m_around_revalue": [round(load_before, 2), round(load_after, 2)],
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
