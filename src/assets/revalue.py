"""Revalue every field's current decision under new parameters (a price change), at bank scale.

No imagery or model is needed: each current decision stores its valuation inputs, so the new
value is `valuation.value_inputs` of those inputs under the new parameters. Here it runs over whole
columns (`valuation_columns.value_columns`, bit-for-bit the per-field function): DuckDB parses
the stored JSON inputs into columns, numpy values them, the per-borrower cap is applied per
borrower, and the rows are hashed and chained onto the decision log in one transaction.

A revalued decision stores its numbers and a one-step explanation (``revalued``: which parameters,
from which inputs); its full steps are `value_inputs(inputs, params)`, rendered when it is read
(`explain.explain`), so they are exactly the numbers stored and a million explanations are not
formatted on every price change. Both the inputs and the parameter file are covered by the hash.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date, datetime
from typing import Any

import numpy as np
import pyarrow as pa

from assets.explain import REVALUED_STEP
from assets.store import history, transaction
from assets.valuation import ValuationParams
from assets.valuation_columns import cap_borrowers, value_columns


def revalued_explanation(params: ValuationParams, borrower_cap_cny: float | None = None) -> str:
    """The stored explanation of a revalued decision (JSON text): the steps are rendered on read."""
    steps: list[dict[str, Any]] = [{
        "step": REVALUED_STEP, "params_version": params.version, "params_sha256": params.sha256,
        "text": f"revalued from the stored inputs under parameters {params.version}; the steps below are "
                "valuation.value_inputs of those inputs and parameters"}]
    if borrower_cap_cny is not None:
        steps.append({"step": "borrower_cap", "value": borrower_cap_cny, "unit": "CNY",
                      "text": f"scaled to respect the {params.borrower_cap_cny:,.0f} CNY borrower cap"})
    return json.dumps(steps)


def revalue_all(con: Any, params: ValuationParams, *, as_of: date, recorded_at: datetime, run_id: str,
                workers: int = 1, chunk_rows: int = 0) -> int:
    """Append one new decision per valued field under ``params``; returns the number of fields revalued.

    ``workers`` and ``chunk_rows`` are accepted for callers of the former per-field version and ignored."""
    del workers, chunk_rows
    table = history.current_input_columns(con)  # ordered by borrower, then claim: the cap's order
    n = table.num_rows
    if n == 0:
        return 0
    vals = value_columns(table, params)
    borrower = np.asarray(pa.compute.dictionary_encode(table.column("borrower_id")).combine_chunks().indices
                          .to_numpy(zero_copy_only=False), dtype=np.int64)
    limits = cap_borrowers(borrower, vals.limit_cny, params)
    plain = revalued_explanation(params)
    capped = np.flatnonzero(limits != vals.limit_cny)
    explanation = [plain] * n
    for i in capped.tolist():
        explanation[i] = revalued_explanation(params, float(limits[i]))
    claims = table.column("claim_id").to_pylist()
    suffix = f"|{params.sha256}|{as_of}"
    with transaction(con):
        history.record_params(con, params.sha256, params.version, params.text, recorded_at)
        seq0, prev = history.chain_head(con)
        cols: dict[str, Any] = {
            "decision_seq": pa.array(np.arange(seq0 + 1, seq0 + n + 1, dtype=np.int64)),
            "decision_id": pa.array(["rv-" + hashlib.sha256((c + suffix).encode()).hexdigest()[:20] for c in claims]),
            "claim_id": table.column("claim_id"), "borrower_id": table.column("borrower_id"),
            "verification_id": table.column("verification_id"), "valuation_id": table.column("valuation_id"),
            "status": table.column("status"),
            "crop": table.column("crop"), "area_ha": table.column("area_ha"),
            "value_low_cny": pa.array(vals.value_low_cny), "value_cny": pa.array(vals.value_cny),
            "value_high_cny": pa.array(vals.value_high_cny), "limit_cny": pa.array(limits),
            "seg_model_version": table.column("seg_model_version"),
            "crop_model_version": table.column("crop_model_version"), "tiles": table.column("tiles"),
            "sensor_window": table.column("sensor_window"), "inputs": table.column("inputs"),
            "reasons": table.column("reasons"), "explanation": pa.array(explanation),
        }
        same = {"run_id": run_id, "valid_from": as_of, "recorded_at": recorded_at, "params_version": params.version,
                "params_sha256": params.sha256}
        history.append_columns(con, cols, same, n, prev)
    return n
