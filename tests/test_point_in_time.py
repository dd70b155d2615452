"""Point in time (#14): decisions are appended, explained as of a date, recomputed from what was
stored (across a parameter change and a model change), and hash-chained so silent edits show."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from assets.errors import InputError, NotFoundError
from assets.explain import explain
from assets.store import connect
from assets.store.history import verify_chain
from tests.fixtures_credit import RUN1, RUN2, assess, build_bank, params_v2


@pytest.fixture
def bank(tmp_path: Path) -> Path:
    db = tmp_path / "bank.duckdb"
    build_bank(db)
    return db


def test_explain_as_of_each_run_recomputes_the_stored_number(bank: Path) -> None:
    with connect(bank) as con:
        may = explain(con, "farmer-a", as_of=date(2026, 5, 20), recompute=True)
        june = explain(con, "farmer-a", as_of=date(2026, 6, 20), recompute=True)
        now = explain(con, "farmer-a")
    assert {c["params_version"] for c in may["claims"]} == {"2026.12-6"}
    assert {c["crop_model_version"] for c in may["claims"]} == {"crop-v1"}
    assert {c["params_version"] for c in june["claims"]} == {"test-v2"}
    assert {c["crop_model_version"] for c in june["claims"]} == {"crop-v2"}
    assert may["limit_cny"] > june["limit_cny"] > 0  # cheaper wheat, fewer clear dates, less certain crop
    for e in (may, june):
        assert e["recompute_matches"] and e["recomputed_limit_cny"] == e["limit_cny"]
        for c in e["claims"]:
            assert c["value_low_cny"] <= c["value_cny"] <= c["value_high_cny"]
            assert c["recomputed"]["value_cny"] == pytest.approx(c["value_cny"], rel=1e-12)
            assert [s["step"] for s in c["explanation"]][-1] == "limit"
            assert c["sensor_window"]["to"] == c["valid_from"].isoformat() and "inputs" in c
    assert may["claims"][0]["valid_to"] == RUN2 and june["claims"][0]["valid_to"] is None
    assert now["limit_cny"] == june["limit_cny"]


def test_a_rejected_claim_is_a_decision_with_no_limit(bank: Path) -> None:
    with connect(bank) as con:
        e = explain(con, "farmer-b", as_of=RUN1, recompute=True)
    rejected = [c for c in e["claims"] if c["claim_id"] == "c-b2"][0]
    assert rejected["status"] == "rejected" and rejected["limit_cny"] == 0
    assert any(r["code"] == "not_cropland" for r in rejected["reasons"]) and e["recompute_matches"]


def test_bad_questions_are_named(bank: Path) -> None:
    with connect(bank) as con:
        with pytest.raises(InputError, match="before the first decision"):
            explain(con, "farmer-a", as_of=date(2026, 1, 1))
        with pytest.raises(NotFoundError, match="no borrower"):
            explain(con, "farmer-zz")
        with pytest.raises(NotFoundError, match="no borrower"):
            explain(con, "x' OR '1'='1")


def test_rerunning_adds_nothing_and_never_overwrites(bank: Path) -> None:
    with connect(bank) as con:
        before = con.execute("SELECT count(*), max(decision_seq) FROM decisions").fetchone()
        limits = con.execute("SELECT count(*) FROM credit_limits").fetchone()[0]
    assess(bank, RUN2, params_v2(), "crop-v2", {"wheat": 0.7, "maize": 0.2, "open_water": 0.1}, dates=4)
    with connect(bank) as con:
        assert con.execute("SELECT count(*), max(decision_seq) FROM decisions").fetchone() == before
        assert con.execute("SELECT count(*) FROM credit_limits").fetchone()[0] == limits
        assert verify_chain(con).ok


@pytest.mark.parametrize("edit, problem", [
    ("UPDATE decisions SET limit_cny = limit_cny + 10000 WHERE decision_seq = 2", "does not match its hash"),
    ("UPDATE decisions SET inputs = replace(inputs::VARCHAR, '0.9', '0.99')::JSON WHERE decision_seq = 1",
     "does not match its hash"),
    ("DELETE FROM decisions WHERE decision_seq = 3", "rows deleted"),
    ("UPDATE credit_limits SET limit_cny = limit_cny * 2 WHERE limit_id = (SELECT min(limit_id) FROM credit_limits)",
     "differs from the logged"),
    ("UPDATE valuations SET value_cny = 1 WHERE valuation_id = (SELECT min(valuation_id) FROM valuations)",
     "differs from the logged"),
    # the current-state rows (migration 014) must equal the log
    ("UPDATE current_decisions SET limit_cny = limit_cny * 2 WHERE claim_id = 'c-a1'", "differs from its decision"),
    ("DELETE FROM current_decisions WHERE claim_id = 'c-b1'", "has no row for claim c-b1"),
    ("UPDATE current_decisions SET decision_seq = (SELECT min(decision_seq) FROM decisions WHERE claim_id = 'c-a2'), "
     "decision_id = (SELECT min_by(decision_id, decision_seq) FROM decisions WHERE claim_id = 'c-a2') "
     "WHERE claim_id = 'c-a2'", "not the one in force"),
    # data QA 2026-12-07: tables outside the chain that the credit views read
    ("UPDATE claims SET borrower_id = 'farmer-b' WHERE claim_id = 'c-a1'", "but its logged decisions name farmer-a"),
    ("UPDATE valuations SET value_low_cny = 1e9, value_high_cny = 2e9", "value range"),
    ("UPDATE valuation_params SET params_toml = replace(params_toml, 'advance_rate = 0.5', 'advance_rate = 0.9')",
     "edited after use"),
])
def test_audit_verify_detects_a_silent_sql_edit(bank: Path, edit: str, problem: str) -> None:
    with connect(bank) as con:
        clean = verify_chain(con)
        assert clean.ok and clean.rows == 8
        con.execute(edit)
        check = verify_chain(con)
    assert not check.ok and any(problem in b["problem"] for b in check.broken), check.broken


@pytest.mark.parametrize("workers", [1, 2])
def test_revaluing_every_field_after_a_price_change(bank: Path, workers: int) -> None:
    from datetime import datetime

    from assets.revalue import revalue_all
    from assets.valuation import parse_params

    cheaper = parse_params(params_v2().text.replace('version = "test-v2"', 'version = "test-v3"')
                           .replace("advance_rate = 0.5 ", "advance_rate = 0.4 "), "v3")
    with connect(bank) as con:
        before = explain(con, "farmer-a")
        n = revalue_all(con, cheaper, as_of=date(2026, 7, 1), recorded_at=datetime(2026, 7, 1, 4), run_id="r-reval",
                        workers=workers, chunk_rows=1)
        after = explain(con, "farmer-a", recompute=True)
        check = verify_chain(con)
    assert n == 3  # the valued fields; the rejected one has no inputs to revalue
    assert {c["params_version"] for c in after["claims"]} == {"test-v3"}
    assert 0 < after["limit_cny"] < before["limit_cny"] * 0.95 and after["recompute_matches"]
    assert check.ok and check.rows == 11


def test_the_current_state_rows_follow_every_append(bank: Path) -> None:
    """`current_decisions` holds, per claim, the decision in force: the newest evidence date, then the
    newest recorded; a late decision about an earlier date does not replace it."""
    with connect(bank) as con:
        def current() -> dict:
            return dict(con.execute("SELECT claim_id, decision_seq FROM current_decisions").fetchall())

        expected = dict(con.execute(
            "SELECT claim_id, max_by(decision_seq, (valid_from, decision_seq)) FROM decisions GROUP BY 1").fetchall())
        assert current() == expected and len(expected) == 4
    assess(bank, RUN1, params_v2(), "crop-v9", {"wheat": 0.5, "barley": 0.5}, dates=3)  # recorded later, about RUN1
    with connect(bank) as con:
        assert current() == expected  # RUN2's decisions stay in force
        assert verify_chain(con).ok
        late = con.execute("SELECT count(*) FROM decisions WHERE crop_model_version = 'crop-v9'").fetchone()[0]
        assert late == 4


def test_times_are_utc_whatever_the_servers_zone(bank: Path, monkeypatch) -> None:
    """Data QA 2026-12-07: on a server in Asia/Shanghai, `--known-at ...+08:00` (or ...Z) was read 8 h
    late, and column defaults (borrowers.created_at) were stored in local time beside UTC times."""
    import time
    from datetime import datetime, timedelta, timezone

    monkeypatch.setenv("TZ", "Asia/Shanghai")
    time.tzset()
    try:
        with connect(bank) as con:
            first = min(r[0] for r in con.execute("SELECT recorded_at FROM decisions WHERE borrower_id = 'farmer-a'")
                        .fetchall())
            shanghai = timezone(timedelta(hours=8))
            before = (first - timedelta(seconds=1)).replace(tzinfo=timezone.utc).astimezone(shanghai)
            with pytest.raises(InputError, match="nothing was recorded"):
                explain(con, "farmer-a", known_at=before)
            after = (first + timedelta(seconds=1)).replace(tzinfo=timezone.utc).astimezone(shanghai)
            assert explain(con, "farmer-a", known_at=after)["claims"]
            con.execute("INSERT INTO borrowers (borrower_id) VALUES ('farmer-tz')")
            (created,) = con.execute("SELECT created_at FROM borrowers WHERE borrower_id = 'farmer-tz'").fetchone()
        assert abs(created - datetime.now(timezone.utc).replace(tzinfo=None)) < timedelta(minutes=5)
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


def test_an_older_schema_read_only_is_one_clear_error(bank: Path) -> None:
    """Data QA 2026-12-07: read-only commands on a not yet upgraded file ended in missing-table tracebacks."""
    from assets.errors import StoreError
    from assets.store.db import SCHEMA_VERSION

    with connect(bank) as con:
        con.execute("DELETE FROM schema_migrations WHERE version > 8")
    with pytest.raises(StoreError, match=f"schema version 8 and this program needs {SCHEMA_VERSION}"):
        with connect(bank, read_only=True):
            pass


def test_a_known_at_past_the_calendars_ends_is_a_clear_error(bank: Path) -> None:
    """QA 2026-12-08: 0001-01-01T00:00+14:00 (a valid ISO time) gave a 500 and a traceback."""
    from datetime import datetime, timedelta, timezone

    with connect(bank) as con:
        for edge in (datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=14))),
                     datetime(9999, 12, 31, 23, 59, tzinfo=timezone(timedelta(hours=-10)))):
            with pytest.raises(InputError, match="outside the dates a record can have"):
                explain(con, "farmer-a", known_at=edge)
