"""`assets users add | token | link | revoke | list` — who may use the HTTP API.

Secrets (tokens, sign-in links) are printed once and never stored; the database keeps their
sha256 only, so a lost token is revoked and a new one issued.
Each write goes through the database's one writer: with `assets serve` running, the server
stores it, so the CLI works beside a live server.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from assets.cli.options import db_option
from assets.cli.render import table, to_json
from assets.config import settings as make_settings
from assets.store.db import require_database


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    users = sub.add_parser("users", help="farmers, credit officers and operations staff who use the HTTP API")
    actions = users.add_subparsers(dest="users_cmd", metavar="ACTION", required=True)

    p = actions.add_parser("add", help="register a user with one role (a farmer is bound to one borrower)")
    p.add_argument("name", help="user name, e.g. farmer-001-wang or officer-li (ASCII letters, digits, - _ .)")
    p.add_argument("--role", required=True, choices=("farmer", "officer", "operations"))
    p.add_argument("--borrower", default=None, help="farmers only: the borrower id they act for, e.g. farmer-001")
    db_option(p)
    p.set_defaults(handler=cmd_add)

    p = actions.add_parser("token", help="issue a bearer token for a user (printed once)")
    p.add_argument("name")
    p.add_argument("--expires-days", type=int, default=None, help="lifetime in days (default: Settings.token_days, 90)")
    db_option(p)
    p.set_defaults(handler=cmd_token)

    p = actions.add_parser("link", help="a one-time sign-in link for a farmer (the bank sends it by SMS)")
    p.add_argument("name")
    p.add_argument("--base-url", default=None, help="where farmers reach the service (default: $ASSETS_PUBLIC_URL "
                   "or http://127.0.0.1:8000)")
    db_option(p)
    p.set_defaults(handler=cmd_link)

    p = actions.add_parser("revoke", help="revoke every token and link of a user, or one token by its id")
    p.add_argument("target", metavar="NAME|TOKEN-ID")
    db_option(p)
    p.set_defaults(handler=cmd_revoke)

    p = actions.add_parser("list", help="users and their roles (with --tokens: every token and link, no secrets)")
    p.add_argument("--tokens", action="store_true", help="list tokens and sign-in links instead of users")
    p.add_argument("--format", choices=("table", "json"), default="table")
    db_option(p)
    p.set_defaults(handler=cmd_list)


def cmd_add(args: argparse.Namespace) -> int:
    from assets import access

    s = make_settings(db_path=args.db)
    new_file = not s.db_path.exists()
    user = access.add_user(s.db_path, args.name, args.role, args.borrower)
    bound = f" for borrower {user.borrower_id}" if user.borrower_id else ""
    print(f"added {user.role} {user.user_name}{bound}; next: `assets users "
          f"{'link' if user.role == 'farmer' else 'token'} {user.user_name}`")
    if new_file:
        print(f"note: there was no database at {s.db_path}, so a new one was made; if the server uses another "
              "file, add the user again with --db (or ASSETS_DB) naming it")
    elif user.borrower_id and not _borrower_known(s.db_path, user.borrower_id):
        print(f"note: borrower {user.borrower_id} has no claims yet; their first field creates it (check the id "
              "if you expected one)")
    return 0


def _borrower_known(db_path: Path, borrower_id: str) -> bool:
    from assets.store import writer
    from assets.store.history import borrower_exists

    with writer.read(db_path) as con:
        return borrower_exists(con, borrower_id)


def cmd_token(args: argparse.Namespace) -> int:
    from assets import access

    s = make_settings(db_path=args.db)
    days = s.token_days if args.expires_days is None else args.expires_days
    issued = access.issue_token(require_database(s.db_path), args.name, days=days, max_days=s.token_max_days)
    print(f"token {issued.token_id} for {issued.user_name} ({issued.role.value}), expires "
          f"{issued.expires_at:%Y-%m-%d %H:%M} UTC; shown once, send it as `Authorization: Bearer <token>`:")
    print(issued.secret)
    return 0


def cmd_link(args: argparse.Namespace) -> int:
    from assets import access

    s = make_settings(db_path=args.db, public_url=args.base_url)
    issued, url = access.issue_link(require_database(s.db_path), args.name, s)
    print(f"one-time sign-in link for {issued.user_name} (borrower {issued.borrower_id}), good until "
          f"{issued.expires_at:%Y-%m-%d %H:%M} UTC; send it by SMS:")
    print(url)
    return 0


def cmd_revoke(args: argparse.Namespace) -> int:
    from assets import access

    s = make_settings(db_path=args.db)
    count = access.revoke(require_database(s.db_path), args.target)
    if count:
        print(f"revoked {count} token(s) and link(s) of {args.target}")
    else:
        print(f"nothing to revoke: {args.target} had no token or link still valid")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from assets.access import utcnow
    from assets.store import users as store
    from assets.store import writer

    s = make_settings(db_path=args.db)
    with writer.read(require_database(s.db_path)) as con:
        rows = store.list_tokens(con) if args.tokens else store.list_users(con, utcnow())
    if args.format == "json":
        print(to_json(rows))
    elif args.tokens:
        print(table(rows, ["token_id", "user_name", "kind", "created_at", "expires_at", "revoked", "used_at", "link_id"],
                    ["token id", "user", "kind", "created", "expires", "revoked", "used", "from link"]))
    else:
        print(table(rows, ["user_name", "role", "borrower_id", "active_tokens", "expires_at", "created_at"],
                    ["user", "role", "borrower", "active tokens", "last expiry", "created"]))
    return 0
