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

import json
from datetime import date, datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

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
    with transaction(con):
        table = history.stage_current_inputs(con, f"|{params.sha256}|{as_of}")  # i: borrower, then claim order
        n = table.num_rows
        if n == 0:
            history.drop_stage(con)
            return 0
        history.record_params(con, params.sha256, params.version, params.text, recorded_at)
        vals = value_columns(table, params)
        borrower = np.asarray(pc.dictionary_encode(table.column("borrower_id")).combine_chunks().indices
                              .to_numpy(zero_copy_only=False), dtype=np.int64)
        # the cap sums each borrower's limits in claim order (row i), whatever order the rows came in
        order = np.argsort(np.asarray(table.column("i").to_numpy(), dtype=np.int64), kind="stable")
        limits = np.empty(n, dtype=np.float64)
        limits[order] = cap_borrowers(borrower[order], vals.limit_cny[order], params)
        explanation: list[str | None] = [None] * n  # None: the run's common explanation
        for i in np.flatnonzero(limits != vals.limit_cny).tolist():
            explanation[i] = revalued_explanation(params, float(limits[i]))
        values = pa.table({  # their text for the hash is DuckDB's (Python's repr, checked in append_staged)
            "i": table.column("i"), "value_low_cny": vals.value_low_cny, "value_cny": vals.value_cny,
            "value_high_cny": vals.value_high_cny, "limit_cny": limits,
            "explanation": pa.array(explanation, pa.string())})
        same = {"run_id": run_id, "valid_from": as_of, "recorded_at": recorded_at, "params_version": params.version,
                "params_sha256": params.sha256}
        return history.append_staged(con, values, same, revalued_explanation(params))

