"""`assets demo | nightly | backfill | claims submit | query` — the spine's commands.

Each handler parses options, calls one domain function, and renders the result.
"""

from __future__ import annotations

import argparse
import sys
from datetime import date
from pathlib import Path

from assets.cli import reviews
from assets.cli.options import db_option
from assets.cli.render import table, to_csv, to_json
from assets.config import settings as make_settings

CLAIM_COLUMNS = ["name", "status", "verified_area_ha", "verified_area_mu", "crop", "value_cny", "limit_cny", "reason"]
CLAIM_HEADERS = ["claim", "status", "area ha", "area mu", "crop", "value CNY", "limit CNY", "reason"]


def _iso_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date; use YYYY-MM-DD") from None



def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = sub.add_parser("demo", help="run the whole job on the bundled sample season",
                       description="Replay sample sensor data through an in-process MQTT broker, submit the example "
                       "claims, run the nightly flow over sample_tiles/ and print each borrower's result.")
    db_option(p)
    p.add_argument("--broker", default=None, help="mqtt://host:port of a real broker (default: in-process broker)")
    p.set_defaults(handler=cmd_demo)

    p = sub.add_parser("nightly", help="one run of the nightly Prefect flow over a tile folder")
    db_option(p)
    p.add_argument("--tiles", default=None, help="inbox of GeoTIFF tiles: a folder or an fsspec URL such as "
                   "s3://bucket/inbox (default: $ASSETS_TILES or sample_tiles/)")
    p.add_argument("--date", type=_iso_date, default=None, help="as-of date YYYY-MM-DD (default: today)")
    p.add_argument("--broker", default=None, help="drain sensor messages from this mqtt:// broker first")
    p.add_argument("--dask", default=None, help="run the per-tile work on Dask: local:N or tcp://scheduler:8786 "
                   "(default: $ASSETS_DASK, else Prefect's default runner)")
    p.set_defaults(handler=cmd_nightly)

    p = sub.add_parser("backfill", help="assess every claim again as of each image date in a range (limit history)")
    db_option(p)
    p.add_argument("--tiles", type=Path, default=None, help="folder of GeoTIFF tiles (default: sample_tiles/)")
    p.add_argument("--from", dest="start", type=_iso_date, required=True, help="first as-of date YYYY-MM-DD")
    p.add_argument("--to", dest="end", type=_iso_date, required=True, help="last as-of date YYYY-MM-DD")
    p.set_defaults(handler=cmd_backfill)

    claims = sub.add_parser("claims", help="farmer claims").add_subparsers(dest="claims_cmd", metavar="ACTION", required=True)
    p = claims.add_parser("submit", help="register field polygons (GeoJSON) for a borrower and verify them")
    p.add_argument("file", type=Path, help="GeoJSON FeatureCollection/Feature/Polygon in EPSG:4326")
    p.add_argument("--borrower", required=True, help="borrower id, e.g. farmer-001")
    p.add_argument("--date", type=_iso_date, default=None, help="as-of date for verification (default: today)")
    db_option(p)
    p.set_defaults(handler=cmd_claims_submit)
    reviews.register(claims)  # assets claims review

    p = sub.add_parser("serve", help="HTTP API for credit teams (FastAPI, OpenAPI docs at /docs); owns the database "
                       "file while it runs (see `assets store --help`)")
    db_option(p)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--as-of", type=_iso_date, default=None,
                   help="assess submissions as of this date YYYY-MM-DD (default: today); e.g. 2016-09-30 to "
                        "replay the bundled demo season, whose imagery is older than a season today")
    p.set_defaults(handler=cmd_serve)

    query = sub.add_parser("query", help="credit-team queries").add_subparsers(dest="query_cmd", metavar="WHAT", required=True)
    p = query.add_parser("borrower", help="a borrower's claims, values, limits, explanation and history")
    p.add_argument("borrower_id")
    db_option(p)
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(handler=cmd_query_borrower)
    from assets.cli.credit import register_query

    register_query(query)  # portfolio (filters, totals), explain, history: assets/cli/credit.py
    p = query.add_parser("alerts", help="crop-failure and sensor alerts raised by the nightly job")
    db_option(p)
    from assets.monitor import ALERT_KINDS

    p.add_argument("--kind", choices=ALERT_KINDS, default=None, help="only this kind of alert")
    p.add_argument("--format", choices=("table", "json", "csv"), default="table")
    p.set_defaults(handler=cmd_query_alerts)


def cmd_demo(args: argparse.Namespace) -> int:
    from assets.flows.demo import demo

    s = make_settings(db_path=args.db, broker_url=args.broker)
    result = demo(str(s.db_path), str(s.tiles_dir), s.broker_url)
    print(f"\nassets demo: {result.summary}\n")
    print_borrowers(s.db_path)
    print(f"\nDatabase: {s.db_path.resolve()}  (try: assets query portfolio --db {s.db_path})")
    return 0


def cmd_nightly(args: argparse.Namespace) -> int:
    from assets.flows.nightly import NightlyConfig, run_nightly
    from assets.runs import render, run_report

    url = args.tiles if args.tiles and "://" in args.tiles else None  # a Path would mangle s3://...
    s = make_settings(db_path=args.db, tiles_dir=None if url else args.tiles, broker_url=args.broker,
                      dask_cluster=args.dask)
    summary = run_nightly(NightlyConfig(
        db_path=str(s.db_path), tiles_dir=url or s.tiles_source, as_of=args.date or s.as_of, broker_url=s.broker_url,
        models_dir=str(s.models_dir), catalog_dir=str(s.catalog_dir) if s.catalog_dir else None,
        dask_cluster=s.dask_cluster, dask_processes=s.dask_processes))
    print(to_json(summary))
    print(render(run_report(s.db_path, summary["report"]["run_id"])))  # the night's report, last
    if summary["report"]["status"] == "partial":  # done, but not all of it: cron and monitoring must see it
        print(f"warning: night {summary['report']['run_id']} is partial (a stage or a delivery failed and is tried "
              "again next night); see the report above or `assets runs show`", file=sys.stderr)
        return 1
    return 0


def cmd_backfill(args: argparse.Namespace) -> int:
    from assets.flows.backfill import BackfillConfig, backfill

    s = make_settings(db_path=args.db, tiles_dir=args.tiles)
    summaries = backfill(BackfillConfig(start=args.start, end=args.end, db_path=str(s.db_path),
                                        tiles_dir=str(s.tiles_dir), models_dir=str(s.models_dir)))
    print(to_json(summaries))
    return 0


def cmd_claims_submit(args: argparse.Namespace) -> int:
    from assets.access import canonical_id
    from assets.pipeline import submit_and_assess

    s = make_settings(db_path=args.db)
    rows = submit_and_assess(s, args.file, canonical_id(args.borrower, "borrower id"),
                             as_of=args.date or s.today())
    print(table(rows, CLAIM_COLUMNS, CLAIM_HEADERS))  # claim_status rows already carry verified_area_mu
    return 0 if any(r["status"] != "rejected" for r in rows) else 1


def alert_line(alert: dict, *, with_date: bool = False) -> str:
    """``kind (field, date): message``: which field or device an alert is about, for a borrower with several."""
    about = [a for a in [alert["about"], str(alert["as_of"]) if with_date else None] if a]
    return f"{alert['kind']}" + (f" ({', '.join(about)})" if about else "") + f": {alert['message']}"


def print_borrowers(db_path: Path) -> None:
    from assets.explain import borrower_detail
    from assets.store import connect
    from assets.store.queries import portfolio

    with connect(db_path, read_only=True) as con:
        for b in portfolio(con):
            detail = borrower_detail(con, b["borrower_id"])
            print(f"Borrower {b['borrower_id']}: limit {b['limit_cny']:,.0f} CNY on {b['verified_area_ha']:.2f} ha "
                  f"({b['verified_area_mu']:.0f} mu), value {b['value_cny']:,.0f} CNY")
            print(table(detail["claims"], CLAIM_COLUMNS, CLAIM_HEADERS))
            for alert in detail["alerts"]:
                print(f"  ALERT {alert_line(alert)}")
            print()


def cmd_query_borrower(args: argparse.Namespace) -> int:
    from assets.explain import borrower_detail
    from assets.store import connect

    s = make_settings(db_path=args.db)
    with connect(s.db_path, read_only=True) as con:
        detail = borrower_detail(con, args.borrower_id)
    if args.format == "json":
        print(to_json(detail))
        return 0
    b = detail["borrower"]
    print(f"Borrower {b['borrower_id']}: limit {b['limit_cny']:,.0f} CNY, value {b['value_cny']:,.0f} CNY, "
          f"{b['verified_area_ha']:.2f} ha verified ({b['verified_area_mu']:.0f} mu), as of {b['as_of']}")
    print(table(detail["claims"], CLAIM_COLUMNS, CLAIM_HEADERS))
    for c in detail["claims"]:
        steps = (c.get("valuation_explanation") or []) + (c.get("limit_explanation") or [])
        if steps:
            print(f"\n{c['name']} ({c['claim_id']}):")
            for step in steps:
                print(f"  - {step['text']}")
    if detail["limit_history"]:
        print("\nLimit history:")
        print(table(detail["limit_history"], ["as_of", "limit_cny", "claims_with_limit"], ["as of", "limit CNY", "claims"]))
    if detail.get("reviews"):
        print("\nReview decisions:")
        print(table(detail["reviews"], ["decided_at", "name", "decision", "decided_by", "note"],
                    ["decided", "claim", "decision", "by", "note"]))
    for alert in detail["alerts"]:
        print(f"ALERT {alert_line(alert, with_date=True)}")
    return 0


def cmd_query_alerts(args: argparse.Namespace) -> int:
    from assets.store import connect
    from assets.store.queries import alerts

    s = make_settings(db_path=args.db)
    with connect(s.db_path, read_only=True) as con:
        rows = alerts(con, kind=args.kind)
    if args.format == "json":
        print(to_json(rows))
    elif args.format == "csv":
        sys.stdout.write(to_csv(rows))
    else:
        print(table(rows, ["alert_id", "as_of", "kind", "borrower_id", "about", "message"],
                    ["alert", "as of", "kind", "borrower", "field / device", "message"]))
    return 0


def _check_port_free(host: str, port: int) -> None:
    import socket

    from assets.errors import InputError

    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: TIME_WAIT is no conflict
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise InputError(f"cannot listen on {host}:{port} ({exc.strerror}); stop what uses it or pick another "
                             "--port") from None


def cmd_serve(args: argparse.Namespace) -> int:
    import secrets

    import uvicorn

    from assets.api.app import create_app, server_options
    from assets.store import connect
    from assets.store.users import count_users

    s = make_settings(db_path=args.db, as_of=args.as_of)
    _check_port_free(args.host, args.port)  # before a one-off token is printed for a server that cannot start
    keys = list(s.officer_api_keys)
    with connect(s.db_path) as con:
        have_users = count_users(con) > 0
    if not keys and not have_users:
        keys = [secrets.token_urlsafe(24)]
        print("no users are configured (`assets users add NAME --role officer`, then `assets users token NAME`); "
              f"this run accepts the one-off officer token: {keys[0]}", flush=True)
    # The server owns the file: the nightly flow and the ingester hand it their writes, analysts
    # read <db>.snapshot.duckdb (`assets store --help`).
    uvicorn.run(create_app(s, api_keys=keys, own_store=True), host=args.host, port=args.port, log_level="warning",
                **server_options(s))
    return 0
