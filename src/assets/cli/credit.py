"""`assets query portfolio|explain|history`, `assets audit verify`, `assets export`, `assets report portfolio`.

The credit team's commands (#14); each parses options and calls one store or domain function.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path

from assets.cli.core import _iso_date
from assets.cli.options import db_option
from assets.cli.render import table, to_csv, to_json
from assets.config import settings as make_settings

PORTFOLIO_COLUMNS = ["borrower_id", "claims", "claims_accepted", "claims_in_review", "claims_rejected",
                     "verified_area_ha", "value_low_cny", "value_cny", "value_high_cny", "limit_cny"]
PORTFOLIO_HEADERS = ["borrower", "claims", "accepted", "in review", "rejected", "area ha", "value low", "value CNY",
                     "value high", "limit CNY"]


def _timestamp(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a time; use YYYY-MM-DD or YYYY-MM-DDTHH:MM") from None


def _filters(p: argparse.ArgumentParser) -> None:
    from assets.store.credit import SORTABLE, STATUSES

    p.add_argument("--region", default=None, help="1-degree cell of the field's centre, e.g. N56E009")
    p.add_argument("--crop", default=None, help="legend crop name, e.g. maize")
    p.add_argument("--status", choices=STATUSES, default=None)
    p.add_argument("--min-limit", type=float, default=None, help="borrowers with at least this limit (CNY)")
    p.add_argument("--max-limit", type=float, default=None, help="borrowers with at most this limit (CNY)")
    p.add_argument("--from", dest="as_of_from", type=_iso_date, default=None, help="fields assessed as of >= this date")
    p.add_argument("--to", dest="as_of_to", type=_iso_date, default=None, help="fields assessed as of <= this date")
    p.add_argument("--sort", choices=SORTABLE, default="borrower_id")
    p.add_argument("--desc", action="store_true", help="sort descending")
    p.add_argument("--rows", type=int, default=None, help="show at most this many borrowers (totals cover all)")


def _filter(args: argparse.Namespace):
    from assets.models import legend
    from assets.store.credit import PortfolioFilter

    crop = legend.to_crop(args.crop) if args.crop else None  # "Maize", "silage maize": maize; a typo: an error
    return PortfolioFilter(region=args.region, crop=crop, status=args.status, min_limit_cny=args.min_limit,
                           max_limit_cny=args.max_limit, as_of_from=args.as_of_from, as_of_to=args.as_of_to,
                           sort=args.sort, descending=args.desc, rows=args.rows)


def register_query(query: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Adds portfolio, explain and history to `assets query` (core owns the group)."""
    p = query.add_parser("portfolio", help="every borrower's verified area, value range and limit, filtered and totalled")
    db_option(p)
    _filters(p)
    p.add_argument("--format", choices=("table", "json", "csv"), default="table")
    p.set_defaults(handler=cmd_query_portfolio)
    p = query.add_parser("explain", help="why a borrower's limit was what it was on a date (and recompute it)")
    p.add_argument("borrower_id")
    db_option(p)
    p.add_argument("--as-of", type=_iso_date, default=None, help="the date asked about (default: now)")
    p.add_argument("--known-at", type=_timestamp, default=None,
                   help="only decisions recorded by then (what the bank knew at that time); UTC unless the time "
                        "carries its zone, e.g. 2026-12-08T05:48+08:00")
    p.add_argument("--recompute", action="store_true", help="recompute each limit from the stored inputs")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(handler=cmd_query_explain)
    p = query.add_parser("history", help="every decision on a borrower's fields, with validity and limit changes")
    p.add_argument("borrower_id")
    db_option(p)
    p.add_argument("--format", choices=("table", "json", "csv"), default="table")
    p.set_defaults(handler=cmd_query_history)


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    audit = sub.add_parser("audit", help="tamper evidence of the decision log").add_subparsers(
        dest="audit_cmd", metavar="ACTION", required=True)
    p = audit.add_parser("verify", help="check the hash chain of every decision and the limit tables against it")
    db_option(p)
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(handler=cmd_audit_verify)

    from assets.exports import FORMATS

    p = sub.add_parser("export", help="fields with verdicts and values as GeoParquet, GeoJSON or CSV (EPSG:4326)")
    db_option(p)
    p.add_argument("--format", choices=FORMATS, required=True)
    p.add_argument("--out", type=Path, required=True, help="file to write")
    _filters(p)
    p.set_defaults(handler=cmd_export)

    report = sub.add_parser("report", help="self-contained HTML reports").add_subparsers(
        dest="report_cmd", metavar="WHAT", required=True)
    p = report.add_parser("portfolio", help="map, distributions, exposure, limit changes and alerts in one HTML file")
    db_option(p)
    p.add_argument("--out", type=Path, default=Path("report.html"))
    p.set_defaults(handler=cmd_report_portfolio)


def cmd_query_portfolio(args: argparse.Namespace) -> int:
    from assets.store import connect
    from assets.store.credit import portfolio

    s = make_settings(db_path=args.db)
    with connect(s.db_path, read_only=True) as con:
        rows, totals = portfolio(con, _filter(args))
    if args.format == "json":
        print(to_json({"borrowers": rows, "totals": totals}))
    elif args.format == "csv":
        sys.stdout.write(to_csv(rows))
    else:
        print(table(rows + [{**totals, "borrower_id": f"TOTAL ({totals['borrowers']})"}], PORTFOLIO_COLUMNS,
                    PORTFOLIO_HEADERS))
    return 0


def cmd_query_explain(args: argparse.Namespace) -> int:
    from assets.access import canonical_id
    from assets.explain import explain
    from assets.store import connect

    s = make_settings(db_path=args.db)
    with connect(s.db_path, read_only=True) as con:
        e = explain(con, canonical_id(args.borrower_id, "borrower id"), as_of=args.as_of, known_at=args.known_at,
                    recompute=args.recompute)
    if args.format == "json":
        print(to_json(e))
        return 0 if e.get("recompute_matches", True) else 1
    print(f"Borrower {e['borrower_id']} as of {e['as_of'] or 'now'}: limit {e['limit_cny']:,.0f} CNY on value "
          f"{e['value_low_cny']:,.0f} (low) / {e['value_cny']:,.0f} / {e['value_high_cny']:,.0f} (high) CNY")
    for c in e["claims"]:
        print(f"\n{c['claim_id']} ({c['status']}, decision #{c['decision_seq']}, in force {c['valid_from']} -> "
              f"{c['valid_to'] or 'now'}): limit {c['limit_cny']:,.0f} CNY")
        print(f"  evidence: {len(c['tiles'])} tiles ({', '.join(t['tile_id'] for t in c['tiles'][:4])}"
              f"{'...' if len(c['tiles']) > 4 else ''}), crop model {c['crop_model_version']}, segmentation "
              f"{c['seg_model_version']}, parameters {c['params_version']} ({c['params_sha256'][:12]}), sensors "
              f"{c['sensor_window']['from']}..{c['sensor_window']['to']} ({c['sensor_window']['status']})")
        for step in c["explanation"] or [{"text": r["message"]} for r in c["reasons"]]:
            print(f"  - {step['text']}")
        if args.recompute:
            print(f"  recomputed: {c['recomputed_limit_cny']:,.0f} CNY ({'same' if c['recompute_matches'] else 'DIFFERS'})")
    if args.recompute:
        print(f"\nRecomputed total {e['recomputed_limit_cny']:,.0f} CNY: "
              f"{'the same number' if e['recompute_matches'] else 'DIFFERENT from what was stored'}")
        return 0 if e["recompute_matches"] else 1
    return 0


def cmd_query_history(args: argparse.Namespace) -> int:
    from assets.access import canonical_id
    from assets.errors import NotFoundError
    from assets.store import connect
    from assets.store.history import borrower_exists, borrower_history

    s = make_settings(db_path=args.db)
    borrower_id = canonical_id(args.borrower_id, "borrower id")
    with connect(s.db_path, read_only=True) as con:
        if not borrower_exists(con, borrower_id):
            raise NotFoundError(f"no borrower {borrower_id!r}; list borrowers with `assets query portfolio`")
        rows = borrower_history(con, borrower_id)
    if args.format == "json":
        print(to_json(rows))
    elif args.format == "csv":
        sys.stdout.write(to_csv(rows))
    else:
        print(table(rows, ["valid_from", "valid_to", "name", "claim_id", "status", "crop", "value_low_cny", "value_cny",
                           "limit_cny", "limit_change_cny", "params_version", "crop_model_version"],
                    ["from", "to", "field", "claim", "status", "crop", "value low", "value", "limit", "change", "params",
                     "crop model"]))
    return 0


def cmd_audit_verify(args: argparse.Namespace) -> int:
    from assets.store import connect
    from assets.store.history import verify_chain

    s = make_settings(db_path=args.db)
    with connect(s.db_path, read_only=True) as con:
        check = verify_chain(con)
    if args.format == "json":
        print(to_json({"ok": check.ok, "rows": check.rows, "head": check.head, "broken": check.broken}))
    elif check.ok:
        print(f"ok: {check.rows:,} decisions, hash chain intact, limits and values match the log; head {check.head}")
    else:
        print(f"TAMPERED: {len(check.broken)} problem(s) in {check.rows:,} decisions")
        print(table(check.broken, ["decision_seq", "decision_id", "problem"], ["seq", "decision", "problem"]))
    return 0 if check.ok else 1


def cmd_export(args: argparse.Namespace) -> int:
    from assets.exports import export_fields
    from assets.store import connect

    s = make_settings(db_path=args.db)
    with connect(s.db_path, read_only=True) as con:
        n = export_fields(con, args.format, args.out, _filter(args))
    print(f"{n} fields written to {args.out} ({args.format}, EPSG:4326)")
    return 0


def cmd_report_portfolio(args: argparse.Namespace) -> int:
    from assets.report import portfolio_report

    s = make_settings(db_path=args.db)
    out = portfolio_report(s.db_path, args.out)
    print(f"report written to {out}")
    return 0
