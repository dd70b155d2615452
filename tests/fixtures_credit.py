"""A small bank written through the pipeline's own writer (no models, no imagery): two borrowers,
two runs a month apart, the second with a new parameter version and a new crop model."""

from __future__ import annotations

import json
import uuid
from datetime import date, datetime
from pathlib import Path
from types import SimpleNamespace

from assets.claims import Claim
from assets.config import Settings
from assets.observe import ClaimObservation, DateObservation
from assets.pipeline import Assessment, Models, RunReport, _cap_per_borrower, _write_steps
from assets.store import connect, transaction
from assets.valuation import ValuationParams, load_params, parse_params, season_ndvi, value_claim
from assets.verify import verify_claim

FIELDS = {  # claim_id: borrower, lon, lat, claimed ha
    "c-a1": ("farmer-a", 9.10, 56.10, 10.0),
    "c-a2": ("farmer-a", 9.12, 56.10, 4.0),
    "c-b1": ("farmer-b", 10.50, 55.40, 20.0),
    "c-b2": ("farmer-b", 10.52, 55.40, 6.0),  # drawn over grass: rejected
}
RUN1, RUN2 = date(2026, 5, 1), date(2026, 6, 1)


def params_v2() -> ValuationParams:
    """The packaged parameters with a new version and a 30 % lower wheat price."""
    text = load_params().text.replace(f'version = "{load_params().version}"', 'version = "test-v2"')
    old = "[crops.wheat]\nyield_kg_per_mu = 400\nprice_cny_per_kg = 2.4\nyield_kg_per_mu_range = [320, 460]\n" \
          "price_cny_per_kg_range = [2.04, 2.69]\n"
    text = text.replace(old, old.replace("= 2.4", "= 1.7").replace("[2.04, 2.69]", "[1.45, 1.9]"))
    for band in ("[2.10, 2.69]", "[2.04, 2.60]"):  # the regional wheat bands must hold the new price too
        text = text.replace(f"price_cny_per_kg_range = {band}", "price_cny_per_kg_range = [1.45, 1.9]")
    assert "price_cny_per_kg = 1.7" in text
    return parse_params(text, "test v2")


def _observation(cid: str, probs: dict[str, float], dates: int) -> ClaimObservation:
    ds = [DateObservation(f"t{i}", date(2026, 3 + i, 10), 1.0, v, v - 0.05, v + 0.05)
          for i, v in enumerate((0.3, 0.6, 0.8, 0.75, 0.7, 0.5)[:dates])]
    return ClaimObservation(claim_id=cid, coverage_fraction=1.0, dates=ds, farmland_fraction=0.95,
                            planted_fraction=0.9, crop_probs=probs)


def _square(lon: float, lat: float, d: float = 0.004) -> dict:
    ring = [[lon, lat], [lon + d, lat], [lon + d, lat + d], [lon, lat + d], [lon, lat]]
    return {"type": "Polygon", "coordinates": [ring]}


def build_bank(db: Path) -> None:
    import shapely

    with connect(db) as con:
        for b in ("farmer-a", "farmer-b"):
            con.execute("INSERT INTO borrowers (borrower_id) VALUES (?)", [b])
        for cid, (b, lon, lat, ha) in FIELDS.items():
            geom = shapely.geometry.shape(_square(lon, lat))
            con.execute("INSERT INTO claims (claim_id, borrower_id, name, submitted_at, source, geom_wkb, geojson, "
                        "min_lon, min_lat, max_lon, max_lat, claimed_area_ha, status) "
                        "VALUES (?, ?, ?, ?, 'test', ?, ?, ?, ?, ?, ?, ?, 'submitted')",
                        [cid, b, f"field {cid}", datetime(2026, 4, 1), shapely.to_wkb(geom),
                         json.dumps(_square(lon, lat)), *geom.bounds, ha])
    assess(db, RUN1, load_params(), "crop-v1", {"wheat": 0.9, "barley": 0.08, "open_water": 0.02})
    assess(db, RUN2, params_v2(), "crop-v2", {"wheat": 0.7, "maize": 0.2, "open_water": 0.1}, dates=4)


def assess(db: Path, as_of: date, params: ValuationParams, crop_version: str, probs: dict[str, float],
           dates: int = 6) -> RunReport:
    report = RunReport(run_id=f"r-{as_of}-{crop_version}-{uuid.uuid4().hex[:6]}", as_of=as_of, tiles=dates, params=params)
    for cid, (b, lon, lat, ha) in FIELDS.items():
        p = {"grasslands": 0.1, "trees_unspecified": 0.9} if cid == "c-b2" else probs
        obs = _observation(cid, p, dates)
        v = verify_claim(claim_id=cid, claimed_area_ha=ha, observation=obs, overlap_area_ha=0.0,
                         sensor_evidence=None, settings=Settings())
        claim = Claim(cid, b, f"field {cid}", datetime(2026, 4, 1), None, ha, "submitted")
        report.assessments.append(Assessment(claim, v, f"v-{cid}-{as_of}-{crop_version}", obs,
                                             value_claim(v, params, len(obs.usable_dates),
                                                         centre=(lon, lat), ndvi_season=season_ndvi(obs))))
    _cap_per_borrower(report.assessments, params)
    models = Models(segmenter=SimpleNamespace(version="seg-v1"), crop=SimpleNamespace(version=crop_version))
    with connect(db) as con, transaction(con):
        for fn, kwargs in _write_steps(report, [], models, datetime(as_of.year, as_of.month, as_of.day, 3), "test"):
            fn(con, **kwargs)
    return report
