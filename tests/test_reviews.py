"""The review queue (#12): a drawing moved across fields waits for an officer and gets no limit;
approve / reject via the CLI and the API (officers only), stored with who and why.

The crop model is a stub (its own tests are in test_crop.py); segmentation and everything else is
the real pipeline on the bundled season.
"""

from __future__ import annotations

import copy
import json
from datetime import date
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from assets import access, pipeline
from assets.api.app import create_app
from assets.cli import main as cli_main
from assets.config import Settings
from assets.errors import InputError, NotFoundError
from assets.models import segment
from assets.reviews import Decision, decide
from assets.store import connect
from assets.store.queries import borrower

AS_OF = date(2016, 9, 30)


class StubCrop:
    version = "stub-crop-1"
    classes = ("wheat", "barley")

    def predict_proba(self, season) -> np.ndarray:
        return np.tile([0.9, 0.1], (len(season.x), 1))


@pytest.fixture(scope="module")
def models(repo: Path) -> pipeline.Models:
    return pipeline.Models(segmenter=segment.load(repo / "models" / "segment.pt"), crop=StubCrop())


@pytest.fixture
def stubbed(models, monkeypatch) -> pipeline.Models:
    monkeypatch.setattr(pipeline, "load_models", lambda settings: models)
    return models


def _moved_wheat(repo: Path, dlon: float = 0.002) -> dict:
    """farmer-002's winter wheat field moved ~125 m east, across three other fields."""
    feature = copy.deepcopy(json.loads((repo / "sample_tiles/claims/farmer-002.geojson").read_text())["features"][0])
    feature["geometry"]["coordinates"] = [[[x + dlon, y] for x, y in ring] for ring in feature["geometry"]["coordinates"]]
    feature["properties"]["name"] = "Moved wheat"
    return {"type": "FeatureCollection", "features": [feature]}


def _in_review(repo: Path, db: Path, models) -> tuple[Settings, str]:
    settings = Settings(db_path=db, tiles_dir=repo / "sample_tiles")
    (row,) = pipeline.submit_and_assess(settings, _moved_wheat(repo), "farmer-009", as_of=AS_OF, models=models)
    assert row["status"] == "review", row
    assert row["limit_cny"] is None and "follows no field" in row["reason"]
    return settings, row["claim_id"]


def test_a_moved_field_waits_for_review_without_a_limit(repo: Path, tmp_path: Path, stubbed) -> None:
    settings, cid = _in_review(repo, tmp_path / "r.duckdb", stubbed)
    with connect(settings.db_path) as con:
        detail = borrower(con, "farmer-009")
        assert detail["borrower"]["limit_cny"] == 0 and detail["borrower"]["claims_accepted"] == 0
        (claim,) = detail["claims"]
        assert claim["boundary"]["verdict"] == "mismatch" and claim["boundary"]["cut_fields"] >= 2
    # The nightly run keeps it waiting.
    pipeline.assess_claims(settings.db_path, as_of=AS_OF, settings=settings, models=stubbed)
    assert pipeline.claim_rows(settings.db_path, [cid])[0]["status"] == "review"


def test_cli_lists_and_approves(repo: Path, tmp_path: Path, stubbed, capsys) -> None:
    settings, cid = _in_review(repo, tmp_path / "r.duckdb", stubbed)
    assert cli_main(["claims", "review", "--db", str(settings.db_path), "--format", "json"]) == 0
    queue = json.loads(capsys.readouterr().out)
    assert [q["claim_id"] for q in queue] == [cid] and queue[0]["area_if_approved_ha"] > 0
    assert cli_main(["claims", "review", cid, "--approve", "--db", str(settings.db_path)]) == 2  # no note
    assert "note" in capsys.readouterr().err
    with pytest.raises(SystemExit) as usage:  # no decision: a usage error
        cli_main(["claims", "review", cid, "--db", str(settings.db_path), "--note", "x"])
    assert usage.value.code == 2 and "--approve or --reject" in capsys.readouterr().err
    assert cli_main(["claims", "review", cid, "--approve", "--note", "visited: one farm, hedges removed",
                     "--officer", "li", "--db", str(settings.db_path)]) == 0
    capsys.readouterr()
    row = pipeline.claim_rows(settings.db_path, [cid])[0]
    assert row["status"] in ("verified", "partial") and row["limit_cny"] > 0
    assert row["verified_area_ha"] == pytest.approx(queue[0]["area_if_approved_ha"])
    with connect(settings.db_path) as con:
        (decision,) = borrower(con, "farmer-009")["reviews"]
    assert (decision["decision"], decision["decided_by"], decision["note"]) == (
        "approve", "li", "visited: one farm, hedges removed")
    assert decision["reasons"] and decision["reasons"][-1]["code"] == "boundary_mismatch"
    assert cli_main(["claims", "review", "--db", str(settings.db_path), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert cli_main(["query", "borrower", "farmer-009", "--db", str(settings.db_path)]) == 0
    assert "Review decisions" in capsys.readouterr().out


def test_rejected_stays_rejected(repo: Path, tmp_path: Path, stubbed) -> None:
    settings, cid = _in_review(repo, tmp_path / "r.duckdb", stubbed)
    row = decide(settings, Decision(cid, "reject", "the neighbour's wheat", "li"))
    assert row["status"] == "rejected" and row["limit_cny"] is None and "neighbour's wheat" in row["reason"]
    pipeline.assess_claims(settings.db_path, as_of=AS_OF, settings=settings, models=stubbed)
    assert pipeline.claim_rows(settings.db_path, [cid])[0]["status"] == "rejected"
    with pytest.raises(InputError, match="not waiting for review"):
        decide(settings, Decision(cid, "approve", "changed my mind", "li"))
    with pytest.raises(NotFoundError):
        decide(settings, Decision("c-missing", "approve", "ok", "li"))


def test_api_reviews_are_for_officers(repo: Path, tmp_path: Path, stubbed) -> None:
    settings, cid = _in_review(repo, tmp_path / "r.duckdb", stubbed)
    with connect(settings.db_path) as con:
        access.add_user(con, "li", "officer")
        access.add_user(con, "wang", "farmer", "farmer-009")
        officer = {"Authorization": f"Bearer {access.issue_token(con, 'li', days=1).secret}"}
        farmer = {"Authorization": f"Bearer {access.issue_token(con, 'wang', days=1).secret}"}
    with TestClient(create_app(settings, api_keys=[])) as c:
        assert c.get("/reviews", headers=farmer).status_code == 403
        assert c.post(f"/reviews/{cid}", json={"decision": "approve", "note": "mine"}, headers=farmer).status_code == 403
        assert c.get("/reviews").status_code == 401
        assert [q["claim_id"] for q in c.get("/reviews", headers=officer).json()] == [cid]
        assert c.post(f"/reviews/{cid}", json={"decision": "maybe", "note": "x"}, headers=officer).status_code == 422
        assert c.post("/reviews/c-missing", json={"decision": "approve", "note": "x"}, headers=officer).status_code == 404
        r = c.post(f"/reviews/{cid}", json={"decision": "approve", "note": "survey map checked"}, headers=officer)
        assert r.status_code == 200, r.text
        assert r.json()["status"] in ("verified", "partial") and r.json()["limit_cny"] > 0
        again = c.post(f"/reviews/{cid}", json={"decision": "reject", "note": "x"}, headers=officer)
        assert again.status_code == 422 and "not waiting for review" in again.json()["error"]
        history = c.get("/borrowers/farmer-009", headers=farmer).json()["reviews"]
        assert [(h["decision"], h["decided_by"], h["note"]) for h in history] == [("approve", "li", "survey map checked")]
