"""Register farmers' claims: validate the drawing, store it once, find overlaps with others.

One pledge per piece of land. A borrower's drawing that covers the same land as one of their
stored claims (intersection over union >= `Settings.same_field_min_iou`, whatever its first
corner, orientation or vertex count) is that claim again: nothing new is stored and the stored
claim is returned. Any other overlap, the borrower's own claims included, is measured by area
against every earlier claim: the earlier claim keeps the land. A drawing that cannot be used is
still stored, as rejected with its reason, so the farmer and the bank see why.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Collection, Mapping, Sequence

import duckdb
import shapely
from shapely import wkb

from assets.access import canonical_id
from assets.config import Settings
from assets.errors import NotFoundError, TooLargeError
from assets.fields.geometry import ClaimGeometryError, Drawing, area_ha, claim_id, validate_drawing
from assets.store import append, writer
from assets.store.claims import borrower_claims_in_bbox, check_not_lookalike, claim_rows, latest_submission
from assets.store.writer import write_op

# DuckDB lets one process write a file (other processes wait for the lock), but one process, the
# API server, may hold several connections: matching a drawing against stored claims and inserting
# it must not interleave between them, or the same field could be stored twice.
_STORE_LOCK = threading.Lock()



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
    declared_crop: str | None = None  # what the farmer says grows there, as written


def _positions(coordinates: Any, stop_after: int) -> int:
    """How many [x, y] positions a GeoJSON coordinates array holds (iterative: depth is no risk)."""
    count, stack = 0, [coordinates]
    while stack and count <= stop_after:
        item = stack.pop()
        if isinstance(item, list):
            if item and all(isinstance(v, (int, float)) for v in item):
                count += 1
            else:
                stack.extend(item)
    return count


def check_request_fields(n: int, settings: Settings) -> None:
    """One API submission holds at most `max_claim_features` fields (`TooLargeError`, 413)."""
    if n > settings.max_claim_features:
        raise TooLargeError(f"{n:,} fields in one submission, above the limit of "
                            f"{settings.max_claim_features} (max_claim_features); submit them in smaller groups")


def check_drawing_sizes(drawings: Sequence[Drawing], settings: Settings, *, one_request: bool = False) -> None:
    """Refuse, before anything is stored, a field name longer than `max_field_name_chars` or a drawing
    with more than `max_claim_vertices` corners (`TooLargeError`): on every face. ``one_request``
    (the API) also caps the fields and corners of the whole submission; a file given to `assets
    claims submit` may hold up to `max_features_per_file` fields."""
    if one_request:
        check_request_fields(len(drawings), settings)
    total = 0
    for d in drawings:
        for what, text in (("field name", d.name), ("declared crop", d.declared_crop or "")):
            if len(text) > settings.max_field_name_chars:
                raise TooLargeError(f"a {what} is {len(text):,} characters, above the limit of "
                                    f"{settings.max_field_name_chars} (max_field_name_chars); shorten it")
        corners = _positions(d.geojson.get("coordinates"), settings.max_claim_vertices)
        total = total + corners if one_request else corners
        if total > settings.max_claim_vertices:
            raise TooLargeError(f"{'the submission' if one_request else repr(d.name)} has more than "
                                f"{settings.max_claim_vertices:,} corners (max_claim_vertices); simplify the "
                                f"boundar{'ies or submit fewer fields' if one_request else 'y'}")


def check_borrower_id(borrower_id: str) -> str:
    """The borrower id without surrounding spaces, by the one id rule (`access.canonical_id`): plain
    ASCII, so a look-alike such as ``farmer-00１`` never files claims under a second borrower."""
    return canonical_id((borrower_id or "").strip(), "borrower id")


def prepare_claims(borrower_id: str, drawings: Sequence[Drawing], settings: Settings, submitted_at: datetime | None = None,
                   footprints_lonlat: Sequence[tuple[float, float, float, float]] = ()) -> list[Claim]:
    """Validate each drawing; unusable ones become rejected claims carrying their reason."""
    borrower_id = check_borrower_id(borrower_id)
    when = submitted_at or datetime.now(timezone.utc).replace(tzinfo=None)
    claims = []
    for d in drawings:
        cid = claim_id(borrower_id, d.geojson)
        try:
            geom = validate_drawing(d, min_area_ha=settings.min_area_ha, max_area_ha=settings.max_area_ha,
                                    max_extent_deg=settings.max_drawing_extent_deg, footprints_lonlat=footprints_lonlat)
        except ClaimGeometryError as exc:
            claims.append(Claim(cid, borrower_id, d.name, when, None, None, "rejected", exc.code, str(exc),
                                d.declared_crop))
            continue
        claims.append(Claim(cid, borrower_id, d.name, when, geom, area_ha(geom), "submitted",
                            declared_crop=d.declared_crop))
    return claims


def intersection_over_union(a: Claim, b: Claim) -> float:
    """Shared area / combined area, measured in hectares: 1.0 for the same land drawn any way."""
    if a.geometry is None or b.geometry is None or not a.geometry.intersects(b.geometry):
        return 0.0
    shared = a.geometry.intersection(b.geometry)
    inter = area_ha(shared) if not shared.is_empty else 0.0
    union = (a.claimed_area_ha or 0.0) + (b.claimed_area_ha or 0.0) - inter
    return inter / union if union > 0 else 0.0


def same_field(claim: Claim, candidates: Sequence[Claim], min_iou: float) -> Claim | None:
    """The candidate of the same borrower covering the same land (best IoU, earliest on ties)."""
    best: tuple[float, Claim] | None = None
    for other in candidates:
        if other.borrower_id != claim.borrower_id:
            continue
        iou = intersection_over_union(claim, other)
        if iou >= min_iou and (best is None or iou > best[0]):
            best = (iou, other)
    return best[1] if best else None


def store_claims(con: duckdb.DuckDBPyConnection, claims: Sequence[Claim], drawings: Sequence[Drawing], source: str,
                 settings: Settings | None = None) -> list[Claim]:
    """Store new claims in one transaction on an open connection; returns the stored claim for
    each drawing, in order (see `store_claim_rows`; faces go through `pipeline.register_claims`)."""
    with _STORE_LOCK:
        resolved = writer.apply(con, store_claim_rows, rows=claim_rows_to_store(claims, drawings, source),
                                min_iou=(settings or Settings()).same_field_min_iou)
    return load_claims(con, resolved)


def claim_rows_to_store(claims: Sequence[Claim], drawings: Sequence[Drawing], source: str) -> list[dict[str, object]]:
    """The `claims` rows of prepared claims (plain values: they may travel to the writer process)."""
    return [_row(c, d, source) for c, d in zip(claims, drawings, strict=True)]


@write_op
def store_claim_rows(con: duckdb.DuckDBPyConnection, rows: Sequence[dict[str, Any]], min_iou: float) -> list[str]:
    """Insert claim rows (their borrowers too); returns the stored claim id for each row, in order.

    A drawing of land the borrower already pledged (stored, or earlier in this batch) resolves to
    that claim instead of becoming a second one; an identical drawing has the same id anyway. The
    match and the insert run in the writer's one transaction, so two submissions cannot both win.
    """
    resolved: list[str] = []
    new: list[dict[str, object]] = []
    batch: list[Claim] = []
    # Land is pledged in the order claims are stored (`Pledges`): a claim prepared before another
    # but stored after it (two submissions side by side) must not become the earlier one, or each
    # submission's assessment would see the other as the later claim and both would win the land.
    for borrower in sorted({str(r["borrower_id"]) for r in rows}):
        check_not_lookalike(con, borrower)
    latest = latest_submission(con)
    for row in rows:
        if latest is not None and row["submitted_at"] <= latest:  # in file order within a submission
            row = {**row, "submitted_at": latest + timedelta(microseconds=1)}
        latest = row["submitted_at"]
        c = _claim_of_row(row)
        if c.geometry is not None:
            stored = [_claim(r) for r in borrower_claims_in_bbox(con, c.borrower_id, c.geometry.bounds)]
            match = same_field(c, stored + batch, min_iou)
            if match is not None:
                resolved.append(match.claim_id)
                continue
            batch.append(c)
        resolved.append(c.claim_id)
        new.append(dict(row))
    append(con, "borrowers", [{"borrower_id": b} for b in sorted({str(r["borrower_id"]) for r in rows})], on_conflict="ignore")
    append(con, "claims", new, on_conflict="ignore")
    return resolved


def _claim_of_row(row: dict[str, Any]) -> Claim:
    blob = row["geom_wkb"]
    return Claim(row["claim_id"], row["borrower_id"], row["name"], row["submitted_at"],
                 wkb.loads(bytes(blob)) if blob is not None else None, row["claimed_area_ha"], row["status"],
                 row["reason_code"], row["reason"], row.get("declared_crop"))


def _row(c: Claim, d: Drawing, source: str) -> dict[str, object]:
    b = c.geometry.bounds if c.geometry is not None else (None,) * 4
    return {
        "claim_id": c.claim_id, "borrower_id": c.borrower_id, "name": c.name, "submitted_at": c.submitted_at,
        "source": source, "geom_wkb": wkb.dumps(c.geometry) if c.geometry is not None else None,
        "geojson": json.dumps(d.geojson), "min_lon": b[0], "min_lat": b[1], "max_lon": b[2], "max_lat": b[3],
        "claimed_area_ha": c.claimed_area_ha, "status": c.status, "reason_code": c.reason_code, "reason": c.reason,
        "declared_crop": c.declared_crop,
    }


def _claim(row: tuple) -> Claim:
    cid, bid, name, at, blob, area, status, code, reason, declared = row
    return Claim(cid, bid, name, at, wkb.loads(bytes(blob)) if blob is not None else None, area, status, code, reason,
                 declared)


def load_claims(con: duckdb.DuckDBPyConnection, claim_ids: Sequence[str] | None = None) -> list[Claim]:
    """Claims by id (in the order asked, repeats allowed), or every claim in submission order."""
    if claim_ids is None:
        return [_claim(r) for r in claim_rows(con)]
    by_id = {r[0]: _claim(r) for r in claim_rows(con, claim_ids)}
    missing = [c for c in claim_ids if c not in by_id]
    if missing:
        raise NotFoundError(f"no claim(s) {missing} in the database")
    return [by_id[c] for c in claim_ids]


class Pledges:
    """Land held by claims, first come, first served: a claim carries the part of it already held
    by an earlier claim, whoever's it is (one piece of land is pledged once, also by one borrower).

    A claim whose current verdict is ``rejected`` holds no land: a refused 274 ha grab around a
    village must not block the real field inside it that is submitted next. A *loose* drawing
    (valued at its detected field only: inflated, biting into a neighbour's field, or ringed with
    verge; `hold_of`) holds its land loosely: another borrower's later claim on it
    is contested and an officer decides; once the officer approves that claim (``awarded``), the land
    is the later claim's and the inflated one carries it as overlap. The borrower's own later
    drawing of the same land is never a contest: it is the land pledged again. Assessments settle
    each claim's verdict in submission order (`settle`), so a later claim sees this run's verdicts
    of the earlier ones. Shared parts are measured in their local UTM zone, so how a drawing is
    written does not matter.
    """

    FIRM, CONTESTED, EDGED, RELEASED = "firm", "contested", "edged", "released"

    def __init__(self, claims: Sequence[Claim], holds: Mapping[str, str] | None = None, awarded: Collection[str] = (),
                 edge_max_share: float = 0.5) -> None:
        """``holds``: how each claim holds its land (`hold_of` its current verdict), firm when not given."""
        self._usable = sorted((c for c in claims if c.geometry is not None), key=lambda c: (c.submitted_at, c.claim_id))
        self._order = {c.claim_id: i for i, c in enumerate(self._usable)}
        self._tree = shapely.STRtree([c.geometry for c in self._usable])
        self._hold = {c.claim_id: (holds or {}).get(c.claim_id, self.FIRM) for c in self._usable}
        self._awarded = set(awarded)
        self._edge_max_share = edge_max_share

    def _loose_against(self, claim: Claim, other: Claim) -> bool:
        """Whether earlier ``other`` holds the land ``claim`` shares with it only loosely: all of an
        inflated drawing (or one waiting for an officer); of an edged one (a bite into a neighbour's
        field, a ring of verge) only a bite: at most `edge_max_share` of ``claim`` and of ``other``.
        A claim taking more than that of either is taking the edged claim's own field, which it holds
        firmly (measured on both: the victim's field plus an equal strip beside it is half of the
        later claim, but nearly all of the edged one)."""
        hold = self._hold[other.claim_id]
        if hold != self.EDGED:
            return hold == self.CONTESTED
        shared = claim.geometry.intersection(other.geometry).area  # type: ignore[union-attr]
        return shared <= self._edge_max_share * min(claim.geometry.area, other.geometry.area)  # type: ignore[union-attr]

    def _near(self, claim: Claim) -> list[tuple[int, Claim]]:
        i = self._order.get(claim.claim_id)
        if i is None or claim.geometry is None:
            return []
        return [(int(j) - i, self._usable[j]) for j in self._tree.query(claim.geometry) if j != i]

    def _holding(self, claim: Claim) -> list[shapely.Geometry]:
        """Drawings that hold land against ``claim``: earlier firm ones, earlier inflated ones of the
        same borrower, and later claims an officer awarded contested land when ``claim`` holds its
        own loosely (inflated, or already refused for it: a firm earlier claim keeps its land)."""
        out = []
        mine = self._hold.get(claim.claim_id, self.FIRM)
        for rel, other in self._near(claim):
            hold = self._hold[other.claim_id]
            if hold == self.RELEASED:
                continue
            if rel < 0 and (other.borrower_id == claim.borrower_id or not self._loose_against(claim, other)):
                out.append(other.geometry)
            elif rel > 0 and other.claim_id in self._awarded and mine != self.FIRM:
                out.append(other.geometry)
        return out

    def _contesting(self, claim: Claim) -> list[shapely.Geometry]:
        return [other.geometry for rel, other in self._near(claim) if rel < 0
                and other.borrower_id != claim.borrower_id and self._loose_against(claim, other)]

    def overlap_ha(self, claim: Claim) -> float:
        """Area of ``claim`` already held by other claims (0 for a claim without geometry)."""
        held = self._holding(claim)
        if not held:
            return 0.0
        shared = claim.geometry.intersection(shapely.union_all(held))  # type: ignore[union-attr]
        return area_ha(shared) if not shared.is_empty else 0.0

    def contested_ha(self, claim: Claim) -> float:
        """Area of ``claim`` inside other borrowers' earlier *inflated* drawings only (valued at their
        detected field, so whether this land is theirs is open), outside held land: an officer decides it."""
        earlier = self._contesting(claim)
        if not earlier:
            return 0.0
        shared = claim.geometry.intersection(shapely.union_all(earlier))  # type: ignore[union-attr]
        held = self._holding(claim)
        if held and not shared.is_empty:
            shared = shared.difference(shapely.union_all(held))
        return area_ha(shared) if not shared.is_empty else 0.0

    def contesting_ids(self, claim: Claim) -> list[str]:
        """The earlier inflated claims whose land ``claim`` contests (to re-assess once an officer decides)."""
        return [other.claim_id for rel, other in self._near(claim) if rel < 0
                and other.borrower_id != claim.borrower_id and claim.geometry is not None
                and claim.geometry.intersects(other.geometry) and self._loose_against(claim, other)]

    def own_overlaps(self, claim: Claim, among: Collection[str]) -> list[tuple[str, float]]:
        """(claim id, shared ha) of the borrower's own other claims in ``among`` that share land with ``claim``."""
        out = []
        for _, other in self._near(claim):
            if other.claim_id in among and other.borrower_id == claim.borrower_id:
                shared = claim.geometry.intersection(other.geometry)  # type: ignore[union-attr]
                if not shared.is_empty:
                    out.append((other.claim_id, area_ha(shared)))
        return out

    def settle(self, claim_id: str, hold: str) -> None:
        """Record how a claim holds its land after this run's verdict (`hold_of`): later claims see it."""
        if claim_id in self._hold:
            self._hold[claim_id] = hold


# Verdicts that value a drawing at less than it covers. Inflated: the drawing took a field plus the
# neighbours' land, so whose field it is, is open (all of it is contested). Edged: it bites into a
# neighbour's field or rings a field with verge, so only the neighbour's bite is open.
INFLATED_CODES = ("boundary_inflated",)
EDGE_CODES = ("boundary_neighbours", "boundary_verge")


def hold_of(status: str, codes: Collection[str]) -> str:
    """How a claim holds its land, from its verdict (the one rule for stored and this run's verdicts):
    rejected, none (`Pledges.RELEASED`); inflated or waiting for an officer (unchecked, unlent), all of
    it loosely (`CONTESTED`: another borrower's claim on it goes to an officer); a bite or a ring, its
    edges loosely (`EDGED`); else firmly."""
    if status == "rejected":
        return Pledges.RELEASED
    if status == "review" or set(codes) & set(INFLATED_CODES):
        return Pledges.CONTESTED
    return Pledges.EDGED if set(codes) & set(EDGE_CODES) else Pledges.FIRM


def overlaps_ha(claims: Sequence[Claim], holds: Mapping[str, str] | None = None,
                awarded: Collection[str] = ()) -> dict[str, float]:
    """`Pledges.overlap_ha` of every claim (``holds`` as in `Pledges`: a released claim holds no land)."""
    pledges = Pledges(claims, holds, awarded)
    return {c.claim_id: pledges.overlap_ha(c) for c in claims if c.geometry is not None}
