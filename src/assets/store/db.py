"""DuckDB connection, versioned migrations, transactions and bulk appends.

DuckDB allows one read-write process per file, so a process without a writer service opens the
file for the shortest useful time through `connect`, which also brings the schema up to date;
writes of a process, and of processes handing them to a writer service, go through
`store.writer`. Bulk rows
are appended from Arrow tables (``executemany`` is ~1,000x slower).
"""

from __future__ import annotations

import errno
import re
import threading
import time
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import duckdb
import pyarrow as pa

from assets.errors import StoreError, StoreFullError, StoreLockedError

_MIGRATION_NAME = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")
# DuckDB (2.0.1) shares one database instance between a process's connections to a file, and closes
# it with the last one. A connect racing with another thread's first connect (or last close) can be
# handed an instance whose Python replacement scans are not registered yet: the next Arrow append
# fails with "python_arrow_scan does not exist" (48 of 1,200 connects in 4 threads). Opening and
# closing one at a time per process avoids it; queries still run in parallel.
_OPEN_CLOSE = threading.Lock()


def records(cur: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """The rows of an executed query as dicts keyed by column name."""
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, row)) for row in cur.fetchall()]


def _migrations() -> list[tuple[int, str, str]]:
    """(version, filename, sql) for every packaged migration, in order."""
    found = []
    for entry in resources.files("assets.store.migrations").iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append((int(match.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    found.sort()
    versions = [v for v, _, _ in found]
    if len(set(versions)) != len(versions):
        raise StoreError(f"two migrations share a number: {sorted(n for _, n, _ in found)}")
    return found


SCHEMA_VERSION = max((v for v, _, _ in _migrations()), default=0)


def migrate(con: duckdb.DuckDBPyConnection) -> int:
    """Apply every migration not yet recorded, each in its own transaction. Returns the version."""
    con.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INTEGER PRIMARY KEY, name VARCHAR NOT NULL,"
        " applied_at TIMESTAMP NOT NULL DEFAULT current_timestamp)"
    )
    applied = {row[0] for row in con.execute("SELECT version FROM schema_migrations").fetchall()}
    migrations = _migrations()  # read now: a migration may have been added since import
    newest_known = max((v for v, _, _ in migrations), default=0)
    if applied and max(applied) > newest_known:
        raise StoreError(
            f"the database is at schema version {max(applied)} but this program only knows "
            f"{newest_known}; upgrade the assets package before opening it"
        )
    for version, name, sql in migrations:
        if version in applied:
            continue
        with transaction(con):
            con.execute(sql)
            con.execute("INSERT INTO schema_migrations (version, name) VALUES (?, ?)", [version, name])
    return newest_known


def _check_schema(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    """A read-only open cannot migrate: an older file gets a one-line `StoreError` saying how to
    upgrade it, not a missing-table traceback from the first query."""
    try:
        row = con.execute("SELECT max(version) FROM schema_migrations").fetchone()
    except duckdb.CatalogException:
        row = None
    version = int(row[0]) if row and row[0] is not None else 0
    if version < SCHEMA_VERSION:
        raise StoreError(f"database {path} is at schema version {version} and this program needs {SCHEMA_VERSION}; "
                         "upgrade it by running a command that writes to it once (`assets nightly` or "
                         f"`assets store snapshot --db {path}`), then read it again")


def require_database(path: str | Path) -> Path:
    """``path``, or a `StoreError` when no database is there: commands that read or change what the
    nightly job stored never create an empty file in place of a mistyped one."""
    path = Path(path)
    if not path.exists():
        raise StoreError(f"no database at {path}; pass --db (or ASSETS_DB) naming the file the nightly job and the "
                         f"server use, or make one with `assets demo --db {path}` or `assets nightly`")
    return path


@contextmanager
def connect(
    path: str | Path, *, read_only: bool = False, retry_s: float = 5.0
) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the store (creating and migrating it if needed) and always close it.

    A file held by another writer is retried for ``retry_s`` seconds before giving up with
    `StoreLockedError`, so short overlapping jobs take turns. A read-only open of a file that a
    writer service owns (`assets serve`, `store/writer.py`) opens its read snapshot instead.
    """
    path = require_database(path) if read_only else Path(path)
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + retry_s
    while True:
        try:
            with _OPEN_CLOSE:
                con = duckdb.connect(str(path), read_only=read_only)
            break
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower():
                raise StoreError(f"cannot open database {path}: {exc}") from exc
            if read_only:  # a writer service owns the file: read its snapshot (up to its last commit)
                from assets.store.writer import synced_snapshot

                snapshot = synced_snapshot(path)
                if snapshot is not None:
                    path, read_only = snapshot, True
                    continue
            if time.monotonic() >= deadline:
                from assets.store.writer import owner_elsewhere, socket_path

                if owner_elsewhere(path):
                    raise StoreLockedError(
                        f"database {path} is owned by a writer service (`assets serve` or `assets store serve`, "
                        f"socket {socket_path(path)}); this command opens the file itself: run it while no "
                        "owner runs, or do it through the API") from exc
                raise StoreLockedError(
                    f"database {path} is in use by another process; wait for it to finish "
                    "(or stop `assets sensors ingest`) and try again"
                ) from exc
            time.sleep(0.1)
        except duckdb.Error as exc:
            raise StoreError(f"cannot open database {path}: {exc}") from exc
    try:
        # Every stored time is naive UTC; so are the defaults (current_timestamp) and the casts of
        # zone-aware parameters, whatever the server's own time zone (Asia/Shanghai shifted them 8 h).
        con.execute("SET TimeZone = 'UTC'")
        if not read_only:
            migrate(con)
        else:
            _check_schema(con, path)
        yield con
    finally:
        with _OPEN_CLOSE:
            con.close()


_DISK_FULL = ("no space left on device", "disk is full", "disk full", "not enough space")


def disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` is the operating system or DuckDB saying the disk is full."""
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return True
    return isinstance(exc, (duckdb.Error, OSError)) and any(s in str(exc).lower() for s in _DISK_FULL)


def _database_file(con: duckdb.DuckDBPyConnection) -> str:
    try:
        row = con.execute("SELECT path FROM duckdb_databases() WHERE database_name = current_database()").fetchone()
        return str(row[0]) if row and row[0] else "the database"
    except duckdb.Error:
        return "the database"


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """BEGIN ... COMMIT, rolling back on any exception (a failed COMMIT included) so nothing
    half-written remains. A full disk becomes `StoreFullError`, saying what to do."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
        con.execute("COMMIT")
    except BaseException as exc:
        try:
            con.execute("ROLLBACK")
        except duckdb.Error:
            pass  # a failed COMMIT has already ended the transaction
        if disk_full(exc):
            raise StoreFullError(f"the disk holding {_database_file(con)} is full ({exc}); nothing of this write was "
                                 "stored and what was stored before is intact: free space on that disk and run it "
                                 "again") from exc
        raise


def append(
    con: duckdb.DuckDBPyConnection,
    table: str,
    rows: pa.Table | Sequence[Mapping[str, object]],
    *,
    on_conflict: str = "error",
) -> int:
    """Append rows to ``table`` in one statement from an Arrow table (or a list of dicts).

    ``on_conflict``: "error" (plain insert), "ignore" (keep stored rows: idempotent re-runs)
    or "replace" (newest wins). Columns are matched by name. Returns rows offered.
    """
    if not isinstance(rows, pa.Table):
        if not rows:
            return 0
        rows = pa.Table.from_pylist(list(rows))
    if rows.num_rows == 0:
        return 0
    verb = {"error": "INSERT", "ignore": "INSERT OR IGNORE", "replace": "INSERT OR REPLACE"}[on_conflict]
    cols = ", ".join(f'"{c}"' for c in rows.column_names)
    # DuckDB finds the local Arrow table by name (a replacement scan). Unlike register(), this
    # works while an earlier result on the connection is still unfetched.
    _assets_append_rows = rows
    con.execute(f'{verb} INTO "{table}" ({cols}) SELECT {cols} FROM _assets_append_rows')
    return rows.num_rows
