"""Nightly ingestion: new tiles and sensor messages become verified, valued claims in DuckDB.

One task per tile (catalogue, segmentation) and one per side effect (sensor drain, assessment);
tasks exchange paths and ids, never arrays. Deploy with a cron schedule:

    prefect server start &            # cron schedules need a server
    python -m flows.nightly --serve   # (entry point in the checkout) registers `nightly` at 02:00
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path

from prefect import flow, task

from assets.config import settings as make_settings
from assets.errors import InputError
from assets.imagery.index import TileRecord, TileSurvey, inspect_tile, no_usable_tiles, split_survey, tile_paths
from assets.imagery.quality import QuarantinedTile
from assets.pipeline import assess_claims, load_models, record_tiles, reference_tiles, segment_tile, segmentation_cache


@dataclass(frozen=True)
class NightlyConfig:
    db_path: str = "assets.duckdb"
    tiles_dir: str = "sample_tiles"
    as_of: date | None = None  # None: today
    broker_url: str | None = None  # drain MQTT sensor messages first when given
    models_dir: str | None = None


def _transient(task, task_run, state) -> bool:
    """Retry I/O hiccups, not bad input: a corrupt tile stays corrupt."""
    try:
        state.result()
    except InputError:
        return False
    except Exception:
        return True
    return False


@task(retries=2, retry_delay_seconds=5, retry_condition_fn=_transient)
def catalogue_tile(path: str) -> TileRecord | QuarantinedTile:
    """The tile's catalogue record, or its quarantine record when it fails the quality gate."""
    return inspect_tile(path)


@task(retries=1, retry_condition_fn=_transient)
def segment(tile: TileRecord, db_path: str, models_dir: str | None) -> str:
    models = load_models(make_settings(models_dir=models_dir))
    return str(segment_tile(tile, models.segmenter, segmentation_cache(Path(db_path))))


@task
def assess(db_path: str, as_of: date, models_dir: str | None, kind: str) -> dict:
    s = make_settings(db_path=db_path, models_dir=models_dir)
    report = assess_claims(Path(db_path), as_of=as_of, settings=s, models=load_models(s), kind=kind)
    statuses = [a.verification.status for a in report.assessments]
    return {"run_id": report.run_id, "as_of": str(as_of), "tiles": report.tiles, "claims": len(statuses),
            "verified": statuses.count("verified"), "partial": statuses.count("partial"),
            "rejected": statuses.count("rejected"), "alerts": len(report.alerts)}


def prepare_tiles(db_path: str, tiles_dir: str, models_dir: str | None, until: date) -> TileSurvey:
    """Gate and catalogue the tiles acquired up to ``until`` (one task each), record them and the
    quarantined ones, and segment each reference tile once (cached). A bad tile is reported and
    left out; only a folder without one usable tile stops the run. Nightly and backfill share it."""
    paths = [str(p) for p in tile_paths(tiles_dir)]  # raises the clear "no tiles" error
    survey = split_survey(catalogue_tile.map(paths).result(), until)
    record_tiles(Path(db_path), survey.tiles, survey.quarantined)
    for q in survey.quarantined:
        print(f"quarantined tile {q.path.name} ({q.code}): {q.reason}")
    if survey.quarantined and len(survey.quarantined) == len(paths):
        raise no_usable_tiles(tiles_dir, survey.quarantined)
    for ref in reference_tiles(survey.tiles):
        segment(ref, db_path, models_dir)
    return survey


@flow(name="nightly", log_prints=True)
def nightly(config: NightlyConfig = NightlyConfig(), kind: str = "nightly") -> dict:
    as_of = config.as_of or date.today()
    if config.broker_url:
        from assets.flows.sensors import drain_sensors

        drain_sensors(config.db_path, config.broker_url)
    survey = prepare_tiles(config.db_path, config.tiles_dir, config.models_dir, as_of)
    summary = assess(config.db_path, as_of, config.models_dir, kind)
    summary["quarantined"] = [q.summary() for q in survey.quarantined]
    print(f"nightly {summary}")
    return summary


def deployment(cron: str = "0 2 * * *"):
    """The nightly deployment: the flow on a cron schedule, configured from the environment
    (ASSETS_DB, ASSETS_TILES, ASSETS_BROKER, ASSETS_MODELS)."""
    s = make_settings()
    config = NightlyConfig(db_path=str(s.db_path), tiles_dir=str(s.tiles_dir), broker_url=s.broker_url,
                           models_dir=str(s.models_dir))
    return nightly.to_deployment(name="nightly", cron=cron, parameters={"config": asdict(config)})
