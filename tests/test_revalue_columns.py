"""The column-wise revaluation (#14): the same numbers as `valuation.value_inputs`, field by field,
on a varied sample (regions, unknown and unpriced crops, caps, haircuts, review, crop health), and
a revaluation after a price change that `audit verify` and `explain --recompute` still accept."""

from __future__ import annotations

import json
import random
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from assets.explain import REVALUED_STEP, explain
from assets.revalue import revalue_all
from assets.store import connect, transaction
from assets.store.history import append_decisions, record_params, stage_current_inputs, verify_chain
from assets.valuation import (
    ValuationInput,
    ValuationParams,
    cap_borrower_limits,
    health_crop,
    judge_health,
    load_params,
    parse_params,
    value_inputs,
)
from assets.valuation_columns import cap_borrowers, value_columns

CROPS = ["maize", "wheat", "rice", "soy_soybeans", "potatoes", "grasslands", "barley", "rapeseed_rape",
         "not_cultivated_fallow", "grapes", "fibre_crops", "open_water", "trees_unspecified", "built_up"]
REASONS = ["ok", "crop_uncertain", "partly_planted", "crop_failure", "overlap_trimmed", "under_review",
           "sensor_silent"]
CENTRES = [None, (125.0, 45.0), (116.0, 36.0), (115.0, 28.0), (90.0, 40.0), (9.1, 56.1), (118.0, 38.5)]


def sample_inputs(rng: random.Random, n: int) -> list[ValuationInput]:
    out = []
    for _ in range(n):
        k = rng.choice([0, 1, 1, 2, 3, 4, 6])
        names = rng.sample(CROPS, k)
        raw = [rng.choice([rng.random(), 0.3, 0.05]) for _ in names]
        total = sum(raw) or 1.0
        probs = {c: round(x / total, 6) for c, x in zip(names, raw)}
        top = max(probs.values(), default=0.0)
        crop = rng.choice([max(probs, key=lambda c: probs[c]) if probs else None, "unknown", "unknown"])
        centre = rng.choice(CENTRES)
        season = rng.choice([None, [], "series"])
        ndvi = None if season is None else tuple(
            ((date(2026, 3, 1) + timedelta(days=d)).isoformat(), round(rng.uniform(0.05, 0.95), 4))
            for d in sorted(rng.sample(range(0, 240), rng.randint(1, 7)))) if season == "series" else ()
        area = rng.choice([rng.uniform(0.05, 40), rng.uniform(500, 3000)])
        out.append(ValuationInput(
            status=rng.choice(["verified", "verified", "partial", "review", "rejected"]),
            verified_area_ha=area, claimed_area_ha=rng.choice([area, area * rng.uniform(0.5, 1.5)]),
            crop=crop, crop_probability=top, crop_probs=probs,
            sensor_status=rng.choice(["no_devices", "corroborated", "silent", "implausible", "odd"]),
            reason_codes=tuple(rng.sample(REASONS, rng.randint(0, 3))),
            usable_dates=rng.choice([None, 1, 2, 3, 4, 5, 6, 8]),
            centre_lon=centre[0] if centre else None, centre_lat=centre[1] if centre else None, ndvi_season=ndvi))
    return out


def small_caps() -> ValuationParams:
    text = load_params().text.replace("borrower_cap_cny = 3000000", "borrower_cap_cny = 60000") \
        .replace("field_cap_cny = 500000", "field_cap_cny = 40000")
    return parse_params(text, "small caps")


def _store(db: Path, inputs: list[ValuationInput], borrowers: int) -> None:
    params = load_params()
    rows = []
    for i, inp in enumerate(inputs):
        rows.append({"decision_id": f"lim-{i:05d}", "claim_id": f"c{i:05d}", "borrower_id": f"b{i % borrowers:03d}",
                     "run_id": "r-1", "verification_id": f"v-{i:05d}", "valuation_id": f"val-{i:05d}",
                     "valid_from": date(2026, 5, 1), "recorded_at": datetime(2026, 5, 1, 3), "status": inp.status,
                     "crop": inp.crop, "area_ha": inp.verified_area_ha, "value_low_cny": 0.0, "value_cny": 0.0,
                     "value_high_cny": 0.0, "limit_cny": 0.0, "params_version": params.version,
                     "params_sha256": params.sha256, "seg_model_version": "seg", "crop_model_version": "crop",
                     "tiles": [], "sensor_window": {}, "inputs": inp.to_json(), "reasons": [], "explanation": []})
    with connect(db) as con, transaction(con):
        record_params(con, params.sha256, params.version, params.text, datetime(2026, 5, 1))
        append_decisions(con, rows)


@pytest.mark.parametrize("params", [load_params(), small_caps()], ids=["packaged", "small_caps"])
def test_columns_equal_the_per_field_function(tmp_path: Path, params: ValuationParams) -> None:
    inputs = sample_inputs(random.Random(14), 800)
    db = tmp_path / "cols.duckdb"
    _store(db, inputs, borrowers=120)
    with connect(db) as con:
        table = stage_current_inputs(con, "|test")
        stored = dict(con.execute("SELECT claim_id, inputs::VARCHAR FROM decisions").fetchall())
    cols = value_columns(table, params)
    # the reference: the per-field function on the inputs as stored (the log keeps JSON with sorted keys)
    by_claim = {cid: ValuationInput.from_json(json.loads(doc)) for cid, doc in stored.items()}
    claims = table.column("claim_id").to_pylist()
    seen = {"unknown": 0, "region": 0, "health_lowered": 0, "field_cap": 0, "held": 0, "unpriced": 0,
            "dates_after_harvest": 0, "best_fit_not_top": 0}
    for j, cid in enumerate(claims):
        v = value_inputs(by_claim[cid], params)
        got = (cols.value_low_cny[j], cols.value_cny[j], cols.value_high_cny[j], cols.limit_cny[j])
        assert got == (v.value_low_cny, v.value_cny, v.value_high_cny, v.limit_cny), (cid, by_claim[cid])
        steps = {s["step"]: s for s in v.explanation}
        seen["unknown"] += by_claim[cid].crop == "unknown"
        seen["region"] += params.region_of(by_claim[cid].centre_lon, by_claim[cid].centre_lat) is not None
        seen["health_lowered"] += steps["crop_health"]["ratio"] is not None and steps["crop_health"]["value"] < 1
        seen["field_cap"] += "field_cap" in steps
        seen["held"] += "no_limit" in steps
        seen["unpriced"] += "no price set" in steps["value_per_mu"]["text"]
        seen["best_fit_not_top"] += judge_health(by_claim[cid], params)[0] != health_crop(by_claim[cid])
        econ = params.crops.get(health_crop(by_claim[cid]) or "")
        seen["dates_after_harvest"] += bool(econ and by_claim[cid].ndvi_season and any(
            date.fromisoformat(on).timetuple().tm_yday >= econ.harvest_doy for on, _ in by_claim[cid].ndvi_season))
    assert all(n >= 10 for n in seen.values()), seen  # the sample reaches every branch
    # the per-borrower cap over the same fields, in the same order
    borrowers = table.column("borrower_id").to_pylist()
    codes = {b: k for k, b in enumerate(dict.fromkeys(borrowers))}
    import numpy as np

    capped = cap_borrowers(np.array([codes[b] for b in borrowers]), cols.limit_cny, params)
    for b in codes:
        idx = [j for j, x in enumerate(borrowers) if x == b]
        assert [capped[j] for j in idx] == cap_borrower_limits([float(cols.limit_cny[j]) for j in idx], params)
    assert (capped != cols.limit_cny).any() == (params.borrower_cap_cny < 1e6)


@pytest.mark.parametrize("float_text", ["duckdb", "python"])
def test_revaluing_after_a_price_change_stays_verifiable_and_explained(tmp_path: Path, float_text: str,
                                                                       monkeypatch) -> None:
    """The hashed text of the new values is DuckDB's float text (equal to Python's repr) or, where a
    DuckDB's differed, Python's own: both give rows `audit verify` accepts."""
    from assets.store import history

    if float_text == "python":
        monkeypatch.setattr(history, "duckdb_floats_match_repr", lambda con, values: False)
    inputs = sample_inputs(random.Random(7), 300)
    db = tmp_path / "rv.duckdb"
    _store(db, inputs, borrowers=40)
    base = load_params()
    dearer = parse_params(base.text.replace(f'version = "{base.version}"', 'version = "price-up"')
                          .replace("price_cny_per_kg = 2.3\n", "price_cny_per_kg = 2.5\n"), "price up")
    with connect(db) as con:
        for i in range(40):
            con.execute("INSERT INTO borrowers (borrower_id) VALUES (?)", [f"b{i:03d}"])
        n = revalue_all(con, dearer, as_of=date(2026, 6, 1), recorded_at=datetime(2026, 6, 1, 2), run_id="r-price")
        check = verify_chain(con)
        after = explain(con, "b007", recompute=True)
        rows = con.execute("SELECT claim_id, value_cny, inputs::VARCHAR FROM decisions WHERE run_id = 'r-price'")\
            .fetchall()
    assert n == 300 and check.ok and check.rows == 600, check.broken[:3]
    assert after["recompute_matches"] and {c["params_version"] for c in after["claims"]} == {"price-up"}
    for c in after["claims"]:  # the stored numbers and the steps rendered on read are the same function
        steps = [s["step"] for s in c["explanation"]]
        assert steps[0] == REVALUED_STEP and "value_range" in steps and "limit" in steps
        val = value_inputs(ValuationInput.from_json(c["inputs"]), dearer)
        assert c["value_cny"] == val.value_cny
    stored = {cid: (value, ValuationInput.from_json(json.loads(doc))) for cid, value, doc in rows}
    moved = [cid for cid, (_, inp) in stored.items()
             if value_inputs(inp, dearer).value_cny != value_inputs(inp, base).value_cny]
    assert len(moved) > 10  # a dearer maize price moved the maize fields, as the per-field function prices them
    assert all(stored[cid][0] == value_inputs(stored[cid][1], dearer).value_cny for cid in moved)
    with connect(db) as con:
        con.execute("UPDATE decisions SET limit_cny = limit_cny + 100 WHERE decision_seq = 450")
        assert not verify_chain(con).ok


def test_duckdb_prints_floats_as_python_repr(tmp_path: Path) -> None:
    """The revaluation hashes DuckDB's ``CAST(DOUBLE AS VARCHAR)`` as Python's ``repr``: a DuckDB that
    prints floats differently falls back to Python's text (above); this says when that happens."""
    import numpy as np
    import pyarrow as pa

    from assets.store import history

    rng = np.random.default_rng(3)
    xs = np.concatenate([10 ** rng.uniform(-10, 20, 20_000), rng.uniform(0, 1e6, 20_000),
                         np.floor(rng.uniform(0, 1e7, 5_000) / 100) * 100, np.array(history._FLOAT_PROBES)])
    with connect(tmp_path / "f.duckdb") as con:
        _t = pa.table({"x": xs})
        texts = con.execute("SELECT CAST(x AS VARCHAR) AS s FROM _t").fetchnumpy()["s"].tolist()
    assert texts == [repr(float(x)) for x in xs]
