"""Why a borrower's limit was what it was on a date, and proof that it can be recomputed.

Every assessment run appends one decision per claim to the store's hash-chained log
(`decision_rows`): the verdict, the low / expected / high value and the limit, with the tiles
(ids, dates, checksums), model versions, parameter file (version + sha256, the text kept in
`valuation_params`), sensor window and the valuation inputs. `explain` picks, per claim, the
decision in force on the asked date; ``recompute=True`` values the stored inputs again with the
stored parameter text (`valuation.value_inputs`, the function the pipeline used) and applies the
per-borrower cap over the same run, so the answer does not depend on today's models or prices.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any, Sequence

import duckdb

from assets.errors import InputError, NotFoundError
from assets.store import history, queries
from assets.valuation import (
    VALUE_STEPS,
    ValuationInput,
    ValuationParams,
    cap_borrower_limits,
    parse_params,
    value_inputs,
)

REVALUED_STEP = "revalued"  # first step of a decision written by `revalue.revalue_all`: its steps are rendered on read


@dataclass(frozen=True)
class DecisionContext:
    """What a run knew besides each claim's own assessment."""

    run_id: str
    as_of: date
    recorded_at: datetime
    params: ValuationParams
    seg_model_version: str
    crop_model_version: str
    tiles: dict[str, Any]  # tile_id -> TileRecord (acquired_on, checksum)
    sensor_window_days: int


def decision_rows(assessments: Sequence[Any], ctx: DecisionContext) -> list[dict[str, Any]]:
    """One decision row per assessed claim (rejections too, with limit 0), ready for the chain."""
    rows = []
    for a in assessments:
        v, val = a.verification, a.valuation
        tile_ids = a.observation.tile_ids if a.observation else []
        tiles = [{"tile_id": t, "acquired_on": ctx.tiles[t].acquired_on.isoformat() if t in ctx.tiles else None,
                  "checksum": ctx.tiles[t].checksum if t in ctx.tiles else None} for t in sorted(tile_ids)]
        sensors = v.sensor_evidence or {}
        rows.append({
            "decision_id": ("lim-" if val else "dec-") + a.verification_id[2:], "claim_id": a.claim.claim_id,
            "borrower_id": a.claim.borrower_id, "run_id": ctx.run_id, "verification_id": a.verification_id,
            "valuation_id": "val-" + a.verification_id[2:] if val else None, "valid_from": ctx.as_of,
            "recorded_at": ctx.recorded_at, "status": v.status, "crop": v.crop,
            "area_ha": float(v.verified_area_ha),
            "value_low_cny": val.value_low_cny if val else 0.0, "value_cny": val.value_cny if val else 0.0,
            "value_high_cny": val.value_high_cny if val else 0.0, "limit_cny": val.limit_cny if val else 0.0,
            "params_version": ctx.params.version, "params_sha256": ctx.params.sha256,
            "seg_model_version": ctx.seg_model_version, "crop_model_version": ctx.crop_model_version,
            "tiles": tiles,
            "sensor_window": {"from": (ctx.as_of - timedelta(days=ctx.sensor_window_days)).isoformat(),
                              "to": ctx.as_of.isoformat(), "status": sensors.get("status"),
                              "device_ids": sensors.get("device_ids", []),
                              "readings": sensors.get("readings_in_window")},
            "inputs": val.inputs.to_json() if val and val.inputs else None,
            "reasons": v.reasons_json(), "explanation": val.explanation if val else [],
        })
    return rows


def record(con: duckdb.DuckDBPyConnection, assessments: Sequence[Any], ctx: DecisionContext) -> int:
    """Store the run's parameter file and append its decisions to the chain (inside the run's transaction)."""
    history.record_params(con, ctx.params.sha256, ctx.params.version, ctx.params.text, ctx.recorded_at)
    return history.append_decisions(con, decision_rows(assessments, ctx))


def _in_force(rows: list[dict[str, Any]], as_of: date | None) -> list[dict[str, Any]]:
    """Per claim, the decision with the newest evidence date <= as_of (then the newest recorded)."""
    best: dict[str, dict[str, Any]] = {}
    for r in rows:  # chain order: a later row with the same valid_from wins
        if as_of is not None and r["valid_from"] > as_of:
            continue
        cur = best.get(r["claim_id"])
        if cur is None or r["valid_from"] >= cur["valid_from"]:
            best[r["claim_id"]] = r
    for r in best.values():  # in force until the next decision of the claim that was known
        later = [x["valid_from"] for x in rows if x["claim_id"] == r["claim_id"] and x["valid_from"] > r["valid_from"]]
        r["valid_to"] = min(later) if later else None
    return sorted(best.values(), key=lambda r: r["claim_id"])


def _stored_params(con: duckdb.DuckDBPyConnection, sha: str, version: str,
                   cache: dict[str, ValuationParams]) -> ValuationParams:
    if sha not in cache:
        cache[sha] = parse_params(history.params_text(con, sha), f"stored parameters {version}")
    return cache[sha]


def render_steps(con: duckdb.DuckDBPyConnection, d: dict[str, Any], cache: dict[str, ValuationParams]) -> list[Any]:
    """A decision's explanation; a revalued one's steps are `value_inputs` of its stored inputs and
    parameters (the numbers it stores), between its `revalued` and any `borrower_cap` step."""
    steps = d["explanation"] or []
    if not steps or steps[0].get("step") != REVALUED_STEP or d["inputs"] is None:
        return steps
    params = _stored_params(con, d["params_sha256"], d["params_version"], cache)
    return [steps[0], *value_inputs(ValuationInput.from_json(d["inputs"]), params).explanation, *steps[1:]]


def recompute_decisions(con: duckdb.DuckDBPyConnection, decisions: list[dict[str, Any]]) -> dict[str, float]:
    """decision_id -> limit recomputed from the stored inputs and parameter text (cap over the same run)."""
    out: dict[str, float] = {}
    cache: dict[str, ValuationParams] = {}
    for d in decisions:
        if d["inputs"] is None:
            out[d["decision_id"]] = 0.0
            continue
        group = [g for g in history.run_decisions(con, d["run_id"], d["borrower_id"]) if g["inputs"] is not None]
        limits = []
        for g in group:
            val = value_inputs(ValuationInput.from_json(g["inputs"]),
                               _stored_params(con, g["params_sha256"], g["params_version"], cache))
            limits.append(val.limit_cny)
            if g["decision_id"] == d["decision_id"]:
                d["recomputed"] = {"value_low_cny": val.value_low_cny, "value_cny": val.value_cny,
                                   "value_high_cny": val.value_high_cny}
        rooms = [float(s["room_cny"]) for g in group for s in (g.get("explanation") or [])
                 if isinstance(s, dict) and s.get("step") == "borrower_cap" and s.get("room_cny") is not None]
        capped = cap_borrower_limits(limits, cache[d["params_sha256"]], min(rooms) if rooms else None)
        out.update({g["decision_id"]: c for g, c in zip(group, capped)})
    return out


def explain(con: duckdb.DuckDBPyConnection, borrower_id: str, *, as_of: date | None = None,
            known_at: datetime | None = None, recompute: bool = False) -> dict[str, Any]:
    """The borrower's limit on ``as_of`` (default: now): each claim's decision, its steps and evidence.

    ``known_at`` is UTC, as every stored time is; a time with a zone (``2026-12-08T05:48+08:00``) is
    converted to UTC first."""
    if known_at is not None and known_at.tzinfo is not None:
        try:
            known_at = known_at.astimezone(timezone.utc).replace(tzinfo=None)
        except OverflowError:  # 0001-01-01T00:00+14:00 is before the first representable instant
            raise InputError(f"known_at {known_at.isoformat()} is outside the dates a record can have; give a time "
                             "between 0001-01-02 and 9999-12-30") from None
    if not history.borrower_exists(con, borrower_id):
        raise NotFoundError(f"no borrower {borrower_id!r}; list borrowers with `assets query portfolio`")
    rows = history.borrower_decisions(con, borrower_id, known_at)
    first = min((r["valid_from"] for r in rows), default=None)
    if first is None:
        later = history.borrower_decisions(con, borrower_id, None) if known_at is not None else []
        if later:  # decisions exist, all recorded after --known-at
            recorded = min(r["recorded_at"] for r in later)
            raise InputError(f"nothing was recorded for {borrower_id} by {known_at} (--known-at); its first decision "
                             f"was recorded at {recorded:%Y-%m-%d %H:%M:%S}: use a time on or after that")
        raise NotFoundError(f"borrower {borrower_id!r} has no recorded decisions yet; run `assets nightly`")
    if as_of is not None and as_of < first:
        raise InputError(f"as of {as_of} (--as-of, ?as_of=) is before the first decision for {borrower_id} "
                         f"({first}); use a date on or after {first}")
    claims = _in_force(rows, as_of)
    cache: dict[str, ValuationParams] = {}
    for c in claims:
        c["explanation"] = render_steps(con, c, cache)
    result: dict[str, Any] = {
        "borrower_id": borrower_id, "as_of": as_of, "known_at": known_at,
        "limit_cny": sum(c["limit_cny"] for c in claims),
        "value_low_cny": sum(c["value_low_cny"] or 0 for c in claims),
        "value_cny": sum(c["value_cny"] or 0 for c in claims),
        "value_high_cny": sum(c["value_high_cny"] or 0 for c in claims),
        "claims": [{k: c[k] for k in (
            "claim_id", "decision_id", "decision_seq", "valid_from", "valid_to", "recorded_at", "status", "crop",
            "area_ha", "value_low_cny", "value_cny", "value_high_cny", "limit_cny", "params_version", "params_sha256",
            "seg_model_version", "crop_model_version", "tiles", "sensor_window", "inputs", "reasons", "explanation",
            "row_hash")} for c in claims],
    }
    if recompute:
        again = recompute_decisions(con, claims)
        for c, d in zip(result["claims"], claims):
            c["recomputed_limit_cny"] = again[d["decision_id"]]
            c["recomputed"] = d.get("recomputed")
            c["recompute_matches"] = abs(again[d["decision_id"]] - d["limit_cny"]) < 0.005
        result["recomputed_limit_cny"] = sum(again[d["decision_id"]] for d in claims)
        result["recompute_matches"] = all(c["recompute_matches"] for c in result["claims"])
    return result


def borrower_detail(con: duckdb.DuckDBPyConnection, borrower_id: str) -> dict[str, Any]:
    """`assets query borrower` and `GET /borrowers/{id}`: totals, each claim's current decision with
    its steps (split into valuation and limit steps), limit history, alerts and reviews; the numbers
    of `borrower_limits`, `current_limits` and `explain` (one query layer)."""
    detail = queries.borrower(con, borrower_id)
    cache: dict[str, ValuationParams] = {}
    for c in detail["claims"]:
        steps = render_steps(con, c, cache) if c.get("decision_id") else []
        c["valuation_explanation"] = [s for s in steps if s["step"] in VALUE_STEPS or s["step"] == REVALUED_STEP]
        c["limit_explanation"] = [s for s in steps if s["step"] not in VALUE_STEPS and s["step"] != REVALUED_STEP]
        for key in ("explanation", "inputs", "params_sha256"):
            c.pop(key, None)
    return detail
