"""Benchmark: MQTT ingest throughput against the mosquitto_sub ceiling on the same broker.

Starts a private Mosquitto from deploy/mosquitto (password file + ACL on), creates two persistent
QoS 1 sessions (one for `mosquitto_sub`, one for our ingester), publishes N messages from
several device clients (each as itself, within its ACL, at most --inflight unacknowledged so
16-bit message ids never wrap in flight), then lets each session drain its own copy:

- ceiling: `mosquitto_sub -c -q 1 -C N` (C client, acks each message, writes to /dev/null)
- ours: `Ingester` (paho, validation, registry check, (device, seq) de-duplication, Arrow
  append to DuckDB, acknowledge after commit), timed until the last message is committed.

Both drain the same broker queue, so the ratio isolates the subscriber. The last line of output
is one JSON object. Usage: python bench/mqtt_ingest.py [--messages 200000] [--devices 8]
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
from assets.sensors.schema import TOPIC_FILTER, make_payload
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--devices", type=int, default=8)
    parser.add_argument("--inflight", type=int, default=1000, help="publisher window per device client")
    parser.add_argument("--batch-size", type=int, default=10_000)
    parser.add_argument("--hold-db", action="store_true", help="keep DuckDB open between batches")
    parser.add_argument("--writer-process", action="store_true", help="validate and commit in a child process")
    args = parser.parse_args()
    if shutil.which("mosquitto") is None or shutil.which("mosquitto_sub") is None:
        sys.exit("mosquitto and mosquitto_sub are needed (apt-get install mosquitto mosquitto-clients)")

    work = Path(tempfile.mkdtemp(prefix="mqtt-bench-"))
    devices = [f"bench-{i:02d}" for i in range(args.devices)]
    users = {INGESTER_USER: "bench-ingester-pw", **{d: f"secret-{d}" for d in devices}}
    broker = start_mosquitto(work / "broker", users)
    db_path = work / "bench.duckdb"
    try:
        with connect(db_path) as con:
            for i, d in enumerate(devices):
                register_device(con, Device(d, f"farmer-{i:03d}", "soil_probe", 9.0 + i / 100, 56.0))
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
        t = time.perf_counter()
        sub = subprocess.run(
            ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(broker.port), "-u", INGESTER_USER,
             "-P", users[INGESTER_USER], "-i", "bench-ceiling", "-c", "-q", "1", "-t", TOPIC_FILTER,
             "-C", str(args.messages)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=600,
        )
        ceiling_s = time.perf_counter() - t
        if sub.returncode != 0:
            sys.exit(f"mosquitto_sub failed: {sub.stderr.decode()[:300]}")

        # Reference: bare paho (same buffered client, batched acks), no validation, no DuckDB.
        paho_s = drain_bare_paho(url, "bench-paho", args.messages)

        # Ours: drain the ingester's copy until every message is committed and acknowledged.
        ingester = Ingester(db_path, ingester_url, client_id="bench-ingester", batch_size=args.batch_size,
                            hold_db=args.hold_db, writer_process=args.writer_process)
        t = time.perf_counter()
        ingester.start()
        done = ingester.wait_until(received=args.messages, idle_s=0.0, timeout_s=600)
        start_s = time.perf_counter() - t
        # Throughput from the first message received to the last one committed (the ingester's
        # one-off start-up - spawning its writer process - is reported separately).
        ours_s = time.monotonic() - ingester.stats.first_message_at  # type: ignore[operator]
        stats = ingester.stop()
        if not done:
            print(f"warning: only {stats.received} of {args.messages} messages arrived", file=sys.stderr)

        with duckdb.connect(str(db_path), read_only=True) as con:
            rows, distinct = con.execute(
                "SELECT count(*), count(DISTINCT (device_id, seq)) FROM sensor_readings"
            ).fetchall()[0]
        result = {
            "messages": args.messages,
            "devices": args.devices,
            "msgs_per_s": round(args.messages / ours_s, 1),
            "ceiling_msgs_per_s": round(args.messages / ceiling_s, 1),
            "ratio": round(ceiling_s / ours_s, 3),
            "lost": args.messages - distinct,
            "duplicated": rows - distinct,
            "redelivered_duplicates": stats.duplicates,
            "quarantined": stats.quarantined,
            "batches": stats.batches,
            "writer_busy_s": round(stats.commit_s, 3),
            "batch_size": args.batch_size,
            "hold_db": args.hold_db,
            "writer": "process" if args.writer_process else "thread",
            "ours_s": round(ours_s, 3),
            "ours_including_startup_s": round(start_s, 3),
            "ceiling_s": round(ceiling_s, 3),
            "paho_bare_msgs_per_s": round(args.messages / paho_s, 1),
            "publish_msgs_per_s": round(args.messages / publish_s, 1),
            "mode": "drain persistent session (validation, registry, dedupe, ACL+password auth on)",
            "machine": f"{platform.machine()} {os.cpu_count()} cpu, python {platform.python_version()}",
        }
        print(json.dumps(result))
    finally:
        broker.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
