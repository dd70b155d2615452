"""Identities, roles, hashed tokens, one-time sign-in codes and the `assets users` commands (issue #13)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from assets import access
from assets.access import Role
from assets.api.limits import SlidingWindow
from assets.cli import main
from assets.config import Settings
from assets.errors import AuthenticationError, InputError, NotFoundError
from assets.store import connect
from assets.store import users as store


@pytest.fixture
def con(db_path: Path):
    with connect(db_path) as c:
        access.add_user(c, "wang", "farmer", "farmer-001")
        access.add_user(c, "li", "officer")
        yield c


@pytest.mark.parametrize("text", ["farmer-00１", "ｆarmer-001", "farmer-001\u00a0", "farmer-ⅰ"])
def test_look_alike_ids_are_refused_naming_the_plain_form(text: str) -> None:
    with pytest.raises(InputError, match="look-alike") as info:
        access.canonical_id(text, "borrower id")
    assert "type it in plain ASCII" in str(info.value)


@pytest.mark.parametrize("text", ["farmer-٠٠١", "farmer‐001", "farmer 001", "", "-farmer", "a" * 65, "fa/../rmer", "农民一"])
def test_ids_outside_plain_ascii_are_refused(text: str) -> None:
    with pytest.raises(InputError):
        access.canonical_id(text, "borrower id")


def test_plain_ids_pass_unchanged() -> None:
    for text in ("farmer-001", "F_2.b", "a" * 64):
        assert access.canonical_id(text) == text


def test_roles_and_borrowers(con) -> None:
    with pytest.raises(InputError, match="--borrower"):
        access.add_user(con, "zhao", "farmer")
    with pytest.raises(InputError, match="only farmers"):
        access.add_user(con, "ops", "operations", "farmer-002")
    with pytest.raises(InputError, match="unknown"):
        access.add_user(con, "boss", "admin")
    with pytest.raises(InputError, match="already exists"):
        access.add_user(con, "wang", "farmer", "farmer-001")
    with pytest.raises(InputError, match="look-alike"):
        access.add_user(con, "zhao", "farmer", "farmer-00２")
    assert store.count_users(con) == 2


def test_a_token_names_its_user_and_only_its_hash_is_stored(con) -> None:
    issued = access.issue_token(con, "wang", days=30)
    who = access.verify(con, issued.secret)
    assert (who.name, who.role, who.borrower_id, who.token_id) == ("wang", Role.FARMER, "farmer-001", issued.token_id)
    stored = con.execute("SELECT * FROM api_tokens").fetchall()
    assert not any(issued.secret.split("_", 2)[2] in str(row) for row in stored)
    tampered = issued.secret[:-1] + ("A" if issued.secret[-1] != "A" else "B")
    for bad in (tampered, "ast_0000000000000000_" + "x" * 43, "nonsense", "", "ключ", "ast_" + "é" * 70):
        with pytest.raises(AuthenticationError, match="unknown"):
            access.verify(con, bad)


def test_revoked_and_expired_tokens_are_refused(con) -> None:
    one = access.issue_token(con, "li", days=1)
    two = access.issue_token(con, "li", days=1)
    assert access.revoke(con, one.token_id) == 1
    with pytest.raises(AuthenticationError, match="revoked"):
        access.verify(con, one.secret)
    assert access.verify(con, two.secret).name == "li"
    with pytest.raises(AuthenticationError, match="expired"):
        access.verify(con, two.secret, now=two.expires_at + timedelta(seconds=1))
    assert access.revoke(con, "li") == 1  # every remaining token of the user
    with pytest.raises(AuthenticationError, match="revoked"):
        access.verify(con, two.secret)
    with pytest.raises(NotFoundError):
        access.revoke(con, "nobody")
    with pytest.raises(InputError, match="from 1 to 365"):
        access.issue_token(con, "li", days=0)


def test_a_sign_in_link_works_once(con, db_path: Path) -> None:
    settings = Settings(db_path=db_path, public_url="https://bank.example/farm")
    link, url = access.issue_link(con, "wang", settings)
    assert url == f"https://bank.example/farm/map/#code={link.secret}"
    with pytest.raises(AuthenticationError, match="sign-in code, not a token"):
        access.verify(con, link.secret)
    token = access.exchange_code(con, link.secret, settings)
    assert access.verify(con, token.secret).borrower_id == "farmer-001"
    assert token.expires_at > link.expires_at  # the token lives settings.token_days, the code a day
    with pytest.raises(AuthenticationError, match="already used"):
        access.exchange_code(con, link.secret, settings)
    with pytest.raises(AuthenticationError, match="not a sign-in code"):
        access.exchange_code(con, token.secret, settings)
    with pytest.raises(InputError, match="for farmers"):
        access.issue_link(con, "li", settings)


def test_expired_and_revoked_links_are_refused(con, db_path: Path) -> None:
    settings = Settings(db_path=db_path, signin_link_minutes=10)
    old, _ = access.issue_link(con, "wang", settings)
    with pytest.raises(AuthenticationError, match="expired"):
        access.exchange_code(con, old.secret, settings, now=old.expires_at)
    fresh, _ = access.issue_link(con, "wang", settings)
    access.revoke(con, "wang")
    with pytest.raises(AuthenticationError, match="revoked"):
        access.exchange_code(con, fresh.secret, settings)


def test_static_keys_are_officers(con) -> None:
    keys = access.static_keys(["k-one", "k-two"], min_chars=5)
    who = access.verify(con, "k-two", static_keys=keys)
    assert (who.name, who.role, who.token_id) == ("api-key-2", Role.OFFICER, None)
    with pytest.raises(AuthenticationError):
        access.verify(con, "k-three", static_keys=keys)


def test_sliding_window_counts_and_forgets() -> None:
    now = [100.0]
    window = SlidingWindow(2, 10.0, clock=lambda: now[0], max_keys=2)
    assert window.take("a") == 0 and window.take("a") == 0
    assert window.take("a") == 10
    now[0] += 4
    assert window.retry_after_s("a") == 6
    now[0] += 6.5
    assert window.take("a") == 0
    window.add("b"), window.add("c")  # the least recently seen key is dropped beyond max_keys
    assert len(window._events) == 2


def test_users_commands(db_path: Path, capsys) -> None:
    db = ["--db", str(db_path)]
    assert main(["users", "add", "wang", "--role", "farmer", "--borrower", "farmer-001", *db]) == 0
    assert main(["users", "add", "li", "--role", "officer", *db]) == 0
    assert main(["users", "add", "zhao", "--role", "farmer", "--borrower", "farmer-00１", *db]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "look-alike" in err and err.count("\n") == 1
    assert main(["users", "token", "li", "--expires-days", "7", *db]) == 0
    token = capsys.readouterr().out.strip().splitlines()[-1]
    assert main(["users", "link", "wang", "--base-url", "http://farm.example", *db]) == 0
    url = capsys.readouterr().out.strip().splitlines()[-1]
    assert url.startswith("http://farm.example/map/#code=asl_")
    assert main(["users", "list", *db]) == 0
    listing = capsys.readouterr().out
    assert "wang" in listing and "farmer-001" in listing and "officer" in listing
    assert main(["users", "list", "--tokens", *db]) == 0
    tokens = capsys.readouterr().out
    assert "link" in tokens and token.split("_")[1] in tokens and token.split("_", 2)[2] not in tokens
    with connect(db_path) as con:
        assert access.verify(con, token).role is Role.OFFICER
    assert main(["users", "revoke", token.split("_")[1], *db]) == 0
    assert main(["users", "revoke", "nobody", *db]) == 2
    with connect(db_path) as con:
        with pytest.raises(AuthenticationError, match="revoked"):
            access.verify(con, token)
        actions = [r["action"] for r in store.audit_log(con)]
    assert actions.count("users add") == 2 and {"users token", "users link", "users revoke"} <= set(actions)


def test_claims_submit_refuses_a_look_alike_borrower(tmp_path: Path, capsys) -> None:
    assert main(["claims", "submit", str(tmp_path / "f.geojson"), "--borrower", "farmer-00１",
                 "--db", str(tmp_path / "x.duckdb")]) == 2
    assert "look-alike" in capsys.readouterr().err


def test_users_commands_refuse_what_they_cannot_mean(db_path: Path, tmp_path: Path, capsys) -> None:
    """QA 2026-12-07: 0 days gave a 90-day token, 100 million days a traceback; a user named like a
    token id made `revoke ID` revoke the user instead; a mistyped --db made a new empty database."""
    db = ["--db", str(db_path)]
    assert main(["users", "add", "li", "--role", "officer", *db]) == 0
    assert "no database at" in capsys.readouterr().out  # a new file is said, not silent
    for days in ("0", "366", "100000000"):
        assert main(["users", "token", "li", "--expires-days", days, *db]) == 2
        assert "--expires-days must be from 1 to 365" in capsys.readouterr().err
    assert main(["users", "add", "0123456789abcdef", "--role", "operations", *db]) == 2
    assert "looks like a token id" in capsys.readouterr().err
    assert main(["users", "revoke", "li", *db]) == 0
    assert "nothing to revoke" in capsys.readouterr().out
    typo = tmp_path / "typo.duckdb"
    for argv in (["users", "list"], ["users", "token", "li"], ["users", "link", "li"], ["users", "revoke", "li"]):
        assert main([*argv, "--db", str(typo)]) == 2
        assert "no database at" in capsys.readouterr().err
    assert not typo.exists()
    assert main(["users", "add", "wang", "--role", "farmer", "--borrower", "farmer-404", *db]) == 0
    assert "farmer-404 has no claims yet" in capsys.readouterr().out


def test_a_user_named_like_a_token_id_is_never_ambiguous(con) -> None:
    """Names of that shape are refused now; one stored before (or by hand) makes revoke refuse, not guess."""
    issued = access.issue_token(con, "li", days=1)
    con.execute("INSERT INTO users (user_name, role, borrower_id, created_at) VALUES (?, 'operations', NULL, now())",
                [issued.token_id])
    with pytest.raises(InputError, match="both a user name and a token id"):
        access.revoke(con, issued.token_id)
    assert access.verify(con, issued.secret).name == "li"


def test_a_new_sign_in_link_replaces_the_unused_ones(con) -> None:
    settings = Settings()
    first, _ = access.issue_link(con, "wang", settings)
    second, _ = access.issue_link(con, "wang", settings)
    with pytest.raises(AuthenticationError):
        access.exchange_code(con, first.secret, settings)
    assert access.exchange_code(con, second.secret, settings).role is Role.FARMER


def test_one_link_exchanged_at_once_from_many_phones_buys_one_token(tmp_path: Path) -> None:
    """The exchange is spent by the file's one writer: of eight exchanges racing on one link
    (through the database path, as the API does) exactly one gets a token."""
    from concurrent.futures import ThreadPoolExecutor

    db = tmp_path / "race.duckdb"
    settings = Settings(db_path=db)
    access.add_user(db, "wang", "farmer", "farmer-001")
    link, _ = access.issue_link(db, "wang", settings)

    def exchange(_: int) -> str:
        try:
            return access.exchange_code(db, link.secret, settings).secret
        except AuthenticationError as e:
            return f"refused: {e}"

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(exchange, range(8)))
    tokens = [a for a in answers if not a.startswith("refused")]
    assert len(tokens) == 1, answers
    assert all("already used" in a for a in answers if a.startswith("refused"))
    with connect(db, read_only=True) as con:
        assert access.verify(con, tokens[0]).borrower_id == "farmer-001"
        assert con.execute("SELECT count(*) FROM api_tokens WHERE kind = 'token'").fetchone()[0] == 1


def test_revoking_a_used_link_ends_the_session_it_opened(tmp_path: Path) -> None:
    """Access QA 2026-12-08: `users revoke <link id>` on a link already opened said "revoked 1" while the
    90-day token the link bought kept working, and nothing told which token came from which link."""
    from assets.store.users import list_tokens

    db = tmp_path / "links.duckdb"
    settings = Settings(db_path=db)
    access.add_user(db, "wang", "farmer", "farmer-001")
    link, _ = access.issue_link(db, "wang", settings)
    token = access.exchange_code(db, link.secret, settings)  # the wrong phone opened it
    other = access.issue_token(db, "wang", days=30)  # the farmer's own session, from the bank
    with connect(db) as con:
        assert access.verify(con, token.secret).name == "wang"
        assert {t["token_id"]: t["link_id"] for t in list_tokens(con)}[token.token_id] == link.token_id
    assert access.revoke(db, link.token_id) == 1 + 1  # the link (already used) and the session it bought
    with connect(db) as con:
        with pytest.raises(AuthenticationError, match="revoked"):
            access.verify(con, token.secret)
        assert access.verify(con, other.secret).name == "wang"  # the farmer's other sign-in stands


def test_user_names_that_read_as_another_or_as_the_audits_own_are_refused(con) -> None:
    """Access QA 2026-12-08: `Li` beside `li`, `l1`, and the audit log's own `cli` / `api-key-1` were accepted."""
    for name in ("Li", "l1", "L-I", "lI"):
        with pytest.raises(InputError, match="reads like the existing user 'li'"):
            access.add_user(con, name, "officer")
    for name in ("cli", "CLI", "api", "api-key-1", "API-KEY-12"):
        with pytest.raises(InputError, match="is the name the audit log gives"):
            access.add_user(con, name, "officer")
    access.add_user(con, "liu", "officer")  # a clearly different name


def test_rn_reads_as_m_in_borrower_ids(con) -> None:
    """Fraud QA 2026-12-08: `farrner-001` was a second borrower beside `farmer-001`."""
    from assets.store.claims import check_not_lookalike

    con.execute("INSERT INTO borrowers (borrower_id) VALUES ('farmer-001')")
    with pytest.raises(InputError, match="reads like the existing borrower 'farmer-001'"):
        check_not_lookalike(con, "farrner-001")
