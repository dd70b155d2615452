"""Benchmark (#15 Speed): what Prefect costs a night, and the same night on a local 2-worker Dask cluster.

Each variant starts from its own fresh database with the bundled claims (4 borrowers) and
catalogues, segments and assesses the tiles of ``--tiles`` (default: the bundled season, 7 tiles
of which 1 reference tile is segmented; NOT the issue's 20 full tiles, see the README):

- ``plain``: the night's functions called one after another in this process, no Prefect (the
  sum of the task work);
- ``prefect``: `assets.flows.nightly.run_nightly` on Prefect's default runner;
- ``dask``: the same flow on a local 2-worker Dask cluster through prefect-dask (threads, so the
  workers share this process's loaded models; ``--dask-processes`` for worker processes).

overhead_fraction = (prefect wall - plain wall) / prefect wall; negative means the flow's
concurrent per-tile tasks won back more than Prefect costs. Models are loaded before any variant
(the process keeps them), a first plain night warms the process up (reported, not compared), the
Prefect test server starts before the clock. Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
AS_OF = date(2016, 9, 30)


def _fresh(tmp: Path, name: str):
    from assets.config import settings as make_settings
    from assets.pipeline import register_claims

    db = tmp / name / "night.duckdb"
    db.parent.mkdir(parents=True)
    s = make_settings(db_path=db)
    for f in sorted((REPO / "sample_tiles" / "claims").glob("*.geojson")):
        register_claims(db, f, f.stem, s)
    return db, s


def plain(tmp: Path, tiles: str, name: str = "plain") -> dict:
    from assets.imagery.catalog import ingest_tile, record_deliveries, tile_sources
    from assets.pipeline import assess_claims, load_models, reference_tiles, segment_tile, segmentation_cache

    db, s = _fresh(tmp, name)
    models = load_models(s)
    stages: dict[str, float] = {}
    t0 = time.perf_counter()
    deliveries = [ingest_tile(src, s) for src in tile_sources(tiles)]
    survey = record_deliveries(deliveries, s, AS_OF).survey
    stages["ingest"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    for ref in reference_tiles(survey.tiles):
        segment_tile(ref, models.segmenter, segmentation_cache(db))
    stages["segment"] = time.perf_counter() - t1
    t2 = time.perf_counter()
    report = assess_claims(db, as_of=AS_OF, settings=s, models=models, kind="nightly")
    stages["assess"] = time.perf_counter() - t2
    wall = time.perf_counter() - t0
    return {"wall_s": round(wall, 3), "stage_s": {k: round(v, 3) for k, v in stages.items()},
            "tiles": len(deliveries), "claims": len(report.assessments)}


def flow(tmp: Path, tiles: str, name: str, dask: str | None, processes: bool) -> dict:
    from assets.flows.nightly import NightlyConfig, run_nightly

    db, s = _fresh(tmp, name)
    config = NightlyConfig(db_path=str(db), tiles_dir=tiles, as_of=AS_OF, models_dir=str(s.models_dir),
                           dask_cluster=dask, dask_processes=processes)
    t0 = time.perf_counter()
    summary = run_nightly(config)
    wall = time.perf_counter() - t0
    return {"wall_s": round(wall, 3), "stage_s": summary["report"]["stage_s"], "claims": summary["claims"],
            "status": summary["report"]["status"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiles", default=str(REPO / "sample_tiles"), help="tile inbox (folder or fsspec URL)")
    ap.add_argument("--dask-processes", action="store_true", help="Dask workers as processes (default threads)")
    args = ap.parse_args()
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("ASSETS_SNAPSHOT", "0")  # no analyst here: time the night, not its snapshots
    from prefect.testing.utilities import prefect_test_harness

    from assets.config import Settings
    from assets.pipeline import load_models

    load_models(Settings())  # once per process, outside every clock
    with tempfile.TemporaryDirectory() as tmp_, prefect_test_harness(server_startup_timeout=180):
        tmp = Path(tmp_)
        cold = plain(tmp, args.tiles, "warm-up")  # first inference, GDAL and DuckDB start-up: not compared
        print("plain (cold, not compared)", cold, file=sys.stderr, flush=True)
        base = plain(tmp, args.tiles)
        print("plain", base, file=sys.stderr, flush=True)
        pre = flow(tmp, args.tiles, "prefect", None, False)
        print("prefect", pre, file=sys.stderr, flush=True)
        dsk = flow(tmp, args.tiles, "dask", "local:2", args.dask_processes)
        print("dask", dsk, file=sys.stderr, flush=True)
    result = {
        "tiles": base["tiles"], "claims": base["claims"], "tiles_source": args.tiles,
        "plain_wall_s": base["wall_s"], "prefect_wall_s": pre["wall_s"], "dask_wall_s": dsk["wall_s"],
        "plain_cold_wall_s": cold["wall_s"],
        "overhead_s": round(pre["wall_s"] - base["wall_s"], 3),
        # the flow's wall time outside its stages (flow-run start, run reports, before/after snapshots)
        "prefect_outside_stages_s": round(pre["wall_s"] - sum(pre["stage_s"].values()), 3),
        "overhead_fraction": round((pre["wall_s"] - base["wall_s"]) / pre["wall_s"], 4),
        "stage_s": {"plain": base["stage_s"], "prefect": pre["stage_s"], "dask": dsk["stage_s"]},
        "dask_speedup": round(pre["wall_s"] / dsk["wall_s"], 3), "dask_workers": 2,
        "dask_processes": args.dask_processes, "cpus": os.cpu_count(),
        "statuses": [pre["status"], dsk["status"]],
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
