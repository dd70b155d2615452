"""One query layer, four faces (#14): `assets query borrower|portfolio`, the HTTP routes
(`/borrowers/{id}`, `/portfolio`, `/credit/portfolio`, explain) and the plain SQL views answer the
same limits and values, also after a revaluation that only the decision log records."""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path

import duckdb
import pytest

from assets.cli import main
from assets.explain import explain
from assets.revalue import revalue_all
from assets.store import connect
from assets.valuation import parse_params
from tests.fixtures_credit import build_bank, params_v2

BORROWERS = ("farmer-a", "farmer-b")


@pytest.fixture(scope="module")
def bank(tmp_path_factory) -> Path:
    db = tmp_path_factory.mktemp("faces") / "bank.duckdb"
    build_bank(db)
    dearer = parse_params(params_v2().text.replace('version = "test-v2"', 'version = "test-v3"')
                          .replace("price_cny_per_kg = 1.7", "price_cny_per_kg = 1.8")
                          .replace("[1.45, 1.9]", "[1.6, 2.0]"), "v3")
    with connect(db) as con:  # a price change recorded in the decision log only
        revalue_all(con, dearer, as_of=date(2026, 7, 1), recorded_at=datetime(2026, 7, 1, 4), run_id="r-reval")
    return db


def _sql(db: Path) -> dict[str, tuple[float, float, float, float]]:
    with duckdb.connect(str(db), read_only=True) as con:
        current = {b: (lim, low, val, high) for b, lim, low, val, high in con.execute(
            "SELECT borrower_id, sum(limit_cny), sum(value_low_cny), sum(value_cny), sum(value_high_cny) "
            "FROM current_limits GROUP BY 1").fetchall()}
        view = {b: (lim, low, val, high) for b, lim, low, val, high in con.execute(
            "SELECT borrower_id, limit_cny, value_low_cny, value_cny, value_high_cny FROM borrower_limits").fetchall()}
        stale = con.execute("SELECT sum(limit_cny) FROM credit_limits l WHERE as_of = (SELECT max(as_of) "
                            "FROM credit_limits)").fetchone()[0]
    assert current == view
    assert stale != sum(v[0] for v in current.values())  # the old tables never saw the revaluation
    return current


def test_cli_api_and_sql_views_answer_the_same_numbers(bank: Path, capsys) -> None:
    from fastapi.testclient import TestClient

    from assets import access
    from assets.api.app import create_app
    from assets.config import Settings

    sql = _sql(bank)
    with connect(bank) as con:
        access.add_user(con, "li", "officer")
        officer = {"Authorization": f"Bearer {access.issue_token(con, 'li', days=1).secret}"}
        explained = {b: explain(con, b) for b in BORROWERS}
    assert main(["query", "portfolio", "--db", str(bank), "--format", "json"]) == 0
    cli_portfolio = {r["borrower_id"]: r for r in json.loads(capsys.readouterr().out)["borrowers"]}
    with TestClient(create_app(Settings(db_path=bank), api_keys=[])) as c:
        api_portfolio = {r["borrower_id"]: r for r in c.get("/portfolio", headers=officer).json()}
        credit_portfolio = {r["borrower_id"]: r for r in
                            c.get("/credit/portfolio", headers=officer).json()["borrowers"]}
        api_borrower = {b: c.get(f"/borrowers/{b}", headers=officer).json() for b in BORROWERS}
    for b in BORROWERS:
        assert main(["query", "borrower", b, "--db", str(bank), "--format", "json"]) == 0
        cli_borrower = json.loads(capsys.readouterr().out)
        limit, low, value, high = sql[b]
        for face in (cli_borrower["borrower"], api_borrower[b]["borrower"], api_portfolio[b], credit_portfolio[b],
                     cli_portfolio[b]):
            assert (face["limit_cny"], face["value_low_cny"], face["value_cny"], face["value_high_cny"]) == \
                pytest.approx((limit, low, value, high), abs=1e-6), (b, face)
        assert explained[b]["limit_cny"] == pytest.approx(limit) and explained[b]["value_cny"] == pytest.approx(value)
        for detail in (cli_borrower, api_borrower[b]):
            assert sum(c["limit_cny"] or 0 for c in detail["claims"]) == pytest.approx(limit)
            valued = [c for c in detail["claims"] if c["status"] != "rejected"]
            assert valued and all(c["params_version"] == "test-v3" for c in valued)
            for c in valued:  # the revalued decision's steps, rendered from its inputs
                steps = [s["step"] for s in c["valuation_explanation"] + c["limit_explanation"]]
                assert steps[0] == "revalued" and "value_range" in steps and steps[-1] == "limit"
            assert [h["as_of"] for h in detail["limit_history"]][-1] in ("2026-07-01", date(2026, 7, 1).isoformat())
            assert detail["limit_history"][-1]["limit_cny"] == pytest.approx(limit)


def test_the_table_output_shows_the_current_decision(bank: Path, capsys) -> None:
    assert main(["query", "borrower", "farmer-a", "--db", str(bank)]) == 0
    out = capsys.readouterr().out
    assert "revalued from the stored inputs under parameters test-v3" in out and "value low" in out
