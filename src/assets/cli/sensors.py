"""`assets sensors devices add|list|retire|import`, `assets sensors ingest`, `assets sensors replay`,
`assets sensors quarantine`.

Handlers parse options, call one function in assets.sensors, and print the result.
"""

from __future__ import annotations

import argparse
import json
import logging
import secrets
import signal
import sys
import threading
from datetime import datetime, timezone
from pathlib import Path

from assets.cli.options import db_option
from assets.config import settings as make_settings


def _when(text: str) -> datetime:
    """ISO date or datetime -> naive UTC."""
    try:
        ts = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date/time; use YYYY-MM-DD[THH:MM[+hh:mm]]") from None
    return ts if ts.tzinfo is None else ts.astimezone(timezone.utc).replace(tzinfo=None)



def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `sensors` command group to the parser."""
    sensors = sub.add_parser("sensors", help="IoT devices: registry, MQTT ingest, replay")
    ssub = sensors.add_subparsers(dest="sensors_command", metavar="SUBCOMMAND", required=True)

    devices = ssub.add_parser("devices", help="the device registry").add_subparsers(
        dest="devices_command", metavar="ACTION", required=True
    )
    p = devices.add_parser("add", help="register a device for a borrower at a location")
    p.add_argument("device_id", help="device id: also its MQTT username and topic farms/<id>/readings")
    p.add_argument("--borrower", required=True, help="borrower id, e.g. farmer-001")
    p.add_argument("--lon", type=float, required=True, help="longitude, WGS84 degrees")
    p.add_argument("--lat", type=float, required=True, help="latitude, WGS84 degrees")
    p.add_argument("--kind", default="soil_probe", help="soil_probe | weather_station | ... (default soil_probe)")
    p.add_argument("--secret", default=None, help="device password (default: generate one and print it once)")
    p.add_argument("--installed", type=_when, default=None, help="installation date (default: unknown)")
    p.add_argument("--passwd-file", type=Path, default=None,
                   help="also add the device to this Mosquitto password file (via mosquitto_passwd)")
    db_option(p)
    p.set_defaults(handler=cmd_devices_add)

    p = devices.add_parser("list", help="list registered devices")
    p.add_argument("--borrower", default=None)
    p.add_argument("--format", choices=("table", "json"), default="table")
    db_option(p)
    p.set_defaults(handler=cmd_devices_list)

    p = devices.add_parser("retire", help="take a device out of service (its later messages are refused)")
    p.add_argument("device_id")
    p.add_argument("--at", type=_when, default=None, help="retirement time (default: now)")
    db_option(p)
    p.set_defaults(handler=cmd_devices_retire)

    p = devices.add_parser("import", help="register every device in a JSON list (idempotent)")
    p.add_argument("file", type=Path, help='[{"device_id","borrower_id","kind","lon","lat","secret"}]')
    db_option(p)
    p.set_defaults(handler=cmd_devices_import)

    p = ssub.add_parser("ingest", help="subscribe to device readings and store them (runs until stopped)",
                        description="QoS 1 persistent-session subscriber: validates, de-duplicates, stores in "
                        "batches and acknowledges only committed messages. Stops on Ctrl-C / SIGTERM, or with "
                        "--drain once the broker has nothing more for it.")
    p.add_argument("--broker", default=None, help="mqtt://ingester:PASSWORD@host:1883 or mqtts://... (default $ASSETS_BROKER)")
    p.add_argument("--client-id", default="assets-ingester", help="persistent session name (default assets-ingester)")
    p.add_argument("--batch-size", type=int, default=10_000,
                   help="messages per commit (keep well below the broker's max_inflight_messages)")
    p.add_argument("--drain", action="store_true", help="stop once nothing has arrived for --idle seconds")
    p.add_argument("--idle", type=float, default=2.0)
    p.add_argument("--hold-db", action="store_true", help="keep the DuckDB file open (faster; blocks other writers)")
    p.add_argument("--writer-process", action="store_true",
                   help="validate and commit in a child process (only pays off with cores to spare)")
    db_option(p)
    p.set_defaults(handler=cmd_ingest)

    p = ssub.add_parser("replay", help="publish a sensor log CSV as device messages (QoS 1)",
                        description="Sequence numbers come from a `seq` column, else each device's row count in "
                        "the file (so the same file replayed twice stores nothing twice). Give a later log of the "
                        "same devices a `seq` column: numbered from 1 again, its readings would reuse stored "
                        "numbers with other times and be quarantined as seq_conflict.")
    p.add_argument("csv", type=Path)
    p.add_argument("--broker", default=None, help="mqtt://host:port (default $ASSETS_BROKER)")
    p.add_argument("--speed", type=float, default=0.0, help="N x real time; 0 = as fast as possible (default)")
    p.add_argument("--device-column", default="device_id")
    p.add_argument("--time-column", default="ts")
    p.add_argument("--devices", type=Path, default=None,
                   help="devices JSON with secrets: each device then logs in as itself (needed with the ACL)")
    p.set_defaults(handler=cmd_replay)

    p = ssub.add_parser("quarantine", help="show rejected messages and why")
    p.add_argument("--limit", type=int, default=20)
    db_option(p)
    p.set_defaults(handler=cmd_quarantine)


def _db(args: argparse.Namespace) -> Path:
    return make_settings(db_path=args.db).db_path


def _broker(args: argparse.Namespace) -> str:
    from assets.errors import InputError

    url = args.broker or make_settings().broker_url
    if not url:
        raise InputError("no broker given: pass --broker mqtt://host:port or set ASSETS_BROKER")
    return url


def cmd_devices_add(args: argparse.Namespace) -> int:
    from assets.sensors.registry import Device, field_bounds, register_device

    secret = args.secret or secrets.token_urlsafe(18)
    device = Device(args.device_id, args.borrower, args.kind, args.lon, args.lat, installed_at=args.installed)
    register_device(_db(args), device, secret)  # through the file's one writer (a running server's, if any)
    if args.passwd_file is not None:
        _add_to_passwd(args.passwd_file, args.device_id, secret)
    print(f"registered {args.device_id} for {args.borrower} at ({args.lon}, {args.lat})")
    if not field_bounds(_db(args), args.borrower):
        print(f"note: {args.borrower} has no fields yet; the device corroborates a field only once one is drawn "
              "around it (check the borrower id if you expected fields)")
    if args.secret is None:
        print(f"secret (shown once; the device logs in as {args.device_id} with it): {secret}")
    return 0


def _add_to_passwd(path: Path, user: str, secret: str) -> None:
    import shutil
    import subprocess

    from assets.errors import AssetsError

    binary = shutil.which("mosquitto_passwd")
    if binary is None:
        raise AssetsError("mosquitto_passwd not found; install mosquitto or build the file with deploy/mosquitto/make-passwd.sh")
    new = not path.exists()
    cmd = [binary, "-c", "-b", str(path), user, secret] if new else [binary, "-b", str(path), user, secret]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise AssetsError(f"mosquitto_passwd failed on {path}: {done.stderr.strip()}")
    try:
        path.chmod(0o600)  # hashes of device secrets: the broker's user only (deploy/mosquitto/README.md)
    except OSError:  # not this user's file: its owner keeps it private
        pass
    if new:
        print(f"note: {path} did not exist and was created; if the broker reads another file, add the device there")
    print(f"the broker reads {path} at start and on SIGHUP: reload it (`kill -HUP <mosquitto pid>`) so "
          f"{user} can log in")


def cmd_devices_list(args: argparse.Namespace) -> int:
    from assets.sensors.registry import list_devices
    from assets.store import connect

    with connect(_db(args), read_only=True) as con:  # a mistyped --db is an error, never a new empty file
        devices = list_devices(con, borrower_id=args.borrower)
    if args.format == "json":
        print(json.dumps([d.to_dict() for d in devices], indent=2))
        return 0
    print(f"{'device':<16} {'borrower':<14} {'kind':<16} {'lon':>10} {'lat':>10}  retired")
    for d in devices:
        retired = d.retired_at.isoformat(sep=" ", timespec="minutes") if d.retired_at else "-"
        print(f"{d.device_id:<16} {d.borrower_id:<14} {d.kind:<16} {d.lon:>10.5f} {d.lat:>10.5f}  {retired}")
    return 0


def cmd_devices_retire(args: argparse.Namespace) -> int:
    from assets.sensors.registry import retire_device

    device = retire_device(_db(args), args.device_id, args.at)
    print(f"retired {device.device_id} at {device.retired_at.isoformat(sep=' ', timespec='seconds')} UTC")  # type: ignore[union-attr]
    return 0


def cmd_devices_import(args: argparse.Namespace) -> int:
    from assets.sensors.registry import register_devices_file

    added = register_devices_file(_db(args), args.file)
    print(f"{added} new devices registered from {args.file}")
    return 0


def cmd_ingest(args: argparse.Namespace) -> int:
    from assets.sensors.ingest import Ingester

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    ingester = Ingester(_db(args), _broker(args), client_id=args.client_id, batch_size=args.batch_size,
                        hold_db=args.hold_db, writer_process=args.writer_process)
    if args.drain:
        stats = ingester.drain(idle_s=args.idle)
    else:
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        ingester.start()  # subscribed (persistent session) from here on
        print(f"ingesting from {ingester.url.redacted()} into {ingester.db_path}; Ctrl-C to stop", file=sys.stderr)
        try:
            while not stop.wait(0.5):
                ingester.check()
        finally:
            stats = ingester.stop()
    print(json.dumps(stats.to_dict()))
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from assets.sensors.registry import load_devices_file
    from assets.sensors.replay import replay_csv

    credentials = None
    if args.devices is not None:
        credentials = {d.device_id: s for d, s in load_devices_file(args.devices) if s}
    stats = replay_csv(args.csv, _broker(args), speed=args.speed, device_column=args.device_column,
                       time_column=args.time_column, credentials=credentials)
    print(json.dumps(stats.to_dict()))
    return 0


def cmd_quarantine(args: argparse.Namespace) -> int:
    from assets.store import connect
    from assets.store.sensors import quarantine_counts, recent_quarantine

    with connect(_db(args), read_only=True) as con:  # a mistyped --db is an error, never a new empty file
        counts = quarantine_counts(con)
        rows = recent_quarantine(con, args.limit)
    print("rejected messages by reason: " + (", ".join(f"{c} {n}" for c, n in counts) or "none"))
    for received_at, topic, reason in rows:
        print(f"{received_at:%Y-%m-%d %H:%M:%S}  {topic}  {reason}")
    return 0
