"""Alerts that repeat show once, drift and drought close when a later night no longer finds them,
and a person can resolve any alert with a note (CLI and API), kept with who and when."""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from assets import access
from assets.api.app import create_app
from assets.cli import main as cli_main
from assets.config import Settings
from assets.sensors.evidence import alerts
from assets.sensors.ingest import store_batch
from assets.sensors.registry import register_devices_file
from assets.sensors.replay import read_messages
from assets.store.db import connect
from assets.store.queries import alerts as open_alerts
from tests.test_sensors import store_alerts

SAMPLE = Path(__file__).resolve().parents[1] / "sample_tiles" / "sensors"


def _night(con, as_of: date) -> None:  # type: ignore[no-untyped-def]
    """What an assessment does for devices: store the night's alerts and an `ok` run at that day."""
    store_alerts(con, alerts(con, as_of))
    con.execute("INSERT INTO ingest_runs (run_id, kind, started_at, status, as_of) VALUES (?, 'nightly', now(), 'ok', ?)",
                [f"r-{as_of}", as_of])


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "db.duckdb"
    with connect(path) as con:
        register_devices_file(con, SAMPLE / "devices.json")
        messages, _ = read_messages(SAMPLE / "readings.csv")
        store_batch(con, [(m.topic, m.payload) for m in messages])
    return path


def _open(con) -> list[tuple[str, str, date]]:  # type: ignore[no-untyped-def]
    return sorted((a["kind"], a["device_id"], a["as_of"]) for a in open_alerts(con))


def test_a_repeated_alert_shows_once_and_a_drought_waits_for_a_person(db: Path) -> None:
    with connect(db) as con:
        _night(con, date(2016, 9, 29))
        _night(con, date(2016, 9, 30))  # the same silence (same alert) and the same drought, one day on
        assert con.execute("SELECT count(*) FROM alerts WHERE kind = 'drought'").fetchone()[0] == 2  # both kept
        assert _open(con) == [("drought", "probe-002", date(2016, 9, 30)), ("sensor_silent", "probe-003", date(2016, 9, 29))]
        # a later night that raised no drought may only lack the readings to judge (QA 2026-12-07: a
        # claim assessed a day past the last reading closed another borrower's drought): it stays open
        _night(con, date(2016, 10, 2))
        assert ("drought", "probe-002", date(2016, 9, 30)) in _open(con)


def test_resolve_an_alert_from_the_cli(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with connect(db) as con:
        _night(con, date(2016, 9, 29))
    assert cli_main(["query", "alerts", "--db", str(db)]) == 0
    listing = capsys.readouterr().out
    assert "alert" in listing.splitlines()[0]
    with connect(db) as con:
        drought = [a for a in open_alerts(con) if a["kind"] == "drought"][0]["alert_id"]
    assert drought in listing  # the id an operator copies

    assert cli_main(["alerts", "resolve", drought, "--note", "irrigation repaired", "--by", "ops-li", "--db", str(db)]) == 0
    assert "resolved by ops-li" in capsys.readouterr().out
    with connect(db) as con:
        assert [a["kind"] for a in open_alerts(con)] == ["sensor_silent"]
        assert con.execute("SELECT resolved_by, channel, note FROM alert_resolutions").fetchall() == [
            ("ops-li", "cli", "irrigation repaired")]
        assert con.execute("SELECT user_name, action, target FROM audit_log").fetchall() == [
            ("ops-li", "alerts resolve", drought)]
        _night(con, date(2016, 9, 30))  # the soil is still dry a night later: a new alert, listed again
        assert ("drought", "probe-002", date(2016, 9, 30)) in _open(con)

    # bad input: one line, exit 2, nothing stored
    for argv, says in ((["alerts", "resolve", drought, "--note", "again"], "already resolved by ops-li"),
                       (["alerts", "resolve", "a-0000000000000000", "--note", "x"], "no alert 'a-0000000000000000'"),
                       (["alerts", "resolve", drought, "--note", "   "], "needs a note"),
                       (["alerts", "resolve", drought, "--note", "x" * 501], "under 500")):
        assert cli_main([*argv, "--db", str(db)]) == 2
        assert says in capsys.readouterr().err
    missing = db.parent / "typo.duckdb"
    assert cli_main(["alerts", "resolve", drought, "--note", "x", "--db", str(missing)]) == 2
    assert "no database at" in capsys.readouterr().err and not missing.exists()
    with connect(db) as con:
        assert con.execute("SELECT count(*) FROM alert_resolutions").fetchone()[0] == 1


def test_an_alert_no_longer_open_cannot_be_resolved(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with connect(db) as con:
        _night(con, date(2016, 9, 29))
        old = [a for a in open_alerts(con) if a["kind"] == "drought"][0]["alert_id"]
        _night(con, date(2016, 9, 30))  # replaced by the next night's drought alert
    assert cli_main(["alerts", "resolve", old, "--note", "x", "--db", str(db)]) == 2
    assert "no longer open" in capsys.readouterr().err


def test_operations_resolve_an_alert_over_the_api(db: Path) -> None:
    with connect(db) as con:
        _night(con, date(2016, 9, 30))
        silent = [a for a in open_alerts(con) if a["kind"] == "sensor_silent"][0]["alert_id"]
        access.add_user(con, "ops", "operations")
        access.add_user(con, "wang", "farmer", "farmer-001")
        ops = {"Authorization": f"Bearer {access.issue_token(con, 'ops', days=1).secret}"}
        farmer = {"Authorization": f"Bearer {access.issue_token(con, 'wang', days=1).secret}"}
    with TestClient(create_app(Settings(db_path=db), api_keys=[])) as c:
        assert c.post(f"/alerts/{silent}/resolve", json={"note": "x"}, headers=farmer).status_code == 403
        bad = c.post(f"/alerts/{silent}/resolve", json={"comment": "x"}, headers=ops)
        assert bad.status_code == 422 and '"note"' in bad.json()["error"]
        assert c.post("/alerts/a-nope/resolve", json={"note": "x"}, headers=ops).status_code == 404
        r = c.post(f"/alerts/{silent}/resolve", json={"note": "battery replaced"}, headers=ops)
        assert r.status_code == 200, r.text
        assert (r.json()["resolved_by"], r.json()["resolution_note"], r.json()["open"]) == ("ops", "battery replaced", False)
        assert silent not in {a["alert_id"] for a in c.get("/alerts", headers=ops).json()}
        again = c.post(f"/alerts/{silent}/resolve", json={"note": "x"}, headers=ops)
        assert again.status_code == 422 and "already resolved by ops" in again.json()["error"]
    with connect(db) as con:
        assert con.execute("SELECT resolved_by, channel FROM alert_resolutions").fetchall() == [("ops", "api")]
    assert json.loads(json.dumps(r.json()))  # plain JSON
    assert isinstance(datetime.fromisoformat(r.json()["resolved_at"]), datetime)


def test_an_alert_about_a_rejected_field_is_not_listed(db: Path) -> None:
    """QA 2026-12-07: a harvest alert stayed open on a field an officer had rejected (limit 0)."""
    with connect(db) as con:
        con.execute("INSERT INTO alerts (alert_id, kind, borrower_id, claim_id, device_id, raised_at, as_of, message) "
                    "VALUES ('a-harvest', 'harvest_reached', 'farmer-001', 'c-1', NULL, now(), DATE '2016-09-30', 'x')")
        assert "a-harvest" in {a["alert_id"] for a in open_alerts(con)}
        con.execute("INSERT INTO current_decisions (claim_id, decision_seq, decision_id, borrower_id, verification_id, "
                    "valid_from, recorded_at, status, limit_cny, params_version, reasons) VALUES ('c-1', 1, 'dec-1', "
                    "'farmer-001', 'v-1', DATE '2016-09-30', now(), 'rejected', 0, 't', '[]')")
        assert "a-harvest" not in {a["alert_id"] for a in open_alerts(con)}
