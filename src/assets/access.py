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
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from enum import StrEnum
from typing import Any, Sequence

import duckdb

from assets.config import Settings
from assets.errors import AuthenticationError, InputError, NotFoundError, SignInEndedError
from assets.store import users as store
from assets.store import writer

ID_MAX = 64
_ID = re.compile(rf"[A-Za-z0-9][A-Za-z0-9._-]{{0,{ID_MAX - 1}}}")
_SECRET = re.compile(r"(ast|asl)_([0-9a-f]{16})_([A-Za-z0-9_-]{43})")
TOKEN_PREFIX, LINK_PREFIX = "ast", "asl"
TOKEN_ID = re.compile(r"[0-9a-f]{16}")  # a token's public id (`secrets.token_hex(8)`), as listed and revoked
_UNKNOWN = "unknown or malformed token; send `Authorization: Bearer <token>` with a token from `assets users token`"


class Role(StrEnum):
    FARMER = "farmer"  # one borrower's own fields: read them, submit claims for them
    OFFICER = "officer"  # credit officer: reads every borrower, decides reviews; audited
    OPERATIONS = "operations"  # ingest, devices, schedules; the portfolio (per-borrower totals) and alerts, no claim detail


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


# Names the audit log gives identities that are not users: a person named so would pass for them.
RESERVED_NAME = re.compile(r"(?i)cli|api|api-key-\d+")
Db = writer.Target  # a database path (faces: its one writer) or an open connection


def _audit(action: str, target: str, now: datetime) -> dict[str, object]:
    return {"at": now, "user_name": "cli", "role": "cli", "action": action, "target": target}


def add_user(db: Db, name: str, role: str, borrower_id: str | None = None,
             *, now: datetime | None = None) -> store.UserRow:
    """Register a user; farmers must name their one borrower, other roles must not."""
    name = canonical_id(name, "user name")
    if RESERVED_NAME.fullmatch(name):
        raise InputError(f"user name {name!r} is the name the audit log gives "
                         f"{'every CLI action' if name.lower() in ('cli', 'api') else 'an ASSETS_API_KEYS key'}; "
                         "choose another name")
    if TOKEN_ID.fullmatch(name):
        raise InputError(f"user name {name!r} looks like a token id (16 hex digits), so `assets users revoke {name}` "
                         "could not tell them apart; choose another name")
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
    row = store.UserRow(name, role.value, borrower_id, now)
    if not writer.apply(db, store.create_user, user=asdict(row), audit=_audit("users add", name, now)):
        raise InputError(f"user {name!r} already exists; see `assets users list`")
    return row


def _no_user(name: str) -> NotFoundError:
    return NotFoundError(f"no user {name!r}; add one with `assets users add {name} --role ...`")


def _issue(user_name: str, kind: str, expires_at: datetime, now: datetime) -> tuple[str, store.TokenRow]:
    """A fresh secret (as handed out) and the row that stores only its hash."""
    token_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    prefix = TOKEN_PREFIX if kind == "token" else LINK_PREFIX
    row = store.TokenRow(token_id, user_name, kind, _sha256(secret), now, expires_at, False, None)
    return f"{prefix}_{token_id}_{secret}", row


def _issued(secret: str, row: store.TokenRow, user: store.UserRow | dict[str, Any]) -> IssuedSecret:
    found = asdict(user) if isinstance(user, store.UserRow) else user
    return IssuedSecret(row.token_id, secret, row.user_name, Role(found["role"]), found["borrower_id"], row.expires_at)


def issue_token(db: Db, name: str, *, days: int, max_days: int = 365, now: datetime | None = None) -> IssuedSecret:
    """A new bearer token for ``name`` valid ``days`` days (1 to ``max_days``, `Settings.token_max_days`:
    a bank's bearer token is renewed, not issued for ever); the caller shows it once."""
    if not 1 <= days <= max_days:
        raise InputError(f"--expires-days must be from 1 to {max_days} (got {days}); issue a new token when it expires")
    now = now or utcnow()
    secret, row = _issue(name, "token", now + timedelta(days=days), now)
    user = writer.apply(db, store.store_secret, token=asdict(row), audit=_audit("users token", f"{name} {row.token_id}", now))
    if user is None:
        raise _no_user(name)
    return _issued(secret, row, user)


def issue_link(db: Db, name: str, settings: Settings, *,
               now: datetime | None = None) -> tuple[IssuedSecret, str]:
    """A one-time sign-in code for a farmer and the map URL that carries it (for the bank's SMS).

    The code rides in the URL fragment (after ``#``), which browsers never send to a server, so
    it stays out of access logs and Referer headers.
    """
    now = now or utcnow()
    secret, row = _issue(name, "link", now + timedelta(minutes=settings.signin_link_minutes), now)
    user = writer.apply(db, store.store_secret, token=asdict(row), role=Role.FARMER.value,
                        audit=_audit("users link", f"{name} {row.token_id}", now))
    if user is None:
        raise _no_user(name)
    if not user["stored"]:
        raise InputError(f"sign-in links are for farmers; give the {user['role']} {name!r} a token with "
                         f"`assets users token {name}`")
    return _issued(secret, row, user), f"{settings.public_url.rstrip('/')}/map/#code={secret}"


def sign_out(db: Db, identity: Identity, *, now: datetime | None = None) -> None:
    """End the session a token holds (the map's "Sign out", a lost phone's owner on another one):
    the token is revoked on the server, not only forgotten by the page."""
    if identity.token_id is None:
        raise InputError("a key from ASSETS_API_KEYS has no session to end; remove it from ASSETS_API_KEYS instead")
    now = now or utcnow()
    writer.apply(db, store.revoke_target, target=identity.token_id, now=now,
                 audit={"at": now, "user_name": identity.name, "role": identity.role.value,
                        "token_id": identity.token_id, "action": "sign out", "target": identity.token_id})


def revoke(db: Db, name_or_token_id: str, *, now: datetime | None = None) -> int:
    """Revoke every token and code of a user, or one token by its id; returns how many."""
    now = now or utcnow()
    count = writer.apply(db, store.revoke_target, target=name_or_token_id, now=now,
                         audit=_audit("users revoke", name_or_token_id, now))
    if count is None:
        raise NotFoundError(f"no user or token id {name_or_token_id!r}; see `assets users list --tokens`")
    return int(count)


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
        raise SignInEndedError("that is a sign-in code, not a token; open the sign-in link instead"
                               if kind == "token" else "that is a token, not a sign-in code; send it as "
                               "`Authorization: Bearer <token>`")
    if token.revoked:
        raise SignInEndedError("this sign-in was revoked by the bank; ask for a new sign-in link or token")
    if token.used_at is not None:
        raise SignInEndedError("this sign-in link was already used; ask the bank to send a new one")
    if token.expires_at <= now:
        raise SignInEndedError(f"this sign-in expired at {token.expires_at:%Y-%m-%d %H:%M} UTC; "
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


def exchange_code(db: Db, code: str, settings: Settings, *, now: datetime | None = None) -> IssuedSecret:
    """Trade a one-time sign-in code for a token valid `settings.token_days`; the code dies.

    Checked on a read, then spent by the file's one writer (`store.use_link`), which finds a code
    spent meanwhile by a second exchange of the same link."""
    now = now or utcnow()
    with writer.reading(db) as con:
        link, user = _checked(con, code, "link", now)
    secret, row = _issue(user.user_name, "token", now + timedelta(days=settings.token_days), now)
    if not writer.apply(db, store.use_link, link_id=link.token_id, now=now, token=asdict(row)):
        raise SignInEndedError("this sign-in link was already used; ask the bank to send a new one")
    return _issued(secret, row, user)


def static_keys(keys: Sequence[str], *, min_chars: int) -> tuple[StaticKey, ...]:
    """ASSETS_API_KEYS entries as officers named ``api-key-1``, ``api-key-2``... in the audit log.

    They never expire and may approve a loan, so one a person could guess (``k1``) is refused
    (`Settings.api_key_min_chars`)."""
    for i, k in enumerate(keys, start=1):
        if len(k) < min_chars:
            raise InputError(f"ASSETS_API_KEYS entry {i} has {len(k)} characters; an officer key needs at least "
                             f"{min_chars} random ones (e.g. `openssl rand -hex 24`), or issue officers tokens "
                             "with `assets users token NAME`")
    return tuple(StaticKey(f"api-key-{i}", k) for i, k in enumerate(keys, start=1))
