"""The night's report: tiles in, fields refreshed, limits changed, alerts, time per stage; stored and queryable."""

from __future__ import annotations

import json
import shutil
from datetime import date
from pathlib import Path

import duckdb
import pytest

from assets.config import Settings
from assets.errors import ImageryError
from assets.pipeline import register_claims
from tests.conftest import run_cli

pytestmark = pytest.mark.slow
AS_OF = date(2016, 9, 30)


def test_each_night_reports_what_came_in_and_what_changed(prefect_harness, repo: Path, tmp_path: Path) -> None:
    from assets.flows.nightly import NightlyConfig, run_nightly

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for p in (repo / "sample_tiles").glob("*.tif"):
        shutil.copy(p, inbox / p.name)
    shutil.copy(inbox / "S2_DK_20160812.tif", inbox / "S2_DK_20160812_resent.tif")  # same bytes, other name
    (inbox / "S2_DK_20160901.tif").write_bytes((inbox / "S2_DK_20160921.tif").read_bytes()[:40_000])  # corrupt
    db = tmp_path / "assets.duckdb"
    register_claims(db, repo / "sample_tiles/claims/farmer-001.geojson", "farmer-001", Settings(db_path=db))
    config = NightlyConfig(db_path=str(db), tiles_dir=str(inbox), as_of=AS_OF)

    first = run_nightly(config)["report"]
    assert first["status"] == "ok" and first["task_runner"] == "prefect default"
    assert (first["tiles_ingested"], first["tiles_duplicate"], first["tiles_quarantined"], first["tiles_known"]) == (
        7, 1, 1, 0)
    assert first["fields_refreshed"] == 2 and first["limits_changed"] == 2  # both fields got their first limit
    assert list(first["stage_s"]) == ["ingest", "segment", "assess"]
    second = run_nightly(config)["report"]
    assert (second["tiles_ingested"], second["tiles_known"], second["tiles_duplicate"]) == (0, 7, 1)
    assert second["fields_refreshed"] == 2 and second["limits_changed"] == 0 and second["alerts_raised"] == 0

    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute("SELECT run_id, status, tiles_ingested, limits_changed, ingest_s, assess_s, "
                           "assessment_run_id FROM run_overview").fetchall()
        assessed = {r[0] for r in con.execute("SELECT run_id FROM ingest_runs").fetchall()}
    assert [r[:4] for r in rows] == [(second["run_id"], "ok", 0, 0), (first["run_id"], "ok", 7, 2)]
    assert all(r[4] is not None and r[5] is not None for r in rows) and {r[6] for r in rows} == assessed

    # The commands in a child process, as operators run them (and Prefect's console here stays untouched).
    listed = run_cli("runs", "list", "--db", str(db), cwd=tmp_path)
    assert listed.returncode == 0 and first["run_id"] in listed.stdout and second["run_id"] in listed.stdout
    shown = run_cli("runs", "show", first["run_id"], "--db", str(db), cwd=tmp_path).stdout
    by_assessment = run_cli("runs", "show", rows[1][6], "--db", str(db), cwd=tmp_path)
    assert by_assessment.returncode == 0 and by_assessment.stdout == shown  # the r-... id the night prints first
    assert "7 ingested" in shown and "1 duplicate" in shown and "limits changed 2" in shown
    assert "quarantined S2_DK_20160901.tif" in shown and "time per stage: ingest" in shown
    detail = json.loads(run_cli("runs", "show", first["run_id"], "--db", str(db), "--format", "json",
                                cwd=tmp_path).stdout)
    assert [s["stage"] for s in detail["stages"]] == ["ingest", "segment", "assess"]
    assert len(detail["details"]["limit_changes"]) == 2 and detail["details"]["duplicates"][0]["source"].endswith(
        "S2_DK_20160812_resent.tif")
    missing = run_cli("runs", "show", "n-missing", "--db", str(db), cwd=tmp_path)
    assert missing.returncode == 2 and missing.stderr.startswith("error: no run n-missing")

def test_a_night_that_fails_is_reported_as_failed(prefect_harness, tmp_path: Path) -> None:
    from assets.flows.nightly import NightlyConfig, nightly

    db = tmp_path / "assets.duckdb"
    (tmp_path / "empty").mkdir()
    with pytest.raises(ImageryError, match="no GeoTIFF tiles"):
        nightly(NightlyConfig(db_path=str(db), tiles_dir=str(tmp_path / "empty"), as_of=AS_OF))
    with duckdb.connect(str(db), read_only=True) as con:
        (row,) = con.execute("SELECT status, message, finished_at IS NOT NULL FROM run_reports").fetchall()
        stages = con.execute("SELECT stage, status FROM run_stages").fetchall()
    assert row[0] == "failed" and "no GeoTIFF tiles" in row[1] and row[2]
    assert stages == [("ingest", "failed")]


def test_a_night_with_nothing_delivered_goes_on_with_the_catalogue(prefect_harness, demo_db, tmp_path: Path) -> None:
    """An empty inbox is a normal night: no new tiles, the fields are re-assessed with the tiles
    already catalogued and the run is ok, not failed."""
    from assets.flows.nightly import NightlyConfig, nightly

    db = tmp_path / "assets.duckdb"
    shutil.copy(demo_db[0], db)
    (tmp_path / "empty").mkdir()
    summary = nightly(NightlyConfig(db_path=str(db), tiles_dir=str(tmp_path / "empty"), as_of=AS_OF))
    assert summary["tiles"] == 7 and summary["verified"] > 0 and summary["report"]["tiles_ingested"] == 0
    with duckdb.connect(str(db), read_only=True) as con:
        status, stages = con.execute("SELECT status, (SELECT list(status) FROM run_stages s WHERE s.run_id = r.run_id) "
                                     "FROM run_reports r ORDER BY started_at DESC LIMIT 1").fetchone()
    assert status == "ok" and set(stages) == {"ok"}


def test_a_night_with_only_a_bad_tile_goes_on_and_a_future_night_is_refused(prefect_harness, demo_db, repo: Path,
                                                                            tmp_path: Path) -> None:
    """QA 2026-12-07: one bad tile alone in the inbox failed the whole night (report: 0 quarantined);
    `--date 2031-01-01` put every field into review and outranked every later real night."""
    from assets.errors import InputError
    from assets.flows.nightly import NightlyConfig, nightly

    db = tmp_path / "assets.duckdb"
    shutil.copy(demo_db[0], db)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "S2_DK_20161001_truncated.tif").write_bytes((repo / "sample_tiles" / "S2_DK_20160921.tif").read_bytes()[:5000])
    summary = nightly(NightlyConfig(db_path=str(db), tiles_dir=str(inbox), as_of=AS_OF))
    assert summary["report"]["tiles_quarantined"] == 1 and summary["tiles"] == 7 and summary["verified"] > 0
    with pytest.raises(InputError, match="is after today"):
        nightly(NightlyConfig(db_path=str(db), tiles_dir=str(inbox), as_of=date(2099, 1, 1)))
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM decisions WHERE valid_from > DATE '2030-01-01'").fetchone()[0] == 0


def test_a_new_claim_refused_is_not_a_limit_change() -> None:
    """Data QA 2026-12-07: the run report counted each newly rejected claim (nothing -> 0 CNY) as a change."""
    from assets.runs import Snapshot, limit_changes

    before = Snapshot(limits={"c-kept": 100.0, "c-cut": 500.0}, alerts=0)
    after = Snapshot(limits={"c-kept": 100.0, "c-cut": 0.0, "c-new": 300.0, "c-refused": 0.0}, alerts=0)
    assert [c["claim_id"] for c in limit_changes(before, after)] == ["c-cut", "c-new"]
