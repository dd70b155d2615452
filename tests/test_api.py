"""HTTP API: auth on every resource, the same answers as the CLI, clear JSON errors."""

from __future__ import annotations

import json
import shutil
from datetime import date
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from assets.api.app import create_app
from assets.config import Settings

pytestmark = pytest.mark.slow
KEY = {"X-API-Key": "test-key-0123456789abcdef-ok"}


@pytest.fixture
def client(demo_db, tmp_path: Path):
    db = tmp_path / "api.duckdb"
    shutil.copy(demo_db[0], db)  # writes in these tests never touch the shared demo database
    # the bundled season's day, as `assets serve --as-of 2016-09-30`: farmers never choose the date
    with TestClient(create_app(Settings(db_path=db, as_of=date(2016, 9, 30)), api_keys=["test-key-0123456789abcdef-ok"])) as c:
        yield c


def test_every_resource_needs_a_key(client: TestClient) -> None:
    """ASSETS_API_KEYS entries are officer keys (every route and role: test_api_roles.py)."""
    assert client.get("/health").status_code == 200
    for path in ("/portfolio", "/borrowers/farmer-001", "/alerts"):
        r = client.get(path)
        assert r.status_code == 401 and "Authorization: Bearer" in r.json()["error"]
        assert client.get(path, headers={"X-API-Key": "wrong"}).status_code == 401
        assert client.get(path, headers={"Authorization": "Bearer test-key-0123456789abcdef-ok"}).status_code == 200
    assert client.get("/me", headers=KEY).json()["role"] == "officer"


def test_portfolio_borrower_and_alerts(client: TestClient) -> None:
    rows = client.get("/portfolio", headers=KEY).json()
    assert {r["borrower_id"] for r in rows} == {"farmer-001", "farmer-002", "farmer-003", "farmer-004"}
    detail = client.get("/borrowers/farmer-001", headers=KEY).json()
    assert detail["borrower"]["limit_cny"] == next(r for r in rows if r["borrower_id"] == "farmer-001")["limit_cny"]
    assert all(c["limit_explanation"] for c in detail["claims"] if c["limit_cny"])
    missing = client.get("/borrowers/nobody", headers=KEY)
    assert missing.status_code == 404 and "no borrower" in missing.json()["error"]
    kinds = {a["kind"] for a in client.get("/alerts", headers=KEY).json()}
    assert "sensor_silent" in kinds


def test_farmer_submits_a_drawing(client: TestClient, repo: Path) -> None:
    doc = json.loads((repo / "sample_tiles/claims/farmer-002.geojson").read_text())
    doc["features"] = doc["features"][:1]  # the winter wheat field, already claimed by farmer-002
    r = client.post("/borrowers/farmer-new/claims?as_of=2016-09-30", json=doc, headers=KEY)
    assert r.status_code == 201, r.text
    (verdict,) = r.json()
    assert verdict["status"] == "rejected" and "already claimed" in verdict["reason"]
    assert "overlap" in {r["code"] for r in verdict["reasons"]}  # by code too, for the map's Chinese wording
    ring = doc["features"][0]["geometry"]["coordinates"][0]
    doc["features"][0]["geometry"]["coordinates"] = [ring[:-1]]  # the ring left open
    (unclosed,) = client.post("/borrowers/farmer-new/claims", json=doc, headers=KEY).json()
    assert unclosed["status"] == "rejected" and [r["code"] for r in unclosed["reasons"]] == ["unclosed_ring"]
    shapes = {f["id"]: f for f in client.get("/borrowers/farmer-new/fields", headers=KEY).json()["features"]}
    assert shapes[unclosed["claim_id"]]["geometry"] is None  # listed with its reason, never drawn on the map
    assert shapes[unclosed["claim_id"]]["properties"]["reason"] and shapes[verdict["claim_id"]]["geometry"]
    bad = client.post("/borrowers/farmer-new/claims", json={"type": "FeatureCollection", "features": []}, headers=KEY)
    assert bad.status_code == 422 and "no features" in bad.json()["error"]


def test_a_request_reading_does_not_block_a_submission_writing(demo_db, tmp_path: Path, repo: Path) -> None:
    """The map's image loads while the farmer submits: one process, one database instance."""
    from datetime import date

    from assets.api.deps import read_db
    from assets.pipeline import submit_and_assess
    from assets.store import connect

    db = tmp_path / "rw.duckdb"
    shutil.copy(demo_db[0], db)
    reading = read_db(Settings(db_path=db))
    con = next(reading)
    try:
        with connect(db, retry_s=0.5) as writer:
            writer.execute("INSERT INTO borrowers (borrower_id) VALUES ('while-reading')")
        assert con.execute("SELECT count(*) FROM borrowers WHERE borrower_id = 'while-reading'").fetchall() == [(1,)]
        doc = json.loads((repo / "sample_tiles/claims/farmer-001.geojson").read_text())
        rows = submit_and_assess(Settings(db_path=db), doc, "farmer-001", as_of=date(2016, 9, 30))
        assert [r["status"] for r in rows] == ["verified", "verified"]
    finally:
        reading.close()


def test_a_farmer_signed_in_by_link_files_only_their_own_claims(client: TestClient, repo: Path) -> None:
    from assets import access
    from assets.store import connect

    settings = client.app.state.settings
    with connect(settings.db_path) as con:
        access.add_user(con, "wang", "farmer", "farmer-001")
        link, _ = access.issue_link(con, "wang", settings)
    token = client.post("/auth/exchange", json={"code": link.secret}).json()["token"]
    farmer = {"Authorization": f"Bearer {token}"}
    doc = json.loads((repo / "sample_tiles/claims/farmer-001.geojson").read_text())
    r = client.post("/borrowers/farmer-001/claims", json=doc, headers=farmer)
    assert r.status_code == 201 and [c["status"] for c in r.json()] == ["verified", "verified"], r.text
    assert client.post("/borrowers/farmer-002/claims", json=doc, headers=farmer).status_code == 404
    assert client.get("/borrowers/farmer-002", headers=farmer).status_code == 404
    assert client.get("/portfolio", headers=farmer).status_code == 403
    assert client.get("/borrowers/farmer-001", headers=farmer).json()["borrower"]["claims"] >= 2
