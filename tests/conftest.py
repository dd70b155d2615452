"""Shared fixtures: paths to the real data, a temporary database, a Prefect test harness."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
os.environ.setdefault("GDAL_CACHEMAX", "64")

REPO = Path(__file__).resolve().parents[1]


def _shared_data() -> Path | None:
    for candidate in (REPO.parent / "shared" / "data", Path("/work/shared/data")):
        if candidate.is_dir():
            return candidate
    return None


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = _shared_data()
    if path is None:
        pytest.skip("../shared/data (the real training data) is not beside this checkout")
    return path


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "test.duckdb"


@pytest.fixture(scope="session")
def prefect_harness():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """The real `assets` command in a child process (its own Prefect server, its own DuckDB handle)."""
    env = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    return subprocess.run([sys.executable, "-m", "assets.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


@pytest.fixture(scope="session")
def demo_db(tmp_path_factory) -> tuple[Path, str]:
    """A database filled by `assets demo` on the bundled season, and what the demo printed."""
    work = tmp_path_factory.mktemp("demo")
    result = run_cli("demo", "--db", str(work / "assets.duckdb"), cwd=work)
    assert result.returncode == 0, result.stderr[-3000:]
    return work / "assets.duckdb", result.stdout
