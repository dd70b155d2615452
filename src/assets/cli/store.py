"""`assets store serve | snapshot | status`: the one writer of a database file and its read snapshot."""

from __future__ import annotations

import argparse
import signal
import threading

from assets.cli.options import db_option
from assets.cli.render import to_json
from assets.config import settings as make_settings

HELP = """\
DuckDB lets one process hold a database file read-write; every other process, even a read-only
`duckdb` session, is then refused. So one process owns the file and the others hand it their writes:

  assets serve            the HTTP API owns the file while it runs
  assets store serve      owns it without the API (e.g. on a batch host)

While an owner runs, `assets nightly` and `assets sensors ingest` send their writes to it over a
Unix socket (only the file's user can connect) and read from the snapshot; with no owner running,
whoever writes opens the file itself. Writes of one process never race: the decision log is
numbered and chained by the one writer.

Analysts read the snapshot, republished after commits (at most every $ASSETS_SNAPSHOT_DEBOUNCE_S,
default 1 s; atomic rename, so it always opens and never blocks a writer):

  duckdb -readonly assets.snapshot.duckdb
"""



def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    store = sub.add_parser("store", help="the one writer of the database and the snapshot analysts read",
                           description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = store.add_subparsers(dest="store_cmd", metavar="ACTION", required=True)

    p = actions.add_parser("serve", help="own the database file and take other processes' writes until stopped",
                           description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    db_option(p)
    p.set_defaults(handler=cmd_serve)

    p = actions.add_parser("snapshot", help="publish the read snapshot now (<db>.snapshot.duckdb)")
    db_option(p)
    p.set_defaults(handler=cmd_snapshot)

    p = actions.add_parser("status", help="who owns the file, where the socket and the snapshot are")
    db_option(p)
    p.set_defaults(handler=cmd_status)


def cmd_serve(args: argparse.Namespace) -> int:
    from assets.store.writer import WriterService, snapshot_path

    s = make_settings(db_path=args.db)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with WriterService(s.db_path) as service:
        print(f"writer of {s.db_path} listening on {service.socket}; analysts: duckdb -readonly "
              f"{snapshot_path(s.db_path)}", flush=True)
        stop.wait()
    return 0


def cmd_snapshot(args: argparse.Namespace) -> int:
    from assets.store import writer

    s = make_settings(db_path=args.db)
    if writer.owner_running(s.db_path):
        with writer.read(s.db_path):  # asks the owner to publish what it has committed
            pass
        print(writer.snapshot_path(s.db_path))
    else:
        print(writer.publish_snapshot(s.db_path))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from assets.store import writer
    from assets.store.db import require_database

    s = make_settings(db_path=args.db)
    snap = writer.snapshot_path(require_database(s.db_path))
    print(to_json({"db": str(s.db_path), "owner_running": writer.owner_running(s.db_path),
                   "socket": str(writer.socket_path(s.db_path)), "snapshot": str(snap),
                   "snapshot_exists": snap.exists()}))
    return 0
