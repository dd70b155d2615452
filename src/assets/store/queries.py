"""The credit team's questions, answered from the SQL views (CLI, API and SQL users share them)."""

from __future__ import annotations

import json
from typing import Any

import duckdb

from assets.errors import NotFoundError


def _records(cur: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, row)) for row in cur.fetchall()]


def portfolio(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """One row per borrower: claims, verified area, value and limit."""
    return _records(con.execute("SELECT * FROM borrower_limits ORDER BY borrower_id"))


def borrower(con: duckdb.DuckDBPyConnection, borrower_id: str) -> dict[str, Any]:
    """A borrower's totals, each claim's current verdict with its explanation, limit history and
    the credit officers' review decisions."""
    totals = _records(con.execute("SELECT * FROM borrower_limits WHERE borrower_id = ?", [borrower_id]))
    if not totals:
        raise NotFoundError(f"no borrower {borrower_id!r}; list borrowers with `assets query portfolio`")
    claims = _records(con.execute(
        "SELECT s.*, a.explanation AS valuation_explanation, l.explanation AS limit_explanation, v.reasons, "
        "v.sensor_evidence, v.farmland_area_ha, v.planted_area_ha, v.overlap_area_ha, v.crop_probs, v.boundary "
        "FROM claim_status s "
        "LEFT JOIN valuations a ON a.valuation_id = s.valuation_id "
        "LEFT JOIN credit_limits l ON l.limit_id = s.limit_id "
        "LEFT JOIN verifications v ON v.verification_id = s.verification_id "
        "WHERE s.borrower_id = ? ORDER BY s.submitted_at, s.claim_id", [borrower_id]))
    for c in claims:
        for key in ("valuation_explanation", "limit_explanation", "reasons", "sensor_evidence", "crop_probs", "boundary"):
            if isinstance(c.get(key), str):
                c[key] = json.loads(c[key])
    history = _records(con.execute(
        "SELECT as_of, sum(limit_cny) AS limit_cny, count(*) AS claims_with_limit FROM credit_limits "
        "WHERE borrower_id = ? GROUP BY as_of ORDER BY as_of", [borrower_id]))
    alerts = _records(con.execute(
        "SELECT kind, as_of, claim_id, device_id, message FROM alerts WHERE borrower_id = ? ORDER BY raised_at",
        [borrower_id]))
    from assets.store.reviews import borrower_reviews

    return {"borrower": totals[0], "claims": claims, "limit_history": history, "alerts": alerts,
            "reviews": borrower_reviews(con, borrower_id)}  # officers' decisions: what, who, why


def alerts(con: duckdb.DuckDBPyConnection, *, kind: str | None = None) -> list[dict[str, Any]]:
    """Open alerts for operations, newest first (crop failure, silent or drying sensors)."""
    sql = "SELECT as_of, kind, borrower_id, claim_id, device_id, message FROM alerts"
    params: list[Any] = []
    if kind:
        sql += " WHERE kind = ?"
        params.append(kind)
    return _records(con.execute(sql + " ORDER BY as_of DESC, kind, borrower_id", params))


def preview_tile(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """The clearest, newest catalogued tile: the backdrop of the farmer's map."""
    rows = _records(con.execute(
        "SELECT tile_id, path, acquired_on, cloud_fraction FROM tiles "
        "ORDER BY round(cloud_fraction, 2), acquired_on DESC LIMIT 1"))
    if not rows:
        raise NotFoundError("no satellite tiles catalogued yet; run `assets nightly` first")
    return rows[0]


def tile_path(con: duckdb.DuckDBPyConnection, tile_id: str) -> str:
    row = con.execute("SELECT path FROM tiles WHERE tile_id = ?", [tile_id]).fetchone()
    if row is None:
        raise NotFoundError(f"no tile {tile_id!r}")
    return str(row[0])


def claim_shapes(con: duckdb.DuckDBPyConnection, borrower_id: str) -> list[dict[str, Any]]:
    """A borrower's fields as drawn (GeoJSON geometry text, EPSG:4326) with their current verdict: the map's layer."""
    return _records(con.execute(
        "SELECT s.claim_id, s.name, s.status, s.reason, s.claimed_area_ha, s.verified_area_ha, s.crop, s.limit_cny, "
        "c.geojson FROM claim_status s JOIN claims c USING (claim_id) WHERE s.borrower_id = ? "
        "ORDER BY s.submitted_at, s.claim_id", [borrower_id]))
