"""The one writer (#15): concurrent writes in one process, writes handed between processes, and a
read snapshot analysts can open while writers run."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from datetime import date, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Iterator

import pytest

from assets.store import connect, writer
from assets.store.history import verify_chain
from tests import fixtures_credit as bank

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _short_socket_dir(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A socket folder of this test's own (short: Unix socket paths are limited to ~100 bytes)."""
    with tempfile.TemporaryDirectory(prefix="aw-", dir="/tmp") as sockets:
        monkeypatch.setenv("ASSETS_WRITER_SOCKET_DIR", sockets)
        monkeypatch.setenv("ASSETS_SNAPSHOT_DEBOUNCE_S", "0.2")
        yield


def _report(as_of: date, tag: str):
    """One borrower-run of the credit fixture (4 fields, decisions included), under its own ids."""
    from assets.claims import Claim
    from assets.config import Settings
    from assets.pipeline import Assessment, RunReport, _cap_per_borrower
    from assets.valuation import load_params, season_ndvi, value_claim
    from assets.verify import verify_claim

    params = load_params()
    report = RunReport(run_id=f"r-{tag}", as_of=as_of, tiles=6, params=params)
    for cid, (b, lon, lat, ha) in bank.FIELDS.items():
        obs = bank._observation(cid, {"wheat": 0.9, "barley": 0.1}, 6)
        v = verify_claim(claim_id=cid, claimed_area_ha=ha, observation=obs, overlap_area_ha=0.0,
                         sensor_evidence=None, settings=Settings())
        claim = Claim(cid, b, f"field {cid}", datetime(2026, 4, 1), None, ha, "submitted")
        report.assessments.append(Assessment(claim, v, f"v-{cid}-{tag}", obs, value_claim(
            v, params, len(obs.usable_dates), centre=(lon, lat), ndvi_season=season_ndvi(obs))))
    _cap_per_borrower(report.assessments, params)
    return report


def _models():
    from assets.pipeline import Models

    return Models(segmenter=SimpleNamespace(version="seg-v1"), crop=SimpleNamespace(version="crop-v1"))


def _check_log(db: Path, expected: int) -> None:
    with connect(db) as con:
        seqs = [r[0] for r in con.execute("SELECT decision_seq FROM decisions ORDER BY decision_seq").fetchall()]
        ids = con.execute("SELECT count(*), count(DISTINCT decision_id) FROM decisions").fetchone()
        check = verify_chain(con)
    assert seqs == list(range(1, expected + 1)), "decision_seq must be contiguous"
    assert ids == (expected, expected), "every decision stored exactly once"
    assert check.ok, check.broken[:3]


def test_twenty_concurrent_assessment_writes_in_one_process(db_path: Path) -> None:
    """20 threads write assessment runs at once (the pipeline's own write phase): no error, every
    decision once, a contiguous and valid hash chain. Before the writer, they raced for decision_seq."""
    from assets.pipeline import _write_steps

    with connect(db_path):
        pass
    reports = [_report(date(2026, 6, 1), f"t{i}") for i in range(20)]
    errors: list[BaseException] = []
    start = threading.Barrier(20)

    def work(report) -> None:
        try:
            start.wait()
            writer.run(db_path, _write_steps(report, [], _models(), datetime(2026, 6, 1, 3), "claims"))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(r,)) for r in reports]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors[:3]
    _check_log(db_path, 20 * len(bank.FIELDS))


def test_the_api_no_longer_serialises_whole_assessments() -> None:
    """The route-level stopgap lock is gone: only the write phase takes turns (in the store)."""
    import inspect

    from assets.api import app, routes

    assert "assess_lock" not in inspect.getsource(routes) and "assess_lock" not in inspect.getsource(app)


def test_codec_round_trips_dates_bytes_and_arrow() -> None:
    import pyarrow as pa

    value = {"d": date(2026, 1, 2), "t": datetime(2026, 1, 2, 3, 4, 5, 6), "b": b"\x00\xff", "f": 0.1,
             "n": None, "l": [1, (2, 3)], "tab": pa.table({"x": [1, 2]}), 5: "int key"}
    tables: list = []
    back = writer._dec(writer._enc(value, tables), tables)
    assert back["tab"].equals(value["tab"])
    assert {k: v for k, v in back.items() if k != "tab"} == {**{k: v for k, v in value.items() if k != "tab"},
                                                              "l": [1, [2, 3]]}


def test_an_owner_takes_other_processes_writes_and_analysts_read_the_snapshot(db_path: Path) -> None:
    """A writer service owns the file; a second process's writes go through it (the decision log
    included), an analyst's plain read-only DuckDB opens the snapshot meanwhile."""
    with connect(db_path):
        pass
    with writer.WriterService(db_path):
        script = (
            "import sys; from datetime import date, datetime; from pathlib import Path\n"
            "from assets.store import writer\nfrom assets.pipeline import _write_steps\n"
            "from tests.test_writer import _report, _models\n"
            "db = Path(sys.argv[1]); assert writer.owner_elsewhere(db)\n"
            "for i in range(3):\n"
            "    writer.run(db, _write_steps(_report(date(2026, 6, 1), f'p{i}'), [], _models(), datetime(2026, 6, 1), 'nightly'))\n"
            "with writer.read(db) as con:\n"
            "    print(con.execute('SELECT count(*) FROM decisions').fetchone()[0])\n")
        out = subprocess.run([sys.executable, "-c", script, str(db_path)], cwd=REPO, capture_output=True, text=True,
                             timeout=300, env={**os.environ, "PYTHONPATH": f"{REPO / 'src'}:{REPO}"})
        assert out.returncode == 0, out.stderr[-2000:]
        assert out.stdout.strip().splitlines()[-1] == str(3 * len(bank.FIELDS))  # read its own writes
        plain = subprocess.run([sys.executable, "-c", f"import duckdb; duckdb.connect({str(db_path)!r}, read_only=True)"],
                               capture_output=True, text=True, timeout=60)
        assert plain.returncode != 0 and "lock" in plain.stderr  # DuckDB refuses readers of an owned file...
        cli = subprocess.run([sys.executable, "-m", "assets.cli", "store", "status", "--db", str(db_path)],
                             cwd=REPO, capture_output=True, text=True, timeout=120,
                             env={**os.environ, "PYTHONPATH": f"{REPO / 'src'}:{REPO}"})
        assert cli.returncode == 0 and '"owner_running": true' in cli.stdout, cli.stderr[-1000:]
        typo = subprocess.run([sys.executable, "-m", "assets.cli", "store", "status", "--db", str(db_path) + ".typo"],
                              cwd=REPO, capture_output=True, text=True, timeout=120,
                              env={**os.environ, "PYTHONPATH": f"{REPO / 'src'}:{REPO}"})
        assert typo.returncode == 2 and "no database at" in typo.stderr
        ro = subprocess.run([sys.executable, "-c", "import sys; from assets.store import connect\n"
                             "with connect(sys.argv[1], read_only=True) as con:\n"
                             "    print(con.execute('SELECT count(*) FROM decisions').fetchone()[0])", str(db_path)],
                            cwd=REPO, capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PYTHONPATH": f"{REPO / 'src'}:{REPO}"})
        assert ro.returncode == 0 and ro.stdout.strip() == str(3 * len(bank.FIELDS)), ro.stderr[-1000:]  # CLI reads work
        snap = writer.snapshot_path(db_path)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # ...the snapshot is republished after commits
            got = _analyst_count(snap)
            if got == 3 * len(bank.FIELDS):
                break
            time.sleep(0.2)
        assert got == 3 * len(bank.FIELDS)
        views = subprocess.run(  # the analysts' views and their macro (migration 015) travel with the copy
            [sys.executable, "-c", "import duckdb, sys; c = duckdb.connect(sys.argv[1], read_only=True); "
             "c.execute('SELECT count(*) FROM field_valuations JOIN claim_status USING (claim_id)').fetchone(); "
             "print(*c.execute(\"SELECT count(reasons_text(reasons)), count(*) FILTER (reasons_text(reasons) LIKE '[%') \""
             "\"FROM decisions\").fetchone())", str(snap)], capture_output=True, text=True, timeout=60)
        assert views.returncode == 0 and views.stdout.split() == [str(3 * len(bank.FIELDS)), "0"], views.stderr[-1000:]
    assert not writer.socket_path(db_path).exists()
    _check_log(db_path, 3 * len(bank.FIELDS))


def _analyst_count(snap: Path) -> int | None:
    """What `duckdb -readonly snap` would answer, from a separate process."""
    out = subprocess.run([sys.executable, "-c", "import duckdb, sys; c = duckdb.connect(sys.argv[1], read_only=True); "
                          "print(c.execute('SELECT count(*) FROM decisions').fetchone()[0])", str(snap)],
                         capture_output=True, text=True, timeout=60)
    return int(out.stdout) if out.returncode == 0 else None


def test_a_dear_snapshot_copy_is_taken_less_often(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A writer with no owner (the ingester on its own) publishes the snapshot in its own thread: a
    copy of c seconds defers the next by c x (1 / share - 1), so copies take at most
    `Settings.snapshot_max_share` of its time however big the file grows."""
    monkeypatch.setenv("ASSETS_SNAPSHOT_DEBOUNCE_S", "0")
    monkeypatch.setenv("ASSETS_SNAPSHOT_MAX_SHARE", "0.1")
    copies: list[float] = []

    def slow_copy(db: object) -> Path:
        time.sleep(0.05)
        copies.append(time.monotonic())
        return tmp_path / "snap.duckdb"

    monkeypatch.setattr(writer, "publish_snapshot", slow_copy)
    db = tmp_path / "busy.duckdb"
    t0 = time.monotonic()
    while time.monotonic() - t0 < 1.5:  # a commit every 10 ms
        writer.published(db)
        time.sleep(0.01)
    gaps = [b - a for a, b in zip(copies, copies[1:])]
    assert 2 <= len(copies) <= 4, copies  # without the rule: one copy per commit (~25)
    assert all(g >= 0.45 + 0.05 for g in gaps), gaps  # 0.05 s copy -> 0.45 s wait, then the next copy
    assert writer._gap(0.05, 1.0, 0.1) == 1.0 and writer._gap(2.0, 1.0, 0.1) == pytest.approx(18.0)
    writer._DIRECT.pop(writer._key(db), None)


def test_writer_settings_are_built_once_per_environment(monkeypatch) -> None:
    """Code review 2026-12-07: every write built `Settings()` three times (~46 % of a no-op write)."""
    from assets.store import writer as w

    calls = []
    real = w._build_config
    monkeypatch.setattr(w, "_build_config", lambda: calls.append(1) or real())
    monkeypatch.setattr(w, "_CONFIGS", {})
    assert w._config() is w._config() and len(calls) == 1
    monkeypatch.setenv("ASSETS_SNAPSHOT_DEBOUNCE_S", "2.5")  # a changed environment is read again
    assert w._config().snapshot_debounce_s == 2.5 and len(calls) == 2
