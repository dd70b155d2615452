"""#14 "Bad input", face by face: SQL-looking strings in every filter of the CLI, the HTTP API and
the library (clear errors or no match, never injected SQL, nothing written), an unknown borrower
and an `--as-of` before any data on every borrower question, and a parameter file that prices a
crop the model knows but the valuation does not. The parameter-file refusals themselves (missing
keys, negative price or yield, unknown currency, low > high, no source) are in
test_valuation_ranges.py and test_verify_valuation.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from assets.cli import main
from assets.errors import InputError, NotFoundError
from assets.explain import borrower_detail, explain
from assets.store import connect
from assets.store.credit import PortfolioFilter, exposure_by, field_rows, portfolio
from assets.store.history import borrower_history
from tests.fixtures_credit import build_bank

EVIL = ["x' OR '1'='1", "maize'; DROP TABLE decisions; --", "1; DELETE FROM claims", "N56E009' --",
        "') UNION SELECT * FROM users --"]


@pytest.fixture(scope="module")
def bank(tmp_path_factory) -> Path:
    db = tmp_path_factory.mktemp("bad") / "bank.duckdb"
    build_bank(db)
    return db


def _state(db: Path) -> tuple:
    """Everything a successful injection would change."""
    with connect(db, read_only=True) as con:
        return (con.execute("SELECT count(*), sum(limit_cny) FROM decisions").fetchone(),
                con.execute("SELECT count(*), sum(limit_cny) FROM current_decisions").fetchone(),
                con.execute("SELECT count(*) FROM claims").fetchone(),
                con.execute("SELECT count(*) FROM information_schema.tables").fetchone())


def _cli(capsys, *args: str) -> tuple[int, str, str]:
    try:
        code = main(list(args))
    except SystemExit as exc:  # argparse: a usage error
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("evil", EVIL)
def test_sql_looking_strings_in_every_cli_filter(bank: Path, evil: str, capsys, tmp_path: Path) -> None:
    before = _state(bank)
    db = ("--db", str(bank))
    out_file = tmp_path / "f.geojson"
    for cmd in (("query", "portfolio"), ("export", "--format", "geojson", "--out", str(out_file))):
        code, _, err = _cli(capsys, *cmd, *db, "--crop", evil)  # a crop must be a legend name (or a synonym)
        assert code == 2 and "is not in the crop legend" in err and repr(evil) in err, (cmd, err)
        code, _, err = _cli(capsys, *cmd, *db, "--region", evil)  # a region must be a cell name such as N56E009
        assert code == 2 and "is not a 1-degree cell name such as N56E009" in err, (cmd, err)
    assert not out_file.exists()
    for flag in ("--status", "--sort", "--min-limit", "--max-limit", "--from", "--to", "--rows"):  # typed: refused
        code, _, err = _cli(capsys, "query", "portfolio", *db, flag, evil)
        assert code == 2 and f"error: argument {flag}" in err, (flag, err)  # names the option
    for cmd in (("query", "borrower"), ("query", "explain"), ("query", "history")):  # borrower ids
        code, _, err = _cli(capsys, *cmd, evil, *db)
        assert code == 2 and ("no borrower" in err or "is not valid" in err), (cmd, err)
    for cmd in (("query", "alerts"), ("runs", "list")):  # a kind is one of the named kinds
        code, _, err = _cli(capsys, *cmd, *db, "--kind", evil)
        assert code == 2 and "error: argument --kind: invalid choice" in err, (cmd, err)
    code, _, err = _cli(capsys, "query", "explain", "farmer-a", *db, "--as-of", evil)
    assert code == 2 and "error: argument --as-of" in err
    code, _, err = _cli(capsys, "query", "explain", "farmer-a", *db, "--known-at", evil)
    assert code == 2 and "not a time" in err
    assert _state(bank) == before


def test_sql_looking_strings_in_every_library_filter(bank: Path) -> None:
    before = _state(bank)
    with connect(bank, read_only=True) as con:
        for evil in EVIL:
            f = PortfolioFilter(crop=evil)  # the library compares a crop as text (the faces refuse it first)
            assert portfolio(con, f)[0] == [] and field_rows(con, f) == []
            for bad in (PortfolioFilter(status=evil), PortfolioFilter(sort=evil), PortfolioFilter(region=evil)):
                with pytest.raises(InputError):
                    portfolio(con, bad)
                with pytest.raises(InputError):
                    field_rows(con, bad)
            with pytest.raises(InputError):
                exposure_by(con, evil)
            with pytest.raises(NotFoundError):
                explain(con, evil)
            with pytest.raises(NotFoundError):
                borrower_detail(con, evil)
            assert borrower_history(con, evil) == []
    assert _state(bank) == before


def test_sql_looking_strings_in_every_api_parameter(bank: Path) -> None:
    from fastapi.testclient import TestClient

    from assets import access
    from assets.api.app import create_app
    from assets.config import Settings

    with connect(bank) as con:
        access.add_user(con, "zhao", "officer")
        officer = {"Authorization": f"Bearer {access.issue_token(con, 'zhao', days=1).secret}"}
    before = _state(bank)
    with TestClient(create_app(Settings(db_path=bank), api_keys=[])) as c:
        for evil in EVIL:
            r = c.get("/credit/portfolio", params={"region": evil}, headers=officer)
            assert r.status_code == 422 and "1-degree cell name" in r.json()["error"], r.text
            r = c.get("/credit/portfolio", params={"crop": evil}, headers=officer)
            assert r.status_code == 422 and "is not in the crop legend" in r.text, r.text
            for key in ("status", "sort", "min_limit_cny", "max_limit_cny", "as_of_from", "as_of_to", "rows",
                        "descending"):
                r = c.get("/credit/portfolio", params={key: evil}, headers=officer)
                assert r.status_code == 422, (key, r.status_code, r.text)
            for path in (f"/borrowers/{evil}", f"/credit/borrowers/{evil}/explain",
                         f"/credit/borrowers/{evil}/history", f"/borrowers/{evil}/fields"):
                assert c.get(path, headers=officer).status_code in (404, 422), path
            for key in ("as_of", "known_at", "recompute"):
                r = c.get("/credit/borrowers/farmer-a/explain", params={key: evil}, headers=officer)
                assert r.status_code == 422, (key, r.text)
                # the same one-line shape as every other refusal, naming the parameter (not FastAPI's "detail")
                assert list(r.json()) == ["error"] and r.json()["error"].startswith(f"{key}: "), r.text
            r = c.get("/alerts", params={"kind": evil}, headers=officer)
            assert r.status_code == 422 and "unknown alert kind" in r.json()["error"]
        for key in ("min_limit_cny", "max_limit_cny"):  # parsed as floats: not a silently empty portfolio
            for value in ("nan", "inf", "-Infinity"):
                r = c.get("/credit/portfolio", params={key: value}, headers=officer)
                assert r.status_code == 422 and "is not a number of CNY" in r.json()["error"], (key, value, r.text)
    assert _state(bank) == before


def test_unknown_borrower_and_as_of_before_any_data_on_every_face(bank: Path, capsys) -> None:
    from fastapi.testclient import TestClient

    from assets import access
    from assets.api.app import create_app
    from assets.config import Settings

    db = ("--db", str(bank))
    for cmd in (("query", "borrower"), ("query", "explain"), ("query", "history")):
        code, _, err = _cli(capsys, *cmd, "farmer-nobody", *db)
        assert code == 2 and "no borrower 'farmer-nobody'" in err
    code, _, err = _cli(capsys, "query", "explain", "farmer-a", *db, "--as-of", "2026-04-30")
    assert code == 2 and "before the first decision" in err and "2026-05-01" in err
    code, _, err = _cli(capsys, "query", "explain", "farmer-a", *db, "--known-at", "2000-01-01")
    assert code == 2 and "nothing was recorded for farmer-a by 2000-01-01" in err and "first decision was recorded at" in err
    assert "run `assets nightly`" not in err  # decisions exist: the advice is the time, not a run
    with connect(bank) as con:
        access.add_user(con, "qian", "officer")
        officer = {"Authorization": f"Bearer {access.issue_token(con, 'qian', days=1).secret}"}
    with TestClient(create_app(Settings(db_path=bank), api_keys=[])) as c:
        for path in ("/borrowers/farmer-nobody", "/credit/borrowers/farmer-nobody/explain",
                     "/credit/borrowers/farmer-nobody/history"):
            r = c.get(path, headers=officer)
            assert r.status_code == 404 and "farmer-nobody" in r.text, path
        r = c.get("/credit/borrowers/farmer-a/explain", params={"as_of": "2026-04-30"}, headers=officer)
        assert r.status_code == 422 and "before the first decision" in r.text
        assert "?as_of=" in r.json()["error"]  # data QA 2026-12-07: the API's answer quoted only the CLI's --as-of


def test_a_crop_the_model_knows_but_the_parameters_do_not_price_is_named_and_counts_zero() -> None:
    from assets.valuation import ValuationInput, load_params, parse_params, value_inputs

    base = load_params()
    kept, skipping = [], False
    for line in base.text.split("\n"):  # maize's table and its regional sub-tables removed
        if line.startswith("["):
            skipping = line.startswith(("[crops.maize]", "[crops.maize."))
        if not skipping:
            kept.append(line)
    no_maize = parse_params("\n".join(kept), "no maize")
    assert "maize" not in no_maize.crops
    inp = ValuationInput(status="verified", verified_area_ha=10.0, claimed_area_ha=10.0, crop="maize",
                         crop_probability=0.8, crop_probs={"maize": 0.8, "wheat": 0.2}, sensor_status="no_devices",
                         reason_codes=("ok",), usable_dates=6)
    priced, unpriced = value_inputs(inp, base), value_inputs(inp, no_maize)
    steps = {s["step"]: s for s in unpriced.explanation}
    assert "no price set for maize, counted as 0" in steps["value_per_mu"]["text"]
    assert 0 < unpriced.value_cny < priced.value_cny and unpriced.limit_cny <= priced.limit_cny  # only wheat's share
