"""The nightly Prefect flow: as-of dates select tiles, history is kept, re-runs are idempotent."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
import pytest

from assets.config import Settings
from assets.errors import ImageryError
from assets.pipeline import register_claims

pytestmark = pytest.mark.slow


def test_nightly_uses_only_tiles_up_to_as_of_and_keeps_history(prefect_harness, repo: Path, db_path: Path) -> None:
    from flows.nightly import NightlyConfig, nightly

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
    from flows.nightly import NightlyConfig, nightly

    with pytest.raises(ImageryError, match="no GeoTIFF tiles"):
        nightly(NightlyConfig(db_path=str(db_path), tiles_dir=str(tmp_path)))


def test_nightly_deployment_runs_at_two_with_settings_from_the_environment(monkeypatch, tmp_path: Path) -> None:
    from flows.nightly import deployment

    monkeypatch.setenv("ASSETS_DB", str(tmp_path / "prod.duckdb"))
    monkeypatch.setenv("ASSETS_BROKER", "mqtt://ingester:secret@127.0.0.1:1883")
    d = deployment()
    assert d.name == "nightly" and [s.schedule.cron for s in d.schedules] == ["0 2 * * *"]
    config = d.parameters["config"]
    assert config["db_path"] == str(tmp_path / "prod.duckdb") and config["broker_url"].startswith("mqtt://")
