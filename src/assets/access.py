"""Who may use the HTTP API: users with one role, bearer tokens, one-time sign-in codes (issue #13).

A token is ``ast_<id>_<secret>``: the id is public (listed, revoked, audited by it), only the
sha256 of the secret is stored, so a copy of the database signs nobody in. A sign-in code
(``asl_<id>_<secret>``, sent to a farmer by SMS as a link) is the same shape and buys one token,
once. Ids are compared exactly, so anything a farmer or officer types is refused unless it is
already in NFKC normal form and plain ASCII: ``farmer-00１`` (full-width 1) never becomes a second
``farmer-001``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from enum import StrEnum
from typing import Sequence

import duckdb

from assets.config import Settings
from assets.errors import AuthenticationError, InputError, NotFoundError
from assets.store import transaction
from assets.store import users as store

ID_MAX = 64
_ID = re.compile(rf"[A-Za-z0-9][A-Za-z0-9._-]{{0,{ID_MAX - 1}}}")
_SECRET = re.compile(r"(ast|asl)_([0-9a-f]{16})_([A-Za-z0-9_-]{43})")
TOKEN_PREFIX, LINK_PREFIX = "ast", "asl"
_UNKNOWN = "unknown or malformed token; send `Authorization: Bearer <token>` with a token from `assets users token`"


class Role(StrEnum):
    FARMER = "farmer"  # one borrower's own fields: read them, submit claims for them
    OFFICER = "officer"  # credit officer: reads every borrower, decides reviews; audited
    OPERATIONS = "operations"  # ingest, devices, schedules; portfolio and alerts, no borrower detail


@dataclass(frozen=True)
class Identity:
    """Who is calling, as established by their token."""

    name: str
    role: Role
    borrower_id: str | None = None  # farmers only
    token_id: str | None = None  # None for a key from ASSETS_API_KEYS or `assets serve`'s one-off key
    expires_at: datetime | None = None


@dataclass(frozen=True)
class StaticKey:
    """An ASSETS_API_KEYS entry (or `assets serve`'s one-off key): an officer with no expiry."""

    name: str
    secret: str


@dataclass(frozen=True)
class IssuedSecret:
    """A token or sign-in code as handed out: ``secret`` is shown once and never stored."""

    token_id: str
    secret: str
    user_name: str
    role: Role
    borrower_id: str | None
    expires_at: datetime


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def canonical_id(text: str, what: str = "id") -> str:
    """``text`` unchanged if it is a plain id; `InputError` for look-alikes and anything else.

    Refusing rather than normalising keeps one spelling per borrower: the farmer is told to
    retype it, instead of the bank quietly mapping two strings onto one account.
    """
    if not isinstance(text, str) or not text:
        raise InputError(f"{what} is empty; use 1-{ID_MAX} ASCII letters, digits, '-', '_' or '.'")
    plain = unicodedata.normalize("NFKC", text)
    if plain != text:
        raise InputError(f"{what} {text!r} contains look-alike characters (full-width or compatibility forms); "
                         f"type it in plain ASCII, e.g. {plain!r}")
    if not _ID.fullmatch(text):
        raise InputError(f"{what} {text!r} is not valid; use 1-{ID_MAX} ASCII letters, digits, '-', '_' or '.', "
                         "starting with a letter or digit")
    return text


def _sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


def _audit(con: duckdb.DuckDBPyConnection, action: str, target: str, now: datetime) -> None:
    store.record_audit(con, [{"at": now, "user_name": "cli", "role": "cli", "action": action, "target": target}])


def add_user(con: duckdb.DuckDBPyConnection, name: str, role: str, borrower_id: str | None = None,
             *, now: datetime | None = None) -> store.UserRow:
    """Register a user; farmers must name their one borrower, other roles must not."""
    name = canonical_id(name, "user name")
    try:
        role = Role(role)
    except ValueError:
        raise InputError(f"role {role!r} is unknown; use one of {', '.join(r.value for r in Role)}") from None
    if role is Role.FARMER:
        if borrower_id is None:
            raise InputError(f"a farmer is bound to one borrower; add --borrower ID for {name!r}")
        borrower_id = canonical_id(borrower_id, "borrower id")
    elif borrower_id is not None:
        raise InputError(f"only farmers are bound to a borrower; drop --borrower for the {role.value} {name!r}")
    now = now or utcnow()
    with transaction(con):
        if store.get_user(con, name) is not None:
            raise InputError(f"user {name!r} already exists; see `assets users list`")
        row = store.UserRow(name, role.value, borrower_id, now)
        store.add_user(con, row)
        _audit(con, "users add", name, now)
    return row


def _user(con: duckdb.DuckDBPyConnection, name: str) -> store.UserRow:
    user = store.get_user(con, name)
    if user is None:
        raise NotFoundError(f"no user {name!r}; add one with `assets users add {name} --role ...`")
    return user


def _issue(con: duckdb.DuckDBPyConnection, user: store.UserRow, kind: str, expires_at: datetime,
           now: datetime) -> tuple[IssuedSecret, store.TokenRow]:
    token_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    prefix = TOKEN_PREFIX if kind == "token" else LINK_PREFIX
    row = store.TokenRow(token_id, user.user_name, kind, _sha256(secret), now, expires_at, False, None)
    issued = IssuedSecret(token_id, f"{prefix}_{token_id}_{secret}", user.user_name, Role(user.role),
                          user.borrower_id, expires_at)
    return issued, row


def issue_token(con: duckdb.DuckDBPyConnection, name: str, *, days: int, now: datetime | None = None) -> IssuedSecret:
    """A new bearer token for ``name`` valid ``days`` days; the caller shows it once."""
    if days < 1:
        raise InputError(f"--expires-days must be at least 1 (got {days})")
    now = now or utcnow()
    issued, row = _issue(con, _user(con, name), "token", now + timedelta(days=days), now)
    with transaction(con):
        store.add_token(con, row)
        _audit(con, "users token", f"{name} {issued.token_id}", now)
    return issued


def issue_link(con: duckdb.DuckDBPyConnection, name: str, settings: Settings, *,
               now: datetime | None = None) -> tuple[IssuedSecret, str]:
    """A one-time sign-in code for a farmer and the map URL that carries it (for the bank's SMS).

    The code rides in the URL fragment (after ``#``), which browsers never send to a server, so
    it stays out of access logs and Referer headers.
    """
    user = _user(con, name)
    if user.role != Role.FARMER:
        raise InputError(f"sign-in links are for farmers; give the {user.role} {name!r} a token with "
                         f"`assets users token {name}`")
    now = now or utcnow()
    issued, row = _issue(con, user, "link", now + timedelta(minutes=settings.signin_link_minutes), now)
    with transaction(con):
        store.add_token(con, row)
        _audit(con, "users link", f"{name} {issued.token_id}", now)
    return issued, f"{settings.public_url.rstrip('/')}/map/#code={issued.secret}"


def revoke(con: duckdb.DuckDBPyConnection, name_or_token_id: str, *, now: datetime | None = None) -> int:
    """Revoke every token and code of a user, or one token by its id; returns how many."""
    now = now or utcnow()
    with transaction(con):
        if store.get_user(con, name_or_token_id) is not None:
            count = store.revoke_tokens(con, now=now, user_name=name_or_token_id)
        elif store.get_token(con, name_or_token_id) is not None:
            count = store.revoke_tokens(con, now=now, token_id=name_or_token_id)
        else:
            raise NotFoundError(f"no user or token id {name_or_token_id!r}; see `assets users list --tokens`")
        _audit(con, "users revoke", name_or_token_id, now)
    return count


def _parse(presented: str) -> tuple[str, str, str] | None:
    if not presented.isascii() or len(presented) > 200:
        return None
    match = _SECRET.fullmatch(presented)
    return (match.group(1), match.group(2), match.group(3)) if match else None


def _checked(con: duckdb.DuckDBPyConnection, presented: str, kind: str,
             now: datetime) -> tuple[store.TokenRow, store.UserRow]:
    """The stored row behind a presented secret; states are told apart only to its real holder."""
    parts = _parse(presented)
    found = store.get_token(con, parts[1]) if parts else None
    # Compare even when nothing was found, so a wrong id costs the same time as a wrong secret.
    digest = _sha256(parts[2]) if parts else ""
    if not hmac.compare_digest(digest, found[0].secret_sha256 if found else "0" * 64) or found is None:
        raise AuthenticationError(_UNKNOWN if kind == "token" else
                                  "unknown sign-in code; ask the bank to send a new sign-in link")
    token, user = found
    if token.kind != kind:
        raise AuthenticationError("that is a sign-in code, not a token; open the sign-in link instead"
                                  if kind == "token" else "that is a token, not a sign-in code; send it as "
                                  "`Authorization: Bearer <token>`")
    if token.revoked:
        raise AuthenticationError("this sign-in was revoked by the bank; ask for a new sign-in link or token")
    if token.used_at is not None:
        raise AuthenticationError("this sign-in link was already used; ask the bank to send a new one")
    if token.expires_at <= now:
        raise AuthenticationError(f"this sign-in expired at {token.expires_at:%Y-%m-%d %H:%M} UTC; "
                                  "ask the bank for a new sign-in link or token")
    return token, user


def verify(con: duckdb.DuckDBPyConnection, presented: str, *, static_keys: Sequence[StaticKey] = (),
           now: datetime | None = None) -> Identity:
    """The identity behind a presented token, or `AuthenticationError` (never anything else)."""
    if not presented or not presented.isascii():
        raise AuthenticationError(_UNKNOWN)
    raw = presented.encode("ascii")
    for key in static_keys:  # ASSETS_API_KEYS: officers, compared in constant time
        if hmac.compare_digest(raw, key.secret.encode("utf-8")):
            return Identity(key.name, Role.OFFICER)
    token, user = _checked(con, presented, "token", now or utcnow())
    return Identity(user.user_name, Role(user.role), user.borrower_id, token.token_id, token.expires_at)


def exchange_code(con: duckdb.DuckDBPyConnection, code: str, settings: Settings, *,
                  now: datetime | None = None) -> IssuedSecret:
    """Trade a one-time sign-in code for a token valid `settings.token_days`; the code dies."""
    now = now or utcnow()
    link, user = _checked(con, code, "link", now)
    issued, row = _issue(con, user, "token", now + timedelta(days=settings.token_days), now)
    if not store.exchange_link(con, link.token_id, now, row):
        raise AuthenticationError("this sign-in link was already used; ask the bank to send a new one")
    return issued


def static_keys(keys: Sequence[str]) -> tuple[StaticKey, ...]:
    """ASSETS_API_KEYS entries as officers named ``api-key-1``, ``api-key-2``... in the audit log."""
    return tuple(StaticKey(f"api-key-{i}", k) for i, k in enumerate(keys, start=1))
