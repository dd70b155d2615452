"""Named reads of the `claims` table (the writes go through `append`)."""

from __future__ import annotations

import json
from typing import Any, Sequence

import duckdb

from assets.errors import ConcurrentChangeError, InputError
from assets.store.writer import write_op

CLAIM_COLUMNS = ("claim_id, borrower_id, name, submitted_at, geom_wkb, claimed_area_ha, status, reason_code, reason, "
                 "declared_crop")


def claim_rows(con: duckdb.DuckDBPyConnection, claim_ids: Sequence[str] | None = None) -> list[tuple]:
    """Rows (`CLAIM_COLUMNS`) of the given claims, or of every claim in submission order."""
    if claim_ids is None:
        return con.execute(f"SELECT {CLAIM_COLUMNS} FROM claims ORDER BY submitted_at, claim_id").fetchall()
    return con.execute(f"SELECT {CLAIM_COLUMNS} FROM claims WHERE list_contains(?, claim_id)",
                       [list(claim_ids)]).fetchall()


def borrower_field_bounds(con: duckdb.DuckDBPyConnection, borrower_id: str) -> list[tuple[float, float, float, float]]:
    """(min lon, min lat, max lon, max lat) of each of a borrower's claims with a usable drawing."""
    return [tuple(r) for r in con.execute(
        "SELECT min_lon, min_lat, max_lon, max_lat FROM claims WHERE borrower_id = ? AND geom_wkb IS NOT NULL",
        [borrower_id]).fetchall()]


def skeleton(sql: str) -> str:
    """SQL for an id's skeleton: case, '-', '_' and '.' dropped, 'rn' read as 'm' and 'vv' as 'w',
    o/l/i as 0/1 (`borrowers_like`; `users.users_like` reads user names the same way)."""
    plain = f"lower(replace(replace(replace({sql}, '-', ''), '_', ''), '.', ''))"
    return f"translate(replace(replace({plain}, 'rn', 'm'), 'vv', 'w'), 'oli', '011')"


def borrowers_like(con: duckdb.DuckDBPyConnection, borrower_id: str) -> list[str]:
    """Stored borrower ids that read as ``borrower_id`` (itself included): FARMER-001, farmer_001,
    farmer-001. and farmer-0O1 all read as farmer-001."""
    return [r[0] for r in con.execute(f"SELECT borrower_id FROM borrowers WHERE {skeleton('borrower_id')} = "
                                      f"{skeleton('?')} ORDER BY borrower_id", [borrower_id]).fetchall()]


def check_not_lookalike(con: duckdb.DuckDBPyConnection, borrower_id: str) -> None:
    """`InputError` when ``borrower_id`` is new but reads as a stored borrower's id (another case,
    '-' for '_', a trailing dot, O for 0): a second account with a cap of its own, not a typo to keep."""
    like = borrowers_like(con, borrower_id)
    if like and borrower_id not in like:
        raise InputError(f"borrower id {borrower_id!r} reads like the existing borrower {like[0]!r} (ids differing "
                         "only in case, '-', '_', '.', O/0, l/1 or rn/m are one borrower); use that id, or a clearly "
                         "different one for a new borrower")


def latest_submission(con: duckdb.DuckDBPyConnection) -> Any:
    """The newest `submitted_at` of any stored claim (None when there is none)."""
    row = con.execute("SELECT max(submitted_at) FROM claims").fetchone()
    return row[0] if row else None


def borrower_claims_in_bbox(con: duckdb.DuckDBPyConnection, borrower_id: str,
                            bounds: tuple[float, float, float, float]) -> list[tuple]:
    """A borrower's claims with a usable drawing whose bounding box meets ``bounds`` (lon/lat)."""
    minx, miny, maxx, maxy = bounds
    return con.execute(
        f"SELECT {CLAIM_COLUMNS} FROM claims WHERE borrower_id = ? AND geom_wkb IS NOT NULL "
        "AND min_lon <= ? AND max_lon >= ? AND min_lat <= ? AND max_lat >= ? ORDER BY submitted_at, claim_id",
        [borrower_id, maxx, minx, maxy, miny]).fetchall()


def claim_status_rows(con: duckdb.DuckDBPyConnection, claim_ids: Sequence[str]) -> list[dict[str, Any]]:
    """The `claim_status` view (current verdict, value and limit) of the given claims, as dicts."""
    cur = con.execute("SELECT * FROM claim_status WHERE list_contains(?, claim_id) ORDER BY submitted_at, claim_id",
                      [list(claim_ids)])
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, r)) for r in cur.fetchall()]


@write_op
def withdraw_undecided(con: duckdb.DuckDBPyConnection, claim_ids: Sequence[str]) -> int:
    """Delete those of ``claim_ids`` that never got a verification (a submission whose assessment
    failed or was interrupted); how many went. A borrower row it created stays (DuckDB cannot drop a
    referenced row in the transaction that drops its references); with no claims it lists nothing."""
    gone = con.execute(
        "DELETE FROM claims WHERE list_contains(?, claim_id) "
        "AND claim_id NOT IN (SELECT claim_id FROM verifications) RETURNING claim_id",
        [list(claim_ids)]).fetchall()
    return len(gone)


def other_limits_by_borrower(con: duckdb.DuckDBPyConnection, claim_ids: Sequence[str],
                             borrower_ids: Sequence[str]) -> dict[str, float]:
    """Per borrower of ``borrower_ids``, the limits in force on their claims other than ``claim_ids``:
    what a run that decides only ``claim_ids`` must leave room for under the borrower cap."""
    rows = con.execute("SELECT borrower_id, sum(limit_cny) FROM current_decisions WHERE list_contains(?, borrower_id) "
                       "AND NOT list_contains(?, claim_id) GROUP BY borrower_id",
                       [sorted(set(borrower_ids)), list(claim_ids)]).fetchall()
    return {b: float(total or 0.0) for b, total in rows}


@write_op
def check_other_limits(con: duckdb.DuckDBPyConnection, claim_ids: Sequence[str], expected: dict[str, float]) -> None:
    """Raise `ConcurrentChangeError` when the limits the borrowers of ``expected`` hold outside
    ``claim_ids`` are no longer what a run's borrower cap was computed from: two runs deciding one
    borrower's fields side by side must not each give away the same room under the cap."""
    now = other_limits_by_borrower(con, claim_ids, list(expected))
    changed = sorted(b for b, held in expected.items() if abs(now.get(b, 0.0) - held) > 0.5)
    if changed:
        raise ConcurrentChangeError(f"the limits of {', '.join(changed[:5])} changed while their fields were assessed")


def pledge_states(con: duckdb.DuckDBPyConnection, loose_codes: Sequence[str]
                  ) -> tuple[dict[str, tuple[str, list[str]]], set[str]]:
    """For `claims.Pledges`, in one pass each: ({claim_id: (status, reason codes)} of the claims that
    may hold their land other than firmly: rejected, waiting for review, or with a reason in
    ``loose_codes``; `claims.hold_of` reads them), and the claims not rejected that an officer approved
    on contested land, `overlap_contested`: that land is theirs."""
    rows = con.execute(
        "SELECT claim_id, status, json_extract_string(reasons, '$[*].code') FROM current_decisions "
        "WHERE status IN ('rejected', 'review') OR list_has_any(json_extract_string(reasons, '$[*].code'), ?)",
        [list(loose_codes)]).fetchall()
    awarded = con.execute(
        "SELECT DISTINCT r.claim_id FROM claim_reviews r LEFT JOIN current_decisions c USING (claim_id) "
        # the codes only: a reason's message quotes the farmer's declared crop or an officer's note
        "WHERE r.decision = 'approve' AND list_contains(json_extract_string(r.reasons, '$[*].code'), 'overlap_contested') "
        "AND c.status IS DISTINCT FROM 'rejected' AND NOT EXISTS (SELECT 1 FROM claim_reviews later "
        "WHERE later.claim_id = r.claim_id AND later.decision = 'reject' AND later.decided_at > r.decided_at)"
    ).fetchall()
    return {c: (status, list(codes or [])) for c, status, codes in rows}, {c for (c,) in awarded}


def decided_reasons(con: duckdb.DuckDBPyConnection, claim_ids: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    """The structured reasons of the current decision of each given claim that has one."""
    rows = con.execute("SELECT claim_id, reasons FROM current_decisions WHERE list_contains(?, claim_id)",
                       [list(claim_ids)]).fetchall()
    return {cid: json.loads(reasons) if isinstance(reasons, str) else list(reasons or []) for cid, reasons in rows}
