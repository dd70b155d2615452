"""The orchestration benchmark's measure of task work (bench/nightly_overhead.py, issue #15).

overhead_fraction is the Prefect night's wall time minus the time at least one task run was
running; tasks that ran side by side must count once, and gaps between them not at all.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench" / "nightly_overhead.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("nightly_overhead", BENCH)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


def test_concurrent_tasks_count_once(bench) -> None:
    # seven tiles catalogued side by side, then three tasks one after another with gaps between them
    spans = [(0.0, 1.5)] * 4 + [(0.1, 1.4), (0.2, 1.45), (0.05, 1.5), (1.6, 1.7), (1.8, 2.2), (2.3, 2.9)]
    assert bench.covered_s(spans) == pytest.approx(1.5 + 0.1 + 0.4 + 0.6)


def test_nested_and_touching_spans(bench) -> None:
    assert bench.covered_s([(0.0, 10.0), (2.0, 3.0), (10.0, 11.0)]) == pytest.approx(11.0)
    assert bench.covered_s([(5.0, 6.0), (0.0, 1.0)]) == pytest.approx(2.0)
    assert bench.covered_s([]) == 0.0
