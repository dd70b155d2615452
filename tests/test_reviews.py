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

import duckdb
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
from assets.store.credit import exposure_by, portfolio
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
        assert detail["borrower"]["claims_in_review"] == 1  # waiting, not "accepted 0, rejected 0" only
        (claim,) = detail["claims"]
        assert claim["boundary"]["verdict"] == "mismatch" and claim["boundary"]["cut_fields"] >= 2
        # the area the imagery measured is shown on the claim, but no face counts it as verified land
        assert claim["measured_area_ha"] > 1 and claim["verified_area_ha"] is None  # not verified (data QA)
        assert detail["borrower"]["verified_area_ha"] == 0
        assert claim["limit_cny"] is None and claim["value_cny"] is None  # no value yet, not a value of 0
        rows, totals = portfolio(con)
        assert [r["verified_area_ha"] for r in rows] == [0] and totals["verified_area_mu"] == 0
        assert [r["claims_in_review"] for r in rows] == [1] and totals["claims_in_review"] == 1
        assert [(e["status"], e["area_ha"]) for e in exposure_by(con, "status")] == [("review", 0)]
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
        audited = con.execute("SELECT user_name, role, action, target FROM audit_log "
                              "WHERE action LIKE 'claims review%'").fetchall()
    assert (decision["decision"], decision["decided_by"], decision["note"]) == (
        "approve", "li", "visited: one farm, hedges removed")
    assert audited == [("li", "cli", "claims review --approve", cid)]  # the CLI's decisions are in the audit log too
    assert decision["reasons"] and decision["reasons"][-1]["code"] == "boundary_mismatch"
    from assets.report import render

    with connect(settings.db_path) as con:  # the report's "why" of the change is the officer's decision
        changes = render(con).split('id="changes"')[1].split("</table>")[0]
    assert "approved by credit officer li" in changes and "haircut" not in changes
    assert cli_main(["audit", "verify", "--db", str(settings.db_path)]) == 0  # the decision records who and why
    capsys.readouterr()
    with connect(settings.db_path) as con:  # who approved it, rewritten by hand: the log says otherwise
        con.execute("UPDATE claim_reviews SET decided_by = 'wang', note = 'approved after a site visit'")
    assert cli_main(["audit", "verify", "--db", str(settings.db_path)]) == 1
    assert "matches no logged decision" in capsys.readouterr().out
    with connect(settings.db_path) as con:
        con.execute("UPDATE claim_reviews SET decided_by = 'li', note = 'visited: one farm, hedges removed'")
    assert cli_main(["claims", "review", "--db", str(settings.db_path), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert cli_main(["claims", "review", "--db", str(settings.db_path)]) == 0
    assert capsys.readouterr().out.strip() == "No claim is waiting for review."  # not an empty table
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
        bare = c.post(f"/reviews/{cid}", json={"decision": "approve"}, headers=officer)
        assert bare.status_code == 422 and 'needs a "note"' in bare.json()["error"]
        garbled = c.post(f"/reviews/{cid}", content=b"approve it", headers=officer)
        assert garbled.status_code == 422 and '"decision"' in garbled.json()["error"]
        assert "GeoJSON" not in garbled.json()["error"]  # says what this route wants, not what a claim wants
        r = c.post(f"/reviews/{cid}", json={"decision": "approve", "note": "survey map checked"}, headers=officer)
        assert r.status_code == 200, r.text
        assert r.json()["status"] in ("verified", "partial") and r.json()["limit_cny"] > 0
        again = c.post(f"/reviews/{cid}", json={"decision": "reject", "note": "x"}, headers=officer)
        assert again.status_code == 422 and "not waiting for review" in again.json()["error"]
        assert "GET /reviews" in again.json()["error"]  # where an API user finds the queue
        history = c.get("/borrowers/farmer-009", headers=farmer).json()["reviews"]
        assert [(h["decision"], h["decided_by"], h["note"]) for h in history] == [("approve", "li", "survey map checked")]


def _faces(settings: Settings, borrower_id: str, cid: str, officer: dict, capsys) -> dict[str, tuple]:
    """(status, limit, value) of one claim as every face shows it: SQL views, CLI, API, pipeline."""
    def key(row: dict) -> tuple:
        return row["status"], round(row["limit_cny"] or 0.0, 2), round(row["value_cny"] or 0.0, 2)

    out: dict[str, tuple] = {}
    with duckdb.connect(str(settings.db_path), read_only=True) as con:
        for view in ("claim_status", "field_valuations"):
            cur = con.execute(f"SELECT status, limit_cny, value_cny FROM {view} WHERE claim_id = ?", [cid])
            out[f"sql {view}"] = key(dict(zip(("status", "limit_cny", "value_cny"), cur.fetchone())))
        out["sql current_limits"] = key(dict(zip(("status", "limit_cny", "value_cny"), con.execute(
            "SELECT status, limit_cny, value_cny FROM current_limits WHERE claim_id = ?", [cid]).fetchone())))
    assert cli_main(["query", "borrower", borrower_id, "--db", str(settings.db_path), "--format", "json"]) == 0
    out["cli query borrower"] = key(next(c for c in json.loads(capsys.readouterr().out)["claims"]
                                         if c["claim_id"] == cid))
    out["pipeline claim_rows"] = key(pipeline.claim_rows(settings.db_path, [cid])[0])
    with TestClient(create_app(settings, api_keys=[])) as c:
        detail = c.get(f"/borrowers/{borrower_id}", headers=officer).json()
        out["api /borrowers"] = key(next(x for x in detail["claims"] if x["claim_id"] == cid))
        shapes = c.get(f"/borrowers/{borrower_id}/fields", headers=officer).json()["features"]
        props = next(f["properties"] for f in shapes if f["id"] == cid)
        out["api /borrowers/fields"] = (props["status"], round(props["limit_cny"] or 0.0, 2),
                                        out["api /borrowers"][2])  # the map layer carries no value
        explained = c.get(f"/credit/borrowers/{borrower_id}/explain", headers=officer).json()
        out["api explain"] = key(next(x for x in explained["claims"] if x["claim_id"] == cid))
    return out


def test_claim_status_is_the_decision_log_on_every_face(repo: Path, tmp_path: Path, stubbed, capsys) -> None:
    """`claim_status` reads the point-in-time decisions (#14): in review, after an officer's decision
    and after a revaluation that only the decision log records, the SQL views, the CLI, the API
    and the pipeline's rows show the same status, limit and value."""
    from datetime import datetime

    from assets.revalue import revalue_all
    from tests.fixtures_credit import params_v2

    settings, cid = _in_review(repo, tmp_path / "r.duckdb", stubbed)
    with connect(settings.db_path) as con:
        access.add_user(con, "li", "officer")
        officer = {"Authorization": f"Bearer {access.issue_token(con, 'li', days=1).secret}"}

    def agreed() -> tuple:
        faces = _faces(settings, "farmer-009", cid, officer, capsys)
        assert len(set(faces.values())) == 1, faces
        return next(iter(faces.values()))

    assert agreed() == ("review", 0.0, 0.0)
    decide(settings, Decision(cid, "approve", "visited: one farm", "li"))
    status, approved_limit, approved_value = agreed()
    assert status in ("verified", "partial") and approved_limit > 0 and approved_value > 0
    cheaper = params_v2()  # wheat 30 % cheaper: recorded in the decision log only
    with connect(settings.db_path) as con:
        revalue_all(con, cheaper, as_of=AS_OF, recorded_at=datetime(2016, 10, 1, 3), run_id="r-cheaper-wheat")
    status_after, limit_after, value_after = agreed()
    assert status_after == status and value_after < approved_value and limit_after < approved_limit
    with duckdb.connect(str(settings.db_path), read_only=True) as con:
        assert con.execute("SELECT params_version FROM claim_status WHERE claim_id = ?", [cid]).fetchone()[0] == \
            cheaper.version
        old_tables = con.execute("SELECT l.limit_cny FROM credit_limits l JOIN valuations a USING (valuation_id) "
                                 "WHERE a.claim_id = ? ORDER BY l.created_at DESC LIMIT 1", [cid]).fetchone()[0]
    assert old_tables == pytest.approx(approved_limit)  # the old tables never saw the revaluation


def test_a_field_seen_only_in_an_earlier_season_waits_for_review(repo: Path, tmp_path: Path, stubbed) -> None:
    """farmer-002's wheat field, drawn as registered: lent on as of the bundled season's end, but
    submitted today (ten years after its newest image) it waits for an officer; a service told to
    replay that season (`assets serve --as-of 2016-09-30`) assesses API submissions as of then."""
    doc = json.loads((repo / "sample_tiles/claims/farmer-002.geojson").read_text())
    doc["features"] = doc["features"][:1]
    settings = Settings(db_path=tmp_path / "s.duckdb", tiles_dir=repo / "sample_tiles")
    (today,) = pipeline.submit_and_assess(settings, doc, "farmer-009", as_of=date(2026, 12, 7), models=stubbed)
    assert today["status"] == "review" and today["limit_cny"] is None
    assert "stale_imagery" in [r["code"] for r in today["reasons"]] and "from 2016-09-21" in today["reason"]
    replay = Settings(db_path=tmp_path / "r.duckdb", tiles_dir=repo / "sample_tiles", as_of=AS_OF)
    with connect(replay.db_path) as con:
        access.add_user(con, "li", "officer")
        officer = {"Authorization": f"Bearer {access.issue_token(con, 'li', days=1).secret}"}
    with TestClient(create_app(replay, api_keys=[])) as c:
        r = c.post("/borrowers/farmer-009/claims", json=doc, headers=officer)
        assert r.status_code == 201 and r.json()[0]["status"] == "verified" and r.json()[0]["as_of"] == str(AS_OF)


def test_an_approval_answers_only_the_question_it_was_asked(repo: Path, tmp_path: Path, stubbed, capsys) -> None:
    """QA 2026-12-07: an approval of a moved boundary also let the claim be lent on imagery two years
    old (and said the officer had approved the old imagery). Each question needs its own approval,
    and each approval names the officer who gave it."""
    settings, cid = _in_review(repo, tmp_path / "r.duckdb", stubbed)
    row = decide(settings, Decision(cid, "approve", "walked it: one farm", "li"))
    assert row["status"] in ("verified", "partial")
    later = date(2018, 9, 30)  # the newest image of the field is two years old by then
    pipeline.assess_claims(settings.db_path, as_of=later, settings=settings, models=stubbed)
    with connect(settings.db_path) as con:
        (row,) = borrower(con, "farmer-009")["claims"]
    assert row["status"] == "review" and row["limit_cny"] is None
    codes = [r["code"] for r in row["reasons"]]
    assert codes[-1] == "stale_imagery" and "boundary_mismatch" not in codes  # the boundary stays answered
    assert decide(settings, Decision(cid, "approve", "2018 visit: same crop", "wang"))["limit_cny"] > 0
    with connect(settings.db_path) as con:
        (row,) = borrower(con, "farmer-009")["claims"]
    assert row["status"] in ("verified", "partial")
    approvals = [r["message"] for r in row["reasons"] if r["code"] == "review_approved"]
    assert any("officer li (boundary mismatch): walked it" in m for m in approvals), approvals
    assert any("officer wang (stale imagery): 2018 visit" in m for m in approvals), approvals
    assert cli_main(["audit", "verify", "--db", str(settings.db_path)]) == 0, capsys.readouterr().out


def test_a_decision_whose_reassessment_fails_is_not_kept(repo: Path, tmp_path: Path, stubbed, monkeypatch) -> None:
    """QA 2026-12-07: the decision was stored, the re-assessment failed, and the claim stayed in review
    with a retry refused. Now the decision is taken back and the officer can decide again."""
    settings, cid = _in_review(repo, tmp_path / "r.duckdb", stubbed)

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(pipeline, "assess_claims", broken)
    with pytest.raises(OSError, match="disk full"):
        decide(settings, Decision(cid, "approve", "ok", "li"))
    with connect(settings.db_path) as con:
        assert borrower(con, "farmer-009")["reviews"] == []
    monkeypatch.undo()
    monkeypatch.setattr(pipeline, "load_models", lambda settings: stubbed)
    assert decide(settings, Decision(cid, "approve", "ok", "li"))["status"] in ("verified", "partial")


def test_land_an_officer_refused_waits_for_an_officer_when_drawn_again(repo: Path, tmp_path: Path, stubbed) -> None:
    """Fraud QA 2026-12-07: after an officer rejected a claim, the same field redrawn 16 m smaller was a
    new claim with no trace of the rejection, and got a limit."""
    settings, cid = _in_review(repo, tmp_path / "r.duckdb", stubbed)
    decide(settings, Decision(cid, "reject", "site visit: field abandoned", "li"))
    redrawn = _moved_wheat(repo, dlon=0.0015)  # the same land, drawn again a little apart
    (row,) = pipeline.submit_and_assess(settings, redrawn, "farmer-009", as_of=AS_OF, models=stubbed)
    assert row["claim_id"] != cid and row["status"] == "review" and row["limit_cny"] is None
    (said,) = [r["message"] for r in row["reasons"] if r["code"] == "rejected_before"]
    assert f"claim {cid}" in said and "li rejected" in said and "field abandoned" in said
    assert decide(settings, Decision(row["claim_id"], "approve", "new owner, crop seen", "wang"))["status"] != "review"
    elsewhere = pipeline.submit_and_assess(settings, redrawn, "farmer-010", as_of=AS_OF, models=stubbed)
    assert "rejected_before" not in [r["code"] for r in elsewhere[0]["reasons"]]  # another borrower's refusal


def test_a_review_deleted_or_turned_round_is_caught_by_the_audit(repo: Path, tmp_path: Path, stubbed, capsys) -> None:
    """Data QA 2026-12-07: a rejection edited into an approval in SQL was obeyed by the next night and
    chained into a valid decision, after which `audit verify` said ok; a deleted rejection was never seen."""
    settings, cid = _in_review(repo, tmp_path / "r.duckdb", stubbed)
    decide(settings, Decision(cid, "reject", "the neighbour's wheat", "li"))
    db = str(settings.db_path)
    assert cli_main(["audit", "verify", "--db", db]) == 0
    capsys.readouterr()
    with connect(settings.db_path) as con:
        con.execute("UPDATE claim_reviews SET decision = 'approve'")
    assert cli_main(["audit", "verify", "--db", db]) == 1
    assert "no review in claim_reviews matches" in capsys.readouterr().out
    pipeline.assess_claims(settings.db_path, as_of=AS_OF, settings=settings, models=stubbed)  # the next night
    assert cli_main(["audit", "verify", "--db", db]) == 1  # still caught: the logged rejection stays
    capsys.readouterr()
    with connect(settings.db_path) as con:
        con.execute("DELETE FROM claim_reviews")
    assert cli_main(["audit", "verify", "--db", db]) == 1
    assert "a review was deleted or edited" in capsys.readouterr().out


def test_officer_notes_are_capped_by_the_one_setting() -> None:
    """Review and alert notes are shown to the borrower: one `Settings.note_max_chars` caps both."""
    from assets import alerts
    from assets import reviews as review_queue
    from assets.config import Settings

    short = Settings(note_max_chars=10)
    assert review_queue.check(review_queue.Decision("c1", "approve", " " + "x" * 10 + " ", "li"), short).note == "x" * 10
    assert alerts.check(alerts.Resolution("a1", "y" * 10, "ops"), short).note == "y" * 10
    with pytest.raises(InputError, match="has 11 characters; keep it under 10"):
        review_queue.check(review_queue.Decision("c1", "approve", "x" * 11, "li"), short)
    with pytest.raises(InputError, match="has 11 characters; keep it under 10"):
        alerts.check(alerts.Resolution("a1", "y" * 11, "ops"), short)
    assert review_queue.check(review_queue.Decision("c1", "reject", "x" * 11, "li"), Settings()).note == "x" * 11


def test_an_approval_answers_only_the_verdict_the_officer_looked_at(repo: Path, tmp_path: Path, stubbed) -> None:
    """Fraud QA 2026-12-08: a night between loading the queue and clicking approve added stale imagery
    to the claim's questions, and the approval answered it unseen (17,000 CNY on 618-day-old imagery)."""
    from assets.reviews import queue

    settings, cid = _in_review(repo, tmp_path / "r.duckdb", stubbed)
    (seen,) = queue(settings)
    pipeline.assess_claims(settings.db_path, as_of=date(2018, 6, 1), settings=settings, models=stubbed)  # a night
    (now,) = queue(settings)
    assert now["verification_id"] != seen["verification_id"]
    assert "stale_imagery" in [r["code"] for r in now["reasons"]]
    with pytest.raises(InputError, match="assessed again since you looked .*stale_imagery"):
        decide(settings, Decision(cid, "approve", "hedge line checked", "li", verdict=seen["verification_id"]))
    assert queue(settings)[0]["claim_id"] == cid  # nothing was stored
    row = decide(settings, Decision(cid, "approve", "hedge line checked; imagery of 2016 is enough",
                                    "li", verdict=now["verification_id"]))
    assert row["status"] in ("verified", "partial")


def test_a_farmer_cannot_decide_as_the_officer(repo: Path, tmp_path: Path, stubbed) -> None:
    """Access QA 2026-12-08: `--officer wang` (the claim's own farmer user) approved the claim."""
    settings, cid = _in_review(repo, tmp_path / "r.duckdb", stubbed)
    with connect(settings.db_path) as con:
        access.add_user(con, "wang", "farmer", "farmer-009")
    for name in ("wang", "Wang", "vvang"):
        with pytest.raises(InputError, match=f"'{name}' is the registered farmer user 'wang', not an officer"):
            decide(settings, Decision(cid, "approve", "my own field", name))
    assert pipeline.claim_rows(settings.db_path, [cid])[0]["status"] == "review"


def test_cli_decision_names_the_verdict_it_was_made_on(repo: Path, tmp_path: Path, stubbed, capsys) -> None:
    settings, cid = _in_review(repo, tmp_path / "r.duckdb", stubbed)
    db = str(settings.db_path)
    assert cli_main(["claims", "review", "--db", db, "--format", "json"]) == 0
    (seen,) = json.loads(capsys.readouterr().out)
    assert cli_main(["claims", "review", cid, "--approve", "--note", "hedge line checked", "--officer", "li",
                     "--verdict", "v-0000000000000000", "--db", db]) == 2
    assert "assessed again since you looked" in capsys.readouterr().err
    assert cli_main(["claims", "review", cid, "--approve", "--note", "hedge line checked", "--officer", "li",
                     "--verdict", seen["verification_id"], "--db", db]) == 0
    assert "approved by li" in capsys.readouterr().out
