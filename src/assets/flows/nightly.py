"""Nightly ingestion: new tiles and sensor messages become verified, valued claims in DuckDB.

One task per delivered tile (catalogue: fetch, gate, COG, STAC item) and per reference tile
(segmentation), one per side effect (sensor drain, catalogue record, assessment); tasks exchange
paths and ids, never arrays. The per-tile tasks run on Prefect's default runner, or on a Dask
cluster when `Settings.dask_cluster` (ASSETS_DASK) names one (`run_nightly`, `flows/runners.py`).
Every night leaves a report (`assets.runs`: tiles, fields, limits, alerts, time per stage).

    prefect server start &            # cron schedules need a server
    python -m flows.nightly --serve   # (entry point in the checkout) registers `nightly` at 02:00
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, replace
from datetime import date
from pathlib import Path

from prefect import flow, task, unmapped
from prefect.states import Failed, State

from assets import runs
from assets.config import Settings
from assets.config import settings as make_settings
from assets.errors import BrokerError, ConcurrentChangeError, ImageryError, InputError, StoreLockedError
from assets.flows.runners import describe, task_runner
from assets.imagery.catalog import (
    CatalogueResult,
    Delivery,
    has_catalogued_tiles,
    ingest_tile,
    record_deliveries,
    tile_sources,
)
from assets.imagery.index import TileRecord, TileSurvey, no_usable_tiles
from assets.pipeline import assess_claims, check_as_of, load_models, reference_tiles, segment_tile, segmentation_cache


@dataclass(frozen=True)
class NightlyConfig:
    db_path: str = "assets.duckdb"
    tiles_dir: str = "sample_tiles"  # an inbox folder or any fsspec URL (file://, memory://, s3://...)
    as_of: date | None = None  # None: today
    broker_url: str | None = None  # drain MQTT sensor messages first when given
    models_dir: str | None = None
    catalog_dir: str | None = None  # COGs + STAC items; None: <db>.catalog/ beside the database
    dask_cluster: str | None = None  # None: Prefect's default runner; "local:N" or "tcp://scheduler:8786"
    dask_processes: bool = True  # local:N workers as processes (False: threads, for tests)

    def settings(self) -> Settings:
        return make_settings(db_path=self.db_path, models_dir=self.models_dir, catalog_dir=self.catalog_dir)


BROKER_FROM_ENV = "env:ASSETS_BROKER"  # a deployment's broker: read from the worker's environment at run time

TRANSIENT = (OSError, StoreLockedError, ConcurrentChangeError, TimeoutError)


def _transient(task, task_run, state) -> bool:
    """Retry I/O hiccups (a network read, a file held by another writer), not what a retry cannot
    change: bad input, a corrupt model, a full disk, a bug. Those fail at once, with their first error."""
    try:
        state.result()
    except InputError:
        return False
    except TRANSIENT:
        return True
    except Exception:  # noqa: BLE001 - anything else is not transient: fail now
        return False
    return False


@task(name="ingest-tile", retries=2, retry_delay_seconds=5, retry_condition_fn=_transient)
def catalogue_tile(source: str, settings: Settings) -> Delivery:
    """Fetch, gate, convert to COG and describe one delivered tile (a bad tile becomes a quarantine)."""
    return ingest_tile(source, settings)


@task(name="record-catalogue")
def record_catalogue(deliveries: list[Delivery], settings: Settings, until: date) -> CatalogueResult:
    return record_deliveries(deliveries, settings, until)


@task(retries=1, retry_condition_fn=_transient)
def segment(tile: TileRecord, db_path: str, models_dir: str | None) -> str:
    models = load_models(make_settings(models_dir=models_dir))
    return str(segment_tile(tile, models.segmenter, segmentation_cache(Path(db_path))))


@task
def assess(db_path: str, as_of: date, models_dir: str | None, kind: str) -> dict:
    s = make_settings(db_path=db_path, models_dir=models_dir)
    report = assess_claims(Path(db_path), as_of=as_of, settings=s, models=load_models(s), kind=kind)
    statuses = [a.verification.status for a in report.assessments]
    # every claim on the book, as the credit views count them: those refused at submission are rejected too
    return {"run_id": report.run_id, "as_of": str(as_of), "tiles": report.tiles,
            "claims": len(statuses) + report.refused, "verified": statuses.count("verified"),
            "partial": statuses.count("partial"), "review": statuses.count("review"),
            "rejected": statuses.count("rejected") + report.refused, "alerts": len(report.alerts)}


@dataclass
class Ingested:
    catalogue: CatalogueResult
    failed: list[dict[str, str]]  # deliveries that could not be fetched or written (retried next night)

    @property
    def survey(self) -> TileSurvey:
        return self.catalogue.survey


def ingest_tiles(settings: Settings, tiles: str, until: date) -> Ingested:
    """Catalogue every tile delivered at ``tiles`` (one task each) and record the batch. A bad tile
    is quarantined, one that cannot be fetched or written is reported and left for the next night;
    only a delivery without one usable tile stops the run. A night with nothing delivered is
    normal: it goes on with the tiles already catalogued (sensors, alerts, limits are refreshed)."""
    sources = tile_sources(tiles, allow_empty=True)  # a missing folder or URL is still an error
    if not sources:
        return nothing_delivered(settings, tiles, until)
    futures = catalogue_tile.map(sources, unmapped(settings))  # a pydantic model is iterable: never map it
    deliveries: list[Delivery] = []
    failed: list[dict[str, str]] = []
    for source, future in zip(sources, futures):
        outcome = future.result(raise_on_failure=False)
        if isinstance(outcome, Delivery):
            deliveries.append(outcome)
        else:
            failed.append({"source": source, "error": str(outcome)})
    result = record_catalogue(deliveries, settings, until)
    for q in result.survey.quarantined:
        print(f"quarantined tile {q.path.name} ({q.code}): {q.reason}")
    if not any(d.tile is not None for d in deliveries):
        if has_catalogued_tiles(settings, until):  # bad or unreachable deliveries: the stored catalogue serves
            print(f"no usable new tile in {tiles}; assessing with the tiles already catalogued up to {until}")
            return Ingested(result, failed)
        if failed and not result.survey.quarantined:
            raise InputError(f"no tile at {tiles} could be catalogued: " + "; ".join(f["error"] for f in failed[:3]))
        raise no_usable_tiles(tiles, result.survey.quarantined)
    return Ingested(result, failed)


def nothing_delivered(settings: Settings, tiles: str, until: date) -> Ingested:
    """An empty inbox: no new tiles tonight, the stored catalogue serves; none stored at all is an error."""
    if not has_catalogued_tiles(settings, until):
        raise ImageryError(f"no GeoTIFF tiles (*.tif) in {tiles} and none catalogued up to {until}; deliver the "
                           "first tiles there (or pass --tiles DIR) and run again")
    print(f"no new tiles in {tiles}; assessing with the tiles already catalogued up to {until}")
    return Ingested(CatalogueResult(survey=TileSurvey([], []), deliveries=[]), [])


def segment_references(survey: TileSurvey, db_path: str, models_dir: str | None) -> None:
    """Segment each reference tile once (cached), one task per tile on the flow's runner."""
    refs = reference_tiles(survey.tiles)
    if refs:
        segment.map(refs, db_path, models_dir).result()


@flow(name="nightly", log_prints=True)
def nightly(config: NightlyConfig = NightlyConfig(), kind: str = "nightly") -> dict | State:
    """One night: sensors, tiles, segmentation, assessment. Returns the summary; a partial night
    returns a Failed state carrying it (`summary_of`, `run_nightly` read it back)."""
    s = config.settings()
    as_of = check_as_of(config.as_of or s.today(), s)  # a future night would outrank every real one
    db = Path(config.db_path)
    report = runs.NightReport(kind=kind, as_of=as_of, task_runner=describe(config.dask_cluster))
    summary: dict = {}
    sensors_failed = False
    with runs.tracked(db, report):  # visible as `running` at once: a night killed mid-way is not silent
        before = runs.snapshot(db)
        broker_url = s.broker_url if config.broker_url == BROKER_FROM_ENV else config.broker_url
        if broker_url or config.broker_url == BROKER_FROM_ENV:
            with report.stage("sensors") as st:
                try:
                    from assets.flows.sensors import drain_sensors

                    if not broker_url:  # a deployment that drains sensors, on a worker not told where
                        raise BrokerError("ASSETS_BROKER is not set in this worker's environment, so the sensor "
                                          "readings could not be drained; set it where the deployment runs")
                    summary["sensors"] = drain_sensors(config.db_path, broker_url)
                    if summary["sensors"].get("timed_out"):
                        st.message = (f"the drain stopped at its time limit with readings still arriving "
                                      f"({summary['sensors']['received']:,} taken); the rest come next night")
                except BrokerError as exc:  # tiles are still catalogued and segmented; claims wait (below)
                    st.status, st.message, sensors_failed = "failed", str(exc), True
        with report.stage("ingest") as st:
            ingested = ingest_tiles(s, config.tiles_dir, as_of)
            if ingested.catalogue.catalogue_error:
                st.status, st.message = "failed", ingested.catalogue.catalogue_error
        count_tiles(report, ingested)
        with report.stage("segment"):
            segment_references(ingested.survey, config.db_path, config.models_dir)
        with report.stage("assess") as st:
            if sensors_failed:  # every probe would read as silent: limits cut and alerts raised for the broker's fault
                st.status, st.message = "skipped", ("not assessed: the sensor readings could not be drained, so every "
                                                    "probe would look silent; limits stay as they were. Fix the broker "
                                                    "and run the night again")
                print(f"claims not assessed tonight: {st.message}")
            else:
                summary.update(assess(config.db_path, as_of, config.models_dir, kind))
    report.fields_refreshed = summary.get("claims", 0)
    report.assessment_run_id = summary.get("run_id")
    runs.complete(db, report, before, failed_parts=bool(ingested.failed))
    summary["quarantined"] = [q.summary() for q in ingested.survey.quarantined]
    summary["report"] = report.summary()
    print(runs.rendered(report))
    if report.status != "ok":  # Prefect's states, automations and notifications must see a partial night
        return Failed(message=f"night {report.run_id} is {report.status}: a stage or a delivery failed and is "
                              "tried again next night (`assets runs show`)", data=summary)
    return summary


def summary_of(state: State) -> dict:
    """A night's summary from its final state: the summary of an ok or partial night (the latter a
    Failed state carrying it), the night's own error when it failed outright."""
    result = state.result(raise_on_failure=False)
    if isinstance(result, BaseException):
        raise result
    return result


def count_tiles(report: runs.NightReport, ingested: Ingested) -> None:
    cat = ingested.catalogue
    report.tiles_ingested = len(cat.ingested)
    report.tiles_duplicate = len(cat.duplicates)
    report.tiles_quarantined = len(cat.survey.quarantined)
    report.tiles_known = len(cat.known)
    report.tiles_failed = len(ingested.failed)
    report.details.update({
        "quarantined": [q.summary() for q in cat.survey.quarantined], "duplicates": cat.duplicates,
        "failed": ingested.failed, "workers": sorted({d.worker for d in cat.deliveries}),
        "tile_s": {d.source: round(d.seconds, 3) for d in cat.deliveries}})


def run_nightly(config: NightlyConfig = NightlyConfig(), kind: str = "nightly") -> dict:
    """The nightly flow on the runner the config names (Prefect's default, or Dask via prefect-dask)."""
    runner = task_runner(config.dask_cluster, processes=config.dask_processes)
    flow_ = nightly if runner is None else nightly.with_options(task_runner=runner)
    if not config.broker_url or config.broker_url == BROKER_FROM_ENV:
        return summary_of(flow_(config, kind, return_state=True))
    # Prefect stores a run's parameters: the flow is told the broker by this process's environment,
    # for this run only, so the ingester's password never reaches Prefect's database or UI.
    before = os.environ.get("ASSETS_BROKER")
    os.environ["ASSETS_BROKER"] = config.broker_url
    try:
        return summary_of(flow_(replace(config, broker_url=BROKER_FROM_ENV), kind, return_state=True))
    finally:
        if before is None:
            os.environ.pop("ASSETS_BROKER", None)
        else:
            os.environ["ASSETS_BROKER"] = before


def deployment(cron: str = "0 2 * * *"):
    """The nightly deployment: the flow on a cron schedule in the bank's time zone
    (`Settings.timezone`), configured from the environment (ASSETS_DB, ASSETS_TILES, ASSETS_BROKER,
    ASSETS_MODELS, ASSETS_CATALOG, ASSETS_DASK). The broker URL carries the ingester's password, so
    the deployment stores only where to find it (`BROKER_FROM_ENV`): Prefect's server and UI show
    a deployment's and each run's parameters to anyone who can read them."""
    from prefect.schedules import Cron

    s = make_settings()
    config = NightlyConfig(db_path=str(s.db_path), tiles_dir=s.tiles_source,
                           broker_url=BROKER_FROM_ENV if s.broker_url else None,
                           models_dir=str(s.models_dir),
                           catalog_dir=str(s.catalog_dir) if s.catalog_dir else None,
                           dask_cluster=s.dask_cluster, dask_processes=s.dask_processes)
    runner = task_runner(s.dask_cluster, processes=s.dask_processes)
    flow_ = nightly if runner is None else nightly.with_options(task_runner=runner)
    return flow_.to_deployment(name="nightly", schedules=[Cron(cron, timezone=s.timezone)],
                               parameters={"config": asdict(config)})
