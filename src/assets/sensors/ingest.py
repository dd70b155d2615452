"""MQTT -> DuckDB ingester: QoS 1, persistent session, batch commits, acknowledge after commit.

paho's network thread only puts each message on a queue (``on_message`` never blocks); a writer
thread takes batches, validates them (`schema.validate`), appends accepted readings and rejects
(quarantine) in one DuckDB transaction, and only then acknowledges those messages to the broker
(paho ``manual_ack``). A crash before the commit leaves the messages unacknowledged, so the
broker redelivers them to the same persistent session; a crash after the commit but before the
acknowledgement makes the broker redeliver messages already stored, which the (device_id, seq)
key absorbs. Acknowledgements are only sent on the connection that received the message: after
a reconnect the broker resends anything unacknowledged anyway.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Mapping, Sequence

import duckdb
import paho.mqtt.client as mqtt
import pyarrow as pa

from assets.errors import StoreLockedError
from assets.sensors.connection import BrokerURL, FastClient, connect_and_wait, make_client
from assets.sensors.registry import device_statuses
from assets.sensors.schema import READING_COLUMNS, TOPIC_FILTER, DeviceStatus, Reading, Reject, validate
from assets.store.db import append, connect, transaction

log = logging.getLogger(__name__)

DEFAULT_CLIENT_ID = "assets-ingester"
QUARANTINE_PAYLOAD_BYTES = 65536
MAX_HOLD_S = 3.0  # longest stretch the ingester keeps DuckDB open while a backlog lasts
YIELD_S = 0.25  # then it closes the file this long so other writers get a turn

_READINGS_SCHEMA = pa.schema(
    [
        ("device_id", pa.string()),
        ("seq", pa.int64()),
        ("ts", pa.timestamp("us")),
        ("received_at", pa.timestamp("us")),
        *[(c, pa.float64()) for c in READING_COLUMNS],
    ]
)


@dataclass
class IngestStats:
    """Counts since the ingester started (messages, not rows)."""

    received: int = 0
    stored: int = 0
    duplicates: int = 0
    quarantined: int = 0
    acked: int = 0
    batches: int = 0
    lock_retries: int = 0
    connections: int = 0
    elapsed_s: float = 0.0
    commit_s: float = 0.0  # writer time spent validating and committing
    quarantine_reasons: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


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
    in the batch, is counted as a duplicate and the stored row is kept), rejects go to
    ``sensor_quarantine`` with their reason. ``devices`` defaults to the registry in ``con``.
    """
    now = now or _utcnow()
    if devices is None:
        devices = device_statuses(con)
    readings: list[Reading] = []
    rejects: list[dict[str, object]] = []
    reasons: dict[str, int] = {}
    for topic, payload in messages:
        result = validate(topic, payload, devices, now)
        if type(result) is Reading:
            readings.append(result)
        else:
            reasons[result.code] = reasons.get(result.code, 0) + 1  # type: ignore[union-attr]
            rejects.append(_reject_row(topic, payload, result, now))  # type: ignore[arg-type]
    table = _readings_table(readings, now)
    with transaction(con):
        before = con.execute("SELECT count(*) FROM sensor_readings").fetchall()[0][0]
        append(con, "sensor_readings", table, on_conflict="ignore")
        after = con.execute("SELECT count(*) FROM sensor_readings").fetchall()[0][0]
        if rejects:
            append(con, "sensor_quarantine", rejects, on_conflict="ignore")
    stored = int(after - before)
    return BatchResult(stored, table.num_rows - stored, len(rejects), reasons)


class Ingester:
    """A long-lived subscriber; use `run` (service), `drain` (nightly) or start/stop yourself.

    By default the DuckDB file is open only while there is work: it stays open across batches
    while a backlog lasts (at most `MAX_HOLD_S`, then it is closed for `YIELD_S` so the nightly
    flow or the CLI get a turn) and is closed as soon as the queue is empty. ``hold_db`` keeps it
    open for the ingester's lifetime.
    """

    def __init__(
        self,
        db_path: str | Path,
        broker_url: str,
        *,
        client_id: str = DEFAULT_CLIENT_ID,
        topic: str = TOPIC_FILTER,
        batch_size: int = 5000,
        max_latency_s: float = 0.25,
        hold_db: bool = False,
        lock_retry_s: float = 5.0,
    ) -> None:
        self.db_path = Path(db_path)
        self.url = BrokerURL.parse(broker_url)
        self.client_id = client_id
        self.topic = topic
        self.batch_size = batch_size
        self.max_latency_s = max_latency_s
        self.hold_db = hold_db
        self.lock_retry_s = lock_retry_s
        self.stats = IngestStats()
        self._queue: queue.SimpleQueue[tuple[str, bytes, int, int, int]] = queue.SimpleQueue()
        self._generation = 0
        self._gen_lock = threading.Lock()
        self._stopping = threading.Event()
        self._writer: threading.Thread | None = None
        self._client: mqtt.Client | None = None
        self._con: duckdb.DuckDBPyConnection | None = None
        self._con_cm: object = None
        self._con_opened = 0.0
        self._error: BaseException | None = None
        self._last_message = time.monotonic()
        self._pending = 0  # taken from the queue, not yet committed
        self._started = 0.0

    # --- paho callbacks (network thread): never block here --------------------------------
    def _on_connect(self, client, userdata, flags, reason_code, properties):  # type: ignore[no-untyped-def]
        if reason_code.is_failure:
            log.warning("broker refused connection: %s", reason_code)
            return
        with self._gen_lock:
            self._generation += 1
        self.stats.connections += 1
        client.subscribe(self.topic, qos=1)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties):  # type: ignore[no-untyped-def]
        with self._gen_lock:
            self._generation += 1  # acks for messages of the old connection are dropped
        if not self._stopping.is_set():
            log.warning("disconnected from broker (%s); reconnecting", reason_code)

    def _on_message(self, client, userdata, msg):  # type: ignore[no-untyped-def]
        self._queue.put((msg.topic, msg.payload, msg.mid, msg.qos, self._generation))
        self.stats.received += 1
        self._last_message = time.monotonic()

    # --- writer thread ------------------------------------------------------------------
    def _collect(self) -> list[tuple[str, bytes, int, int, int]]:
        get = self._queue.get
        try:
            first = get(timeout=0.05)
        except queue.Empty:
            return []
        batch = [first]
        deadline = time.monotonic() + self.max_latency_s
        get_nowait = self._queue.get_nowait
        while len(batch) < self.batch_size:
            try:
                batch.append(get_nowait())
            except queue.Empty:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._stopping.is_set():
                    break
                try:
                    batch.append(get(timeout=min(remaining, 0.02)))
                except queue.Empty:
                    pass
        return batch

    def _open_db(self) -> duckdb.DuckDBPyConnection:
        if self._con is None:
            cm = connect(self.db_path, retry_s=self.lock_retry_s)
            self._con = cm.__enter__()
            self._con_cm = cm
            self._con_opened = time.monotonic()
        return self._con

    def _close_db(self) -> None:
        if self._con is not None:
            cm, self._con = self._con_cm, None
            cm.__exit__(None, None, None)  # type: ignore[attr-defined]

    def _release_db_if_due(self) -> None:
        """Keep the file open only while a backlog is being worked off, and never for long."""
        if self.hold_db or self._con is None:
            return
        held = time.monotonic() - self._con_opened
        if held >= MAX_HOLD_S:
            self._close_db()
            time.sleep(YIELD_S)  # let a waiting writer (nightly flow, CLI) take its turn
        elif self._queue.empty():
            self._close_db()

    def _commit(self, batch: list[tuple[str, bytes, int, int, int]]) -> None:
        messages = [(item[0], item[1]) for item in batch]
        t0 = time.perf_counter()
        while True:
            try:
                con = self._open_db()
                try:
                    result = store_batch(con, messages)
                except BaseException:
                    self._close_db()
                    raise
                break
            except StoreLockedError as exc:
                self.stats.lock_retries += 1
                log.warning("%s; keeping %d messages unacknowledged and retrying", exc, len(batch))
                time.sleep(0.2)
        # Acknowledge only now, and only on the connection the messages came from.
        client = self._client
        with self._gen_lock:
            generation = self._generation
            mids = [mid for _, _, mid, qos, gen in batch if qos == 1 and gen == generation]
            if client is not None and mids:
                if isinstance(client, FastClient):
                    client.ack_many(mids)
                else:
                    for mid in mids:
                        client.ack(mid, 1)
        acked = len(mids) if client is not None else 0
        stats = self.stats
        stats.commit_s += time.perf_counter() - t0
        stats.acked += acked
        stats.stored += result.stored
        stats.duplicates += result.duplicates
        stats.quarantined += result.quarantined
        stats.batches += 1
        for code, n in result.reasons.items():
            stats.quarantine_reasons[code] = stats.quarantine_reasons.get(code, 0) + n
        log.info(
            "batch committed: %d messages, %d stored, %d duplicates, %d quarantined, %d acked",
            len(batch), result.stored, result.duplicates, result.quarantined, acked,
        )

    def _write_loop(self) -> None:
        try:
            while True:
                batch = self._collect()
                if batch:
                    self._pending = len(batch)
                    self._commit(batch)
                    self._pending = 0
                    self._release_db_if_due()
                elif self._stopping.is_set():
                    return
        except BaseException as exc:  # surfaced by stop()/wait(); messages stay unacknowledged
            log.exception("ingester writer failed; unacknowledged messages will be redelivered")
            self._error = exc
        finally:
            self._close_db()

    # --- lifecycle ----------------------------------------------------------------------
    def start(self) -> "Ingester":
        # Open (and migrate) the store once before subscribing, so a bad path fails fast.
        with connect(self.db_path):
            pass
        self._started = time.monotonic()
        client = make_client(self.url, self.client_id, persistent=True, manual_ack=True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        self._client = client
        self._writer = threading.Thread(target=self._write_loop, name="ingest-writer", daemon=True)
        self._writer.start()
        connect_and_wait(client, self.url)
        return self

    @property
    def idle(self) -> bool:
        """Nothing queued or being written."""
        return self._queue.empty() and self._pending == 0

    def seconds_since_last_message(self) -> float:
        return time.monotonic() - self._last_message

    def check(self) -> None:
        """Re-raise a writer failure in the caller's thread."""
        if self._error is not None:
            raise self._error

    def stop(self) -> IngestStats:
        """Commit and acknowledge what is queued, then disconnect."""
        self._stopping.set()
        if self._writer is not None:
            self._writer.join()
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()
            self._client = None
        self.stats.elapsed_s = time.monotonic() - self._started
        self.check()
        return self.stats

    def wait_until(self, *, received: int | None = None, idle_s: float = 1.0, timeout_s: float = 300.0) -> bool:
        """Block until ``received`` messages arrived (if given) and all is committed, then
        ``idle_s`` passes with nothing new. Returns False on timeout."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.check()
            enough = received is None or self.stats.received >= received
            if enough and self.idle and self.seconds_since_last_message() >= idle_s:
                return True
            time.sleep(0.02)
        return False

    def run(self, stop: threading.Event) -> IngestStats:
        """Service mode: ingest until ``stop`` is set (the CLI sets it on SIGINT/SIGTERM)."""
        self.start()
        try:
            while not stop.wait(1.0):
                self.check()
        finally:
            self.stop()
        return self.stats

    def drain(self, *, idle_s: float = 2.0, timeout_s: float = 600.0) -> IngestStats:
        """Nightly mode: take everything the broker kept for this session, then stop.

        Stops once nothing has arrived for ``idle_s`` seconds (or after ``timeout_s``)."""
        started_at = _utcnow()
        self.start()
        try:
            self.wait_until(idle_s=idle_s, timeout_s=timeout_s)
        finally:
            stats = self.stop()
        record_drain(self.db_path, self.url, self.client_id, started_at, stats)
        return stats


def record_drain(db_path: str | Path, url: BrokerURL, client_id: str, started_at: datetime, stats: IngestStats) -> str:
    finished = _utcnow()
    drain_id = hashlib.sha256(f"{client_id}|{started_at.isoformat()}|{url.redacted()}".encode()).hexdigest()[:16]
    row = {
        "drain_id": drain_id,
        "broker": url.redacted(),
        "client_id": client_id,
        "started_at": started_at,
        "finished_at": finished,
        "received": stats.received,
        "stored": stats.stored,
        "duplicates": stats.duplicates,
        "quarantined": stats.quarantined,
    }
    with connect(db_path) as con, transaction(con):
        append(con, "sensor_drains", [row], on_conflict="ignore")
    return drain_id


def last_drain(con: duckdb.DuckDBPyConnection) -> dict[str, object] | None:
    rows = con.execute(
        "SELECT drain_id, broker, client_id, started_at, finished_at, received, stored, duplicates, quarantined "
        "FROM sensor_drains ORDER BY finished_at DESC LIMIT 1"
    ).fetchall()
    if not rows:
        return None
    row = rows[0]
    keys = ("drain_id", "broker", "client_id", "started_at", "finished_at", "received", "stored", "duplicates", "quarantined")
    return dict(zip(keys, row))

