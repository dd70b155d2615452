"""`assets alerts resolve ALERT_ID --note ...`: close an alert once it has been dealt with."""

from __future__ import annotations

import argparse
import getpass

from assets.cli.options import db_option
from assets.cli.render import to_json
from assets.config import settings as make_settings


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    group = sub.add_parser("alerts", help="close alerts that have been dealt with (list them: assets query alerts)")
    cmds = group.add_subparsers(dest="alerts_command", metavar="COMMAND", required=True)
    p = cmds.add_parser("resolve", help="close an open alert with a note saying what was done",
                        description="Closes an open alert (its id is the `alert` column of `assets query alerts`). "
                        "Who, when and the note are kept. A condition still there on a later night raises a new alert.")
    p.add_argument("alert_id", help="the alert to close (a-...)")
    p.add_argument("--note", required=True, help="what was done (\"field inspected, crop fine\"; at most 500 characters)")
    p.add_argument("--by", default=None, help="who resolves it (default: the logged-in user)")
    db_option(p)
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(handler=cmd_resolve)


def cmd_resolve(args: argparse.Namespace) -> int:
    from assets import alerts

    s = make_settings(db_path=args.db)
    row = alerts.resolve(s, alerts.Resolution(args.alert_id, args.note, args.by or getpass.getuser(), "cli"))
    if args.format == "json":
        print(to_json(row))
    else:
        about = row["claim_id"] or row["device_id"] or row["borrower_id"]
        print(f"alert {row['alert_id']} ({row['kind']}, {about}) resolved by {row['resolved_by']}: {row['resolution_note']}")
    return 0
