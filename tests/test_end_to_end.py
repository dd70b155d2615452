"""The whole spine through the real CLI: sensors over MQTT, claims, tiles, CNNs, DuckDB."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
from pathlib import Path

import duckdb
import pytest

from tests.conftest import run_cli

pytestmark = pytest.mark.slow

TABLES = ("borrowers", "claims", "tiles", "observations", "verifications", "valuations", "credit_limits",
          "alerts", "sensor_devices", "sensor_readings")


def counts(db: Path) -> dict[str, int]:
    with duckdb.connect(str(db), read_only=True) as con:
        return {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}


def test_demo_prints_a_table_per_borrower(demo_db) -> None:
    _, out = demo_db
    for borrower in ("farmer-001", "farmer-002", "farmer-003", "farmer-004"):
        assert f"Borrower {borrower}: limit" in out
    assert "area mu" in out and "limit CNY" in out
    assert "redraw it without crossing lines" in out  # the bow-tie's reason is printed
    # the summary counts every claim as the credit views do, the bow-tie refused at submission included
    db, _ = demo_db
    with duckdb.connect(str(db), read_only=True) as con:
        counts = dict(con.execute("SELECT status, count(*) FROM claim_status GROUP BY 1").fetchall())
    summary = re.search(r"(\d+) claims; (\d+) verified, (\d+) partial, (\d+) in review, (\d+) rejected", out)
    assert summary, out[-2000:]
    assert [int(n) for n in summary.groups()] == [sum(counts.values()), counts.get("verified", 0),
                                                  counts.get("partial", 0), counts.get("review", 0),
                                                  counts.get("rejected", 0)]


def test_every_limit_traces_to_claim_tiles_and_models(demo_db) -> None:
    db, _ = demo_db
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM credit_limits WHERE limit_cny > 0").fetchone()[0] > 0
        rows = con.execute("""
            SELECT l.limit_id, c.claim_id, v.tile_ids, a.seg_model_version, a.crop_model_version, a.params_version
            FROM credit_limits l JOIN valuations a USING (valuation_id)
            JOIN verifications v ON v.verification_id = a.verification_id
            JOIN claims c ON c.claim_id = l.claim_id""").fetchall()
        n_limits = con.execute("SELECT count(*) FROM credit_limits").fetchone()[0]
        inputs = [json.loads(r[0]) for r in con.execute("SELECT inputs FROM valuations").fetchall()]
        tile_ids = {r[0] for r in con.execute("SELECT tile_id FROM tiles").fetchall()}
    assert len(rows) == n_limits
    assert inputs and all(i["crop_probs"] and i["tile_ids"] and i["verified_area_ha"] > 0 for i in inputs)
    for _, _, tiles, seg_v, crop_v, params_v in rows:
        assert tiles and set(tiles) <= tile_ids
        assert seg_v and crop_v and params_v


def test_bad_claims_are_rejected_with_stored_reasons(demo_db) -> None:
    db, _ = demo_db
    with duckdb.connect(str(db), read_only=True) as con:
        status = {name: (st, reason) for name, st, reason in
                  con.execute("SELECT name, status, reason FROM claim_status").fetchall()}
        codes = dict(con.execute("""
            SELECT c.name, list_sort(list(r->>'code')) FROM claims c JOIN latest_verifications v USING (claim_id),
            unnest(CAST(v.reasons AS JSON[])) AS t(r) WHERE CAST(r->>'blocking' AS BOOLEAN) GROUP BY c.name""").fetchall())
        raw_code = con.execute("SELECT reason_code FROM claims WHERE name = 'Bow-tie drawing'").fetchone()[0]
    assert status["Bow-tie drawing"][0] == "rejected" and raw_code == "self_intersection"
    assert status["Field outside the imagery"][0] == "rejected" and "no_imagery" in codes["Field outside the imagery"]
    assert status["Copy of a neighbour's field"][0] == "rejected" and "overlap" in codes["Copy of a neighbour's field"]
    assert status["Plot in town"][0] == "rejected"
    assert set(codes["Plot in town"]) & {"not_farmland", "not_cropland"}
    for name in ("Bow-tie drawing", "Plot in town", "Copy of a neighbour's field"):
        assert status[name][1], f"{name} has no stored reason"
    assert status["North barley"][0] in ("verified", "partial")


def test_clouds_are_masked_not_imputed(demo_db) -> None:
    db, _ = demo_db
    with duckdb.connect(str(db), read_only=True) as con:
        cloudy = con.execute("""
            SELECT o.valid_fraction, o.ndvi_mean FROM observations o JOIN tiles t USING (tile_id)
            WHERE t.cloud_fraction > 0.05 ORDER BY o.valid_fraction""").fetchall()
    assert cloudy and cloudy[0][0] < 0.5  # some claim lies under the cloud on that date


def test_alerts_reach_operations(demo_db) -> None:
    db, _ = demo_db
    out = run_cli("query", "alerts", "--db", str(db), "--format", "json", cwd=db.parent)
    assert out.returncode == 0, out.stderr
    alerts = json.loads(out.stdout)
    silent = [a for a in alerts if a["kind"] == "sensor_silent"]
    assert silent and silent[0]["device_id"] == "probe-003" and silent[0]["borrower_id"] == "farmer-003"
    with duckdb.connect(str(db), read_only=True) as con:  # details are JSON objects analysts can query
        kinds = dict(con.execute("SELECT kind, list(DISTINCT json_type(details)) FROM alerts GROUP BY 1").fetchall())
        assert all(t == ["OBJECT"] for t in kinds.values()), kinds
        assert con.execute("SELECT details->>'device_id' FROM alerts WHERE kind = 'sensor_silent'").fetchone()[0]
    with duckdb.connect(str(db), read_only=True) as con:
        drought_claim = con.execute("SELECT claim_id FROM claims WHERE name = 'Maize after drought'").fetchone()[0]
        value_reason = con.execute("SELECT reason FROM claim_status WHERE claim_id = ?", [drought_claim]).fetchone()[0]
    failures = [a for a in alerts if a["kind"] == "crop_failure"]
    assert [a["claim_id"] for a in failures] == [drought_claim]  # the one parcel whose canopy collapsed
    assert "canopy fell" in value_reason
    only = json.loads(run_cli("query", "alerts", "--db", str(db), "--kind", "sensor_silent", "--format", "json",
                              cwd=db.parent).stdout)
    assert {a["kind"] for a in only} == {"sensor_silent"}


def test_second_run_duplicates_nothing(demo_db) -> None:
    db, _ = demo_db
    before = counts(db)
    result = run_cli("demo", "--db", str(db), cwd=db.parent)
    assert result.returncode == 0, result.stderr[-3000:]
    assert counts(db) == before


def test_queries_json_and_csv(demo_db) -> None:
    db, _ = demo_db
    out = run_cli("query", "borrower", "farmer-001", "--db", str(db), "--format", "json", cwd=db.parent)
    assert out.returncode == 0, out.stderr
    detail = json.loads(out.stdout)
    assert detail["borrower"]["limit_cny"] > 0 and len(detail["claims"]) == 2
    assert any(step["step"] == "limit" for c in detail["claims"] for step in (c["limit_explanation"] or []))
    out = run_cli("query", "portfolio", "--db", str(db), "--format", "csv", cwd=db.parent)
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    assert {r["borrower_id"] for r in rows} >= {"farmer-001", "farmer-004"}
    assert float(next(r for r in rows if r["borrower_id"] == "farmer-004")["limit_cny"]) == 0
    missing = run_cli("query", "borrower", "nobody", "--db", str(db), cwd=db.parent)
    assert missing.returncode == 2 and missing.stderr.startswith("error: no borrower 'nobody'")


def test_claims_submit_verifies_and_bad_input_changes_nothing(demo_db, repo: Path, tmp_path: Path) -> None:
    db, _ = demo_db
    # A new borrower draws farmer-002's wheat field again: an overlap; and the grain maize for a
    # fresh borrower on an empty database is verified from scratch.
    fresh = tmp_path / "fresh.duckdb"
    maize = json.loads((repo / "sample_tiles/claims/farmer-003.geojson").read_text())
    maize["features"] = maize["features"][:1]
    f = tmp_path / "maize.geojson"
    f.write_text(json.dumps(maize))
    out = run_cli("claims", "submit", str(f), "--borrower", "farmer-xyz", "--db", str(fresh), "--date", "2016-09-30",
                  cwd=repo)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "verified" in out.stdout or "partial" in out.stdout
    before = counts(db)
    bad = tmp_path / "bad.geojson"
    bad.write_text("{ this is not json")
    out = run_cli("claims", "submit", str(bad), "--borrower", "farmer-xyz", "--db", str(db), cwd=repo)
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "not valid GeoJSON" in out.stderr
    assert counts(db) == before


def test_backfill_command_adds_limit_history(demo_db, repo: Path, tmp_path: Path) -> None:
    db, _ = demo_db
    copy = tmp_path / "assets.duckdb"
    shutil.copy(db, copy)
    shutil.copytree(db.parent / f"{db.stem}.segmentation", tmp_path / "assets.segmentation")  # cached masks
    out = run_cli("backfill", "--from", "2016-08-01", "--to", "2016-08-31", "--db", str(copy), cwd=repo)
    assert out.returncode == 0, out.stderr[-2000:]
    assert [s["as_of"] for s in json.loads(out.stdout)] == ["2016-08-12"]
    detail = json.loads(run_cli("query", "borrower", "farmer-001", "--db", str(copy), "--format", "json",
                                cwd=repo).stdout)
    assert [h["as_of"] for h in detail["limit_history"]][-2:] == ["2016-08-12", "2016-09-30"]
    reversed_range = run_cli("backfill", "--from", "2016-09-01", "--to", "2016-08-01", "--db", str(copy), cwd=repo)
    assert reversed_range.returncode == 2 and "swap --from and --to" in reversed_range.stderr


def test_flow_errors_from_bad_input_print_no_traceback(tmp_path: Path, repo: Path) -> None:
    """Prefect logs the failed run in one line; the traceback is only kept for real bugs."""
    (tmp_path / "tiles").mkdir()
    (tmp_path / "tiles" / "S2_X_20160101.tif").write_text("not a GeoTIFF")
    out = run_cli("nightly", "--tiles", str(tmp_path / "tiles"), "--db", str(tmp_path / "x.duckdb"), cwd=repo)
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines()[-1].startswith("error: ") and "not a readable GeoTIFF" in out.stderr


def test_cli_log_filter_keeps_tracebacks_of_real_bugs() -> None:
    import logging
    import sys

    from assets.cli import _NoTracebackForBadInput
    from assets.errors import ImageryError

    def record(exc: BaseException) -> logging.LogRecord:
        try:
            raise exc
        except BaseException:  # noqa: BLE001 - the record carries it
            return logging.LogRecord("prefect.flow_runs", logging.ERROR, __file__, 1, "failed", None, sys.exc_info())

    bad_input, bug = record(ImageryError("no tiles")), record(KeyError("oops"))
    assert _NoTracebackForBadInput().filter(bad_input) and bad_input.exc_info is None
    assert _NoTracebackForBadInput().filter(bug) and bug.exc_info is not None


def test_reasons_and_alerts_read_as_text(demo_db) -> None:
    """Tables show each claim's reason as sentences, not the stored JSON, and each alert names its field."""
    db, printed = demo_db
    assert '"blocking"' not in printed and '"code"' not in printed
    assert "ALERT crop_failure (Maize after drought): maize canopy fell" in printed
    with duckdb.connect(str(db), read_only=True) as con:
        reasons = dict(con.execute("SELECT name, reason FROM field_valuations").fetchall())
        status = dict(con.execute("SELECT name, reason FROM claim_status").fetchall())
    assert reasons == status and not any(r.lstrip().startswith("[") for r in reasons.values() if r)
    assert reasons["Maize by the road"].endswith("confirmed by 7 satellite dates")
    assert "already claimed" in reasons["Copy of a neighbour's field"]
    with duckdb.connect(str(db), read_only=True) as con:
        barley = con.execute("SELECT v.crop, v.reasons::VARCHAR FROM claims c JOIN latest_verifications v "
                             "USING (claim_id) WHERE c.name = 'North barley'").fetchone()
    assert barley[0] == "maize"  # the committed model's call, 47 % (README, "demo: named fields")
    with duckdb.connect(str(db), read_only=True) as con:
        texts = [r[0] for r in con.execute("SELECT reasons::VARCHAR FROM latest_verifications").fetchall()]
    assert texts and not any("ha of unknown" in t for t in texts)
    alerts = json.loads(run_cli("query", "alerts", "--db", str(db), "--format", "json", cwd=db.parent).stdout)
    named = {(a["kind"], a["claim_name"]) for a in alerts if a["claim_id"]}
    assert ("crop_failure", "Maize after drought") in named and ("harvest_reached", "Maize by the road") in named
    table = run_cli("query", "alerts", "--db", str(db), cwd=db.parent).stdout
    assert "field / device" in table and "probe-003" in table
    out = db.parent / "report.html"
    assert run_cli("report", "portfolio", "--db", str(db), "--out", str(out), cwd=db.parent).returncode == 0
    in_report = out.read_text().split('id="alerts"')[1]
    assert "<th>field / device</th>" in in_report and "<td>Maize after drought</td>" in in_report
    # the map frames the fields the bank may lend against, not the rejected drawing outside the imagery
    assert re.search(r'<p id="outside">\d rejected fields? l\w+ outside this view', out.read_text())
    with duckdb.connect(str(db), read_only=True) as con:  # the header counts the bow-tie, as claim_status does
        rejected = con.execute("SELECT count(*) FROM claim_status WHERE status = 'rejected'").fetchone()[0]
    assert f"Rejected fields <b>{rejected}</b>" in out.read_text()
