"""The credit team's questions, answered from the SQL views (CLI, API and SQL users share them)."""

from __future__ import annotations

import json
from typing import Any

import duckdb

from assets.errors import NotFoundError
from assets.store.db import records


def portfolio(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """One row per borrower: claims, verified area, value range and limit in force now (`borrower_limits`)."""
    return records(con.execute("SELECT * FROM borrower_limits ORDER BY borrower_id"))


def borrower(con: duckdb.DuckDBPyConnection, borrower_id: str) -> dict[str, Any]:
    """A borrower's totals (`borrower_limits`), each claim's current decision (`field_valuations`)
    with its stored explanation and verification evidence, the limit in force at each decision date,
    alerts and the credit officers' review decisions. A revalued decision's steps are rendered by
    `explain.borrower_detail`, the function the faces call."""
    totals = records(con.execute("SELECT * FROM borrower_limits WHERE borrower_id = ?", [borrower_id]))
    if not totals:
        raise NotFoundError(f"no borrower {borrower_id!r}; list borrowers with `assets query portfolio`")
    claims = records(con.execute(
        "SELECT f.claim_id, f.borrower_id, f.name, f.submitted_at, f.claimed_area_ha, f.status, f.reason, "
        "d.verification_id, f.as_of, f.verified_area_ha, f.verified_area_ha * 15 AS verified_area_mu, f.crop, "
        "v.crop_probability, v.tile_ids, f.seg_model_version, f.crop_model_version, d.valuation_id, "
        # a field in review or rejected has no value or limit (null, shown as "-"), not one of 0
        "CASE WHEN d.valuation_id IS NOT NULL THEN f.value_low_cny END AS value_low_cny, "
        "CASE WHEN d.valuation_id IS NOT NULL THEN f.value_cny END AS value_cny, "
        "CASE WHEN d.valuation_id IS NOT NULL THEN f.value_high_cny END AS value_high_cny, "
        "f.decision_id, CASE WHEN d.valuation_id IS NOT NULL THEN f.limit_cny END AS limit_cny, "
        "f.params_version, d.params_sha256, "
        "d.explanation, d.inputs, v.reasons, v.sensor_evidence, v.farmland_area_ha, v.planted_area_ha, "
        "v.overlap_area_ha, v.crop_probs, v.boundary, f.measured_area_ha "
        "FROM field_valuations f LEFT JOIN decisions d ON d.decision_id = f.decision_id "
        "LEFT JOIN verifications v ON v.verification_id = d.verification_id "
        "WHERE f.borrower_id = ? ORDER BY f.submitted_at, f.claim_id", [borrower_id]))
    for c in claims:
        for key in ("explanation", "inputs", "reasons", "sensor_evidence", "crop_probs", "boundary"):
            if isinstance(c.get(key), str):
                c[key] = json.loads(c[key])
    history = records(con.execute(  # the limit in force on each date the borrower's decisions changed
        "WITH dates AS (SELECT DISTINCT valid_from AS as_of FROM decisions WHERE borrower_id = ?) "
        "SELECT dt.as_of, sum(t.limit_cny) AS limit_cny, count(t.valuation_id) AS claims_with_limit FROM dates dt "
        "JOIN decision_timeline t ON t.borrower_id = ? AND t.valid_from <= dt.as_of "
        "AND (t.valid_to IS NULL OR t.valid_to > dt.as_of) GROUP BY dt.as_of ORDER BY dt.as_of",
        [borrower_id, borrower_id]))
    alerts = records(con.execute(
        f"SELECT a.alert_id, a.kind, a.as_of, {_ALERT_SUBJECT}, a.message FROM alerts_open a "  # resolved ones left out
        "LEFT JOIN claims c USING (claim_id) WHERE a.borrower_id = ? ORDER BY a.raised_at, a.as_of",
        [borrower_id]))
    from assets.store.reviews import borrower_reviews

    return {"borrower": totals[0], "claims": claims, "limit_history": history, "alerts": alerts,
            "reviews": borrower_reviews(con, borrower_id)}  # officers' decisions: what, who, why


# What an alert is about: its field (claim id and name) or its device, and the one of them to show.
_ALERT_SUBJECT = "a.claim_id, c.name AS claim_name, a.device_id, coalesce(c.name, a.device_id) AS about"


def alerts(con: duckdb.DuckDBPyConnection, *, kind: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
    """Open alerts for operations, newest first (crop failure, silent or drying sensors), each with
    the field or device it is about; at most ``limit`` of them. Open is the `alerts_open` view's rule
    (a silent sensor's alert closes once the device reports again)."""
    sql = (f"SELECT a.alert_id, a.as_of, a.kind, a.borrower_id, {_ALERT_SUBJECT}, a.message FROM alerts_open a "
           "LEFT JOIN claims c USING (claim_id)")
    params: list[Any] = []
    if kind:
        sql += " WHERE a.kind = ?"
        params.append(kind)
    sql += " ORDER BY a.as_of DESC, a.kind, a.borrower_id, about"
    if limit is not None:
        sql += " LIMIT ?"
        params.append(limit)
    return records(con.execute(sql, params))


def preview_tile(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """The clearest, newest catalogued tile: the backdrop of the farmer's map."""
    rows = records(con.execute(
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
    """A borrower's fields as drawn (GeoJSON geometry text, EPSG:4326) with their current verdict: the map's layer.
    A drawing refused at submission (unclosed, the whole Earth, text coordinates) has no shape to
    draw: it is listed with its reason, its geometry null, so it never paints over real fields."""
    return records(con.execute(
        "SELECT s.claim_id, s.name, s.status, s.reason, s.claimed_area_ha, s.verified_area_ha, s.crop, s.limit_cny, "
        "CASE WHEN c.geom_wkb IS NOT NULL THEN c.geojson END AS geojson "
        "FROM claim_status s JOIN claims c USING (claim_id) WHERE s.borrower_id = ? "
        "ORDER BY s.submitted_at, s.claim_id", [borrower_id]))
