"""Scale-out on prefect-dask: the same nightly flow, its per-tile tasks on a local 2-worker Dask cluster."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
import pytest

from assets.config import Settings
from assets.errors import InputError
from assets.pipeline import register_claims


def test_the_runner_follows_the_settings() -> None:
    from prefect_dask import DaskTaskRunner

    from assets.flows.runners import describe, task_runner

    assert task_runner(None) is None and describe(None) == "prefect default"
    local = task_runner("local:2", processes=False)
    assert isinstance(local, DaskTaskRunner) and local.cluster_kwargs["n_workers"] == 2
    remote = task_runner("tcp://scheduler:8786")
    assert isinstance(remote, DaskTaskRunner) and remote.address == "tcp://scheduler:8786"
    for bad in ("local:0", "dask", "scheduler:8786"):
        with pytest.raises(InputError, match="ASSETS_DASK"):
            task_runner(bad)
    assert Settings(dask_cluster="local:2").dask_cluster == "local:2"


@pytest.mark.slow
def test_the_nightly_flow_runs_its_tiles_on_a_local_dask_cluster(prefect_harness, repo: Path, db_path: Path) -> None:
    from assets.flows.nightly import NightlyConfig, run_nightly

    register_claims(db_path, repo / "sample_tiles/claims/farmer-001.geojson", "farmer-001", Settings(db_path=db_path))
    config = NightlyConfig(db_path=str(db_path), tiles_dir=str(repo / "sample_tiles"), as_of=date(2016, 9, 30),
                           dask_cluster="local:2", dask_processes=False)
    summary = run_nightly(config)
    report = summary["report"]
    assert report["task_runner"] == "dask local:2" and report["status"] == "ok"
    assert report["tiles_ingested"] == 7 and summary["tiles"] == 7 and summary["rejected"] == 0
    with duckdb.connect(str(db_path), read_only=True) as con:
        (details,) = con.execute("SELECT details FROM run_reports WHERE run_id = ?", [report["run_id"]]).fetchone()
        limit = con.execute("SELECT sum(limit_cny) FROM current_limits").fetchone()[0]
    import json

    workers = set(json.loads(details)["workers"])
    assert workers and workers <= {"0", "1"}  # the Dask workers' names: no tile ran outside the cluster
    assert limit > 0


@pytest.mark.slow
def test_the_nightly_flow_runs_on_dask_worker_processes(prefect_harness, repo: Path, db_path: Path) -> None:
    """The default local mode (``ASSETS_DASK=local:2``): two worker processes, each importing the
    package and the models itself, the tasks and their Settings sent to them pickled."""
    from assets.flows.nightly import NightlyConfig, run_nightly

    register_claims(db_path, repo / "sample_tiles/claims/farmer-001.geojson", "farmer-001", Settings(db_path=db_path))
    config = NightlyConfig(db_path=str(db_path), tiles_dir=str(repo / "sample_tiles"), as_of=date(2016, 9, 30),
                           dask_cluster="local:2", dask_processes=True)
    report = run_nightly(config)["report"]
    assert report["status"] == "ok" and report["tiles_ingested"] == 7 and report["fields_refreshed"] == 2
    with duckdb.connect(str(db_path), read_only=True) as con:
        (details,) = con.execute("SELECT details FROM run_reports WHERE run_id = ?", [report["run_id"]]).fetchone()
        limit = con.execute("SELECT sum(limit_cny) FROM current_limits").fetchone()[0]
    import json

    assert set(json.loads(details)["workers"]) <= {"0", "1"} and limit > 0
