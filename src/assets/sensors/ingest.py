"""MQTT -> DuckDB ingester: QoS 1, persistent session, batch commits, acknowledge after commit.

paho's network thread only puts messages on a queue (``on_message`` never blocks; `FastClient`
hands over every PUBLISH of a socket read as one list); a writer thread takes batches and hands
them to `writer` (in that thread, or with ``writer_process`` in a child process off the GIL -
slower on two cores, see bench/mqtt_ingest.py), which validates them (`schema.validate`) and
appends accepted readings and rejects (quarantine) in one DuckDB transaction; only then are
those messages acknowledged to the broker (paho ``manual_ack``, one write for the whole batch).
A crash before the commit leaves the messages unacknowledged, so the broker redelivers them to
the same persistent session; a crash after the commit but before the acknowledgement makes the
broker redeliver messages already stored, which the (device_id, seq) key absorbs.
Acknowledgements are only sent on the connection that received the message: after a reconnect
the broker resends anything unacknowledged anyway.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

import duckdb
import paho.mqtt.client as mqtt

from assets.sensors.connection import BrokerError, BrokerURL, FastClient, RawPublish, connect_and_wait, make_client
from assets.sensors.schema import TOPIC_FILTER
from assets.sensors.writer import BatchResult, BatchWriter, ProcessWriter, _utcnow, store_batch
from assets.store import sensors as store_sensors
from assets.store import writer
from assets.store.db import append, connect

__all__ = ["BatchResult", "IngestStats", "Ingester", "last_drain", "record_drain", "store_batch"]

log = logging.getLogger(__name__)

DEFAULT_CLIENT_ID = "assets-ingester"

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
    first_message_at: float | None = None  # time.monotonic() of the first message received
    disconnects: int = 0  # times the broker went away while running
    timed_out: bool = False  # a drain stopped at its time limit, not because the backlog was taken
    quarantine_reasons: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


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
        batch_size: int = 10_000,
        max_latency_s: float = 0.25,
        hold_db: bool = False,
        lock_retry_s: float = 5.0,
        writer_process: bool = False,
    ) -> None:
        self.db_path = Path(db_path)
        self.url = BrokerURL.parse(broker_url)
        self.client_id = client_id
        self.topic = topic
        self.batch_size = batch_size
        self.max_latency_s = max_latency_s
        self.hold_db = hold_db
        self.lock_retry_s = lock_retry_s
        self.writer_process = writer_process
        self._db: BatchWriter | ProcessWriter | None = None
        self.stats = IngestStats()
        # Lists of (topic, payload, mid, qos, connection generation), one per socket read.
        self._queue: queue.SimpleQueue[list[tuple[str, bytes, int, int, int]]] = queue.SimpleQueue()
        self._generation = 0
        self._gen_lock = threading.Lock()
        self._stopping = threading.Event()
        self._subscribed = threading.Event()
        self._writer: threading.Thread | None = None
        self._client: mqtt.Client | None = None
        self._error: BaseException | None = None
        self._last_message = time.monotonic()
        self._pending = 0  # taken from the queue, not yet committed
        self._started = 0.0
        self._lost_at: float | None = None  # time.monotonic() the broker went away, None while connected

    # --- paho callbacks (network thread): never block here --------------------------------
    def _on_connect(self, client, userdata, flags, reason_code, properties):
        if reason_code.is_failure:
            log.warning("broker refused connection: %s", reason_code)
            return
        with self._gen_lock:
            self._generation += 1
        self.stats.connections += 1
        self._last_message = time.monotonic()  # quiet time counts from the (re)connection: the backlog comes next
        self._lost_at = None
        client.subscribe(self.topic, qos=1)

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties):
        if any(getattr(rc, "is_failure", False) for rc in reason_codes):
            log.error("the broker refused the subscription to %s: %s", self.topic, reason_codes)
            return
        self._subscribed.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties):
        with self._gen_lock:
            self._generation += 1  # acks for messages of the old connection are dropped
        if not self._stopping.is_set():
            self._lost_at = time.monotonic()
            self.stats.disconnects += 1
            log.warning("disconnected from broker (%s); reconnecting", reason_code)

    def _on_message(self, client, userdata, msg):
        # paho's path: the packets `FastClient` leaves to paho (e.g. split across two reads).
        self._received([(msg.topic, msg.payload, msg.mid, msg.qos, self._generation)])

    def _on_message_batch(self, batch: list[RawPublish]) -> None:
        generation = self._generation
        self._received(
            [(topic.decode("utf-8", "replace"), payload, mid, qos, generation) for topic, payload, mid, qos in batch]
        )

    def _received(self, items: list[tuple[str, bytes, int, int, int]]) -> None:
        self._queue.put(items)
        stats = self.stats
        stats.received += len(items)
        self._last_message = time.monotonic()
        if stats.first_message_at is None:
            stats.first_message_at = self._last_message

    # --- writer thread ------------------------------------------------------------------
    def _collect(self) -> list[tuple[str, bytes, int, int, int]]:
        """About `batch_size` messages (whole socket reads, so it may run a few hundred over),
        or fewer once `max_latency_s` has passed since the first."""
        get = self._queue.get
        try:
            batch = list(get(timeout=0.05))
        except queue.Empty:
            return []
        deadline = time.monotonic() + self.max_latency_s
        get_nowait = self._queue.get_nowait
        while len(batch) < self.batch_size:
            try:
                batch += get_nowait()
            except queue.Empty:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._stopping.is_set():
                    break
                try:
                    batch += get(timeout=min(remaining, 0.02))
                except queue.Empty:
                    pass
        return batch

    def _commit(self, batch: list[tuple[str, bytes, int, int, int]]) -> None:
        messages = [(item[0], item[1]) for item in batch]
        t0 = time.perf_counter()
        writer = self._db
        if isinstance(writer, ProcessWriter):
            result = writer.commit(messages, more_waiting=not self._queue.empty())
        else:
            result = writer.commit(messages)  # type: ignore[union-attr]
            writer.release(more_waiting=not self._queue.empty())  # type: ignore[union-attr]
        self.stats.lock_retries = writer.lock_retries  # type: ignore[union-attr]
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
                elif self._stopping.is_set():
                    return
        except BaseException as exc:  # surfaced by stop()/wait(); messages stay unacknowledged
            log.exception("ingester writer failed; unacknowledged messages will be redelivered")
            self._error = exc
        finally:
            if self._db is not None:
                self._db.close()

    # --- lifecycle ----------------------------------------------------------------------
    def start(self) -> Ingester:
        # Open (and migrate) the store once before subscribing, so a bad path fails fast.
        if not writer.owner_running(self.db_path):  # an owner has migrated it already
            with connect(self.db_path):
                pass
        self._started = time.monotonic()
        writer_cls = ProcessWriter if self.writer_process else BatchWriter
        self._db = writer_cls(self.db_path, hold=self.hold_db, lock_retry_s=self.lock_retry_s)
        client = make_client(self.url, self.client_id, persistent=True, manual_ack=True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        if isinstance(client, FastClient):
            client.on_message_batch = self._on_message_batch
        client.on_subscribe = self._on_subscribe
        self._client = client
        self._writer = threading.Thread(target=self._write_loop, name="ingest-writer", daemon=True)
        self._writer.start()
        try:
            connect_and_wait(client, self.url)
            # Messages published after start() returns must reach this session: wait for SUBACK.
            if not self._subscribed.wait(10):
                raise BrokerError(
                    f"the broker at {self.url.redacted()} did not confirm the subscription to {self.topic}; "
                    "check the ACL allows this user to read it"
                )
        except BaseException:
            self._client = None
            client.disconnect()
            client.loop_stop()
            self._stopping.set()
            self._writer.join()
            raise
        self._last_message = time.monotonic()  # idle time counts from the connection
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

    def wait_until(self, *, received: int | None = None, idle_s: float = 1.0, timeout_s: float = 300.0,
                   reconnect_s: float | None = None) -> bool:
        """Block until ``received`` messages arrived (if given) and all is committed, then
        ``idle_s`` passes with nothing new while connected. Returns False on timeout.

        Time without the broker is not quiet time: the rest of the backlog is still on the broker.
        With ``reconnect_s``, a broker gone that long is a `BrokerError` (the caller's night must not
        go on as if the readings it did not get were never sent)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.check()
            lost = self._lost_at
            if lost is not None and reconnect_s is not None and time.monotonic() - lost >= reconnect_s:
                raise BrokerError(f"lost the broker {self.url.redacted()} during the drain and could not reconnect "
                                  f"within {reconnect_s:.0f} s ({self.stats.received:,} message(s) taken, the rest are "
                                  "still on the broker); check the broker and run the night again")
            enough = received is None or self.stats.received >= received
            if enough and lost is None and self.idle and self.seconds_since_last_message() >= idle_s:
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

    def drain(self, *, idle_s: float = 2.0, timeout_s: float = 600.0, reconnect_s: float = 30.0) -> IngestStats:
        """Nightly mode: take everything the broker kept for this session, then stop.

        Stops once nothing has arrived for ``idle_s`` seconds while connected (or after
        ``timeout_s``, said in ``stats.timed_out``). A broker lost for ``reconnect_s`` is a
        `BrokerError`; what was taken is stored and acknowledged, the rest waits on the broker."""
        started_at = _utcnow()
        self.start()
        try:
            self.stats.timed_out = not self.wait_until(idle_s=idle_s, timeout_s=timeout_s, reconnect_s=reconnect_s)
        finally:
            stats = self.stop()
        if stats.timed_out:
            log.warning("the sensor drain stopped at its %.0f s limit with messages still arriving (%s received)",
                        timeout_s, f"{stats.received:,}")
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
    writer.call(db_path, append, table="sensor_drains", rows=[row], on_conflict="ignore")
    return drain_id


def last_drain(con: duckdb.DuckDBPyConnection) -> dict[str, object] | None:
    """The most recent drain's counts (None before the first): `store.sensors.last_drain`."""
    return store_sensors.last_drain(con)

