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

from prefect import flow

from assets.errors import InputError
from assets.flows.nightly import assess, prepare_tiles


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
    tiles = prepare_tiles(config.db_path, config.tiles_dir, config.models_dir, config.end).tiles
    dates = sorted({t.acquired_on for t in tiles if t.acquired_on >= config.start})
    if not dates:
        known = sorted({t.acquired_on.isoformat() for t in tiles}) or ["none up to the end date"]
        raise InputError(
            f"no tile in {config.tiles_dir} was acquired between {config.start} and {config.end} "
            f"(tiles on or before {config.end}: {', '.join(known)}); widen the range"
        )
    summaries = [assess(config.db_path, as_of, config.models_dir, "backfill") for as_of in dates]
    for summary in summaries:
        print(f"backfill {summary}")
    return summaries
