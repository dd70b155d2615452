"""#15 "one writer", the CLI's side: while another process owns the database file (`assets serve`
or `assets store serve`), every CLI write is handed to that owner instead of failing on DuckDB's
file lock: users and tokens, devices, claims, a tile's quarantine. Refusals (a user who exists,
a device retired twice, an unknown tile) come back from the owner as the same clear errors."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import pytest

from assets.store import connect, writer
from tests.conftest import run_cli

pytestmark = pytest.mark.slow


def _ok(*args: str, cwd: Path) -> str:
    done = run_cli(*args, cwd=cwd)
    assert done.returncode == 0, (args, done.stderr[-2000:])
    assert "owned by" not in done.stderr and "lock" not in done.stderr.lower(), done.stderr[-2000:]
    return done.stdout


def _refused(*args: str, cwd: Path) -> str:
    done = run_cli(*args, cwd=cwd)
    assert done.returncode != 0, (args, done.stdout[-2000:])
    assert "Traceback" not in done.stderr and "lock" not in done.stderr.lower(), done.stderr[-2000:]
    return done.stderr


def test_cli_writes_go_through_the_owning_process(demo_db, tmp_path: Path, repo: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    sockets = Path(tempfile.mkdtemp(prefix="cw-", dir="/tmp"))  # short: Unix socket paths are limited
    monkeypatch.setenv("ASSETS_WRITER_SOCKET_DIR", str(sockets))  # inherited by the CLI processes
    db = tmp_path / "bank.duckdb"
    shutil.copy(demo_db[0], db)
    with connect(db) as con:
        tile_id = con.execute("SELECT tile_id FROM tiles ORDER BY tile_id LIMIT 1").fetchone()[0]
        claims0, decisions0 = con.execute("SELECT (SELECT count(*) FROM claims WHERE borrower_id = 'farmer-001'), "
                                          "(SELECT count(*) FROM decisions)").fetchone()
    d = ["--db", str(db)]
    with writer.WriterService(db):
        assert writer.owner_running(db)
        # users: every write of `assets users` through the owner
        assert "added officer li" in _ok("users", "add", "li", "--role", "officer", *d, cwd=tmp_path)
        assert "added farmer wang for borrower farmer-001" in _ok("users", "add", "wang", "--role", "farmer",
                                                                   "--borrower", "farmer-001", *d, cwd=tmp_path)
        token = _ok("users", "token", "li", "--expires-days", "7", *d, cwd=tmp_path).strip().splitlines()[-1]
        assert token.startswith("ast_")
        link = _ok("users", "link", "wang", "--base-url", "https://bank.example", *d, cwd=tmp_path)
        assert "https://bank.example/map/#code=asl_" in link
        assert "already exists" in _refused("users", "add", "li", "--role", "officer", *d, cwd=tmp_path)
        assert "sign-in links are for farmers" in _refused("users", "link", "li", *d, cwd=tmp_path)
        assert "no user 'nobody'" in _refused("users", "token", "nobody", *d, cwd=tmp_path)
        assert "revoked 1 token(s)" in _ok("users", "revoke", "li", *d, cwd=tmp_path)
        listed = json.loads(_ok("users", "list", "--format", "json", *d, cwd=tmp_path))
        assert {u["user_name"]: u["active_tokens"] for u in listed} == {"li": 0, "wang": 0}
        # devices
        _ok("sensors", "devices", "add", "probe-900", "--borrower", "farmer-001", "--lon", "9.25", "--lat", "56.36",
            "--secret", "s3cret-900", *d, cwd=tmp_path)
        assert "retired probe-900 at 2026-01-02 00:00:00" in _ok("sensors", "devices", "retire", "probe-900",
                                                                 "--at", "2026-01-02", *d, cwd=tmp_path)
        assert "already retired" in _refused("sensors", "devices", "retire", "probe-900", *d, cwd=tmp_path)
        assert "already registered to farmer-001" in _refused(
            "sensors", "devices", "add", "probe-900", "--borrower", "farmer-002", "--lon", "9.3", "--lat", "56.4",
            *d, cwd=tmp_path)
        # a tile's quarantine
        _ok("tiles", "quarantine", tile_id, "--reason", "stripes across the north half", *d, cwd=tmp_path)
        assert "no catalogued tile" in _refused("tiles", "quarantine", "no-such-tile", "--reason", "x", *d, cwd=tmp_path)
        # a farmer submits their fields again while the owner runs: the same claims (land is pledged
        # once, matched by the owner in its transaction), with their stored verdicts
        submitted = _ok("claims", "submit", str(repo / "sample_tiles/claims/farmer-001.geojson"), "--borrower",
                        "farmer-001", "--date", "2016-09-30", *d, cwd=tmp_path)
        assert "verified" in submitted
        # another borrower draws farmer-002's fields: new claims, assessed (overlap) and stored by the owner
        taken = run_cli("claims", "submit", str(repo / "sample_tiles/claims/farmer-002.geojson"), "--borrower",
                        "farmer-077", "--date", "2016-09-30", *d, cwd=tmp_path)
        assert taken.returncode == 1 and "already claimed by an earlier pledge" in taken.stdout, taken.stderr[-2000:]
    shutil.rmtree(sockets, ignore_errors=True)

    with connect(db) as con:  # all of it stored, by the owner, once
        assert con.execute("SELECT count(*) FROM users").fetchone()[0] == 2
        kinds = con.execute("SELECT kind, revoked FROM api_tokens ORDER BY kind").fetchall()
        assert kinds == [("link", False), ("token", True)]
        actions = [r[0] for r in con.execute("SELECT action FROM audit_log WHERE role = 'cli' ORDER BY audited_at").fetchall()]
        assert actions == ["users add", "users add", "users token", "users link", "users revoke"]
        device = con.execute("SELECT borrower_id, retired_at FROM sensor_devices WHERE device_id = 'probe-900'").fetchall()
        assert [(b, str(r)) for b, r in device] == [("farmer-001", "2026-01-02 00:00:00")]
        assert con.execute("SELECT code, reason FROM tile_quarantine WHERE tile_id = ?", [tile_id]).fetchall() == [
            ("manual", "stripes across the north half")]
        claims, decisions = con.execute("SELECT (SELECT count(*) FROM claims WHERE borrower_id = 'farmer-001'), "
                                        "(SELECT count(*) FROM decisions)").fetchone()
        new = con.execute("SELECT count(*) FROM decisions d JOIN claims c USING (claim_id) "
                          "WHERE c.borrower_id = 'farmer-077'").fetchone()[0]
    assert claims == claims0 and decisions == decisions0 + new and new > 0  # farmer-001's verdicts stood
