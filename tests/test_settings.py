"""The one Settings object (pydantic-settings): keywords, ASSETS_<FIELD>, the short names, bad values."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from assets.cli import main as cli_main
from assets.config import Settings, describe_invalid, settings


def test_every_field_can_come_from_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("ASSETS_MAX_AREA_HA", "500")
    monkeypatch.setenv("ASSETS_BOUNDARY_MIN_EDGE_CONTRAST", "0.55")
    monkeypatch.setenv("ASSETS_DASK_PROCESSES", "0")
    s = Settings()
    assert (s.max_area_ha, s.boundary_min_edge_contrast, s.dask_processes) == (500.0, 0.55, False)
    assert Settings(max_area_ha=10).max_area_ha == 10.0  # a keyword wins over the environment


def test_the_short_names_are_kept(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ASSETS_DB", str(tmp_path / "prod.duckdb"))
    monkeypatch.setenv("ASSETS_TILES", "s3://bank-imagery/inbox")
    monkeypatch.setenv("ASSETS_BROKER", "mqtt://broker:1883")
    monkeypatch.setenv("ASSETS_SNAPSHOT", "0")
    s = Settings()
    assert s.db_path == tmp_path / "prod.duckdb" and s.broker_url == "mqtt://broker:1883" and not s.snapshot_enabled
    assert s.tiles_source == "s3://bank-imagery/inbox" and s.tiles_url == "s3://bank-imagery/inbox"
    assert settings(db_path=None).db_path == tmp_path / "prod.duckdb"  # an unset CLI option keeps the environment
    monkeypatch.setenv("ASSETS_BROKER", "")
    assert Settings().broker_url is None  # empty is unset
    monkeypatch.setenv("ASSETS_DB_PATH", "/elsewhere.duckdb")  # the long form of an aliased field is not read
    assert Settings().db_path == tmp_path / "prod.duckdb"


def test_settings_are_frozen_and_unknown_ones_refused() -> None:
    s = Settings()
    with pytest.raises(ValidationError):
        s.max_area_ha = 1.0  # type: ignore[misc]
    with pytest.raises(ValidationError, match="max_aera_ha"):
        Settings(max_aera_ha=1.0)  # type: ignore[call-arg]
    assert s.model_copy(update={"max_area_ha": 1.0}).max_area_ha == 1.0 and s.max_area_ha == 2000.0


def test_a_bad_value_from_the_environment_is_named_with_its_variable(monkeypatch, capsys) -> None:
    monkeypatch.setenv("ASSETS_MAX_AREA_HA", "lots")
    with pytest.raises(ValidationError) as err:
        Settings()
    assert describe_invalid(err.value).startswith("setting max_area_ha (ASSETS_MAX_AREA_HA) = 'lots'")
    assert cli_main(["runs", "list"]) == 2
    assert "ASSETS_MAX_AREA_HA" in capsys.readouterr().err


def test_officer_api_keys_come_from_settings_and_stay_secret(monkeypatch, tmp_path: Path) -> None:
    """ASSETS_API_KEYS is read by Settings (not by the API), blanks dropped, never shown in a repr;
    the app built from those settings accepts exactly those keys."""
    from fastapi.testclient import TestClient

    from assets.api.app import create_app

    monkeypatch.setenv("ASSETS_API_KEYS", " key-one-0123456789abcdef ,, key-two-0123456789abcdef ")
    s = Settings(db_path=tmp_path / "keys.duckdb")
    assert s.officer_api_keys == ("key-one-0123456789abcdef", "key-two-0123456789abcdef")
    assert "key-one" not in repr(s) and "key-one" not in str(s.model_dump())
    assert Settings(api_keys="").officer_api_keys == ()
    with TestClient(create_app(s)) as client:
        assert client.get("/me", headers={"X-API-Key": "key-two-0123456789abcdef"}).json()["role"] == "officer"
        assert client.get("/me", headers={"X-API-Key": "key-three"}).status_code == 401


def test_today_is_the_banks_date(monkeypatch) -> None:
    """Code review 2026-12-07: "today" was the server's local date in seven places; for a bank in
    UTC+8 a UTC server's today is yesterday until 08:00, and today's date was refused as the future."""
    from datetime import date, datetime
    from zoneinfo import ZoneInfo

    assert Settings(as_of=date(2016, 9, 30)).today() == date(2016, 9, 30)  # a replayed season
    for zone in ("UTC", "Asia/Shanghai", "Pacific/Kiritimati"):
        before = datetime.now(ZoneInfo(zone)).date()
        assert Settings(timezone=zone).today() in (before, datetime.now(ZoneInfo(zone)).date())
    with pytest.raises(ValidationError, match="not an IANA time zone"):
        Settings(timezone="Mars/Olympus")
    monkeypatch.setenv("ASSETS_TIMEZONE", "Asia/Shanghai")
    assert settings().timezone == "Asia/Shanghai"


def test_verification_thresholds_are_settings() -> None:
    """Code review 2026-12-07: the coverage, usable-date and partial thresholds were constants in verify.py."""
    from assets.verify import verify_claim
    from tests.test_verify_valuation import observation

    def verdict(**kw):
        return verify_claim(claim_id="c1", claimed_area_ha=10.0, observation=observation(), overlap_area_ha=0.0,
                            sensor_evidence=None, settings=Settings(**kw))

    assert verdict().status == "verified"
    assert verdict(partial_below=0.95).status == "partial"  # 9 of 10 ha planted
    assert "insufficient_imagery" in [r.code for r in verdict(min_usable_dates=10).reasons]
    assert "no_imagery" in [r.code for r in verify_claim(
        claim_id="c1", claimed_area_ha=10.0, observation=observation(coverage=0.97), overlap_area_ha=0.0,
        sensor_evidence=None, settings=Settings(min_imagery_coverage=0.99)).reasons]
