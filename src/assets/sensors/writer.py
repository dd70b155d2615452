"""Batch commits to DuckDB: validate, append readings and rejects, hold the file only briefly.

`BatchWriter` does the work in the calling process; `ProcessWriter` runs the same `BatchWriter`
in a child process, so validation and DuckDB work do not compete for the GIL with paho's
network thread; that pays off only where cores are free (on this two-core machine the thread
is faster, see bench/mqtt_ingest.py). Either way a batch is reported committed only after its
transaction is.
"""

from __future__ import annotations

import hashlib
import logging
import multiprocessing as mp
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping, Sequence

import duckdb
import pyarrow as pa

from assets.errors import StoreError, StoreLockedError
from assets.sensors.registry import device_statuses
from assets.sensors.schema import READING_COLUMNS, DeviceStatus, Reading, Reject, validate
from assets.store import sensors as store_sensors
from assets.store import writer as store_writer
from assets.store.db import append, connect, transaction

log = logging.getLogger(__name__)

QUARANTINE_PAYLOAD_BYTES = 65536
MAX_HOLD_S = 3.0  # longest stretch DuckDB stays open while a backlog lasts
YIELD_S = 0.25  # then the file is closed this long so other writers get a turn

_READINGS_SCHEMA = pa.schema(
    [
        ("device_id", pa.string()),
        ("seq", pa.int64()),
        ("ts", pa.timestamp("us")),
        ("received_at", pa.timestamp("us")),
        *[(c, pa.float64()) for c in READING_COLUMNS],
    ]
)


@dataclass(frozen=True)
class BatchResult:
    stored: int
    duplicates: int
    quarantined: int
    reasons: dict[str, int]


def _utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def _reject_row(topic: str, payload: bytes, reject: Reject, now: datetime) -> dict[str, object]:
    digest = hashlib.sha256(topic.encode("utf-8", "replace") + b"\0" + payload).hexdigest()[:32]
    return {
        "quarantine_id": digest,
        "received_at": now,
        "topic": topic,
        "device_id": reject.device_id,
        "reason_code": reject.code,
        "reason": reject.reason,
        "payload_size": len(payload),
        "payload": bytes(payload[:QUARANTINE_PAYLOAD_BYTES]),
    }


def _readings_table(readings: list[Reading], now: datetime) -> pa.Table:
    cols = list(zip(*(r.values for r in readings))) if readings else [()] * len(READING_COLUMNS)
    return pa.Table.from_arrays(
        [
            pa.array([r.device_id for r in readings], pa.string()),
            pa.array([r.seq for r in readings], pa.int64()),
            pa.array([r.ts for r in readings], pa.timestamp("us")),
            pa.array([now] * len(readings), pa.timestamp("us")),
            *[pa.array(list(c), pa.float64()) for c in cols],
        ],
        schema=_READINGS_SCHEMA,
    )


def store_batch(
    con: duckdb.DuckDBPyConnection,
    messages: Sequence[tuple[str, bytes]],
    devices: Mapping[str, DeviceStatus] | None = None,
    now: datetime | None = None,
) -> BatchResult:
    """Validate ``(topic, payload)`` messages and store them in one transaction.

    Accepted readings go to ``sensor_readings`` (a (device_id, seq) already stored, or repeated
    in the batch, with the same time is counted as a duplicate and the stored row is kept; with
    another time it is quarantined as `seq_conflict`, never dropped silently), rejects go to
    ``sensor_quarantine`` with their reason. ``devices`` defaults to the registry in ``con``.
    """
    with transaction(con):
        return _store_messages(con, messages, devices, now or _utcnow())


@store_writer.write_op
def store_messages(con: duckdb.DuckDBPyConnection, *, messages: pa.Table) -> dict[str, object]:
    """`store_batch` as a write op (inside the writer's transaction): ``messages`` has columns topic,
    payload. How the ingester hands a batch to the process owning the database."""
    pairs = list(zip(messages.column("topic").to_pylist(), messages.column("payload").to_pylist()))
    r = _store_messages(con, pairs, None, _utcnow())
    return {"stored": r.stored, "duplicates": r.duplicates, "quarantined": r.quarantined, "reasons": r.reasons}


def _messages_table(messages: Sequence[tuple[str, bytes]]) -> pa.Table:
    return pa.table({"topic": pa.array([m[0] for m in messages], pa.string()),
                     "payload": pa.array([bytes(m[1]) for m in messages], pa.binary())})


def _seq_conflicts(con: duckdb.DuckDBPyConnection, readings: list[Reading], sources: list[tuple[str, bytes]],
                   reject: Any) -> int:
    """Quarantine, as `seq_conflict`, the readings the store kept out as duplicates whose
    (device_id, seq) holds another time: a device whose counter restarted, or two logs numbered
    from 1, would otherwise lose those readings silently. Returns how many there were. Asked only
    when a batch had duplicates, so the ingest path pays nothing otherwise."""
    keys = pa.table({"device_id": pa.array([r.device_id for r in readings], pa.string()),
                     "seq": pa.array([r.seq for r in readings], pa.int64())})
    stored = store_sensors.stored_times(con, keys)
    n = 0
    for r, (topic, payload) in zip(readings, sources):
        first = stored.get((r.device_id, r.seq))
        if first is not None and first != r.ts:
            n += 1
            reject(topic, payload, Reject("seq_conflict", f"{r.device_id} sent seq {r.seq} again with another time "
                                          f"({r.ts:%Y-%m-%d %H:%M:%S}; stored {first:%Y-%m-%d %H:%M:%S}): its counter "
                                          "restarted or two logs share numbers; give every reading its own seq",
                                          r.device_id))
    return n


def _store_messages(con: duckdb.DuckDBPyConnection, messages: Sequence[tuple[str, bytes]],
                    devices: Mapping[str, DeviceStatus] | None, now: datetime) -> BatchResult:
    if devices is None:
        devices = device_statuses(con)
    readings: list[Reading] = []
    sources: list[tuple[str, bytes]] = []
    rejects: list[dict[str, object]] = []
    reasons: dict[str, int] = {}

    def reject(topic: str, payload: bytes, why: Reject) -> None:
        reasons[why.code] = reasons.get(why.code, 0) + 1
        rejects.append(_reject_row(topic, payload, why, now))

    for topic, payload in messages:
        result = validate(topic, payload, devices, now)
        if type(result) is Reading:
            readings.append(result)
            sources.append((topic, payload))
        else:
            reject(topic, payload, result)  # type: ignore[arg-type]
    table = _readings_table(readings, now)
    before = store_sensors.count_readings(con)
    append(con, "sensor_readings", table, on_conflict="ignore")
    stored = int(store_sensors.count_readings(con) - before)
    conflicts = _seq_conflicts(con, readings, sources, reject) if stored < table.num_rows else 0
    if rejects:
        append(con, "sensor_quarantine", rejects, on_conflict="ignore")
    return BatchResult(stored, table.num_rows - stored - conflicts, len(rejects), reasons)


class BatchWriter:
    """Commits batches, keeping DuckDB open only while a backlog is worked off.

    With ``hold`` the file stays open until `close`. Otherwise it is closed when no more work is
    waiting, and at least every `MAX_HOLD_S` for `YIELD_S`, so the nightly flow or the CLI (which
    retry a locked file for a few seconds) get their turn. A file locked by another process is
    retried until it frees up: the batch stays unacknowledged meanwhile.
    """

    def __init__(self, db_path: str | Path, *, hold: bool = False, lock_retry_s: float = 5.0) -> None:
        self.db_path = Path(db_path)
        self.hold = hold
        self.lock_retry_s = lock_retry_s
        self.lock_retries = 0
        self.handed_over = 0  # batches stored by the process owning the file
        self._con: duckdb.DuckDBPyConnection | None = None
        self._cm: object = None
        self._opened = 0.0

    def _open(self) -> duckdb.DuckDBPyConnection:
        if self._con is None:
            cm = connect(self.db_path, retry_s=self.lock_retry_s)
            self._con = cm.__enter__()
            self._cm = cm
            self._opened = time.monotonic()
        return self._con

    def close(self) -> None:
        if self._con is not None:
            cm, self._con = self._cm, None
            cm.__exit__(None, None, None)  # type: ignore[attr-defined]
            store_writer.published(self.db_path)  # the file is free again: the snapshot may be copied

    def commit(self, messages: Sequence[tuple[str, bytes]]) -> BatchResult:
        if self._con is None and store_writer.owner_elsewhere(self.db_path):
            # Another process owns the file (`assets serve`): it stores the batch, we never lock.
            self.handed_over += 1
            return BatchResult(**store_writer.call(self.db_path, store_messages, messages=_messages_table(messages)))
        while True:
            try:
                con = self._open()
            except StoreLockedError as exc:
                self.lock_retries += 1
                log.warning("%s; keeping %d messages unacknowledged and retrying", exc, len(messages))
                time.sleep(0.2)
                continue
            try:
                result = store_batch(con, messages)
                if self.hold:
                    store_writer.published(self.db_path)
                return result
            except BaseException:
                self.close()
                raise

    def release(self, more_waiting: bool) -> None:
        """Call after each commit: closes the file when idle or when held too long."""
        if self.hold or self._con is None:
            return
        if time.monotonic() - self._opened >= MAX_HOLD_S:
            self.close()
            time.sleep(YIELD_S)
        elif not more_waiting:
            self.close()


def _worker(conn, db_path: str, hold: bool, lock_retry_s: float) -> None:
    """Child process loop: (messages, more_waiting) in, ("ok"|"error", result, lock_retries) out."""
    writer = BatchWriter(db_path, hold=hold, lock_retry_s=lock_retry_s)
    conn.send(("ready", None, 0))  # imports done: the ingester may start receiving
    try:
        while True:
            if not conn.poll(0.5):
                writer.release(False)  # idle: let go of the file
                continue
            try:
                item = conn.recv()
            except (EOFError, OSError):  # the ingester is gone (even SIGKILLed): stop
                return
            if item is None:
                return
            messages, more_waiting = item
            try:
                result = writer.commit(messages)
            except BaseException as exc:  # noqa: BLE001 - reported to the ingester, which stops
                conn.send(("error", exc, writer.lock_retries))
                return
            conn.send(("ok", result, writer.lock_retries))
            writer.release(more_waiting)
    finally:
        writer.close()


class ProcessWriter:
    """`BatchWriter` in a child process (spawned, so it shares no threads or locks with paho)."""

    def __init__(self, db_path: str | Path, *, hold: bool = False, lock_retry_s: float = 5.0) -> None:
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(
            target=_worker, args=(child, str(db_path), hold, lock_retry_s), name="ingest-writer", daemon=True
        )
        self._proc.start()
        child.close()
        self.lock_retries = 0
        if not self._conn.poll(120) or self._conn.recv()[0] != "ready":
            self.close()
            raise StoreError("the ingest writer process did not start; see the log above")

    def commit(self, messages: Sequence[tuple[str, bytes]], more_waiting: bool) -> BatchResult:
        self._conn.send((list(messages), more_waiting))
        try:
            status, payload, self.lock_retries = self._conn.recv()
        except EOFError as exc:
            raise StoreError(
                "the ingest writer process died; its batch was not committed or acknowledged and the "
                "broker will redeliver it: restart the ingester"
            ) from exc
        if status == "error":
            raise payload
        return payload

    def close(self) -> None:
        try:
            self._conn.send(None)
        except (BrokenPipeError, OSError):
            pass
        self._proc.join(10)
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join(5)
        self._conn.close()
