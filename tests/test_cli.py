"""Command-line contract: every command has --help; mistakes are one line and exit 2."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from assets.cli import main

COMMANDS = [["demo"], ["nightly"], ["backfill"], ["claims", "submit"], ["query", "borrower"], ["query", "portfolio"],
            ["query", "alerts"], ["serve"],
            ["crop", "train"], ["crop", "predict"], ["crop", "evaluate"], ["fields", "detect"], ["sensors"]]


@pytest.mark.parametrize("cmd", COMMANDS, ids=" ".join)
def test_every_command_has_help(cmd: list[str], capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([*cmd, "--help"])
    assert exit_info.value.code == 0
    assert "usage: assets" in capsys.readouterr().out


@pytest.mark.parametrize("argv, fragment", [
    (["query", "portfolio", "--format", "xml"], "invalid choice"),
    (["nightly", "--date", "2016-13-01"], "is not a date"),
    (["claims", "submit"], "required"),
    (["backfill", "--from", "2016-04-01"], "required"),
])
def test_usage_errors_are_one_line(argv: list[str], fragment: str, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1 and fragment in err and err.startswith("error: ")


def test_domain_errors_are_one_line(tmp_path: Path, capsys) -> None:
    assert main(["query", "portfolio", "--db", str(tmp_path / "missing.duckdb")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no database at") and err.count("\n") == 1
    assert main(["claims", "submit", str(tmp_path / "nope.geojson"), "--borrower", "f1", "--db", str(tmp_path / "x.duckdb")]) == 2
    assert "not found" in capsys.readouterr().err


def test_a_reader_that_goes_away_is_not_an_error(tmp_path: Path, monkeypatch, capsys) -> None:
    """`assets query portfolio | head -1`: the pipe closes early; no traceback, exit 0."""
    from assets.store import connect

    db = tmp_path / "a.duckdb"
    with connect(db):
        pass  # an empty store: the portfolio still prints its header and totals
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader has gone
    gone = os.fdopen(write_end, "w", buffering=1)
    monkeypatch.setattr(sys, "stdout", gone)
    try:
        assert main(["query", "portfolio", "--db", str(db)]) == 0
        assert "Traceback" not in capsys.readouterr().err
    finally:
        monkeypatch.undo()
        gone.close()


def test_tables_show_times_to_the_second() -> None:
    from datetime import datetime

    from assets.cli.render import table, to_json

    row = {"at": datetime(2026, 12, 7, 15, 14, 57, 276531), "x": 1.5}
    out = table([row], ["at", "x"])
    assert "2026-12-07 15:14:57" in out and "276531" not in out and "1.50" in out
    assert "15:14:57.276531" in to_json(row)  # machine-readable output keeps the full time


@pytest.mark.parametrize("status, code", [("ok", 0), ("partial", 1)])
def test_a_partial_night_exits_1_so_cron_sees_it(status: str, code: int, monkeypatch, tmp_path: Path, capsys) -> None:
    """The broker down or a delivery unfetched: the night still does the rest (tests/test_nightly_faults.py),
    and `assets nightly` says so on stderr and exits 1 instead of 0."""
    import assets.flows.nightly as nightly
    import assets.runs as runs

    report = {"run_id": "n-test", "status": status}
    monkeypatch.setattr(nightly, "run_nightly", lambda config: {"report": report})
    monkeypatch.setattr(runs, "run_report", lambda db, run_id: {"run_id": run_id})
    monkeypatch.setattr(runs, "render", lambda r: f"run {r['run_id']}")
    assert main(["nightly", "--db", str(tmp_path / "a.duckdb"), "--date", "2016-09-30"]) == code
    err = capsys.readouterr().err
    assert ("night n-test is partial" in err) == (status == "partial")
