"""Named reads and writes of the nightly run reports (and the before/after snapshot they compare)."""

from __future__ import annotations

import json
from typing import Any, Mapping, Sequence

import duckdb

from assets.store.db import append, records
from assets.store.writer import write_op


def limits_in_force(con: duckdb.DuckDBPyConnection) -> dict[str, float | None]:
    """claim_id -> the limit of its decision in force now (`current_limits`)."""
    return {r[0]: r[1] for r in con.execute("SELECT claim_id, limit_cny FROM current_limits").fetchall()}


def alert_count(con: duckdb.DuckDBPyConnection) -> int:
    return int(con.execute("SELECT count(*) FROM alerts").fetchall()[0][0])


@write_op
def save_run_report(con: duckdb.DuckDBPyConnection, report: Mapping[str, object],
                    stages: Sequence[Mapping[str, object]] = ()) -> None:
    """Insert or complete a night's report; its stages replace any stored for the run."""
    row = {**report, "details": json.dumps(report.get("details") or {}, default=str)}
    append(con, "run_reports", [row], on_conflict="replace")
    append(con, "run_stages", stages, on_conflict="replace")


def run_rows(con: duckdb.DuckDBPyConnection, *, kind: str | None = None, limit: int = 30) -> list[dict[str, Any]]:
    """The newest nights first (`run_overview`)."""
    sql, params = "SELECT * FROM run_overview", []
    if kind is not None:
        sql += " WHERE kind = ?"
        params.append(kind)
    return records(con.execute(sql + " ORDER BY started_at DESC LIMIT ?", [*params, limit]))


def run_detail(con: duckdb.DuckDBPyConnection, run_id: str) -> dict[str, Any] | None:
    """One night, by its report id (n-...) or the id of the assessment it ran (r-..., the decisions'
    `run_id`): its overview row, details (JSON) and stages in order; None if unknown."""
    rows = records(con.execute("SELECT * FROM run_overview WHERE run_id = ? OR assessment_run_id = ? "
                                "ORDER BY run_id = ? DESC LIMIT 1", [run_id, run_id, run_id]))
    if not rows:
        return None
    report = rows[0]
    run_id = report["run_id"]
    details = con.execute("SELECT details FROM run_reports WHERE run_id = ?", [run_id]).fetchone()
    report["details"] = json.loads(details[0]) if details and details[0] else {}
    report["stages"] = records(con.execute(
        "SELECT stage, seconds, status, message FROM run_stages WHERE run_id = ? ORDER BY ordinal", [run_id]))
    return report
