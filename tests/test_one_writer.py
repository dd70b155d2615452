"""#15 "one writer": the API server owns the database file while the nightly flow's write phase
and the MQTT sensor ingester (other processes) write through it, and an analyst reads the
snapshot all along. No write lost, no lock error, the decision log still verifies."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from assets.api.app import create_app
from assets.config import Settings
from assets.store import connect, writer
from assets.store.history import verify_chain

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
KEY = {"X-API-Key": "test-key-0123456789abcdef-ok"}
NIGHTS = 4  # nightly write phases (4 decisions each) + a run report each
READINGS = 600  # MQTT messages through the real ingester and an embedded broker

NIGHTLY = """
import json, sys
from datetime import date, datetime
from pathlib import Path
from assets import runs
from assets.pipeline import _write_steps
from assets.store import writer
from tests.test_writer import _models, _report
db = Path(sys.argv[1])
assert writer.owner_elsewhere(db), "the API server should own the file"
for i in range(int(sys.argv[2])):
    night = runs.NightReport(kind="nightly", as_of=date(2026, 6, 1), task_runner="test")
    runs.save(db, night)  # `running`
    writer.run(db, _write_steps(_report(date(2026, 6, 1), f"night-{sys.argv[3]}-{i}"), [], _models(),
                                datetime(2026, 6, 1, 3), "nightly"))
    night.status, night.finished_at = "ok", runs._now()
    runs.save(db, night)
    before = runs.snapshot(db)  # reads its own writes (from the owner's snapshot)
print(json.dumps({"limits_seen": len(before.limits)}))
"""

INGESTER = """
import json, sys
from datetime import datetime, timedelta
from pathlib import Path
from assets.sensors.broker import EmbeddedBroker
from assets.sensors.ingest import Ingester
from assets.sensors.replay import Message, publish
db, n = Path(sys.argv[1]), int(sys.argv[2])
t0 = datetime(2016, 9, 1)
def payload(i):
    return json.dumps({"device_id": "probe-001", "seq": 50_000_000 + i, "ts": (t0 + timedelta(minutes=i)).isoformat() + "Z",
                       "readings": {"soil_moisture": {"value": 21.5, "unit": "%"}}}).encode()
messages = [Message("probe-001", 50_000_000 + i, t0 + timedelta(minutes=i), payload(i)) for i in range(n)]
broker = EmbeddedBroker().start()
try:
    ingester = Ingester(db, broker.url, client_id="one-writer-test", batch_size=50).start()
    try:
        publish(messages, broker.url, max_inflight=50)
        assert ingester.wait_until(received=n, idle_s=0.3, timeout_s=300)
    finally:
        stats = ingester.stop()
    handed = ingester._db.handed_over if hasattr(ingester._db, "handed_over") else None
finally:
    broker.stop()
print(json.dumps({"stored": stats.stored, "received": stats.received, "quarantined": stats.quarantined,
                  "reasons": stats.quarantine_reasons, "lock_retries": stats.lock_retries,
                  "handed_over": handed}))
"""

ANALYST = """
import json, sys, time
from pathlib import Path
import duckdb
snap, stop = Path(sys.argv[1]), Path(sys.argv[2])
seen, errors = [], []
while not stop.exists():
    try:  # what `duckdb -readonly <db>.snapshot.duckdb` does
        con = duckdb.connect(str(snap), read_only=True)
        seen.append(con.execute("SELECT (SELECT count(*) FROM decisions), (SELECT count(*) FROM sensor_readings), "
                                "(SELECT count(*) FROM run_reports)").fetchone())
        con.close()
    except Exception as exc:
        errors.append(f"{type(exc).__name__}: {exc}")
    time.sleep(0.05)
print(json.dumps({"reads": len(seen), "errors": errors[:5], "seen": [list(s) for s in seen]}))
"""


def _counts(db: Path) -> tuple[int, int, int]:
    with connect(db) as con:
        return con.execute("SELECT (SELECT count(*) FROM decisions), (SELECT count(*) FROM sensor_readings), "
                           "(SELECT count(*) FROM run_reports)").fetchone()


def _spawn(code: str, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": f"{REPO / 'src'}:{REPO}", "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    return subprocess.Popen([sys.executable, "-c", code, *args], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _result(proc: subprocess.Popen, timeout: float = 600) -> dict:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-3000:]
    assert "locked" not in err.lower() and "conflicting lock" not in err.lower(), err[-2000:]
    return json.loads(out.strip().splitlines()[-1])


def test_api_nightly_and_ingester_write_at_once_while_an_analyst_reads(demo_db, tmp_path: Path, repo: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    sockets = Path(tempfile.mkdtemp(prefix="aw-", dir="/tmp"))  # short: Unix socket paths are limited
    monkeypatch.setenv("ASSETS_WRITER_SOCKET_DIR", str(sockets))  # inherited by the other processes
    monkeypatch.setenv("ASSETS_SNAPSHOT_DEBOUNCE_S", "0.3")
    db = tmp_path / "bank.duckdb"
    shutil.copy(demo_db[0], db)
    decisions0, readings0, runs0 = _counts(db)
    stop = tmp_path / "analyst.stop"
    with TestClient(create_app(Settings(db_path=db), api_keys=["test-key-0123456789abcdef-ok"], own_store=True)) as client:
        assert writer.owner_running(db) and writer.socket_path(db).exists()
        analyst = _spawn(ANALYST, str(writer.snapshot_path(db)), str(stop))
        nightly = [_spawn(NIGHTLY, str(db), str(NIGHTS), tag) for tag in ("a", "b")]
        ingester = _spawn(INGESTER, str(db), str(READINGS))
        # Meanwhile farmers submit through the API (real models), two at once.
        doc = json.loads((repo / "sample_tiles/claims/farmer-001.geojson").read_text())
        answers: list = []

        def submit(borrower: str) -> None:
            answers.append(client.post(f"/borrowers/{borrower}/claims?as_of=2016-09-30", json=doc, headers=KEY))

        farmers = [threading.Thread(target=submit, args=(b,)) for b in ("farmer-001", "farmer-009")]
        for t in farmers:
            t.start()
        for t in farmers:
            t.join(600)
        nights = [_result(p) for p in nightly]
        ingested = _result(ingester)
        writer.flush_snapshot(db)  # what the debounce would publish a moment later
        time.sleep(1.0)  # the analyst reads it
        stop.touch()
        read = _result(analyst, timeout=60)
        assert [a.status_code for a in answers] == [201, 201], [a.text[:300] for a in answers]
    assert not writer.socket_path(db).exists()  # the server let go of the file
    shutil.rmtree(sockets, ignore_errors=True)

    decisions, readings, runs = _counts(db)
    api_decisions = decisions - decisions0 - 2 * NIGHTS * 4
    assert api_decisions >= 2  # farmer-001 re-assessed, farmer-009's new claims decided
    assert readings - readings0 == READINGS == ingested["stored"], ingested  # nothing lost
    assert ingested["lock_retries"] == 0 and ingested["handed_over"] > 0  # every batch went to the owner
    assert runs - runs0 == 2 * NIGHTS
    assert all(n["limits_seen"] > 0 for n in nights)
    with connect(db) as con:
        seqs = [r[0] for r in con.execute("SELECT decision_seq FROM decisions ORDER BY 1").fetchall()]
        check = verify_chain(con)
    assert seqs == list(range(1, decisions + 1)) and check.ok, check.broken[:3]
    # The analyst read all along, without one error, and saw the writes arrive.
    assert read["errors"] == [] and read["reads"] > 10
    seen = read["seen"]
    assert seen[0][0] >= decisions0 and seen[-1] == [decisions, readings, runs]
    assert all(a <= b for x, y in zip(seen, seen[1:]) for a, b in zip(x, y))  # snapshots only move forward


def test_twenty_farmers_assessed_at_once_in_one_process(demo_db, tmp_path: Path, repo: Path) -> None:
    """20 threads each submit and assess a claim with the real models on one database (what 20
    concurrent API requests do): no error, every decision stored once, the chain contiguous and valid."""
    from datetime import date

    from assets.pipeline import submit_and_assess

    db = tmp_path / "twenty.duckdb"
    shutil.copy(demo_db[0], db)
    decisions0 = _counts(db)[0]
    doc = json.loads((repo / "sample_tiles/claims/farmer-001.geojson").read_text())
    doc["features"] = doc["features"][:1]
    settings = Settings(db_path=db)
    rows: dict[int, list] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(20)

    def farmer(i: int) -> None:
        try:
            start.wait()
            rows[i] = submit_and_assess(settings, doc, f"farmer-x{i:02d}", as_of=date(2016, 9, 30))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=farmer, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    assert not errors, ["".join(__import__("traceback").format_exception(e))[-1500:] for e in errors[:1]][0]
    assert sorted(rows) == list(range(20)) and all(len(r) == 1 for r in rows.values())
    with connect(db) as con:
        seqs = [r[0] for r in con.execute("SELECT decision_seq FROM decisions ORDER BY 1").fetchall()]
        per_claim = con.execute("SELECT count(DISTINCT claim_id), count(*), count(DISTINCT decision_id) FROM decisions "
                                "WHERE borrower_id LIKE 'farmer-x%'").fetchone()
        check = verify_chain(con)
    assert per_claim == (20, 20, 20)  # one decision per farmer's claim, each stored once
    assert seqs == list(range(1, decisions0 + 21)) and check.ok, check.broken[:3]
