"""The nightly Prefect flow: as-of dates select tiles, history is kept, re-runs are idempotent."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import duckdb
import pytest

from assets.config import Settings
from assets.errors import ImageryError
from assets.pipeline import register_claims

pytestmark = pytest.mark.slow


def test_nightly_uses_only_tiles_up_to_as_of_and_keeps_history(prefect_harness, repo: Path, db_path: Path) -> None:
    from assets.flows.nightly import NightlyConfig, nightly

    register_claims(db_path, repo / "sample_tiles/claims/farmer-001.geojson", "farmer-001", Settings(db_path=db_path))
    tiles = str(repo / "sample_tiles")
    early = nightly(NightlyConfig(db_path=str(db_path), tiles_dir=tiles, as_of=date(2016, 3, 31)))
    assert early["tiles"] == 2 and early["rejected"] == early["claims"] == 2  # two dates are not enough
    late = nightly(NightlyConfig(db_path=str(db_path), tiles_dir=tiles, as_of=date(2016, 9, 30)))
    assert late["tiles"] == 7 and late["rejected"] == 0
    again = nightly(NightlyConfig(db_path=str(db_path), tiles_dir=tiles, as_of=date(2016, 9, 30)))
    assert again["verified"] == late["verified"]
    with duckdb.connect(str(db_path), read_only=True) as con:
        per_claim = con.execute("SELECT claim_id, count(*) FROM verifications GROUP BY 1").fetchall()
        latest = con.execute("SELECT DISTINCT as_of FROM latest_verifications").fetchall()
        reasons = con.execute("SELECT reasons FROM verifications WHERE as_of = DATE '2016-03-31'").fetchall()
        runs = con.execute("SELECT count(*) FROM ingest_runs WHERE status = 'ok'").fetchone()[0]
    assert all(n == 2 for _, n in per_claim)  # one verdict per as-of date, none duplicated by the re-run
    assert latest == [(date(2016, 9, 30),)]
    assert all("insufficient_imagery" in r for (r,) in reasons)
    assert runs == 3


def test_nightly_on_an_empty_folder_fails_clearly(prefect_harness, tmp_path: Path, db_path: Path) -> None:
    from assets.flows.nightly import NightlyConfig, nightly

    with pytest.raises(ImageryError, match="no GeoTIFF tiles"):
        nightly(NightlyConfig(db_path=str(db_path), tiles_dir=str(tmp_path)))


def test_nightly_deployment_runs_at_two_with_settings_from_the_environment(monkeypatch, tmp_path: Path) -> None:
    from assets.flows.nightly import deployment

    monkeypatch.setenv("ASSETS_DB", str(tmp_path / "prod.duckdb"))
    monkeypatch.setenv("ASSETS_BROKER", "mqtt://ingester:secret@127.0.0.1:1883")
    monkeypatch.setenv("ASSETS_TIMEZONE", "Asia/Shanghai")
    d = deployment()
    assert d.name == "nightly" and [s.schedule.cron for s in d.schedules] == ["0 2 * * *"]
    assert [s.schedule.timezone for s in d.schedules] == ["Asia/Shanghai"]  # 02:00 at the bank, not 02:00 UTC
    config = d.parameters["config"]
    assert config["db_path"] == str(tmp_path / "prod.duckdb") and config["broker_url"] == "env:ASSETS_BROKER"
    assert "secret" not in repr(d.parameters)  # ops QA 2026-12-08: the ingester's password was in every run


def test_backfill_assesses_each_image_date_once_and_keeps_the_current_verdict(
    prefect_harness, repo: Path, db_path: Path
) -> None:
    from assets.flows.backfill import BackfillConfig, backfill
    from assets.flows.nightly import NightlyConfig, nightly
    from assets.store.db import connect
    from assets.store.queries import borrower

    register_claims(db_path, repo / "sample_tiles/claims/farmer-001.geojson", "farmer-001", Settings(db_path=db_path))
    tiles = str(repo / "sample_tiles")
    nightly(NightlyConfig(db_path=str(db_path), tiles_dir=tiles, as_of=date(2016, 9, 30)))
    spring = BackfillConfig(start=date(2016, 4, 1), end=date(2016, 6, 30), db_path=str(db_path), tiles_dir=tiles)
    summaries = backfill(spring)
    # One assessment per acquisition date in the range, each seeing only the tiles up to it.
    assert [(s["as_of"], s["tiles"]) for s in summaries] == [("2016-04-14", 3), ("2016-05-16", 4), ("2016-06-25", 5)]
    with duckdb.connect(str(db_path), read_only=True) as con:
        counts = con.execute("SELECT (SELECT count(*) FROM verifications), (SELECT count(*) FROM credit_limits)").fetchone()
    backfill(spring)  # idempotent: the same ids, nothing stored twice
    with connect(db_path) as con:
        again = con.execute("SELECT (SELECT count(*) FROM verifications), (SELECT count(*) FROM credit_limits)").fetchone()
        as_ofs = con.execute("SELECT DISTINCT as_of FROM verifications ORDER BY 1").fetchall()
        current = con.execute("SELECT DISTINCT as_of FROM latest_verifications").fetchall()
        runs = con.execute("SELECT count(*) FROM ingest_runs WHERE kind = 'backfill'").fetchone()[0]
        history = [str(h["as_of"]) for h in borrower(con, "farmer-001")["limit_history"]]
    assert again == counts
    assert [d for (d,) in as_ofs] == [date(2016, 4, 14), date(2016, 5, 16), date(2016, 6, 25), date(2016, 9, 30)]
    assert current == [(date(2016, 9, 30),)]  # the backfilled past does not replace today's verdict
    assert runs == 6  # every run is logged, re-runs included
    assert history == ["2016-04-14", "2016-05-16", "2016-06-25", "2016-09-30"]  # the credit team's limit history
    with duckdb.connect(str(db_path), read_only=True) as con:  # each backfill leaves a report, like a night
        reports = con.execute("SELECT status, fields_refreshed, limits_changed, details FROM run_reports "
                              "WHERE kind = 'backfill' ORDER BY started_at").fetchall()
        stages = con.execute("SELECT DISTINCT stage FROM run_stages JOIN run_reports USING (run_id) "
                             "WHERE kind = 'backfill' ORDER BY 1").fetchall()
    assert [r[:3] for r in reports] == [("ok", 6, 0), ("ok", 6, 0)]  # the past does not change today's limits
    assert json.loads(reports[0][3])["range"] == ["2016-04-01", "2016-06-30"]
    assert stages == [("assess",), ("ingest",), ("segment",)]


def test_backfill_rejects_a_reversed_or_empty_range(prefect_harness, repo: Path, db_path: Path) -> None:
    from assets.errors import InputError
    from assets.flows.backfill import BackfillConfig, backfill

    tiles = str(repo / "sample_tiles")
    with pytest.raises(InputError, match="swap --from and --to"):
        BackfillConfig(start=date(2016, 9, 30), end=date(2016, 4, 1), db_path=str(db_path), tiles_dir=tiles)
    with pytest.raises(InputError, match="widen the range"):
        backfill(BackfillConfig(start=date(2016, 7, 1), end=date(2016, 7, 31), db_path=str(db_path), tiles_dir=tiles))
    with duckdb.connect(str(db_path), read_only=True) as con:
        (status, message), = con.execute("SELECT status, message FROM run_reports WHERE kind = 'backfill'").fetchall()
    assert status == "failed" and "widen the range" in message
