"""Named reads and writes of alert resolutions (`alert_resolutions`, migration 018)."""

from __future__ import annotations

from typing import Any, Mapping

import duckdb

from assets.store.db import append


def alert_state(con: duckdb.DuckDBPyConnection, alert_id: str) -> dict[str, Any] | None:
    """An alert with whether it is listed open and, if resolved, by whom; None when no such alert."""
    cur = con.execute(
        "SELECT a.alert_id, a.kind, a.borrower_id, a.claim_id, a.device_id, a.as_of, a.message, "
        "EXISTS (SELECT 1 FROM alerts_open o WHERE o.alert_id = a.alert_id) AS open, "
        "x.resolved_by, x.resolved_at, x.note AS resolution_note "
        "FROM alerts a LEFT JOIN alert_resolutions x USING (alert_id) WHERE a.alert_id = ?", [alert_id])
    cols = [d[0] for d in cur.description]
    row = cur.fetchone()
    return dict(zip(cols, row)) if row else None


def record_resolution(con: duckdb.DuckDBPyConnection, row: Mapping[str, Any]) -> None:
    append(con, "alert_resolutions", [dict(row)])
