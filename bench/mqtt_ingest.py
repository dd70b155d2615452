"""Benchmark: MQTT ingest throughput against the mosquitto_sub ceiling on the same broker.

Starts a private Mosquitto from deploy/mosquitto (password file + ACL on). Publishers log in
as the devices themselves (within their ACL, at most --inflight unacknowledged per client so
16-bit message ids never wrap in flight). Two measurements, each run for the C ceiling
(`mosquitto_sub -c -q 1 -C N`: acks each message, writes to /dev/null) and for ours
(`Ingester`: paho, validation, registry check, (device, seq) de-duplication, Arrow append to
DuckDB, acknowledge only after commit):

- live (the issue's definition, the headline): the subscriber is connected, one
  `mosquitto_pub` per device sends its share of the N messages; timed from the first publish
  to the last message received by `mosquitto_sub` / committed to DuckDB by the ingester.
- drain: N messages wait in the subscriber's persistent session (published by paho beforehand);
  timed from the first message received to the last one received / committed. This isolates
  the subscriber, so it is the harsher ratio: `mosquitto_sub` drains a queue at about twice the
  live rate here.

The last line of output is one JSON object: `msgs_per_s`, `ceiling_msgs_per_s`, `ratio` are
the live figures, `drain_*` the backlog ones. Usage:
python bench/mqtt_ingest.py [--messages 200000] [--devices 8] [--mode both|live|drain]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import duckdb

from assets.sensors.broker import INGESTER_USER, start_mosquitto
from assets.sensors.connection import BrokerURL, connect_and_wait, make_client
from assets.sensors.ingest import Ingester
from assets.sensors.registry import Device, register_device
from assets.sensors.replay import Message, publish
from assets.sensors.schema import TOPIC_FILTER, make_payload, topic_for
from assets.store.db import connect


def make_messages(n: int, devices: list[str]) -> list[Message]:
    t0 = datetime(2024, 6, 1)
    out = []
    per = n // len(devices)
    for d_i, device in enumerate(devices):
        for i in range(per + (1 if d_i < n % len(devices) else 0)):
            ts = t0 + timedelta(minutes=15 * i)
            readings = {
                "soil_moisture": (round(20 + (i % 50) / 10, 2), "%"),
                "soil_temperature": (round(15 + (i % 30) / 10, 2), "C"),
                "air_temperature": (round(14 + (i % 80) / 10, 2), "C"),
                "battery": (3.3, "V"),
            }
            out.append(Message(device, i + 1, ts, make_payload(device, i + 1, ts, readings)))
    return out


def create_session(url: BrokerURL, client_id: str) -> None:
    """Register a persistent QoS 1 subscription so the broker queues messages for it."""
    import threading

    subscribed = threading.Event()
    client = make_client(url, client_id, persistent=True)
    client.on_subscribe = lambda *args: subscribed.set()
    connect_and_wait(client, url)
    client.subscribe(TOPIC_FILTER, qos=1)
    if not subscribed.wait(30):
        sys.exit(f"no SUBACK for {client_id}")
    client.disconnect()
    client.loop_stop()


def drain_bare_paho(url: BrokerURL, client_id: str, n: int) -> float:
    """Seconds for a paho client that only counts and acknowledges (the Python-side limit)."""
    import threading

    done = threading.Event()
    mids: list[int] = []
    count = [0]

    def on_message(client, userdata, msg):  # type: ignore[no-untyped-def]
        mids.append(msg.mid)
        count[0] += 1
        if len(mids) >= 5000 or count[0] >= n:
            client.ack_many(mids[:])
            mids.clear()
        if count[0] >= n:
            done.set()

    client = make_client(url, client_id, persistent=True, manual_ack=True)
    client.on_message = on_message
    t = time.perf_counter()
    connect_and_wait(client, url)
    done.wait(600)
    elapsed = time.perf_counter() - t
    client.disconnect()
    client.loop_stop()
    return elapsed


class LivePublisher:
    """One `mosquitto_pub -l -q 1` per device, each logged in as that device (within its ACL).

    A C publisher, so the live ceiling is set by the broker and the subscriber, not by a Python
    publisher sharing the two cores (a paho publisher tops out near 7,000 msg/s here). Each
    client keeps at most `inflight` (-M) messages unacknowledged, so its 16-bit message ids never
    wrap onto one still in flight."""

    def __init__(self, work: Path, messages: list[Message], port: int, users: dict[str, str], inflight: int) -> None:
        self.port, self.users, self.inflight = port, users, inflight
        self.files: dict[str, Path] = {}
        by_device: dict[str, list[bytes]] = {}
        for m in messages:
            if b"\n" in m.payload:
                sys.exit("payloads must be single-line JSON for mosquitto_pub -l")
            by_device.setdefault(m.device_id, []).append(m.payload)
        work.mkdir(parents=True, exist_ok=True)
        for device, payloads in by_device.items():
            path = work / f"{device}.jsonl"
            path.write_bytes(b"\n".join(payloads) + b"\n")
            self.files[device] = path
        self.procs: list[subprocess.Popen] = []
        self.t0 = 0.0

    def start(self) -> None:
        self.t0 = time.monotonic()
        for device, path in self.files.items():
            with open(path, "rb") as stdin:
                self.procs.append(subprocess.Popen(
                    ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(self.port), "-u", device,
                     "-P", self.users[device], "-i", f"bench-pub-{device}", "-q", "1",
                     "-M", str(self.inflight), "-t", topic_for(device), "-l"],
                    stdin=stdin, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                ))

    def result(self) -> tuple[float, float]:
        """(monotonic clock at the first publish, when the last publisher finished)."""
        last = self.t0
        for proc in self.procs:
            _, err = proc.communicate(timeout=600)
            last = max(last, time.monotonic())
            if proc.returncode != 0:
                sys.exit(f"mosquitto_pub failed: {err.decode()[:300]}")
        self.procs.clear()
        return self.t0, last


def mosquitto_sub(broker_port: int, password: str, client_id: str, n: int) -> subprocess.Popen:
    return subprocess.Popen(
        ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(broker_port), "-u", INGESTER_USER,
         "-P", password, "-i", client_id, "-c", "-q", "1", "-t", TOPIC_FILTER, "-C", str(n)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )


def wait_sub(sub: subprocess.Popen) -> float:
    """Wait for `mosquitto_sub -C N` to exit; the monotonic clock when it did."""
    _, err = sub.communicate(timeout=600)
    done = time.monotonic()
    if sub.returncode != 0:
        sys.exit(f"mosquitto_sub failed: {err.decode()[:300]}")
    return done


def headline(n: int, ours_s: float, ceiling_s: float, db_path: Path) -> dict[str, object]:
    """Throughput of both, their ratio, and loss / duplicates counted in the stored rows."""
    with duckdb.connect(str(db_path), read_only=True) as con:
        rows, distinct = con.execute(
            "SELECT count(*), count(DISTINCT (device_id, seq)) FROM sensor_readings"
        ).fetchall()[0]
    return {
        "msgs_per_s": round(n / ours_s, 1),
        "ceiling_msgs_per_s": round(n / ceiling_s, 1),
        "ratio": round(ceiling_s / ours_s, 3),
        "lost": n - distinct,
        "duplicated": rows - distinct,
    }


def run_live(args: argparse.Namespace, broker, devices: list[str], users: dict[str, str],  # type: ignore[no-untyped-def]
             db_path: Path) -> dict[str, object]:
    """Publish-to-commit throughput with the subscriber connected while the publisher runs."""
    ingester_url = broker.url(INGESTER_USER)
    url = BrokerURL.parse(ingester_url)
    create_session(url, "bench-live-ceiling")

    pub = LivePublisher(db_path.parent / "live-pub", make_messages(args.messages, devices), broker.port, users,
                        args.inflight)
    # Ceiling: mosquitto_sub connected (and its session subscribed) before the first publish.
    sub = mosquitto_sub(broker.port, users[INGESTER_USER], "bench-live-ceiling", args.messages)
    time.sleep(1.0)  # let it connect; its session was subscribed already, so nothing is missed
    pub.start()
    done = wait_sub(sub)
    t_ceiling, published = pub.result()
    ceiling_s = done - t_ceiling

    # Ours: the ingester subscribed (start() waits for SUBACK) before the first publish.
    ingester = Ingester(db_path, ingester_url, client_id="bench-live-ingester", batch_size=args.batch_size,
                        hold_db=args.hold_db, writer_process=args.writer_process)
    ingester.start()
    pub.start()
    ok = ingester.wait_until(received=args.messages, idle_s=0.0, timeout_s=600)
    done = time.monotonic()
    t0, ours_published = pub.result()
    stats = ingester.stop()
    if not ok:
        print(f"warning: only {stats.received} of {args.messages} messages arrived", file=sys.stderr)
    ours_s = done - t0
    return {
        **headline(args.messages, ours_s, ceiling_s, db_path),
        "live_publish_msgs_per_s": round(args.messages / (ours_published - t0), 1),
        "live_ceiling_publish_msgs_per_s": round(args.messages / (published - t_ceiling), 1),
        "live_ours_s": round(ours_s, 3),
        "live_ceiling_s": round(ceiling_s, 3),
        "live_writer_busy_s": round(stats.commit_s, 3),
        "live_batches": stats.batches,
    }


def run_drain(args: argparse.Namespace, broker, devices: list[str], users: dict[str, str],  # type: ignore[no-untyped-def]
              db_path: Path) -> dict[str, object]:
    """Backlog throughput: each session drains its own queued copy of the N messages."""
    ingester_url = broker.url(INGESTER_USER)
    url = BrokerURL.parse(ingester_url)
    create_session(url, "bench-ceiling")
    create_session(url, "bench-ingester")
    create_session(url, "bench-paho")

    messages = make_messages(args.messages, devices)
    t = time.perf_counter()
    publish(messages, ingester_url, credentials={d: users[d] for d in devices}, max_inflight=args.inflight,
            client_prefix="bench-pub")
    publish_s = time.perf_counter() - t

    # Ceiling: the C client drains its session copy.
    t = time.monotonic()
    done = wait_sub(mosquitto_sub(broker.port, users[INGESTER_USER], "bench-ceiling", args.messages))
    ceiling_s = done - t

    # Reference: bare paho (same buffered client, batched acks), no validation, no DuckDB.
    paho_s = drain_bare_paho(url, "bench-paho", args.messages)

    # Ours: drain the ingester's copy until every message is committed and acknowledged.
    ingester = Ingester(db_path, ingester_url, client_id="bench-ingester", batch_size=args.batch_size,
                        hold_db=args.hold_db, writer_process=args.writer_process)
    t = time.perf_counter()
    ingester.start()
    ok = ingester.wait_until(received=args.messages, idle_s=0.0, timeout_s=600)
    start_s = time.perf_counter() - t
    # From the first message received to the last one committed (the ingester's one-off
    # start-up - spawning its writer process - is reported separately).
    ours_s = time.monotonic() - ingester.stats.first_message_at  # type: ignore[operator]
    stats = ingester.stop()
    if not ok:
        print(f"warning: only {stats.received} of {args.messages} messages arrived", file=sys.stderr)
    return {
        **{f"drain_{k}": v for k, v in headline(args.messages, ours_s, ceiling_s, db_path).items()},
        "drain_redelivered_duplicates": stats.duplicates,
        "drain_quarantined": stats.quarantined,
        "drain_batches": stats.batches,
        "drain_writer_busy_s": round(stats.commit_s, 3),
        "drain_ours_s": round(ours_s, 3),
        "drain_ours_including_startup_s": round(start_s, 3),
        "drain_ceiling_s": round(ceiling_s, 3),
        "paho_bare_msgs_per_s": round(args.messages / paho_s, 1),
        "publish_msgs_per_s": round(args.messages / publish_s, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--devices", type=int, default=8)
    parser.add_argument("--inflight", type=int, default=1000, help="publisher window per device client")
    parser.add_argument("--batch-size", type=int, default=10_000)
    parser.add_argument("--mode", choices=["both", "live", "drain"], default="both")
    parser.add_argument("--hold-db", action="store_true", help="keep DuckDB open between batches")
    parser.add_argument("--writer-process", action="store_true", help="validate and commit in a child process")
    args = parser.parse_args()
    if shutil.which("mosquitto") is None or shutil.which("mosquitto_sub") is None:
        sys.exit("mosquitto and mosquitto_sub are needed (apt-get install mosquitto mosquitto-clients)")

    work = Path(tempfile.mkdtemp(prefix="mqtt-bench-"))
    devices = [f"bench-{i:02d}" for i in range(args.devices)]
    users = {INGESTER_USER: "bench-ingester-pw", **{d: f"secret-{d}" for d in devices}}
    broker = start_mosquitto(work / "broker", users)
    result: dict[str, object] = {"messages": args.messages, "devices": args.devices}
    try:
        # Separate database files: each measurement checks its own loss and duplicates.
        for mode, run in (("live", run_live), ("drain", run_drain)):
            if args.mode not in ("both", mode):
                continue
            db_path = work / f"{mode}.duckdb"
            with connect(db_path) as con:
                for i, d in enumerate(devices):
                    register_device(con, Device(d, f"farmer-{i:03d}", "soil_probe", 9.0 + i / 100, 56.0))
            result.update(run(args, broker, devices, users, db_path))
        if args.mode == "drain":  # the headline keys then carry the drain figures
            for key in ("msgs_per_s", "ceiling_msgs_per_s", "ratio", "lost", "duplicated"):
                result[key] = result[f"drain_{key}"]
        result.update({
            "batch_size": args.batch_size,
            "hold_db": args.hold_db,
            "writer": "process" if args.writer_process else "thread",
            "checks": "QoS 1 persistent session, password + ACL auth, schema validation, registry, "
                      "(device, seq) dedupe, ack after commit",
            "machine": f"{platform.machine()} {os.cpu_count()} cpu, python {platform.python_version()}",
        })
        print(json.dumps(result))
    finally:
        broker.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
