"""Revalue every field's current decision under new parameters (a price change), at bank scale.

No imagery or model is needed: each current decision stores its valuation inputs, so the new
value is `valuation.value_inputs` of those inputs under the new parameters, the function the
pipeline and `--recompute` use. Fields are split by borrower across worker processes (the
per-borrower cap needs all of a borrower's fields); each worker builds its rows and their content
digests, and the parent only links the hash chain and appends, in one transaction.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
from concurrent.futures import ProcessPoolExecutor
from datetime import date, datetime
from typing import Any

import duckdb

from assets.store import history, transaction
from assets.valuation import ValuationInput, ValuationParams, cap_borrower_limits, value_inputs

_JOB: dict[str, Any] = {}  # the inputs table, shared with forked workers without pickling it


def _chunk(start: int, stop: int, seq0: int) -> tuple[list[dict[str, Any]], list[str]]:
    cols, params, meta = _JOB["cols"], _JOB["params"], _JOB["meta"]
    rows, digests = [], []
    i = start
    while i < stop:  # one borrower at a time: the cap applies over their fields
        j = i
        while j < stop and cols["borrower_id"][j] == cols["borrower_id"][i]:
            j += 1
        vals = [value_inputs(ValuationInput.from_json(json.loads(cols["inputs"][k])), params) for k in range(i, j)]
        capped = cap_borrower_limits([v.limit_cny for v in vals], params)
        for k, v, limit in zip(range(i, j), vals, capped):
            if limit != v.limit_cny:
                v.explanation.append({"step": "borrower_cap", "value": limit, "unit": "CNY",
                                      "text": f"scaled to respect the {params.borrower_cap_cny:,.0f} CNY borrower cap"})
            claim = cols["claim_id"][k]
            row = {
                "decision_seq": seq0 + k + 1,
                "decision_id": "rv-" + hashlib.sha256(f"{claim}|{params.sha256}|{meta['as_of']}".encode()).hexdigest()[:20],
                "claim_id": claim, "borrower_id": cols["borrower_id"][k], "run_id": meta["run_id"],
                "verification_id": cols["verification_id"][k], "valuation_id": cols["valuation_id"][k],
                "valid_from": meta["as_of"], "recorded_at": meta["recorded_at"], "status": cols["status"][k],
                "crop": cols["crop"][k], "area_ha": cols["area_ha"][k], "value_low_cny": v.value_low_cny,
                "value_cny": v.value_cny, "value_high_cny": v.value_high_cny, "limit_cny": limit,
                "params_version": params.version, "params_sha256": params.sha256,
                "seg_model_version": cols["seg_model_version"][k], "crop_model_version": cols["crop_model_version"][k],
                "tiles": cols["tiles"][k], "sensor_window": cols["sensor_window"][k], "inputs": cols["inputs"][k],
                "reasons": cols["reasons"][k], "explanation": json.dumps(v.explanation),
            }
            rows.append(row)
            digests.append(history.content_digest(row))
        i = j
    return rows, digests


def revalue_all(con: duckdb.DuckDBPyConnection, params: ValuationParams, *, as_of: date, recorded_at: datetime,
                run_id: str, workers: int = 2, chunk_rows: int = 5_000) -> int:
    """Append one new decision per valued field under ``params``; returns the number of fields revalued."""
    table = history.current_inputs(con).sort_by([("borrower_id", "ascending"), ("claim_id", "ascending")])
    cols = {name: table.column(name).to_pylist() for name in table.column_names}
    n = table.num_rows
    bounds, start = [], 0
    while start < n:  # chunk edges fall between borrowers
        stop = min(start + chunk_rows, n)
        while 0 < stop < n and cols["borrower_id"][stop] == cols["borrower_id"][stop - 1]:
            stop += 1
        bounds.append((start, stop))
        start = stop
    with transaction(con):
        history.record_params(con, params.sha256, params.version, params.text, recorded_at)
        seq0, _ = history.chain_head(con)
        _JOB.update(cols=cols, params=params, meta={"as_of": as_of, "recorded_at": recorded_at, "run_id": run_id})
        try:
            if workers > 1 and len(bounds) > 1:
                with ProcessPoolExecutor(workers, mp_context=mp.get_context("fork")) as pool:
                    parts = pool.map(_chunk, [b[0] for b in bounds], [b[1] for b in bounds], [seq0] * len(bounds))
                    for rows, digests in parts:
                        history.append_prepared(con, rows, digests)
            else:
                for a, b in bounds:
                    history.append_prepared(con, *_chunk(a, b, seq0))
        finally:
            _JOB.clear()
    return n
