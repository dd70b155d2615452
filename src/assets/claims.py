"""Register farmers' claims: validate the drawing, store it once, find overlaps with others.

A claim's id is derived from the borrower and the drawing, so submitting the same file twice
stores nothing new. A drawing that cannot be used is still stored, as rejected with its reason,
so the farmer and the bank see why.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Sequence

import duckdb
import shapely
from shapely import wkb

from assets.config import Settings
from assets.errors import InputError, NotFoundError
from assets.fields.geometry import ClaimGeometryError, Drawing, area_ha, claim_id, validate_drawing
from assets.store import append, transaction

BORROWER_ID_MAX = 64


@dataclass(frozen=True)
class Claim:
    claim_id: str
    borrower_id: str
    name: str
    submitted_at: datetime
    geometry: shapely.Geometry | None  # EPSG:4326; None when the drawing was rejected
    claimed_area_ha: float | None
    status: str
    reason_code: str | None = None
    reason: str | None = None


def check_borrower_id(borrower_id: str) -> str:
    cleaned = (borrower_id or "").strip()
    if not cleaned or len(cleaned) > BORROWER_ID_MAX or not all(c.isalnum() or c in "-_." for c in cleaned):
        raise InputError(
            f"borrower id {borrower_id!r} is not valid; use 1-{BORROWER_ID_MAX} letters, digits, '-', '_' or '.'"
        )
    return cleaned


def prepare_claims(borrower_id: str, drawings: Sequence[Drawing], settings: Settings, submitted_at: datetime | None = None) -> list[Claim]:
    """Validate each drawing; unusable ones become rejected claims carrying their reason."""
    borrower_id = check_borrower_id(borrower_id)
    when = submitted_at or datetime.now(timezone.utc).replace(tzinfo=None)
    claims = []
    for d in drawings:
        cid = claim_id(borrower_id, d.geojson)
        try:
            geom = validate_drawing(d, min_area_ha=settings.min_area_ha, max_area_ha=settings.max_area_ha)
        except ClaimGeometryError as exc:
            claims.append(Claim(cid, borrower_id, d.name, when, None, None, "rejected", exc.code, str(exc)))
            continue
        claims.append(Claim(cid, borrower_id, d.name, when, geom, area_ha(geom), "submitted"))
    return claims


def store_claims(con: duckdb.DuckDBPyConnection, claims: Sequence[Claim], drawings: Sequence[Drawing], source: str) -> list[Claim]:
    """Insert new claims (ignoring ones already stored) in one transaction; returns stored state."""
    rows = []
    for c, d in zip(claims, drawings, strict=True):
        b = c.geometry.bounds if c.geometry is not None else (None,) * 4
        rows.append({
            "claim_id": c.claim_id, "borrower_id": c.borrower_id, "name": c.name, "submitted_at": c.submitted_at,
            "source": source, "geom_wkb": wkb.dumps(c.geometry) if c.geometry is not None else None,
            "geojson": json.dumps(d.geojson), "min_lon": b[0], "min_lat": b[1], "max_lon": b[2], "max_lat": b[3],
            "claimed_area_ha": c.claimed_area_ha, "status": c.status, "reason_code": c.reason_code, "reason": c.reason,
        })
    with transaction(con):
        append(con, "borrowers", [{"borrower_id": b} for b in sorted({c.borrower_id for c in claims})], on_conflict="ignore")
        append(con, "claims", rows, on_conflict="ignore")
    return load_claims(con, [c.claim_id for c in claims])


_CLAIM_COLUMNS = "claim_id, borrower_id, name, submitted_at, geom_wkb, claimed_area_ha, status, reason_code, reason"


def _claim(row: tuple) -> Claim:
    cid, bid, name, at, blob, area, status, code, reason = row
    return Claim(cid, bid, name, at, wkb.loads(bytes(blob)) if blob is not None else None, area, status, code, reason)


def load_claims(con: duckdb.DuckDBPyConnection, claim_ids: Sequence[str] | None = None) -> list[Claim]:
    """Claims by id (in the order asked), or every claim in submission order."""
    if claim_ids is None:
        rows = con.execute(f"SELECT {_CLAIM_COLUMNS} FROM claims ORDER BY submitted_at, claim_id").fetchall()
        return [_claim(r) for r in rows]
    rows = con.execute(f"SELECT {_CLAIM_COLUMNS} FROM claims WHERE list_contains(?, claim_id)", [list(claim_ids)]).fetchall()
    by_id = {r[0]: _claim(r) for r in rows}
    missing = [c for c in claim_ids if c not in by_id]
    if missing:
        raise NotFoundError(f"no claim(s) {missing} in the database")
    return [by_id[c] for c in claim_ids]


def overlaps_ha(claims: Sequence[Claim]) -> dict[str, float]:
    """Area of each claim already claimed by another borrower's earlier, usable claim.

    First come, first served: the earlier drawing keeps the land, the later one carries the
    overlap. The shared part is measured in its local UTM zone.
    """
    usable = sorted((c for c in claims if c.geometry is not None), key=lambda c: (c.submitted_at, c.claim_id))
    tree = shapely.STRtree([c.geometry for c in usable])
    out: dict[str, float] = {}
    for i, c in enumerate(usable):
        total = 0.0
        earlier = [usable[j] for j in tree.query(c.geometry) if j < i and usable[j].borrower_id != c.borrower_id]
        if earlier:
            shared = c.geometry.intersection(shapely.union_all([e.geometry for e in earlier]))
            total = area_ha(shared) if not shared.is_empty else 0.0
        out[c.claim_id] = total
    return out
