"""Nights that go wrong (#15 faults): the run finishes what it can, reports the rest, and loses
nothing already stored. (The corrupt and the re-delivered tile: test_runs.py; the sensor
ingester killed or its broker restarted: test_sensors_mqtt.py.)"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import duckdb
import pytest

from assets.config import Settings
from assets.pipeline import register_claims

pytestmark = pytest.mark.slow
AS_OF = date(2016, 9, 30)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens once the socket is closed


def _limits(db: Path) -> list[tuple]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute("SELECT claim_id, limit_cny FROM claim_status ORDER BY claim_id").fetchall()


def test_the_broker_down_during_the_night(prefect_harness, repo: Path, tmp_path: Path, monkeypatch) -> None:
    """No broker: the sensor stage fails with the broker named, the tiles are still catalogued, and the
    claims keep the limits they had: assessed without the night's readings, every probe would look
    silent, its limit cut and a `sensor_silent` alert raised for the broker's fault (QA 2026-12-07)."""
    from assets.flows.nightly import NightlyConfig, run_nightly

    db = tmp_path / "assets.duckdb"
    register_claims(db, repo / "sample_tiles/claims/farmer-001.geojson", "farmer-001", Settings(db_path=db))
    config = NightlyConfig(db_path=str(db), tiles_dir=str(repo / "sample_tiles"), as_of=AS_OF)
    assert run_nightly(config)["report"]["status"] == "ok"
    before = _limits(db)
    assert all(limit for _, limit in before)
    from assets.flows.nightly import BROKER_FROM_ENV

    monkeypatch.setenv("ASSETS_BROKER", f"mqtt://127.0.0.1:{_closed_port()}")  # as a deployment reads it at run time
    down = NightlyConfig(db_path=str(db), tiles_dir=str(repo / "sample_tiles"), as_of=date(2016, 10, 1),
                         broker_url=BROKER_FROM_ENV)
    from assets.flows.nightly import nightly, summary_of

    state = nightly(down, return_state=True)  # what a Prefect deployment records: not a green Completed
    assert state.is_failed() and "partial" in state.message
    report = summary_of(state)["report"]
    assert report["status"] == "partial" and report["fields_refreshed"] == 0 and report["limits_changed"] == 0
    with duckdb.connect(str(db), read_only=True) as con:
        stages = dict(con.execute("SELECT stage, status FROM run_stages WHERE run_id = ?", [report["run_id"]]).fetchall())
        (message,) = con.execute("SELECT message FROM run_stages WHERE run_id = ? AND stage = 'sensors'",
                                 [report["run_id"]]).fetchone()
        silent = con.execute("SELECT count(*) FROM alerts WHERE kind = 'sensor_silent' AND as_of = DATE '2016-10-01'")
        assert silent.fetchone()[0] == 0
    assert stages == {"sensors": "failed", "ingest": "ok", "segment": "ok", "assess": "skipped"} and "127.0.0.1" in message
    assert _limits(db) == before  # nothing decided on knowingly missing readings


def _nightly_cli(db: Path, tiles: Path, cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    return subprocess.Popen([sys.executable, "-m", "assets.cli", "nightly", "--db", str(db), "--tiles", str(tiles),
                             "--date", AS_OF.isoformat()], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)


def _decisions(db: Path) -> list[tuple]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute("SELECT decision_id, claim_id, limit_cny FROM decisions ORDER BY decision_id").fetchall()


def test_a_night_killed_mid_way_then_run_again(repo: Path, tmp_path: Path) -> None:
    """SIGKILL (no cleanup) as the first segmentation lands, the night assessing; the next night completes and
    the store holds exactly what one clean night would: no half-written decision, none twice, the
    evidence chain intact, and the killed night visible as never finished."""
    from assets.store import connect
    from assets.store.history import verify_chain

    claims = repo / "sample_tiles/claims/farmer-001.geojson"
    killed, clean = tmp_path / "killed" / "assets.duckdb", tmp_path / "clean" / "assets.duckdb"
    for db in (killed, clean):
        db.parent.mkdir()
        register_claims(db, claims, "farmer-001", Settings(db_path=db))
    night = _nightly_cli(killed, repo / "sample_tiles", tmp_path)
    cache = killed.parent / "assets.segmentation"
    deadline = time.monotonic() + 300
    while not (cache.is_dir() and any(cache.glob("*.tif"))) and night.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert night.poll() is None, "the night finished before it could be killed"
    os.killpg(night.pid, signal.SIGKILL)
    night.wait(timeout=30)

    for db in (killed, clean):  # the night again on the killed store; one clean night on the other
        again = _nightly_cli(db, repo / "sample_tiles", tmp_path)
        out = again.communicate(timeout=600)[0].decode(errors="replace")
        assert again.returncode == 0, out[-3000:]
    assert [(c, limit) for _, c, limit in _decisions(killed)] == [(c, limit) for _, c, limit in _decisions(clean)]
    assert _decisions(killed) == _decisions(clean)  # the same decisions, each once
    with connect(killed) as con:
        assert verify_chain(con).ok
        statuses = [r[0] for r in con.execute("SELECT status FROM run_reports ORDER BY started_at").fetchall()]
    assert statuses == ["running", "ok"]  # the killed night never finished, and says so
    assert _limits(killed) == _limits(clean) and all(limit for _, limit in _limits(killed))


def test_the_output_disk_full_during_the_night(prefect_harness, repo: Path, tmp_path: Path, monkeypatch) -> None:
    """The disk fills as the night writes its decisions (simulated: DuckDB's own error): the night
    fails saying so and what to do, is reported as failed, and the earlier nights' decisions,
    limits and evidence chain are untouched."""
    from assets.errors import StoreFullError
    from assets.flows.nightly import NightlyConfig, run_nightly
    from assets.store import connect, history
    from assets.store.history import verify_chain

    db = tmp_path / "assets.duckdb"
    register_claims(db, repo / "sample_tiles/claims/farmer-001.geojson", "farmer-001", Settings(db_path=db))
    config = NightlyConfig(db_path=str(db), tiles_dir=str(repo / "sample_tiles"), as_of=AS_OF)
    assert run_nightly(config)["report"]["status"] == "ok"
    before, limits = _decisions(db), _limits(db)

    real_append = history.append

    def full_disk(con, table, rows, **kw):  # type: ignore[no-untyped-def]
        if table == "decisions":
            real_append(con, table, rows, **kw)  # half of the write lands, then the disk is full
            raise duckdb.IOException('IO Error: Could not write file "assets.duckdb.wal": No space left on device')
        return real_append(con, table, rows, **kw)

    monkeypatch.setattr(history, "append", full_disk)
    later = NightlyConfig(db_path=str(db), tiles_dir=str(repo / "sample_tiles"), as_of=date(2016, 10, 5))
    with pytest.raises(StoreFullError, match=r"is full .* free space on that disk and run it again"):
        run_nightly(later)
    monkeypatch.undo()
    assert _decisions(db) == before and _limits(db) == limits  # nothing half-written, nothing lost
    with connect(db) as con:
        assert verify_chain(con).ok
        (status, message), = con.execute("SELECT status, message FROM run_reports WHERE as_of = ?",
                                         [date(2016, 10, 5)]).fetchall()
    assert status == "failed" and "No space left on device" in message
    assert run_nightly(later)["report"]["status"] == "ok"  # space freed: the same night runs


def test_only_io_hiccups_are_retried() -> None:
    """Code review 2026-12-07: every error but bad input was retried twice, 5 s apart (a corrupt model,
    a full disk, a bug), and the first failure was hidden behind the retries."""
    from assets.errors import InputError, ModelError, StoreFullError, StoreLockedError
    from assets.flows.nightly import _transient

    class State:
        def __init__(self, exc: BaseException) -> None:
            self.exc = exc

        def result(self):  # type: ignore[no-untyped-def]
            raise self.exc

    retried = {type(e).__name__: _transient(None, None, State(e)) for e in (
        ConnectionResetError("peer"), TimeoutError("slow"), StoreLockedError("held"), OSError("nfs"),
        ModelError("corrupt"), StoreFullError("disk"), TypeError("bug"), InputError("bad tile"))}
    assert retried == {"ConnectionResetError": True, "TimeoutError": True, "StoreLockedError": True, "OSError": True,
                       "ModelError": False, "StoreFullError": False, "TypeError": False, "InputError": False}


def test_an_unwritable_catalogue_document_makes_the_night_partial_not_a_traceback(
        prefect_harness, repo: Path, tmp_path: Path, monkeypatch) -> None:
    """Ops QA 2026-12-08: a read-only catalogue folder made the STAC collection write raise, and the
    whole night failed with three tracebacks although the tiles were recorded and usable."""
    from assets.flows.nightly import NightlyConfig, run_nightly
    from assets.imagery import catalog

    db = tmp_path / "assets.duckdb"
    register_claims(db, repo / "sample_tiles/claims/farmer-001.geojson", "farmer-001", Settings(db_path=db))
    real_write = catalog._write_json

    def read_only(path, document):  # type: ignore[no-untyped-def]
        if Path(path).name == "collection.json":
            raise PermissionError(1, "Operation not permitted", str(path))
        return real_write(path, document)

    monkeypatch.setattr(catalog, "_write_json", read_only)
    report = run_nightly(NightlyConfig(db_path=str(db), tiles_dir=str(repo / "sample_tiles"), as_of=AS_OF))["report"]
    assert report["status"] == "partial" and report["fields_refreshed"] >= 1  # the claims were assessed
    with duckdb.connect(str(db), read_only=True) as con:
        (status, message), = con.execute("SELECT status, message FROM run_stages WHERE run_id = ? AND stage = 'ingest'",
                                         [report["run_id"]]).fetchall()
    assert status == "failed" and "collection.json" in message and "writable" in message


def test_the_brokers_password_never_reaches_prefect_and_a_worker_without_it_says_so(
        prefect_harness, repo: Path, tmp_path: Path, monkeypatch) -> None:
    """Code review 2026-12-08: `assets nightly --broker mqtt://ingester:PASSWORD@...` stored the password in
    the flow run's parameters; a deployment on a worker without ASSETS_BROKER skipped the drain and
    went on 'ok', cutting limits for 'silent' probes."""
    import asyncio

    from prefect.client.orchestration import get_client

    from assets.flows.nightly import BROKER_FROM_ENV, NightlyConfig, run_nightly

    db = tmp_path / "assets.duckdb"
    register_claims(db, repo / "sample_tiles/claims/farmer-001.geojson", "farmer-001", Settings(db_path=db))
    monkeypatch.delenv("ASSETS_BROKER", raising=False)
    secret = f"mqtt://ingester:pa55word@127.0.0.1:{_closed_port()}"
    report = run_nightly(NightlyConfig(db_path=str(db), tiles_dir=str(repo / "sample_tiles"), as_of=AS_OF,
                                       broker_url=secret))["report"]
    assert report["status"] == "partial" and "ASSETS_BROKER" not in os.environ  # put back as it was

    async def parameters() -> str:
        async with get_client() as client:
            return repr([r.parameters for r in await client.read_flow_runs()])

    stored = asyncio.run(parameters())
    assert "env:ASSETS_BROKER" in stored and "pa55word" not in stored
    unset = run_nightly(NightlyConfig(db_path=str(db), tiles_dir=str(repo / "sample_tiles"), as_of=AS_OF,
                                      broker_url=BROKER_FROM_ENV))["report"]
    assert unset["status"] == "partial"
    with duckdb.connect(str(db), read_only=True) as con:
        (status, message), = con.execute("SELECT status, message FROM run_stages WHERE run_id = ? AND stage = "
                                         "'sensors'", [unset["run_id"]]).fetchall()
    assert status == "failed" and "ASSETS_BROKER is not set" in message
