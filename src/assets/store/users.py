"""Users, their hashed tokens and one-time sign-in codes, and the audit trail (migration 007).

Plain reads and writes; what a role may do and how secrets are made lives in `assets.access`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import duckdb

from assets.errors import InputError
from assets.store.claims import check_not_lookalike, skeleton
from assets.store.db import append
from assets.store.writer import write_op


@dataclass(frozen=True)
class UserRow:
    user_name: str
    role: str
    borrower_id: str | None
    created_at: datetime


@dataclass(frozen=True)
class TokenRow:
    token_id: str
    user_name: str
    kind: str
    secret_sha256: str
    created_at: datetime
    expires_at: datetime
    revoked: bool
    used_at: datetime | None


_USER_COLUMNS = "user_name, role, borrower_id, created_at"
_TOKEN_COLUMNS = "token_id, user_name, kind, secret_sha256, created_at, expires_at, revoked, used_at"


def add_user(con: duckdb.DuckDBPyConnection, user: UserRow) -> None:
    con.execute("INSERT INTO users (user_name, role, borrower_id, created_at) VALUES (?, ?, ?, ?)",
                [user.user_name, user.role, user.borrower_id, user.created_at])


def users_like(con: duckdb.DuckDBPyConnection, name: str) -> list[UserRow]:
    """Users whose name reads as ``name`` (itself included): Li, l1 and L-I all read as li."""
    return [UserRow(*r) for r in con.execute(
        f"SELECT {_USER_COLUMNS} FROM users WHERE {skeleton('user_name')} = {skeleton('?')} ORDER BY user_name",
        [name]).fetchall()]


def get_user(con: duckdb.DuckDBPyConnection, user_name: str) -> UserRow | None:
    row = con.execute(f"SELECT {_USER_COLUMNS} FROM users WHERE user_name = ?", [user_name]).fetchone()
    return UserRow(*row) if row else None


def count_users(con: duckdb.DuckDBPyConnection) -> int:
    return int(con.execute("SELECT count(*) FROM users").fetchone()[0])  # type: ignore[index]  # count(*): one row


def list_users(con: duckdb.DuckDBPyConnection, now: datetime) -> list[dict[str, Any]]:
    """Each user with how many usable tokens they hold and when the last one expires."""
    cur = con.execute(
        "SELECT u.user_name, u.role, u.borrower_id, u.created_at, "
        "count(t.token_id) FILTER (WHERE t.kind = 'token' AND NOT t.revoked AND t.expires_at > ?) AS active_tokens, "
        "max(t.expires_at) FILTER (WHERE t.kind = 'token' AND NOT t.revoked AND t.expires_at > ?) AS expires_at "
        "FROM users u LEFT JOIN api_tokens t USING (user_name) "
        "GROUP BY ALL ORDER BY u.user_name", [now, now])
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, r)) for r in cur.fetchall()]


def list_tokens(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """Every token and sign-in code (never the secret or its hash), newest first."""
    cur = con.execute("SELECT token_id, user_name, kind, created_at, expires_at, revoked, used_at, link_id "
                      "FROM api_tokens ORDER BY created_at DESC, token_id")
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, r)) for r in cur.fetchall()]


def add_token(con: duckdb.DuckDBPyConnection, token: TokenRow) -> None:
    con.execute(f"INSERT INTO api_tokens ({_TOKEN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [token.token_id, token.user_name, token.kind, token.secret_sha256, token.created_at,
                 token.expires_at, token.revoked, token.used_at])


def get_token(con: duckdb.DuckDBPyConnection, token_id: str) -> tuple[TokenRow, UserRow] | None:
    """A token and its user by the token's public id, whatever its state (callers check it)."""
    row = con.execute(
        f"SELECT {', '.join('t.' + c for c in _TOKEN_COLUMNS.split(', '))}, u.user_name, u.role, u.borrower_id, "
        "u.created_at FROM api_tokens t JOIN users u USING (user_name) WHERE t.token_id = ?", [token_id]).fetchone()
    if row is None:
        return None
    return TokenRow(*row[:8]), UserRow(*row[8:])


def revoke_tokens(con: duckdb.DuckDBPyConnection, *, now: datetime, user_name: str | None = None,
                  token_id: str | None = None) -> int:
    """Revoke one token (by id) or every token and code of a user; returns how many changed."""
    column, value = ("user_name", user_name) if user_name is not None else ("token_id", token_id)
    rows = con.execute(f"UPDATE api_tokens SET revoked = true, revoked_at = ? WHERE {column} = ? AND NOT revoked "
                       "RETURNING token_id", [now, value]).fetchall()
    if token_id is not None:  # a used sign-in link: the session it opened ends with it
        rows += con.execute("UPDATE api_tokens SET revoked = true, revoked_at = ? WHERE link_id = ? AND NOT revoked "
                            "RETURNING token_id", [now, token_id]).fetchall()
    return len(rows)


# --- write ops: the CLI's writes, run by the file's one writer (`store.writer`), checks inside ----
@write_op
def create_user(con: duckdb.DuckDBPyConnection, user: dict[str, Any], audit: dict[str, Any]) -> bool:
    """Add a user and its audit row; False (nothing written) when the name is already taken."""
    if get_user(con, user["user_name"]) is not None:
        return False
    like = users_like(con, user["user_name"])
    if like:  # `li` and `Li` or `l1` would be two officers the audit log cannot tell apart
        raise InputError(f"user name {user['user_name']!r} reads like the existing user {like[0].user_name!r} (names "
                         "differing only in case, '-', '_', '.', O/0, l/1 or rn/m are one name); choose a clearly "
                         "different one")
    if user.get("borrower_id"):
        check_not_lookalike(con, user["borrower_id"])  # the one rule for borrower ids
    add_user(con, UserRow(**user))
    record_audit(con, [audit])
    return True


@write_op
def store_secret(con: duckdb.DuckDBPyConnection, token: dict[str, Any], audit: dict[str, Any],
                 role: str | None = None) -> dict[str, Any] | None:
    """Store a token or sign-in code for its user (only one of ``role`` when given) with its audit
    row. Returns the user (``stored`` says whether it was written), None when there is no such user."""
    user = get_user(con, token["user_name"])
    if user is None:
        return None
    stored = role is None or user.role == role
    if stored:
        if token["kind"] == "link":  # a new SMS link replaces the user's earlier unused ones
            con.execute("UPDATE api_tokens SET revoked = true, revoked_at = ? WHERE user_name = ? AND kind = 'link' "
                        "AND used_at IS NULL AND NOT revoked", [token["created_at"], token["user_name"]])
        add_token(con, TokenRow(**token))
        record_audit(con, [audit])
    return {**asdict(user), "stored": stored}


@write_op
def revoke_target(con: duckdb.DuckDBPyConnection, target: str, now: datetime, audit: dict[str, Any]) -> int | None:
    """Revoke every token of the user named ``target``, or the one token with that id; how many,
    None (nothing written) when it names neither."""
    if get_user(con, target) is not None and get_token(con, target) is not None:
        raise InputError(f"{target!r} is both a user name and a token id; revoke the user's tokens with their "
                         "token ids one by one (`assets users list --tokens`), or rename the user")
    if get_user(con, target) is not None:
        count = revoke_tokens(con, now=now, user_name=target)
    elif get_token(con, target) is not None:
        count = revoke_tokens(con, now=now, token_id=target)
    else:
        return None
    record_audit(con, [audit])
    return count


@write_op
def use_link(con: duckdb.DuckDBPyConnection, link_id: str, now: datetime, token: dict[str, Any]) -> bool:
    """Mark a sign-in code used and store the token it buys, together; False (nothing written) when
    it was used or revoked meanwhile. The writer runs one write at a time, so of two exchanges of
    one code the second finds it used."""
    used = con.execute("UPDATE api_tokens SET used_at = ? WHERE token_id = ? AND kind = 'link' "
                       "AND used_at IS NULL AND NOT revoked RETURNING token_id", [now, link_id]).fetchall()
    if used:
        add_token(con, TokenRow(**token))
        con.execute("UPDATE api_tokens SET link_id = ? WHERE token_id = ?", [link_id, token["token_id"]])
    return bool(used)


@write_op
def record_audit(con: duckdb.DuckDBPyConnection, rows: list[dict[str, Any]]) -> None:
    """Append audit rows: at, user_name, role, token_id, action, target, status (one Arrow append)."""
    append(con, "audit_log", [{"audited_at": r["at"], "user_name": r["user_name"], "role": r["role"],
                               "token_id": r.get("token_id"), "action": r["action"], "target": r.get("target"),
                               "status": r.get("status")} for r in rows])


def audit_log(con: duckdb.DuckDBPyConnection, *, user_name: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
    """Newest audit rows first, optionally for one user."""
    sql, params = "SELECT * FROM audit_log", []
    if user_name is not None:
        sql += " WHERE user_name = ?"
        params.append(user_name)
    cur = con.execute(sql + " ORDER BY audited_at DESC LIMIT ?", [*params, limit])
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, r)) for r in cur.fetchall()]
