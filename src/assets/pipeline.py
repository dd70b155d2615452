"""The spine: tiles and claims in, verified values and credit limits out, written atomically.

Three phases keep the DuckDB file (one writer at a time) free while the models run:
read what is needed, compute without the database, then write everything in one transaction.
The write phase is a list of store write ops run by the file's one writer (`store.writer.run`):
serialised with every other write of this process (so concurrent assessments never race for
the next decision_seq), or handed to the process that owns the file (`assets serve`).
The nightly Prefect flow, `assets demo` and `assets claims submit` all call these functions.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from itertools import accumulate
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from assets.claims import EDGE_CODES, INFLATED_CODES, Claim, Pledges, hold_of, load_claims
from assets.config import Settings
from assets.errors import ConcurrentChangeError, InputError
from assets.imagery.index import TileRecord, tile_from_row
from assets.models import legend
from assets.monitor import Alert, crop_failure, monitoring_params, post_loan_alerts
from assets.observe import ClaimObservation, group_by_grid, observe_claims, reference_tile
from assets.store import append, writer
from assets.store.claims import (
    check_other_limits,
    claim_status_rows,
    decided_reasons,
    other_limits_by_borrower,
    pledge_states,
    withdraw_undecided,
)
from assets.store.history import append_decisions, record_params
from assets.store.reviews import officer_refusals, review_decisions
from assets.store.tiles import has_tiles_up_to, usable_tile_rows
from assets.valuation import (
    Valuation,
    ValuationParams,
    bbox_centre,
    calendar_crop,
    cap_borrower_limits,
    load_params,
    season_ndvi,
    value_claim,
)
from assets.verify import ReviewDecision, Verification, verify_claim

if TYPE_CHECKING:  # torch loads lazily: the CLI's fast commands never import it
    from assets.models.crop import CropModel
    from assets.models.segment import Segmenter


@dataclass(frozen=True)
class Models:
    """The two CNNs every assessment uses, loaded once per process."""

    segmenter: Segmenter
    crop: CropModel

    @property
    def seg_version(self) -> str:
        return str(self.segmenter.version)

    @property
    def crop_version(self) -> str:
        return str(self.crop.version)


CAP_RETRIES = 5  # writes re-capped after another run changed the borrower's other limits meanwhile
_MODELS: dict[tuple[str, ...], Models] = {}
_MODELS_LOCK = threading.Lock()


def load_models(settings: Settings) -> Models:
    """The models of ``settings.models_dir``, loaded once per process (per file version) and shared by
    concurrent assessments. Loading traces the networks with torch.fx, which patches every module
    call process-wide while it runs: loading beside a running inference broke that inference."""
    from assets.models import crop, segment

    seg_file, crop_file = settings.models_dir / "segment.pt", settings.models_dir / "crop.pt"
    key = (str(settings.models_dir.resolve()), *(str(f.stat().st_mtime_ns) if f.exists() else "0"
                                                for f in (seg_file, crop_file)))
    with _MODELS_LOCK:
        if key not in _MODELS:
            _MODELS[key] = Models(segmenter=segment.load(seg_file), crop=crop.load(crop_file))
        return _MODELS[key]


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def _hash_id(prefix: str, *parts: object) -> str:
    return prefix + hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:16]


def catalogue_tiles(db_path: Path, tiles_dir: Path | str, until: date | None = None,
                    settings: Settings | None = None) -> list[TileRecord]:
    """Catalogue every tile at ``tiles_dir`` (a folder or fsspec URL) in this process, as the nightly
    flow does: gated, COG + STAC item, known checksums skipped, the rest quarantined; returns the
    usable ones."""

    from assets.imagery.catalog import ingest

    s = (settings or Settings()).model_copy(update={"db_path": Path(db_path)})
    return ingest(tiles_dir, s, until).survey.tiles


def segmentation_cache(db_path: Path) -> Path:
    return db_path.parent / f"{db_path.stem}.segmentation"


def segment_tile(tile: TileRecord, segmenter: Segmenter, cache_dir: Path) -> Path:
    """Field probabilities of one tile, computed once per (tile, model version) and cached."""
    from assets.imagery.windows import predict_raster_to_file

    out = cache_dir / f"{tile.tile_id}_{segmenter.version}.tif"
    if out.exists():
        return out
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(f".{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp.tif")  # concurrent assessments: one each
    try:
        predict_raster_to_file(tile.path, segmenter, tmp)
        os.replace(tmp, out)  # a crash never leaves a half-written cache entry behind
    finally:
        tmp.unlink(missing_ok=True)
    return out


def reference_tiles(tiles: Sequence[TileRecord]) -> list[TileRecord]:
    """The one tile per pixel grid that segmentation runs on."""
    return [reference_tile(g) for g in group_by_grid(tiles)]


@dataclass
class Assessment:
    claim: Claim
    verification: Verification
    verification_id: str
    observation: ClaimObservation | None = None
    valuation: Valuation | None = None


@dataclass
class RunReport:
    run_id: str
    as_of: date
    tiles: int
    assessments: list[Assessment] = field(default_factory=list)
    alerts: list[dict] = field(default_factory=list)
    params: ValuationParams | None = None  # what the run valued with (stored with its decisions)
    refused: int = 0  # claims refused at submission (no usable drawing): counted, never assessed


def stored_tiles(con, as_of: date) -> list[TileRecord]:
    """Catalogued tiles up to ``as_of``, quarantined ones left out (also those catalogued before)."""
    return [tile_from_row(r) for r in usable_tile_rows(con, as_of)]


def assess_claims(
    db_path: Path,
    *,
    as_of: date,
    settings: Settings,
    models: Models,
    claim_ids: Sequence[str] | None = None,
    kind: str = "nightly",
) -> RunReport:
    """Verify, value and limit claims (all stored ones by default) with the imagery up to ``as_of``."""
    from assets.sensors.evidence import alerts as sensor_alerts
    from assets.sensors.evidence import field_evidence

    run_id = _hash_id("r-", uuid.uuid4())
    started = _now()
    params = load_params()
    # 1. Read.
    with writer.read(db_path) as con:
        every_claim = load_claims(con)
        verdicts, awarded = pledge_states(con, [*INFLATED_CODES, *EDGE_CODES])  # awarded: that land is theirs
        pledges = Pledges(every_claim, {cid: hold_of(status, codes) for cid, (status, codes) in verdicts.items()},
                          awarded, edge_max_share=settings.pledge_edge_max_share)
        wanted = None if claim_ids is None else set(claim_ids)
        if wanted is not None:  # land an officer awarded: the drawing that held it loosely is assessed with it
            wanted |= {h for c in every_claim if c.claim_id in wanted and c.claim_id in awarded
                       for h in pledges.contesting_ids(c)}
        targets = [c for c in every_claim if wanted is None or c.claim_id in wanted]
        tiles = stored_tiles(con, as_of)
        monitoring = monitoring_params(params)  # one silence threshold for verdicts and alerts
        evidence = {c.claim_id: field_evidence(con, c.borrower_id, c.geometry, as_of,
                                               monitoring.sensor_silent_hours).to_dict()
                    for c in targets if c.geometry is not None}
        device_alerts = sensor_alerts(con, as_of, monitoring)
        decisions = {cid: ReviewDecision(**row) for cid, row in review_decisions(con, [c.claim_id for c in targets]).items()}
        refusals = officer_refusals(con)  # land an officer refused this borrower before
        held_elsewhere = other_limits_by_borrower(con, [c.claim_id for c in targets],  # the cap is per borrower
                                                  [c.borrower_id for c in targets])
    # 2. Compute, without holding the database.
    cache = segmentation_cache(db_path)
    seg_paths = {t.tile_id: segment_tile(t, models.segmenter, cache) for t in reference_tiles(tiles)}
    usable = {c.claim_id: c.geometry for c in targets if c.geometry is not None}
    observations = observe_claims(usable, tiles, seg_paths, models.crop, settings) if tiles and usable else {}
    report = RunReport(run_id=run_id, as_of=as_of, tiles=len(tiles), params=params)
    crop_alerts: list[Alert] = []
    for c in targets:
        if c.geometry is None:
            report.refused += 1
            continue  # rejected at submission; its reason is already stored on the claim
        obs = observations.get(c.claim_id) or ClaimObservation(claim_id=c.claim_id, coverage_fraction=0.0)
        # an uncertain call's alerts use the calendar of the crop its health is judged by, and say it is a guess
        guess = obs.crop[1] < settings.crop_unknown_below
        calendar, best_fit = calendar_crop(legend.UNKNOWN if guess else obs.crop[0], obs.crop_probs,
                                           season_ndvi(obs), params)
        alert = crop_failure(c.borrower_id, calendar, obs, params, as_of, uncertain=guess, best_fit=best_fit)
        held_ha, contested_ha = pledges.overlap_ha(c), pledges.contested_ha(c)
        refused = refused_before(c, pledges, refusals, settings)
        v = verify_claim(claim_id=c.claim_id, claimed_area_ha=c.claimed_area_ha or 0.0, observation=obs,
                         overlap_area_ha=held_ha, contested_overlap_ha=contested_ha,
                         sensor_evidence=evidence.get(c.claim_id),
                         settings=settings, crop_failure=alert.message if alert else None,
                         review=decisions.get(c.claim_id), as_of=as_of, declared_crop=c.declared_crop,
                         refused_before=refused)
        # Same inputs, same id (a night run twice records nothing new); the land other claims hold is
        # an input too: when it is released or contested, the claim's new verdict is recorded.
        pledged = [f"held {held_ha:.4f} contested {contested_ha:.4f} refused {refused is not None}"] \
            if held_ha or contested_ha or refused is not None else []
        vid = _hash_id("v-", c.claim_id, sorted(obs.tile_ids), models.seg_version, models.crop_version, as_of,
                       params.version, json.dumps(evidence.get(c.claim_id), sort_keys=True, default=str),
                       *([decisions[c.claim_id].review_id] if c.claim_id in decisions else []), *pledged)
        valuation = None if v.status == "review" else value_claim(  # no limit under review
            v, params, len(obs.usable_dates), centre=bbox_centre(c.geometry), ndvi_season=season_ndvi(obs))
        report.assessments.append(Assessment(c, v, vid, obs, valuation))
        pledges.settle(c.claim_id, hold_of(v.status, [r.code for r in v.reasons]))  # later claims see this verdict
        if not v.rejected:  # post-loan monitoring of a field the bank may lend against
            crop_alerts.extend(([alert] if alert else [])
                               + post_loan_alerts(c.borrower_id, calendar, obs, params, as_of, uncertain=guess,
                                                  best_fit=best_fit))
    report.alerts = [a.row(started) for a in crop_alerts] + list(device_alerts)
    # 3. Write, all or nothing, by the file's one writer (only this phase is serialised). The cap is
    # checked against the borrowers' other limits inside that transaction: a run that decided one
    # of the borrower's fields meanwhile makes this one cap again, not compute again.
    uncapped = [(a.valuation, a.valuation.limit_cny, len(a.valuation.explanation))
                for a in report.assessments if a.valuation is not None]
    decided = [a.claim.claim_id for a in report.assessments]
    for attempt in range(CAP_RETRIES):
        for val, limit, steps in uncapped:
            val.limit_cny, val.explanation[steps:] = limit, []
        _cap_per_borrower(report.assessments, params, held_elsewhere)
        check = (check_other_limits, {"claim_ids": decided, "expected": held_elsewhere_of(report, held_elsewhere)})
        try:
            writer.run(db_path, [check, *_write_steps(report, tiles, models, started, kind)])
            return report
        except ConcurrentChangeError:
            if attempt == CAP_RETRIES - 1:
                raise
            with writer.read(db_path) as con:
                held_elsewhere = other_limits_by_borrower(con, decided, [a.claim.borrower_id for a in report.assessments])
    return report


def refused_before(claim: Claim, pledges: Pledges, refusals: dict[str, dict[str, Any]],
                   settings: Settings) -> str | None:
    """What an officer said when refusing this borrower another claim on the same land, or None: a
    field redrawn a little smaller after a rejection must not pass without an officer seeing it."""
    shared = [(cid, ha) for cid, ha in pledges.own_overlaps(claim, refusals)
              if ha > settings.max_overlap_fraction * (claim.claimed_area_ha or 0.0)]
    if not shared:
        return None
    cid, ha = max(shared, key=lambda s: s[1])
    r = refusals[cid]
    return (f"{ha:.2f} ha of this field lies in claim {cid} of the same borrower, which credit officer "
            f"{r['decided_by']} rejected on {r['decided_at']:%Y-%m-%d}: {r['note']}")


def held_elsewhere_of(report: RunReport, held: dict[str, float]) -> dict[str, float]:
    """The other limits the cap of each valued borrower in ``report`` was computed from (0 when none)."""
    return {a.claim.borrower_id: held.get(a.claim.borrower_id, 0.0) for a in report.assessments if a.valuation}


def _cap_per_borrower(assessments: list[Assessment], params, held_elsewhere: dict[str, float] | None = None) -> None:
    """The borrower cap over the borrower's whole limit: this run's limits share what their fields
    decided in other runs leave under it (``held_elsewhere``), so splitting fields over several
    submissions never gets past it. The room is kept in the step, so `explain --recompute` can check it."""
    by_borrower: dict[str, list[Valuation]] = {}
    for a in assessments:
        if a.valuation is not None:
            by_borrower.setdefault(a.claim.borrower_id, []).append(a.valuation)
    for borrower_id, vals in by_borrower.items():
        held = (held_elsewhere or {}).get(borrower_id, 0.0)
        room = max(0.0, params.borrower_cap_cny - held)
        capped = cap_borrower_limits([v.limit_cny for v in vals], params, room)
        for v, new in zip(vals, capped):
            if new != v.limit_cny:
                others = (f"; the borrower's other fields already hold {held:,.0f} CNY of it, leaving {room:,.0f}"
                          if held else "")
                v.explanation.append({"step": "borrower_cap", "value": new, "unit": "CNY", "room_cny": room,
                                      "text": f"{v.limit_cny:,.0f} CNY scaled to {new:,.0f} CNY to respect the "
                                              f"{params.borrower_cap_cny:,.0f} CNY borrower cap{others}"})
                v.limit_cny = new


def _write_steps(report: RunReport, tiles: Sequence[TileRecord], models: Models, now: datetime,
                 kind: str) -> list[writer.Step]:
    """The run's rows as store write ops (plain data: they may be handed to another process)."""
    obs_rows, ver_rows, val_rows, lim_rows = [], [], [], []
    for a in report.assessments:
        v, c = a.verification, a.claim
        for d in (a.observation.dates if a.observation else []):
            obs_rows.append({"claim_id": c.claim_id, "tile_id": d.tile_id, "observed_on": d.observed_on,
                             "valid_fraction": d.valid_fraction, "ndvi_mean": d.ndvi_mean,
                             "ndvi_p10": d.ndvi_p10, "ndvi_p90": d.ndvi_p90})
        ver_rows.append({
            "verification_id": a.verification_id, "claim_id": c.claim_id, "run_id": report.run_id,
            "as_of": report.as_of, "verified_at": now, "status": v.status, "reasons": json.dumps(v.reasons_json()),
            "claimed_area_ha": v.claimed_area_ha, "farmland_area_ha": v.farmland_area_ha,
            "planted_area_ha": v.planted_area_ha, "overlap_area_ha": v.overlap_area_ha,
            "verified_area_ha": v.verified_area_ha, "crop": v.crop, "crop_probability": v.crop_probability,
            "crop_probs": json.dumps({k: round(p, 5) for k, p in v.crop_probs.items()}),
            "cropland_probability": v.cropland_probability,
            "tile_ids": a.observation.tile_ids if a.observation else [],
            "seg_model_version": models.seg_version, "crop_model_version": models.crop_version,
            "sensor_evidence": json.dumps(v.sensor_evidence, default=str),
            "boundary": json.dumps(v.boundary),
        })
        if a.valuation is None:
            continue
        val = a.valuation
        value_steps, limit_steps = val.steps()  # by step name, not position
        val_id, lim_id = "val-" + a.verification_id[2:], "lim-" + a.verification_id[2:]
        val_rows.append({
            "valuation_id": val_id, "verification_id": a.verification_id, "claim_id": c.claim_id,
            "borrower_id": c.borrower_id, "as_of": report.as_of, "valued_at": now, "crop": val.crop,
            "area_ha": val.area_ha, "area_mu": val.area_mu, "yield_kg_per_mu": val.yield_kg_per_mu,
            "price_cny_per_kg": val.price_cny_per_kg, "crop_probability": val.crop_probability,
            "value_cny": val.value_cny, "params_version": val.params_version,
            "value_low_cny": val.value_low_cny, "value_high_cny": val.value_high_cny,
            "explanation": json.dumps(value_steps),
            "seg_model_version": models.seg_version, "crop_model_version": models.crop_version,
            "inputs": json.dumps({**(val.inputs.to_json() if val.inputs else {}),
                                  "reasons": [r.code for r in v.reasons],
                                  "tile_ids": a.observation.tile_ids if a.observation else []}),
        })
        lim_rows.append({
            "limit_id": lim_id, "valuation_id": val_id, "claim_id": c.claim_id, "borrower_id": c.borrower_id,
            "as_of": report.as_of, "created_at": now, "limit_cny": val.limit_cny, "advance_rate": val.advance_rate,
            "params_version": val.params_version, "explanation": json.dumps(limit_steps),
        })
    def rows(table: str, data: list[dict], on_conflict: str = "error") -> writer.Step:
        return append, {"table": table, "rows": data, "on_conflict": on_conflict}

    steps = [rows("observations", obs_rows, "replace"), rows("verifications", ver_rows, "replace"),
             rows("valuations", val_rows, "ignore"),  # never overwritten: same id = same decision
             rows("credit_limits", lim_rows, "ignore")]
    if report.params is not None:  # the hash-chained decision log (#14): numbered and chained by the writer
        from assets.explain import DecisionContext, decision_rows
        from assets.sensors.evidence import WINDOW_DAYS

        p = report.params
        ctx = DecisionContext(
            run_id=report.run_id, as_of=report.as_of, recorded_at=now, params=p,
            seg_model_version=models.seg_version, crop_model_version=models.crop_version,
            tiles={t.tile_id: t for t in tiles}, sensor_window_days=WINDOW_DAYS)
        steps += [(record_params, {"sha256": p.sha256, "version": p.version, "text": p.text, "now": now}),
                  (append_decisions, {"rows": decision_rows(report.assessments, ctx)})]
    # sensor alerts carry their details as JSON text already: encoding it again stored a string, not an object
    alert_rows = [{**r, "details": _json_text(r.get("details"))} for r in report.alerts]
    steps += [rows("alerts", alert_rows, "ignore"), rows("ingest_runs", [{
        "run_id": report.run_id, "kind": kind, "started_at": now, "finished_at": _now(), "status": "ok",
        "as_of": report.as_of, "tiles_seen": len(tiles), "claims_processed": len(report.assessments),
        "message": f"{len(report.assessments)} claims assessed with {len(tiles)} tiles",
    }])]
    return steps


def register_claims(db_path: Path, path: Path | str | dict, borrower_id: str, settings: Settings) -> list[Claim]:
    """Parse, validate and store drawings (a GeoJSON file or document) for one borrower (idempotent)."""
    from assets.fields.geometry import read_drawings

    drawings = read_drawings(path, max_features=settings.max_features_per_file)
    return store_drawings_of(db_path, [(borrower_id, drawings)], settings, "api" if isinstance(path, dict) else str(path))[0]


def _json_text(details: Any) -> str:
    """An alert's details as JSON text, encoded once (sensor alerts carry text already)."""
    return details if isinstance(details, str) else json.dumps(details, default=str)


def store_drawings_of(db_path: Path, batch: Sequence[tuple[str, list]], settings: Settings,
                      source: str) -> list[list[Claim]]:  # fmt: skip
    """Validate each borrower's drawings against the imagery we hold (swapped axes are recognised
    by it) and store them all in one transaction; the stored claims, per borrower in order.

    Many borrowers at once (a bank's bulk import) cost one write and two reads of the file, not
    three opens per borrower."""
    from assets.claims import claim_rows_to_store, load_claims, prepare_claims, store_claim_rows
    from assets.store.tiles import tile_footprints

    with writer.read(db_path) as con:
        footprints = tile_footprints(con)
    rows: list[dict[str, object]] = []
    counts = []
    for borrower_id, drawings in batch:
        claims = prepare_claims(borrower_id, drawings, settings, footprints_lonlat=footprints)
        rows += claim_rows_to_store(claims, drawings, source)
        counts.append(len(claims))
    # One write op: the pledge check reads the borrowers' claims it then adds to, in one
    # transaction on the file's one writer (a running server's, when `assets claims submit` runs beside it).
    resolved = writer.call(db_path, store_claim_rows, rows=rows, min_iou=settings.same_field_min_iou)
    with writer.read(db_path) as con:
        stored = load_claims(con, resolved)
    return [stored[end - n : end] for n, end in zip(counts, accumulate(counts))]


def claim_rows(db_path: Path, claim_ids: Sequence[str]) -> list[dict]:
    """The current verdict, value and limit of each claim (the `claim_status` view).

    Read-write like every connection this module opens: a server process may hold other
    connections to the file, and DuckDB refuses to mix read-only and read-write in one process.
    """
    with writer.read(db_path) as con:
        return claim_status_rows(con, claim_ids)


def check_as_of(as_of: date, settings: Settings) -> date:
    """An assessment date, or an `InputError`: not before `Settings.earliest_as_of` (the first
    Sentinel-2 images) and not after the service's today (`Settings.as_of`, else the calendar's).
    A decision dated in the future would stay the current one over every real night until then."""
    today = settings.today()
    if as_of > today:
        raise InputError(f"the assessment date {as_of} is after today ({today}); assess at today's date or earlier")
    if as_of < settings.earliest_as_of:
        raise InputError(f"the assessment date {as_of} is before the first Sentinel-2 images "
                         f"({settings.earliest_as_of}); give a date from then on")
    return as_of


def submit_and_assess(settings: Settings, path: Path | str | dict, borrower_id: str, *, as_of: date,
                      models: Models | None = None) -> list[dict]:
    """A farmer's submission end to end: store the drawings, verify and value them now."""
    from assets.claims import check_borrower_id, check_drawing_sizes
    from assets.fields.geometry import read_drawings

    as_of = check_as_of(as_of, settings)
    db_path = settings.db_path
    drawings = read_drawings(path, max_features=settings.max_features_per_file)  # bad files fail before any write
    check_drawing_sizes(drawings, settings)
    borrower_id = check_borrower_id(borrower_id)
    with writer.read(db_path) as con:
        have_tiles = has_tiles_up_to(con, as_of)
    if not have_tiles:  # catalogued first, so a drawing is checked against the imagery it will be judged on
        catalogue_tiles(db_path, settings.tiles_source, until=as_of, settings=settings)
    source = "api" if isinstance(path, dict) else str(path)
    claims = store_drawings_of(db_path, [(borrower_id, drawings)], settings, source)[0]
    # A field submitted again (any first corner, orientation or vertex count) is the stored claim: its
    # stored verdict comes back, assessed once, not again at today's date as a new decision.
    # Only a refusal for overlap is looked at again: the claim holding that land may have been
    # rejected or withdrawn since, and the farmer resubmits because the bank said so.
    with writer.read(db_path) as con:
        reasons = {cid: r for cid, r in decided_reasons(con, [c.claim_id for c in claims]).items()
                   if {x.get("code") for x in r if x.get("blocking")} != {"overlap"}}
    usable = [c.claim_id for c in claims if c.geometry is not None and c.claim_id not in reasons]
    reasons.update({c.claim_id: [{"code": c.reason_code, "message": c.reason, "blocking": True}]
                    for c in claims if c.geometry is None})
    if usable:
        try:
            report = assess_claims(db_path, as_of=as_of, settings=settings, models=models or load_models(settings),
                                   claim_ids=usable, kind="claims")
        except BaseException:  # failed or interrupted (Ctrl-C): no claim is left stored without a verdict
            writer.call(db_path, withdraw_undecided, claim_ids=usable)
            raise
        reasons.update({a.claim.claim_id: a.verification.reasons_json() for a in report.assessments})
    # Each row also carries its reasons by code, so a face can word them in the reader's language.
    rows = {row["claim_id"]: row for row in claim_rows(db_path, [c.claim_id for c in claims])}
    drawn = list(dict.fromkeys(c.claim_id for c in claims if c.claim_id in rows))  # in the order drawn, once each
    return [{**rows[cid], "reasons": reasons.get(cid, [])} for cid in drawn]
