"""`assets claims review [ID --approve|--reject --note ...]`: the credit officer's review queue."""

from __future__ import annotations

import argparse
import getpass

from assets.cli.options import db_option
from assets.cli.render import table, to_json
from assets.config import settings as make_settings

QUEUE_COLUMNS = ["claim_id", "borrower_id", "name", "claimed_area_ha", "area_if_approved_ha", "as_of", "reason"]
QUEUE_HEADERS = ["claim", "borrower", "name", "claimed ha", "ha if approved", "as of", "why it waits"]


def register(claims: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Adds `review` to the `assets claims` group."""
    p = claims.add_parser("review", help="list claims waiting for a credit officer, or decide one",
                          description="Without ID: the claims whose boundary follows no detected field (no limit "
                          "until decided). With ID: approve (valued at its verified area) or reject it, with a note.")
    p.add_argument("claim_id", nargs="?", default=None, help="the claim to decide (from the list)")
    how = p.add_mutually_exclusive_group()
    how.add_argument("--approve", dest="decision", action="store_const", const="approve")
    how.add_argument("--reject", dest="decision", action="store_const", const="reject")
    p.add_argument("--note", default=None, help="why (required with a decision; shown to the borrower)")
    p.add_argument("--officer", default=None, help="who decides (default: the logged-in user)")
    p.add_argument("--verdict", default=None, metavar="VERIFICATION_ID",
                   help="the verdict you looked at (verification_id in `--format json`): the decision is refused if "
                        "the claim was assessed again since, so an approval never answers a question you did not see")
    db_option(p)
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(handler=cmd_review, review_parser=p)


def cmd_review(args: argparse.Namespace) -> int:
    from assets import reviews

    s = make_settings(db_path=args.db)
    if args.claim_id is None:
        if args.decision:
            args.review_parser.error("name the claim to decide: assets claims review ID --approve|--reject --note ...")
        rows = reviews.queue(s)
        if args.format == "json":
            print(to_json(rows))
        else:
            print(table(rows, QUEUE_COLUMNS, QUEUE_HEADERS) if rows else "No claim is waiting for review.")
        return 0
    if not args.decision:
        args.review_parser.error("say --approve or --reject (and --note why)")
    row = reviews.decide(s, reviews.Decision(args.claim_id, args.decision, args.note or "",
                                             args.officer or getpass.getuser(), "cli", args.verdict))
    if args.format == "json":
        print(to_json(row))
    else:
        done = "approved" if args.decision == "approve" else "rejected"
        print(f"claim {row['claim_id']}: {row['status']}, {float(row['verified_area_ha'] or 0):.2f} ha, "
              f"limit {float(row['limit_cny'] or 0):,.0f} CNY ({done} by {args.officer or getpass.getuser()})")
    return 0
