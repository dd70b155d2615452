"""Benchmark: how fast farmer claims become verified credit limits on the bundled season.

Registers every real Danish parcel (276, from ../shared/data) as a farmer's claim, then times
(a) the first assessment of all of them, including segmentation of the reference tile, (b) a
re-assessment with the segmentation cached, and (c) one farmer's single-field submission end to end
(the "loan in seconds" path: validate, store, observe 7 dates, classify, verify, value, write).
Last line: one JSON object.
"""

from __future__ import annotations

import json
import resource
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import geopandas as gpd

REPO = Path(__file__).resolve().parents[1]
SHARED = next((p for p in (REPO.parent / "shared" / "data", Path("/work/shared/data")) if p.is_dir()), None)
AS_OF = date(2016, 9, 30)


def main() -> None:
    from assets.config import Settings
    from assets.pipeline import assess_claims, catalogue_tiles, load_models, register_claims, submit_and_assess

    if SHARED is None:
        sys.exit("../shared/data is needed for the parcels")
    parcels = gpd.read_file(SHARED / "denmark" / "parcels_2016.gpkg").to_crs(4326)
    parcels = parcels[parcels.is_valid & ~parcels.is_empty].reset_index(drop=True)
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.duckdb"
        settings = Settings(db_path=db, tiles_dir=REPO / "sample_tiles")
        t0 = time.perf_counter()
        models = load_models(settings)
        load_s = time.perf_counter() - t0
        catalogue_tiles(db, settings.tiles_dir, until=AS_OF)
        t0 = time.perf_counter()
        n_borrowers = 40
        for b in range(n_borrowers):
            part = parcels.iloc[b::n_borrowers]
            doc = json.loads(part[["geometry"]].to_json())
            register_claims(db, doc, f"bench-{b:03d}", settings)
        register_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        report = assess_claims(db, as_of=AS_OF, settings=settings, models=models)
        first_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        assess_claims(db, as_of=AS_OF, settings=settings, models=models)
        cached_s = time.perf_counter() - t0
        moved = parcels.iloc[[0]][["geometry"]].copy()
        moved["geometry"] = moved.geometry.translate(xoff=1e-6)  # a new drawing of a known field
        one = json.loads(moved.to_json())
        t0 = time.perf_counter()
        submit_and_assess(settings, one, "bench-single", as_of=AS_OF, models=models)
        single_s = time.perf_counter() - t0
    n = len(report.assessments)
    result = {
        "claims": n, "borrowers": n_borrowers, "model_load_s": round(load_s, 3),
        "register_s": round(register_s, 3), "assess_first_s": round(first_s, 3),
        "assess_cached_s": round(cached_s, 3), "claims_per_s": round(n / cached_s, 1),
        "single_claim_submit_s": round(single_s, 3),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
