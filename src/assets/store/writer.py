"""One writer per database file: in this process, across processes, and a snapshot analysts can read.

DuckDB lets one process hold a file read-write and then refuses every other process, even a
read-only one. Inside that process, connections share one database and commit optimistically, so
two transactions that both append decision ``n + 1`` to the hash chain collide at COMMIT. Hence:

* **In a process**, every write runs under one lock per database file (`lock_for`), for the short
  write transaction only; models and reads run outside it. `run` / `call` execute *write ops*
  (functions marked `@write_op`, taking ``(con, **kwargs)``) in one transaction; `apply` runs one
  on a connection the caller already holds (the owning server, tests).
* **Across processes**, one process owns the file while it runs a `WriterService` (`assets serve`
  does, or `assets store serve` on its own). It listens on a Unix socket (mode 0600, so only the
  file's own user can connect; the path is derived from the database path, `socket_path`).
  `run` in any other process finds the socket and hands its ops over: the op's name and its
  arguments as JSON with tagged dates, bytes and Arrow tables (Arrow IPC). The owner runs them
  under the same lock, so API requests, the nightly flow and the sensor ingester form one queue.
  With no owner running, whoever writes opens the file itself, as before (retrying a held file).
* **Readers in other processes** (`read`) use the snapshot while an owner holds the file: the
  owner publishes what it has committed first, so a process reads its own writes.
* **Analysts** open the snapshot: after commits the writer copies the database (``COPY FROM
  DATABASE``, one consistent MVCC read) to ``<db>.snapshot.duckdb`` at most every
  `Settings.snapshot_debounce_s`, written beside it and renamed into place atomically, so
  ``duckdb -readonly <db>.snapshot.duckdb`` always opens, and never blocks a writer.
"""

from __future__ import annotations

import atexit
import base64
import hashlib
import importlib
import io
import json
import logging
import os
import socket
import struct
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import duckdb
import pyarrow as pa

from assets import errors
from assets.errors import StoreError, StoreLockedError
from assets.store.db import append, connect, transaction

log = logging.getLogger(__name__)

WriteOp = Callable[..., Any]
_OPS: dict[str, WriteOp] = {}
_LOCKS: dict[str, threading.RLock] = {}
_LOCKS_GUARD = threading.Lock()
_OWNED: dict[str, "WriterService"] = {}  # database key -> the service this process runs for it


# --- configuration --------------------------------------------------------------------------------
@dataclass(frozen=True)
class WriterConfig:
    socket_dir: Path
    snapshot_enabled: bool
    snapshot_debounce_s: float
    snapshot_max_share: float
    lock_retry_s: float
    remote_timeout_s: float


_CONFIGS: dict[tuple[tuple[str, str], ...], WriterConfig] = {}


def _config() -> WriterConfig:
    """The writer's settings, built once per set of ASSETS_* variables: a `Settings()` costs ~2.5 ms,
    and every write asked for one three times."""
    key = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("ASSETS_")))
    config = _CONFIGS.get(key)
    if config is None:
        if len(_CONFIGS) > 64:
            _CONFIGS.clear()
        config = _CONFIGS[key] = _build_config()
    return config


def _build_config() -> WriterConfig:
    from assets.config import Settings

    s = Settings()
    return WriterConfig(socket_dir=s.writer_socket_dir or Path(tempfile.gettempdir()),
                        snapshot_enabled=s.snapshot_enabled, snapshot_debounce_s=s.snapshot_debounce_s,
                        snapshot_max_share=s.snapshot_max_share,
                        lock_retry_s=s.writer_lock_retry_s, remote_timeout_s=s.writer_remote_timeout_s)


def _key(db_path: str | Path) -> str:
    return str(Path(db_path).resolve())


def lock_for(db_path: str | Path) -> threading.RLock:
    """The process-wide write lock of one database file."""
    key = _key(db_path)
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(key, threading.RLock())


def socket_path(db_path: str | Path) -> Path:
    """Where the owner of ``db_path`` listens: short (Unix sockets allow ~100 bytes) and unique per file."""
    return _config().socket_dir / f"assets-writer-{hashlib.sha256(_key(db_path).encode()).hexdigest()[:16]}.sock"


def snapshot_path(db_path: str | Path) -> Path:
    """The read snapshot beside the database: ``assets.duckdb`` -> ``assets.snapshot.duckdb``."""
    p = Path(db_path)
    return p.with_name(f"{p.stem}.snapshot{p.suffix or '.duckdb'}")


# --- write ops -----------------------------------------------------------------------------------
def write_op(fn: WriteOp) -> WriteOp:
    """Mark ``fn(con, **kwargs)`` as a write another process may ask the owner to run."""
    name = f"{fn.__module__}:{fn.__qualname__}"
    _OPS[name] = fn
    fn.write_op_name = name  # type: ignore[attr-defined]
    return fn


def _op_name(fn: WriteOp) -> str:
    name = getattr(fn, "write_op_name", None)
    if name is None:
        raise StoreError(f"{fn!r} is not a @write_op")
    return str(name)


def _resolve(name: str) -> WriteOp:
    if name not in _OPS:
        module = name.partition(":")[0]
        if not module.startswith("assets."):
            raise StoreError(f"write op {name!r} is not part of the assets package")
        importlib.import_module(module)  # registers its ops
    try:
        return _OPS[name]
    except KeyError:
        raise StoreError(f"{name!r} is not a registered write op") from None


Step = tuple[WriteOp, dict[str, Any]]
write_op(append)  # the generic bulk append (`store.db.append`): table, rows, on_conflict


Target = str | Path | duckdb.DuckDBPyConnection  # a database path (its one writer) or an open connection


def apply(target: Target, fn: WriteOp, /, **kwargs: Any) -> Any:
    """Run one write op on ``target``: an open connection (in one transaction there, for callers
    that already hold one: the owning server, tests) or a database path (`call`: the file's one
    writer, in another process if one owns it). Faces pass paths; nothing else changes for them."""
    if isinstance(target, duckdb.DuckDBPyConnection):
        _op_name(fn)  # only registered ops, so the same code runs remotely too
        with transaction(target):
            return fn(target, **kwargs)
    return call(target, fn, **kwargs)


def call(db_path: str | Path, fn: WriteOp, /, **kwargs: Any) -> Any:
    """Run one write op in its own transaction on the file's one writer; returns its result."""
    return run(db_path, [(fn, kwargs)])[0]


def run(db_path: str | Path, steps: Sequence[Step]) -> list[Any]:
    """Run write ops in ONE transaction (all or nothing) on the file's one writer: here when this
    process owns the file or nobody does, else handed to the owning process. Returns their results."""
    names = [(_op_name(fn), kwargs) for fn, kwargs in steps]
    cfg = _config()
    deadline = time.monotonic() + cfg.lock_retry_s
    while True:
        owner = _remote_owner(db_path)
        if owner is not None:
            return _run_remote(owner, names, cfg.remote_timeout_s)
        try:
            return _run_local(db_path, [(_resolve(n), kw) for n, kw in names], retry_s=0.5)
        except StoreLockedError:
            if time.monotonic() >= deadline:
                raise
            # Another process holds the file: it may be an owner starting up, or a direct writer.


def _run_local(db_path: str | Path, steps: Sequence[Step], retry_s: float) -> list[Any]:
    with lock_for(db_path):
        with connect(db_path, retry_s=retry_s) as con, transaction(con):
            out = [fn(con, **kwargs) for fn, kwargs in steps]
    published(db_path)
    return out


@contextmanager
def read(db_path: str | Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection to read from: the file itself when this process may open it, else (another
    process owns it) the snapshot, published up to the owner's last commit first."""
    owner = _remote_owner(db_path)
    if owner is None:
        with connect(db_path) as con:
            yield con
        return
    owner.close()
    path = synced_snapshot(db_path)
    if path is None:  # the owner stopped meanwhile: the file is free
        with connect(db_path) as con:
            yield con
        return
    with connect(path, read_only=True) as con:
        yield con


@contextmanager
def reading(target: Target) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection to read from a `Target`: the caller's own connection as it is, or `read` of a path
    (the reading twin of `apply`)."""
    if isinstance(target, duckdb.DuckDBPyConnection):
        yield target
    else:
        with read(target) as con:
            yield con


def synced_snapshot(db_path: str | Path) -> Path | None:
    """The snapshot, brought up to the last commit of the process owning ``db_path``; None if none does."""
    owner = _remote_owner(db_path)
    if owner is None:
        return None
    return Path(_request(owner, {"op": "sync"}, [], _config().remote_timeout_s)["result"])


def owner_elsewhere(db_path: str | Path) -> bool:
    """Another process owns the file: writes go to it, reads to the snapshot."""
    sock = _remote_owner(db_path)
    if sock is None:
        return False
    sock.close()
    return True


def owner_running(db_path: str | Path) -> bool:
    """A writer service owns the file (in this process or another)."""
    if _key(db_path) in _OWNED:
        return True
    sock = _remote_owner(db_path)
    if sock is None:
        return False
    sock.close()
    return True


# --- snapshots -----------------------------------------------------------------------------------
_PUBLISHERS: dict[str, "_Publisher"] = {}
_PUBLISHERS_GUARD = threading.Lock()


def publish_snapshot(db_path: str | Path) -> Path:
    """Copy the committed database to its snapshot now (atomic rename); returns the snapshot's path.

    ``COPY FROM DATABASE`` reads one MVCC snapshot: the copy holds exactly the transactions
    committed when it began. Writes of this process wait for it (see below); readers do not."""
    db_path = Path(db_path)
    snap = snapshot_path(db_path)
    tmp = snap.with_name(f".{snap.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    for leftover in (tmp, tmp.with_name(tmp.name + ".wal")):
        leftover.unlink(missing_ok=True)
    alias = f"assets_snapshot_{os.getpid()}_{threading.get_ident()}"
    try:
        # Under the write lock: while a database is being attached, DuckDB (2.0) fails other
        # connections' Arrow replacement scans (`python_arrow_scan does not exist`), i.e. appends.
        with lock_for(db_path), connect(db_path, retry_s=_config().lock_retry_s) as con:
            name = con.execute("SELECT current_database()").fetchall()[0][0]
            con.execute(f"ATTACH '{str(tmp).replace(chr(39), chr(39) * 2)}' AS {alias}")
            try:
                con.execute(f'COPY FROM DATABASE "{name}" TO {alias}')
            finally:
                con.execute(f"DETACH {alias}")
        os.replace(tmp, snap)
    finally:
        tmp.unlink(missing_ok=True)
    return snap


class _Publisher:
    """Publishes one database's snapshot after commits, at most every ``debounce_s``."""

    def __init__(self, db_path: Path, debounce_s: float, max_share: float) -> None:
        self.db_path, self.debounce_s, self.max_share = db_path, debounce_s, max_share
        self.gap_s = debounce_s  # grows with the copy's cost, see `_gap`
        self.dirty = threading.Event()
        self.lock = threading.Lock()  # one copy at a time
        self.stopping = False
        self.published_at = 0.0
        self.thread = threading.Thread(target=self._loop, name=f"snapshot-{db_path.name}", daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while not self.stopping:
            if not self.dirty.wait(0.5):
                continue
            time.sleep(max(0.0, self.published_at + self.gap_s - time.monotonic()))
            self.flush()

    def flush(self) -> Path:
        with self.lock:
            if not self.dirty.is_set() and snapshot_path(self.db_path).exists():
                return snapshot_path(self.db_path)
            self.dirty.clear()
            started = time.monotonic()
            try:
                return publish_snapshot(self.db_path)
            except Exception as exc:  # noqa: BLE001 - the next commit tries again; writes never fail for it
                if self.db_path.exists():
                    log.warning("could not publish the snapshot of %s: %s", self.db_path, exc)
                    self.dirty.set()
                return snapshot_path(self.db_path)
            finally:
                self.published_at = time.monotonic()
                self.gap_s = _gap(self.published_at - started, self.debounce_s, self.max_share)

    def stop(self) -> None:
        self.stopping = True
        self.thread.join(2)


def _publisher(db_path: str | Path) -> _Publisher | None:
    cfg = _config()
    if not cfg.snapshot_enabled:
        return None
    key = _key(db_path)
    with _PUBLISHERS_GUARD:
        pub = _PUBLISHERS.get(key)
        if pub is None or pub.stopping:
            pub = _PUBLISHERS[key] = _Publisher(Path(key), cfg.snapshot_debounce_s, cfg.snapshot_max_share)
        return pub


_DIRECT: dict[str, list[float | bool]] = {}  # key -> [last published (monotonic), dirty, gap s], no owner running


def _gap(copy_s: float, debounce_s: float, max_share: float) -> float:
    """Seconds to wait after a snapshot copy that took ``copy_s``: the debounce, or longer when the
    copy is dear, so copies take at most ``max_share`` of the time (`Settings.snapshot_max_share`)."""
    return max(debounce_s, copy_s * (1.0 / max_share - 1.0))


def published(db_path: str | Path) -> None:
    """Note a commit. The owner republishes in the background after the debounce. A process
    writing without an owner publishes now if the debounce has passed, else at its next write or
    when it exits: a background copy would hold the file open read-write and refuse this
    process's own read-only connections."""
    key = _key(db_path)
    if key in _OWNED:
        pub = _publisher(db_path)
        if pub is not None:
            pub.dirty.set()
        return
    cfg = _config()
    if not cfg.snapshot_enabled:
        return
    state = _DIRECT.setdefault(key, [float("-inf"), False, cfg.snapshot_debounce_s])
    state[1] = True
    if time.monotonic() - float(state[0]) >= float(state[2]):
        _publish_direct(key, cfg)


def _publish_direct(key: str, cfg: WriterConfig | None = None) -> None:
    cfg = cfg or _config()
    state = _DIRECT.setdefault(key, [float("-inf"), False, cfg.snapshot_debounce_s])
    state[1] = False
    started = time.monotonic()
    try:
        publish_snapshot(key)
    except Exception as exc:  # noqa: BLE001 - a write never fails for its snapshot; the next one retries
        if Path(key).exists():
            log.warning("could not publish the snapshot of %s: %s", key, exc)
            state[1] = True
    state[0] = time.monotonic()
    state[2] = _gap(float(state[0]) - started, cfg.snapshot_debounce_s, cfg.snapshot_max_share)


def flush_snapshot(db_path: str | Path) -> Path | None:
    """The owner: publish now if anything was committed since the last snapshot (None: snapshots are off)."""
    pub = _publisher(db_path)
    return pub.flush() if pub is not None else None


@atexit.register
def _flush_all() -> None:
    """A short-lived writer (a CLI command) leaves its commits in the snapshot before it exits."""
    for pub in list(_PUBLISHERS.values()):
        pub.stopping = True
        if pub.dirty.is_set():
            pub.flush()
    for key, (_, dirty, _) in list(_DIRECT.items()):
        if dirty and key not in _OWNED:
            _publish_direct(key)


# --- the wire: JSON with tagged values + Arrow IPC ---------------------------------------------------
def _enc(obj: Any, tables: list[pa.Table]) -> Any:
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, datetime):
        return {"__datetime__": obj.isoformat()}
    if isinstance(obj, date):
        return {"__date__": obj.isoformat()}
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return {"__bytes__": base64.b64encode(bytes(obj)).decode()}
    if isinstance(obj, pa.Table):
        tables.append(obj)
        return {"__arrow__": len(tables) - 1}
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, dict):
        return {"__dict__": [[_enc(k, tables), _enc(v, tables)] for k, v in obj.items()]}
    if isinstance(obj, (list, tuple)):
        return [_enc(v, tables) for v in obj]
    raise StoreError(f"a write op's argument of type {type(obj).__name__} cannot be sent to the writer")


def _dec(obj: Any, tables: Sequence[pa.Table]) -> Any:
    if isinstance(obj, list):
        return [_dec(v, tables) for v in obj]
    if isinstance(obj, dict):
        if "__datetime__" in obj:
            return datetime.fromisoformat(obj["__datetime__"])
        if "__date__" in obj:
            return date.fromisoformat(obj["__date__"])
        if "__bytes__" in obj:
            return base64.b64decode(obj["__bytes__"])
        if "__arrow__" in obj:
            return tables[obj["__arrow__"]]
        return {_dec(k, tables): _dec(v, tables) for k, v in obj["__dict__"]}
    return obj


def _send(sock: socket.socket, header: dict[str, Any], tables: Sequence[pa.Table]) -> None:
    blobs = []
    for t in tables:
        sink = io.BytesIO()
        with pa.ipc.new_stream(sink, t.schema) as w:
            w.write_table(t)
        blobs.append(sink.getvalue())
    head = json.dumps({**header, "tables": len(blobs)}).encode()
    sock.sendall(b"".join([struct.pack("!Q", len(head)), head, *(struct.pack("!Q", len(b)) + b for b in blobs)]))


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(min(n - len(buf), 1 << 20))
        if not chunk:
            raise ConnectionError("the writer connection closed mid-message")
        buf += chunk
    return bytes(buf)


def _recv(sock: socket.socket) -> tuple[dict[str, Any], list[pa.Table]]:
    (n,) = struct.unpack("!Q", _recv_exact(sock, 8))
    header = json.loads(_recv_exact(sock, n))
    tables = []
    for _ in range(header.get("tables", 0)):
        (m,) = struct.unpack("!Q", _recv_exact(sock, 8))
        tables.append(pa.ipc.open_stream(pa.py_buffer(_recv_exact(sock, m))).read_all())
    return header, tables


def _remote_owner(db_path: str | Path) -> socket.socket | None:
    """A connection to the process owning ``db_path``; None if this process owns it or none does."""
    if _key(db_path) in _OWNED:
        return None
    path = socket_path(db_path)
    try:
        if path.stat().st_uid != os.getuid():  # someone else's socket in a shared folder: never hand it writes
            log.warning("ignoring %s: it belongs to another user", path)
            return None
    except FileNotFoundError:
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(str(path))
    except OSError:  # a stale socket left by a killed owner
        sock.close()
        return None
    return sock


def _request(sock: socket.socket, header: dict[str, Any], tables: list[pa.Table], timeout_s: float) -> dict[str, Any]:
    try:
        sock.settimeout(timeout_s)
        _send(sock, header, tables)
        reply, reply_tables = _recv(sock)
    except (OSError, ConnectionError) as exc:
        raise StoreError(f"the writer service did not answer ({exc}); if it stopped mid-write the write may or may "
                         "not be stored: run the job again (stored ids are kept once)") from exc
    finally:
        sock.close()
    if not reply.get("ok"):
        kind = getattr(errors, str(reply.get("error")), None)
        if isinstance(kind, type) and issubclass(kind, errors.AssetsError):
            raise kind(reply.get("message", ""))
        raise StoreError(f"the writer service failed: {reply.get('error')}: {reply.get('message')}")
    reply["result"] = _dec(reply.get("result"), reply_tables)
    return reply


def _run_remote(sock: socket.socket, steps: Sequence[tuple[str, dict[str, Any]]], timeout_s: float) -> list[Any]:
    tables: list[pa.Table] = []
    body = [[name, _enc(kwargs, tables)] for name, kwargs in steps]
    return list(_request(sock, {"op": "run", "steps": body}, tables, timeout_s)["result"])


# --- the owner --------------------------------------------------------------------------------------
class WriterService:
    """Own ``db_path`` for this process's lifetime and run other processes' write ops.

    Holds one connection open (so the file stays this process's), listens on `socket_path`, runs
    each request's ops under the same lock as this process's own writes, and publishes snapshots.
    """

    def __init__(self, db_path: str | Path, *, start_retry_s: float | None = None) -> None:
        self.db_path = Path(db_path)
        self.key = _key(self.db_path)
        self.socket = socket_path(self.db_path)
        self.start_retry_s = start_retry_s if start_retry_s is not None else max(30.0, _config().lock_retry_s)
        self.requests = 0
        self._con_cm: Any = None
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    def start(self) -> "WriterService":
        if self.key in _OWNED:
            raise StoreError(f"this process already runs the writer service of {self.db_path}")
        if owner_running(self.db_path):
            raise StoreError(f"another process already owns {self.db_path} (writer service at {self.socket})")
        self._con_cm = connect(self.db_path, retry_s=self.start_retry_s)  # waits for direct writers to finish
        self._con_cm.__enter__()
        self.socket.parent.mkdir(parents=True, exist_ok=True)
        self.socket.unlink(missing_ok=True)  # stale: nobody answered on it
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            listener.bind(str(self.socket))  # created 0600: only this user may hand us writes
        finally:
            os.umask(old)
        listener.listen(64)
        listener.settimeout(0.2)
        self._listener = listener
        _OWNED[self.key] = self
        self._thread = threading.Thread(target=self._accept_loop, name="store-writer", daemon=True)
        self._thread.start()
        published(self.db_path)
        flush_snapshot(self.db_path)  # analysts get a snapshot before start returns, not a debounce later
        return self

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stopping.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), name="store-writer-client", daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            _pid, uid, _gid = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                                                  struct.calcsize("3i")))
            if uid != os.getuid():  # the socket is 0600 already; refuse anyone else all the same
                log.warning("refused a writer client of uid %d", uid)
                return
            try:
                header, tables = _recv(conn)
            except (OSError, ConnectionError, ValueError):
                return
            reply_tables: list[pa.Table] = []
            try:
                if header.get("op") == "sync":
                    snap = flush_snapshot(self.db_path) or publish_snapshot(self.db_path)
                    result: Any = str(snap)
                elif header.get("op") == "run":
                    steps = [(_resolve(name), _dec(kwargs, tables)) for name, kwargs in header["steps"]]
                    result = _enc(_run_local(self.db_path, steps, retry_s=0.0), reply_tables)
                    self.requests += 1
                else:
                    raise StoreError(f"unknown writer request {header.get('op')!r}")
                reply = {"ok": True, "result": result}
            except Exception as exc:  # noqa: BLE001 - reported to the client, which raises it
                reply = {"ok": False, "error": type(exc).__name__, "message": str(exc)}
            try:
                _send(conn, reply, reply_tables)
            except OSError:
                log.warning("a writer client left before its answer (its write %s)",
                            "was committed" if reply["ok"] else "failed")

    def stop(self) -> None:
        self._stopping.set()
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        if self._thread is not None:
            self._thread.join(2)
        _OWNED.pop(self.key, None)
        self.socket.unlink(missing_ok=True)
        try:
            flush_snapshot(self.db_path)
        finally:
            if self._con_cm is not None:
                self._con_cm.__exit__(None, None, None)
                self._con_cm = None

    def __enter__(self) -> "WriterService":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
