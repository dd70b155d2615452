from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from assets.errors import StoreError, StoreLockedError
from assets.store import SCHEMA_VERSION, append, connect, transaction


def test_migrations_create_schema_once(db_path: Path) -> None:
    with connect(db_path) as con:
        versions = [r[0] for r in con.execute("SELECT version FROM schema_migrations ORDER BY version").fetchall()]
        tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    assert versions[-1] == SCHEMA_VERSION and versions == sorted(set(versions))
    assert {"borrowers", "claims", "tiles", "observations", "verifications", "valuations", "credit_limits",
            "ingest_runs", "alerts", "claim_status", "borrower_limits"} <= tables
    with connect(db_path) as con:  # re-opening applies nothing twice
        assert con.execute("SELECT count(*) FROM schema_migrations").fetchone()[0] == len(versions)


def test_newer_schema_is_refused(db_path: Path) -> None:
    with connect(db_path) as con:
        con.execute("INSERT INTO schema_migrations (version, name) VALUES (999, '999_future.sql')")
    with pytest.raises(StoreError, match="upgrade the assets package"):
        with connect(db_path):
            pass


def test_transaction_rolls_back_everything(db_path: Path) -> None:
    with connect(db_path) as con:
        append(con, "borrowers", [{"borrower_id": "keep"}])
        with pytest.raises(RuntimeError):
            with transaction(con):
                append(con, "borrowers", [{"borrower_id": "half"}])
                raise RuntimeError("crash mid-write")
        assert [r[0] for r in con.execute("SELECT borrower_id FROM borrowers").fetchall()] == ["keep"]


def test_append_conflict_modes(db_path: Path) -> None:
    with connect(db_path) as con:
        rows = pa.Table.from_pylist([{"borrower_id": "a"}, {"borrower_id": "b"}])
        assert append(con, "borrowers", rows) == 2
        append(con, "borrowers", rows, on_conflict="ignore")
        assert con.execute("SELECT count(*) FROM borrowers").fetchone()[0] == 2
        with pytest.raises(duckdb.ConstraintException):
            append(con, "borrowers", rows)
        assert append(con, "borrowers", []) == 0


def test_read_only_missing_file_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="assets demo"):
        with connect(tmp_path / "nope.duckdb", read_only=True):
            pass


def test_locked_file_reports_other_writer(db_path: Path) -> None:
    import subprocess
    import sys
    import time

    with connect(db_path):
        pass
    hold = f"import duckdb,time; c=duckdb.connect({str(db_path)!r}); print('ok', flush=True); time.sleep(30)"
    holder = subprocess.Popen([sys.executable, "-c", hold],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ok"
        start = time.monotonic()
        with pytest.raises(StoreLockedError, match="in use by another process"):
            with connect(db_path, retry_s=0.5):
                pass
        assert time.monotonic() - start >= 0.5  # it retried before giving up
    finally:
        holder.kill()
        holder.wait()
