"""Named reads and writes of the review queue (`claim_reviews`, migration 008)."""

from __future__ import annotations

import json
from typing import Any, Mapping, Sequence

import duckdb

from assets.store.db import append, records


def _decode(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for r in rows:
        for key in ("reasons", "boundary"):
            if isinstance(r.get(key), str):
                r[key] = json.loads(r[key])
    return rows


def review_queue(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """Claims whose current verdict is `review`, oldest first, with the reasons and boundary figures."""
    return _decode(records(con.execute(
        "SELECT s.claim_id, s.borrower_id, s.name, s.submitted_at, s.claimed_area_ha, s.as_of, s.verification_id, "
        "s.reason, v.verified_area_ha AS area_if_approved_ha, v.crop, v.reasons, v.boundary "
        "FROM claim_status s JOIN verifications v ON v.verification_id = s.verification_id "
        "WHERE s.status = 'review' ORDER BY s.submitted_at, s.claim_id")))


def claim_verdict(con: duckdb.DuckDBPyConnection, claim_id: str) -> dict[str, Any] | None:
    """A claim's current status row (with its verdict's reasons), or None when there is no such claim."""
    rows = _decode(records(con.execute(
        "SELECT s.claim_id, s.borrower_id, s.status, s.as_of, s.verification_id, v.reasons "
        "FROM claim_status s LEFT JOIN verifications v ON v.verification_id = s.verification_id "
        "WHERE s.claim_id = ?", [claim_id])))
    return rows[0] if rows else None


def record_decision(con: duckdb.DuckDBPyConnection, row: Mapping[str, Any]) -> None:
    append(con, "claim_reviews", [{**row, "reasons": json.dumps(row.get("reasons") or [])}])


def delete_decision(con: duckdb.DuckDBPyConnection, review_id: str) -> None:
    con.execute("DELETE FROM claim_reviews WHERE review_id = ?", [review_id])


def officer_refusals(con: duckdb.DuckDBPyConnection) -> dict[str, dict[str, Any]]:
    """Claims whose newest officer decision is a rejection: {claim_id: {borrower_id, decided_by, note, decided_at}}."""
    rows = con.execute(
        "SELECT claim_id, borrower_id, decided_by, note, decided_at FROM claim_reviews "
        "QUALIFY row_number() OVER (PARTITION BY claim_id ORDER BY decided_at DESC, review_id) = 1 "
        "AND decision = 'reject'").fetchall()
    return {cid: {"borrower_id": b, "decided_by": by, "note": note, "decided_at": at} for cid, b, by, note, at in rows}


def review_decisions(con: duckdb.DuckDBPyConnection, claim_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The newest decision per claim: {claim_id: {review_id, decision, decided_by, note, reviewed}};
    ``reviewed`` holds the codes of the reasons the officer saw when deciding, over every approval
    of the claim (a claim approved on its boundary, then on stale imagery, has had both answered)."""
    if not claim_ids:
        return {}
    rows = con.execute(
        "SELECT claim_id, review_id, decision, decided_by, note, reasons FROM claim_reviews "
        "WHERE list_contains(?, claim_id) ORDER BY claim_id, decided_at, review_id", [list(claim_ids)]).fetchall()
    out: dict[str, dict[str, Any]] = {}
    for cid, rid, decision, by, note, reasons in rows:  # oldest first: the newest decision is kept
        seen = json.loads(reasons) if isinstance(reasons, str) else (reasons or [])
        codes = [str(r.get("code")) for r in seen if isinstance(r, dict)]
        answered: dict[str, tuple[str, str]] = {}
        if decision == "approve":  # earlier approvals stand; a rejection is final and answers nothing
            answered = dict(out.get(cid, {}).get("answered_by", {}))
            for code in codes:
                answered.setdefault(code, (by, note))
        out[cid] = {"review_id": rid, "decision": decision, "decided_by": by, "note": note,
                    "reviewed": tuple(answered) if answered else tuple(codes), "answered_by": answered}
    return out


def borrower_reviews(con: duckdb.DuckDBPyConnection, borrower_id: str) -> list[dict[str, Any]]:
    """Every decision on a borrower's claims, oldest first: what was decided, by whom and why."""
    return _decode(records(con.execute(
        "SELECT r.decided_at, r.claim_id, c.name, r.decision, r.decided_by, r.note, r.verification_id, r.reasons "
        "FROM claim_reviews r LEFT JOIN claims c USING (claim_id) WHERE r.borrower_id = ? "
        "ORDER BY r.decided_at, r.review_id", [borrower_id])))
