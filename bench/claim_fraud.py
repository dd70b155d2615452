"""Benchmark: does verification accept honest drawings and catch fabricated ones? (issue #12)

Labelled claim sets from the Danish land-parcel register (../shared/data/denmark), drawn over the
bundled season (sample_tiles/) and run through the real pipeline (`register_claims` +
`assess_claims` on temporary DuckDB files, the committed models):

- genuine: each parcel as registered, and as a farmer draws it (corners simplified, each moved ~5 m)
- honest variants: two or three touching parcels merged into one drawing; half a parcel
- inflated: the parcel scaled about its centre to 1.3-2.0 x its area
- shifted: the parcel moved 50-200 m in a random direction (onto other fields)
- non-farmland: 1-4 ha drawings on land outside every registered parcel (village, roads, woods, water)

Claims of one set that overlap each other go to separate databases, so the overlap check never
decides a verdict here: what is measured is the imagery's verdict. Every claim has its own
borrower (no borrower cap). Last line: one JSON object.

Flagged = rejected, review, or accepted at <= 1.1 x the true area: for an inflated drawing its
parcel; for a shifted one the part of the drawing still on the claimant's own parcel (valued at
that, the move gained nothing); for non-farmland 0. Credit to fabricated claims counts only the
excess: a limit's share above the true area. `strict_flagged` / `strict_excess_limit_cny` of the
shifted set read a moved drawing as wholly fabricated (true area 0), the definition used before
2026-12-02 (third session).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from collections import defaultdict
from datetime import date
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = next((p for p in (REPO.parent / "shared" / "data", Path("/work/shared/data")) if p.is_dir()), None)
AS_OF = date(2016, 9, 30)
UTM = "EPSG:32632"
FABRICATED = ("inflated", "shifted", "non_farmland")
GENUINE = ("genuine_exact", "genuine_drawn")
HONEST = ("merged", "half")


def build_sets(parcels, tile_box, rng: np.random.Generator, min_ha: float) -> list[dict]:
    """Labelled claims: {kind, geometry (UTM), true_ha}."""
    import shapely
    from shapely import affinity

    geoms = list(parcels.geometry)
    inner = tile_box.buffer(-60)
    big = [i for i, g in enumerate(geoms) if g.area >= min_ha * 1e4 and inner.contains(g)]
    out: list[dict] = []
    for i in big:
        g = geoms[i]
        out.append({"kind": "genuine_exact", "geometry": g, "true_ha": g.area / 1e4, "parcel": i})
        drawn = g.simplify(4.0)
        ring = np.asarray(drawn.exterior.coords)[:-1]
        ring = ring + rng.normal(0, 5.0, ring.shape)
        poly = shapely.Polygon(ring).buffer(0)
        if poly.geom_type == "Polygon" and not poly.is_empty:
            out.append({"kind": "genuine_drawn", "geometry": poly, "true_ha": g.area / 1e4, "parcel": i})
        factor = rng.uniform(1.3, 2.0)
        out.append({"kind": "inflated", "geometry": affinity.scale(g, math.sqrt(factor), math.sqrt(factor), origin="centroid"),
                    "true_ha": g.area / 1e4, "parcel": i, "factor": round(factor, 2)})
        dist, ang = rng.uniform(50, 200), rng.uniform(0, 2 * math.pi)
        moved = affinity.translate(g, dist * math.cos(ang), dist * math.sin(ang))
        if tile_box.buffer(-20).contains(moved):
            # The claimant's own land is the part of the moved drawing still on their parcel: valued at
            # that, a shifted drawing is caught; anything above it is credit on someone else's land.
            out.append({"kind": "shifted", "geometry": moved, "true_ha": moved.intersection(g).area / 1e4, "parcel": i,
                        "shift_m": round(dist)})
        half = _half(g)
        if half is not None:
            out.append({"kind": "half", "geometry": half, "true_ha": half.area / 1e4, "parcel": i})
    out += _merged(geoms, big, rng)
    out += _non_farmland(geoms, tile_box, rng)
    return out


def _half(g):
    """The parcel cut across its long axis through the centre; one side."""
    import shapely
    from shapely import affinity

    rect = g.minimum_rotated_rectangle
    xy = np.asarray(rect.exterior.coords)[:4]
    e1, e2 = xy[1] - xy[0], xy[2] - xy[1]
    long_axis = e1 if np.hypot(*e1) >= np.hypot(*e2) else e2
    angle = math.degrees(math.atan2(long_axis[1], long_axis[0]))
    c = g.centroid
    big = 1e4
    cutter = affinity.rotate(shapely.box(c.x - big, c.y - big, c.x, c.y + big), angle, origin=c)
    part = g.intersection(cutter)
    if part.geom_type == "MultiPolygon":
        part = max(part.geoms, key=lambda p: p.area)
    return part if part.geom_type == "Polygon" and part.area > 0.3 * g.area else None


def _merged(geoms, big, rng) -> list[dict]:
    """Two or three touching parcels as one drawing (each parcel in at most one merge)."""
    import shapely

    used: set[int] = set()
    out = []
    tree = shapely.STRtree(geoms)
    for i in big:
        if i in used:
            continue
        near = [int(j) for j in tree.query(geoms[i].buffer(3.0)) if int(j) != i and int(j) not in used
                and geoms[int(j)].area >= 0.5e4]
        touching = [j for j in near if geoms[i].buffer(3.0).intersection(geoms[j]).length > 30
                    or geoms[i].buffer(3.0).intersection(geoms[j]).area > 50]
        if not touching:
            continue
        members = [i] + touching[: int(rng.integers(1, 3))]
        union = shapely.union_all([geoms[k].buffer(2.0) for k in members]).buffer(-2.0)
        if union.geom_type != "Polygon":
            continue
        used.update(members)
        out.append({"kind": "merged", "geometry": union, "true_ha": sum(geoms[k].area for k in members) / 1e4,
                    "parcels": members})
    return out


def _non_farmland(geoms, tile_box, rng, n: int = 40) -> list[dict]:
    """Squares and discs of 1-4 ha that lie (>= 95 %) outside every registered parcel."""
    import shapely

    farmland = shapely.union_all([g.buffer(10.0) for g in geoms])
    inner = tile_box.buffer(-120)
    minx, miny, maxx, maxy = inner.bounds
    out, tries = [], 0
    while len(out) < n and tries < 20000:
        tries += 1
        area = rng.uniform(1e4, 4e4)
        x, y = rng.uniform(minx, maxx), rng.uniform(miny, maxy)
        if rng.random() < 0.5:
            half = math.sqrt(area) / 2
            g = shapely.box(x - half, y - half, x + half, y + half)
        else:
            g = shapely.Point(x, y).buffer(math.sqrt(area / math.pi), quad_segs=4)
        if inner.contains(g) and g.intersection(farmland).area <= 0.05 * g.area \
                and not any(g.intersects(o["geometry"]) for o in out):
            out.append({"kind": "non_farmland", "geometry": g, "true_ha": 0.0})
    return out


def batches(claims: list[dict]) -> list[list[int]]:
    """Greedy groups of mutually disjoint claims (per kind), so no verdict is an overlap rejection."""
    groups: list[tuple[str, list[int], list]] = []
    for k, c in enumerate(claims):
        g = c["geometry"].buffer(-1.0)
        for kind, members, shapes in groups:
            if kind == c["kind"] and not any(g.intersects(s) for s in shapes):
                members.append(k)
                shapes.append(g)
                break
        else:
            groups.append((c["kind"], [k], [g]))
    return [m for _, m, _ in groups]


def run(claims: list[dict], work: Path, models, tiles_dir: Path) -> list[dict]:
    import geopandas as gpd

    from assets.config import Settings
    from assets.pipeline import assess_claims, catalogue_tiles, claim_rows, register_claims

    seg = work / "shared.segmentation"
    seg.mkdir(parents=True, exist_ok=True)
    results: list[dict] = [{} for _ in claims]
    for b, members in enumerate(batches(claims)):
        folder = work / f"batch{b:03d}"
        folder.mkdir()
        os.symlink(seg, folder / "bench.segmentation")
        db = folder / "bench.duckdb"
        settings = Settings(db_path=db, tiles_dir=tiles_dir)
        catalogue_tiles(db, tiles_dir, until=AS_OF, settings=settings)
        ids = {}
        for k in members:
            frame = gpd.GeoDataFrame({"name": [f"{claims[k]['kind']}-{k}"]}, geometry=[claims[k]["geometry"]], crs=UTM)
            stored = register_claims(db, json.loads(frame.to_crs(4326).to_json()), f"b-{k:04d}", settings)
            ids[stored[0].claim_id] = k
        report = assess_claims(db, as_of=AS_OF, settings=settings, models=models, claim_ids=list(ids), kind="bench")
        seen = {a.claim.claim_id: a.verification for a in report.assessments}
        for row in claim_rows(db, list(ids)):
            k = ids[row["claim_id"]]
            v = seen.get(row["claim_id"])
            results[k] = {"status": row["status"], "verified_ha": float(row["verified_area_ha"] or 0.0),
                          "limit_cny": float(row["limit_cny"] or 0.0), "crop": row["crop"], "reason": row["reason"],
                          "crop_probability": v.crop_probability if v else None, "boundary": v.boundary if v else None}
    return results


def score(claims: list[dict], results: list[dict]) -> dict:
    per: dict[str, dict] = defaultdict(lambda: {"n": 0, "accepted": 0, "flagged": 0, "statuses": defaultdict(int),
                                                "area_errors": [], "limit_cny": 0.0, "excess_cny": 0.0})
    for c, r in zip(claims, results):
        p = per[c["kind"]]
        p["n"] += 1
        status = r.get("status", "missing")
        p["statuses"][status] += 1
        accepted = status in ("verified", "partial")
        p["accepted"] += accepted
        if accepted and c["true_ha"] > 0:
            p["area_errors"].append(abs(r["verified_ha"] - c["true_ha"]) / c["true_ha"])
        p["limit_cny"] += r.get("limit_cny", 0.0)
        if accepted and r["verified_ha"] > 0:
            p["excess_cny"] += r["limit_cny"] * max(0.0, r["verified_ha"] - c["true_ha"]) / r["verified_ha"]
        if c["kind"] in FABRICATED:
            at_true = accepted and c["true_ha"] > 0 and r["verified_ha"] <= 1.1 * c["true_ha"]
            p["flagged"] += status in ("rejected", "review") or at_true
            if c["kind"] == "shifted":  # the stricter reading: none of a moved drawing is the claimant's
                p["strict_flagged"] = p.get("strict_flagged", 0) + (status in ("rejected", "review"))
                p["strict_excess_cny"] = p.get("strict_excess_cny", 0.0) + (r.get("limit_cny", 0.0) if accepted else 0.0)
    kinds = {}
    for kind, p in sorted(per.items()):
        kinds[kind] = {"n": p["n"], "accepted": round(p["accepted"] / p["n"], 3), "statuses": dict(p["statuses"]),
                       "median_area_error": round(float(np.median(p["area_errors"])), 3) if p["area_errors"] else None,
                       "limit_cny": round(p["limit_cny"]), "excess_limit_cny": round(p["excess_cny"])}
        if kind in FABRICATED:
            kinds[kind]["flagged"] = round(p["flagged"] / p["n"], 3)
        if "strict_flagged" in p:
            kinds[kind]["strict_flagged"] = round(p["strict_flagged"] / p["n"], 3)
            kinds[kind]["strict_excess_limit_cny"] = round(p["strict_excess_cny"])
    gen = [per[k] for k in GENUINE if k in per]
    fab = [per[k] for k in FABRICATED if k in per]
    genuine_limit = sum(p["limit_cny"] for p in gen)
    errors = [e for p in gen for e in p["area_errors"]]
    honest = [per[k] for k in HONEST if k in per]
    return {
        "genuine_accepted": round(sum(p["accepted"] for p in gen) / max(1, sum(p["n"] for p in gen)), 3),
        "fabricated_flagged": round(sum(p["flagged"] for p in fab) / max(1, sum(p["n"] for p in fab)), 3),
        "median_area_error": round(float(np.median(errors)), 3) if errors else None,
        "fabricated_credit_ratio": round(sum(p["excess_cny"] for p in fab) / genuine_limit, 4) if genuine_limit else None,
        "honest_variants_accepted": round(sum(p["accepted"] for p in honest) / max(1, sum(p["n"] for p in honest)), 3),
        "genuine_limit_cny": round(genuine_limit),
        "claims": len(claims), "kinds": kinds,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--min-ha", type=float, default=1.0, help="smallest register parcel used (declared-size floor)")
    ap.add_argument("--seed", type=int, default=12)
    ap.add_argument("--details", type=Path, default=None, help="write every claim's verdict to this JSON file")
    args = ap.parse_args()
    if SHARED is None:
        sys.exit("../shared/data is needed for the parcels")
    import geopandas as gpd
    import rasterio
    import shapely

    from assets.config import Settings
    from assets.pipeline import load_models

    t0 = time.perf_counter()
    tiles_dir = REPO / "sample_tiles"
    with rasterio.open(sorted(tiles_dir.glob("*.tif"))[0]) as src:
        tile_box = shapely.box(*src.bounds)
    parcels = gpd.read_file(SHARED / "denmark" / "parcels_2016.gpkg").to_crs(UTM)
    parcels = parcels[parcels.is_valid & ~parcels.is_empty].reset_index(drop=True)
    claims = build_sets(parcels, tile_box, np.random.default_rng(args.seed), args.min_ha)
    models = load_models(Settings(tiles_dir=tiles_dir))
    with tempfile.TemporaryDirectory() as tmp:
        results = run(claims, Path(tmp), models, tiles_dir)
    summary = score(claims, results)
    summary["runtime_s"] = round(time.perf_counter() - t0, 1)
    summary["min_parcel_ha"] = args.min_ha
    if args.details:
        args.details.write_text(json.dumps([{**{k: v for k, v in c.items() if k != "geometry"}, **r}
                                            for c, r in zip(claims, results)], indent=1, default=str))
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
