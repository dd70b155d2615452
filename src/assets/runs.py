"""The report of one night: tiles in, fields refreshed, limits changed, alerts raised, time per stage.

The nightly flow opens a `NightReport` (stored as `running` at once, so a night killed mid-way
stays visible), times each stage with `stage`, and completes it at the end; `render` is what the
night prints last and `assets runs show` prints again. Stored in `run_reports` / `run_stages`
(view `run_overview`).
"""

from __future__ import annotations

import json
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from assets.errors import NotFoundError, StoreError


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


@dataclass
class Stage:
    name: str
    seconds: float = 0.0
    status: str = "ok"  # ok | failed | skipped
    message: str | None = None


RUN_KINDS = ("nightly", "demo", "backfill")  # what writes a run report


@dataclass
class NightReport:
    kind: str
    as_of: date
    task_runner: str
    run_id: str = field(default_factory=lambda: "n-" + uuid.uuid4().hex[:16])
    started_at: datetime = field(default_factory=_now)
    finished_at: datetime | None = None
    status: str = "running"
    tiles_ingested: int = 0
    tiles_known: int = 0
    tiles_duplicate: int = 0
    tiles_quarantined: int = 0
    tiles_failed: int = 0
    fields_refreshed: int = 0
    limits_changed: int = 0
    alerts_raised: int = 0
    assessment_run_id: str | None = None
    message: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    stages: list[Stage] = field(default_factory=list)

    @contextmanager
    def stage(self, name: str) -> Iterator[Stage]:
        """Time one stage; a failure is recorded on it (and re-raised)."""
        st = Stage(name)
        self.stages.append(st)
        t0 = time.perf_counter()
        try:
            yield st
        except BaseException as exc:
            st.status, st.message = "failed", str(exc) or type(exc).__name__
            raise
        finally:
            st.seconds = time.perf_counter() - t0

    def row(self) -> dict[str, object]:
        keys = ("run_id", "kind", "as_of", "started_at", "finished_at", "status", "task_runner", "tiles_ingested",
                "tiles_known", "tiles_duplicate", "tiles_quarantined", "tiles_failed", "fields_refreshed",
                "limits_changed", "alerts_raised", "assessment_run_id", "message", "details")
        return {k: getattr(self, k) for k in keys}

    def stage_rows(self) -> list[dict[str, object]]:
        return [{"run_id": self.run_id, "ordinal": i, "stage": s.name, "seconds": s.seconds, "status": s.status,
                 "message": s.message} for i, s in enumerate(self.stages)]

    def summary(self) -> dict[str, object]:
        """JSON-friendly counts and stage times (the flow's return value carries it)."""
        return {"run_id": self.run_id, "status": self.status, "task_runner": self.task_runner,
                "tiles_ingested": self.tiles_ingested, "tiles_known": self.tiles_known,
                "tiles_duplicate": self.tiles_duplicate, "tiles_quarantined": self.tiles_quarantined,
                "tiles_failed": self.tiles_failed, "fields_refreshed": self.fields_refreshed,
                "limits_changed": self.limits_changed, "alerts_raised": self.alerts_raised,
                "stage_s": {s.name: round(s.seconds, 3) for s in self.stages}}


@dataclass(frozen=True)
class Snapshot:
    """What the night is compared against: limits in force per claim, number of alerts."""

    limits: dict[str, float | None]
    alerts: int


def snapshot(db_path: Path) -> Snapshot:
    from assets.store import writer
    from assets.store.runs import alert_count, limits_in_force

    with writer.read(db_path) as con:
        return Snapshot(limits=limits_in_force(con), alerts=alert_count(con))


def limit_changes(before: Snapshot, after: Snapshot) -> list[dict[str, object]]:
    """Claims whose limit in force differs (new claims with a limit included; a new claim refused, from
    nothing to 0, moved no money and is not a change, as in the HTML report's "limits changed")."""
    return [{"claim_id": cid, "before_cny": before.limits.get(cid), "after_cny": new}
            for cid, new in sorted(after.limits.items())
            if before.limits.get(cid) != new and not (before.limits.get(cid) is None and not new)]


def save(db_path: Path, report: NightReport) -> None:
    from assets.store import writer
    from assets.store.runs import save_run_report

    row = report.row()
    row["details"] = json.loads(json.dumps(row.get("details") or {}, default=str))  # plain JSON: it may travel
    writer.call(db_path, save_run_report, report=row, stages=report.stage_rows())


@contextmanager
def tracked(db_path: Path, report: NightReport) -> Iterator[NightReport]:
    """Store ``report`` as `running` now, and as `failed` with the error if the block raises (then
    re-raise): a run that dies is never silent. Completing it is the caller's (`complete`)."""
    save(db_path, report)
    try:
        yield report
    except BaseException as exc:
        report.status, report.message, report.finished_at = "failed", str(exc) or type(exc).__name__, _now()
        try:
            save(db_path, report)
        except StoreError:  # e.g. the disk is full: the run's own error (raised next) says so
            pass
        raise


def complete(db_path: Path, report: NightReport, before: Snapshot, *, failed_parts: bool = False) -> None:
    """Finish ``report``: limits changed and alerts raised since ``before``, status, stored."""
    after = snapshot(db_path)
    changes = limit_changes(before, after)
    report.limits_changed = len(changes)
    report.alerts_raised = after.alerts - before.alerts
    report.details["limit_changes"] = changes
    report.status = "partial" if failed_parts or any(st.status != "ok" for st in report.stages) else "ok"
    report.finished_at = _now()
    save(db_path, report)


def run_list(db_path: Path, kind: str | None = None, limit: int = 30) -> list[dict[str, Any]]:
    from assets.store import connect
    from assets.store.runs import run_rows

    with connect(db_path, read_only=True) as con:
        return run_rows(con, kind=kind, limit=limit)


def run_report(db_path: Path, run_id: str) -> dict[str, Any]:
    from assets.store import connect
    from assets.store.runs import run_detail

    with connect(db_path, read_only=True) as con:
        found = run_detail(con, run_id)
    if found is None:
        raise NotFoundError(f"no run {run_id} in {db_path}; `assets runs list` shows the recent ones")
    return found


def render(report: dict[str, Any]) -> str:
    """The night as an operator reads it (from `NightReport.row()` plus stages, or `run_report`)."""
    lines = [
        f"run {report['run_id']} ({report['kind']}, as of {report['as_of']}): {report['status']} "
        f"on {report['task_runner']}",
        f"  tiles: {report['tiles_ingested']} ingested, {report['tiles_known']} already catalogued, "
        f"{report['tiles_duplicate']} duplicate, {report['tiles_quarantined']} quarantined, "
        f"{report['tiles_failed']} failed",
        f"  fields refreshed {report['fields_refreshed']}, limits changed {report['limits_changed']}, "
        f"alerts raised {report['alerts_raised']}",
    ]
    stages = report.get("stages") or []
    if stages:
        lines.append("  time per stage: " + ", ".join(
            f"{s['stage']} {s['seconds']:.1f} s" + ("" if s["status"] == "ok" else f" ({s['status']}: {s['message']})")
            for s in stages))
    details = report.get("details") or {}
    for q in details.get("quarantined", []):
        lines.append(f"  quarantined {q['tile']} ({q['code']}): {q['reason']}")
    for d in details.get("duplicates", []):
        lines.append(f"  duplicate {d['source']} = {d['tile_id']} (first delivered as {d['duplicate_of']})")
    for f in details.get("failed", []):
        lines.append(f"  failed {f['source']}: {f['error']} (tried again next night)")
    if report.get("message"):
        lines.append(f"  {report['message']}")
    return "\n".join(lines)


def rendered(report: NightReport) -> str:
    return render({**report.row(), "stages": [{"stage": s.name, "seconds": s.seconds, "status": s.status,
                                               "message": s.message} for s in report.stages]})
