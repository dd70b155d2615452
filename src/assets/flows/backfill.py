"""Backfill: assess every claim again at each past image date, e.g. after a model or parameter update.

Each acquisition date in [start, end] is a day the evidence changed, so assessing as of each one
gives the credit team a limit history over the season (`assets query borrower` lists it). One
assessment task per date, on tiles catalogued and segmented once. Runs are idempotent like the
nightly one (ids are hashes of their inputs: nothing is duplicated), and a claim's current
verdict stays the one with the latest as-of date.

    assets backfill --from 2016-04-01 --to 2016-09-30
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

from prefect import flow

from assets import runs
from assets.config import settings as make_settings
from assets.errors import InputError
from assets.flows.nightly import assess, count_tiles, ingest_tiles, segment_references
from assets.flows.runners import describe


@dataclass(frozen=True)
class BackfillConfig:
    start: date
    end: date
    db_path: str = "assets.duckdb"
    tiles_dir: str = "sample_tiles"
    models_dir: str | None = None

    def __post_init__(self) -> None:  # checked before any flow starts
        if self.start > self.end:
            raise InputError(f"backfill start {self.start} is after its end {self.end}; swap --from and --to")


@flow(name="backfill", log_prints=True)
def backfill(config: BackfillConfig) -> list[dict]:
    """Assess at each image date in the range; the run leaves a report like a night's (`assets runs`)."""
    db = Path(config.db_path)
    s = make_settings(db_path=config.db_path, models_dir=config.models_dir)
    report = runs.NightReport(kind="backfill", as_of=config.end, task_runner=describe(None))
    report.details["range"] = [config.start.isoformat(), config.end.isoformat()]
    with runs.tracked(db, report):
        before = runs.snapshot(db)
        with report.stage("ingest"):
            ingested = ingest_tiles(s, config.tiles_dir, config.end)
        count_tiles(report, ingested)
        with report.stage("segment"):
            segment_references(ingested.survey, config.db_path, config.models_dir)
        tiles = ingested.survey.tiles
        dates = sorted({t.acquired_on for t in tiles if t.acquired_on >= config.start})
        if not dates:
            known = sorted({t.acquired_on.isoformat() for t in tiles}) or ["none up to the end date"]
            raise InputError(
                f"no tile in {config.tiles_dir} was acquired between {config.start} and {config.end} "
                f"(tiles on or before {config.end}: {', '.join(known)}); widen the range"
            )
        with report.stage("assess"):
            summaries = [assess(config.db_path, as_of, config.models_dir, "backfill") for as_of in dates]
    report.fields_refreshed = sum(x["claims"] for x in summaries)
    report.assessment_run_id = summaries[-1]["run_id"]
    report.details["assessments"] = summaries
    runs.complete(db, report, before, failed_parts=bool(ingested.failed))
    for summary in summaries:
        print(f"backfill {summary}")
    print(runs.rendered(report))
    return summaries
