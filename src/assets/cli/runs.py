"""`assets runs list | show RUN_ID` — the report of each night (tiles, fields, limits, alerts, stage times)."""

from __future__ import annotations

import argparse

from assets.cli.options import db_option
from assets.cli.render import table, to_json
from assets.config import settings as make_settings

LIST_COLUMNS = ["run_id", "kind", "as_of", "started_at", "status", "tiles_ingested", "tiles_quarantined",
                "fields_refreshed", "limits_changed", "alerts_raised", "wall_s"]
LIST_HEADERS = ["run", "kind", "as of", "started", "status", "tiles in", "quarantined", "fields", "limits changed",
                "alerts", "wall s"]



def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    runs = sub.add_parser("runs", help="nightly run reports: what came in, what changed, time per stage")
    actions = runs.add_subparsers(dest="runs_cmd", metavar="ACTION", required=True)

    p = actions.add_parser("list", help="the recent runs, newest first")
    from assets.runs import RUN_KINDS

    p.add_argument("--kind", choices=RUN_KINDS, default=None, help="only this kind of run")
    p.add_argument("--rows", type=int, default=30)
    p.add_argument("--format", choices=("table", "json"), default="table")
    db_option(p)
    p.set_defaults(handler=cmd_list)

    p = actions.add_parser("show", help="one run's report")
    p.add_argument("run_id", help="n-... as `assets runs list` shows it")
    p.add_argument("--format", choices=("table", "json"), default="table")
    db_option(p)
    p.set_defaults(handler=cmd_show)


def cmd_list(args: argparse.Namespace) -> int:
    from assets.runs import run_list

    rows = run_list(make_settings(db_path=args.db).db_path, kind=args.kind, limit=args.rows)
    print(to_json(rows) if args.format == "json" else table(rows, LIST_COLUMNS, LIST_HEADERS))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from assets.runs import render, run_report

    report = run_report(make_settings(db_path=args.db).db_path, args.run_id)
    print(to_json(report) if args.format == "json" else render(report))
    return 0
