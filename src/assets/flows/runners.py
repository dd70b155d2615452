"""Where the per-tile tasks run: Prefect's default runner, or a Dask cluster through prefect-dask.

`Settings.dask_cluster` (``ASSETS_DASK``) chooses:

- unset: Prefect's default task runner (threads in this process);
- ``local:N``: a `distributed.LocalCluster` of N single-threaded workers started for the run
  (processes unless ``ASSETS_DASK_PROCESSES=0``);
- ``tcp://scheduler:8786`` (or ``tls://``): an existing Dask cluster; the workers need the package,
  the models and the same paths (database folder, catalogue, tiles) mounted.

No distribution of our own: `prefect_dask.DaskTaskRunner` submits the same tasks.
"""

from __future__ import annotations

import re
from typing import Any

from assets.errors import InputError

_LOCAL = re.compile(r"^local:(\d+)$")


def task_runner(spec: str | None, *, processes: bool = True) -> Any | None:
    """The task runner for ``spec`` (None: keep the flow's default)."""
    if not spec:
        return None
    from prefect_dask import DaskTaskRunner

    local = _LOCAL.match(spec.strip())
    if local:
        workers = int(local.group(1))
        if workers < 1:
            raise InputError(f"ASSETS_DASK={spec}: a local cluster needs at least one worker (e.g. local:2)")
        return DaskTaskRunner(cluster_class="distributed.LocalCluster", cluster_kwargs={
            "n_workers": workers, "threads_per_worker": 1, "processes": processes, "dashboard_address": None})
    if re.match(r"^(tcp|tls|inproc|ucx)://\S+$", spec.strip()):
        return DaskTaskRunner(address=spec.strip())
    raise InputError(f"ASSETS_DASK={spec!r} is neither local:N nor a scheduler address such as "
                     "tcp://scheduler:8786; fix it or unset it for Prefect's default runner")


def describe(spec: str | None) -> str:
    """How the run report names the runner."""
    if not spec:
        return "prefect default"
    return f"dask {spec.strip()}"
