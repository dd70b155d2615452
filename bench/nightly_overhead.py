"""Benchmark (#15 Speed): what Prefect costs a night, and the same night on a local 2-worker Dask cluster.

Each variant starts from its own fresh database with the bundled claims (4 borrowers) and
catalogues, segments and assesses the tiles of ``--tiles`` (default: the bundled season, 7 tiles
of which 1 reference tile is segmented; NOT the issue's 20 full tiles, see the README):

- ``plain``: the night's functions called one after another in this process, no Prefect (the
  sum of the task work);
- ``prefect``: `assets.flows.nightly.run_nightly` on Prefect's default runner;
- ``dask``: the same flow on a local 2-worker Dask cluster through prefect-dask (threads, so the
  workers share this process's loaded models; ``--dask-processes`` for worker processes).

overhead_fraction = (prefect wall - task work) / prefect wall, both from the same Prefect run:
task work is the time at least one task run was RUNNING by Prefect's own record (`task_work_s`),
so what is left is flow start, task submission and hand-offs and the flow's bookkeeping outside
tasks. The difference to the plain night (``wall_difference_fraction``) is reported too, but two
runs apart it measures the machine's load and the flow's concurrent tasks more than Prefect.
Models are loaded before any variant (the process keeps them), a first plain night warms the
process up (reported, not compared), the Prefect test server starts before the clock. Last line:
one JSON object.

``--scale`` (#15: how the night grows with tiles and fields) builds, untimed, a synthetic inbox:
``--tiles-list`` counts of ``--tile-px`` square tiles (ceil(T/7) grids side by side, each carrying
the bundled season's 7 dates, every tile the bundled tile of its date mirror-tiled to tile-px, so
they pass the quality gate, checked first) and ``--fields-list`` counts of 1 ha square claims on a
lattice over those grids, 10 per borrower, registered once per (fields, grids) with
`pipeline.store_drawings_of` (500 borrowers a transaction) and copied for each variant.
Points: every tile count at the fewest fields, every field count at the most tiles; one JSON line
per point as it completes, then a summary whose top-level figures are those of the most tiles at
the fewest fields (``full_tile_note``: an estimate for full 10,980 px tiles from the measured
per-tile times, not a measurement).

    python bench/nightly_overhead.py --scale --tile-px 2048 --tiles-list 1,5,20 --fields-list 1000,10000
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
AS_OF = date(2016, 9, 30)


def _fresh(tmp: Path, name: str):
    from assets.config import settings as make_settings
    from assets.pipeline import register_claims

    db = tmp / name / "night.duckdb"
    db.parent.mkdir(parents=True)
    s = make_settings(db_path=db)
    for f in sorted((REPO / "sample_tiles" / "claims").glob("*.geojson")):
        register_claims(db, f, f.stem, s)
    return db, s


def _copied(tmp: Path, name: str, registered: Path):
    """A fresh copy of a database whose claims are already registered (scale mode)."""
    import shutil

    from assets.config import settings as make_settings

    db = tmp / name / "night.duckdb"
    db.parent.mkdir(parents=True)
    for f in registered.parent.glob(registered.name + "*"):  # the file and any write-ahead log
        shutil.copy2(f, db.parent / (db.name + f.name[len(registered.name):]))
    return db, make_settings(db_path=db)


def plain(tmp: Path, tiles: str, name: str = "plain", registered: Path | None = None) -> dict:
    from assets.imagery.catalog import ingest_tile, record_deliveries, tile_sources
    from assets.pipeline import assess_claims, load_models, reference_tiles, segment_tile, segmentation_cache

    db, s = _fresh(tmp, name) if registered is None else _copied(tmp, name, registered)
    models = load_models(s)
    stages: dict[str, float] = {}
    t0 = time.perf_counter()
    deliveries = [ingest_tile(src, s) for src in tile_sources(tiles)]
    survey = record_deliveries(deliveries, s, AS_OF).survey
    stages["ingest"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    refs = reference_tiles(survey.tiles)
    for ref in refs:
        segment_tile(ref, models.segmenter, segmentation_cache(db))
    stages["segment"] = time.perf_counter() - t1
    t2 = time.perf_counter()
    report = assess_claims(db, as_of=AS_OF, settings=s, models=models, kind="nightly")
    stages["assess"] = time.perf_counter() - t2
    wall = time.perf_counter() - t0
    return {"wall_s": round(wall, 3), "stage_s": {k: round(v, 3) for k, v in stages.items()},
            "tiles": len(deliveries), "claims": len(report.assessments), "reference_tiles": len(refs),
            "quarantined": len(survey.quarantined)}


def flow(tmp: Path, tiles: str, name: str, dask: str | None, processes: bool, registered: Path | None = None) -> dict:
    from assets.flows.nightly import NightlyConfig, run_nightly

    db, s = _fresh(tmp, name) if registered is None else _copied(tmp, name, registered)
    config = NightlyConfig(db_path=str(db), tiles_dir=tiles, as_of=AS_OF, models_dir=str(s.models_dir),
                           dask_cluster=dask, dask_processes=processes)
    t0 = time.perf_counter()
    summary = run_nightly(config)
    wall = time.perf_counter() - t0
    work = task_work_s()
    return {"wall_s": round(wall, 3), "stage_s": summary["report"]["stage_s"], "claims": summary["claims"],
            "status": summary["report"]["status"], "quarantined": len(summary["quarantined"]),
            "task_work_s": round(work, 3), "orchestration_s": round(wall - work, 3),
            "orchestration_fraction": round((wall - work) / wall, 4)}


def covered_s(intervals: list[tuple[float, float]]) -> float:
    """Seconds covered by at least one interval (concurrent tasks counted once)."""
    total, end = 0.0, -math.inf
    for a, b in sorted(intervals):
        if b > end:
            total += b - max(a, end)
            end = b
    return total


def task_work_s(wait_s: float = 30.0) -> float:
    """Task work of the newest flow run, by Prefect's own record: the time at least one of its task
    runs was RUNNING. Wall time minus this is what orchestration cost the night (the issue's
    "wall time minus the sum of task work", with tasks that ran side by side counted once): flow
    start, task submission and state hand-offs, and the flow's own bookkeeping outside tasks."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
    from prefect.client.schemas.sorting import FlowRunSort

    with get_client(sync_client=True) as client:
        run = client.read_flow_runs(sort=FlowRunSort.START_TIME_DESC, limit=1)[0]
        deadline = time.monotonic() + wait_s  # task-run states reach the API as events, shortly after the run
        while True:
            runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run.id])))
            if runs and all(r.start_time and r.end_time for r in runs) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
    spans = [(r.start_time.timestamp(), r.end_time.timestamp()) for r in runs if r.start_time and r.end_time]
    if len(spans) < len(runs) or not spans:
        raise SystemExit(f"flow run {run.name}: {len(runs) - len(spans)} of {len(runs)} task runs have no end time")
    return covered_s(spans)


# --- scale mode (--scale): synthetic nights of 1-20 tile-px tiles and 1k-100k fields -------------

FIELD_SIDE_M, FIELD_GAP_M, FIELDS_PER_BORROWER, PIXEL_M = 100.0, 20.0, 10, 10.0
REGISTER_BATCH = 500  # borrowers per store transaction when registering the synthetic fields


@dataclass(frozen=True)
class Grid:
    index: int
    left: float  # EPSG:32632 metres
    top: float
    size_m: float


def _bundled() -> list[Path]:
    return sorted((REPO / "sample_tiles").glob("S2_DK_*.tif"))


def build_tiles(out: Path, count: int, tile_px: int) -> tuple[list[Path], list[Grid]]:
    """``count`` synthetic tiles: ceil(count/7) grids side by side (each tile-px*10 m further east),
    each carrying the bundled season's dates in date order, every tile the bundled tile of its date
    mirror-tiled to tile_px x tile_px (same bands, descriptions, dtype, nodata and tags; SCENE_ID
    made unique per grid), written as a tiled deflate GeoTIFF."""
    import numpy as np
    import rasterio
    from rasterio.transform import Affine

    out.mkdir(parents=True, exist_ok=True)
    sources = _bundled()
    n_grids = math.ceil(count / len(sources))
    with rasterio.open(sources[0]) as ref:
        left0, top0 = ref.transform.c, ref.transform.f
    size_m = tile_px * PIXEL_M
    grids = [Grid(g, left0 + g * size_m, top0, size_m) for g in range(n_grids)]
    paths: list[Path] = []
    for d, src in enumerate(sources):
        wanted = [g for g in grids if g.index * len(sources) + d < count]
        if not wanted:
            continue
        with rasterio.open(src) as ds:
            data, profile, tags, desc = ds.read(), ds.profile.copy(), ds.tags(), ds.descriptions
        _, h, w = data.shape
        big = np.pad(data, ((0, 0), (0, max(0, tile_px - h)), (0, max(0, tile_px - w))), mode="reflect")
        big = np.ascontiguousarray(big[:, :tile_px, :tile_px])
        for g in wanted:
            path = out / f"G{g.index:02d}_{src.name}"
            profile.update(driver="GTiff", width=tile_px, height=tile_px, tiled=True, blockxsize=256,
                           blockysize=256, compress="deflate",
                           transform=Affine(PIXEL_M, 0.0, g.left, 0.0, -PIXEL_M, g.top))
            with rasterio.open(path, "w", **profile) as dst:
                dst.write(big)
                dst.update_tags(**{**tags, "SCENE_ID": f"{tags.get('SCENE_ID', src.stem)}_G{g.index:02d}"})
                for i, name in enumerate(desc, start=1):
                    if name:
                        dst.set_band_description(i, name)
            paths.append(path)
    paths.sort(key=lambda p: p.name)
    assert len(paths) == count, (len(paths), count)
    return paths, grids


def check_gate(tiles: list[Path], tmp: Path) -> list[str]:
    """Each tile through the catalogue's quality gate (a throwaway catalogue): outcomes."""
    from assets.config import settings as make_settings
    from assets.imagery.catalog import ingest_tile

    s = make_settings(db_path=tmp / "gate" / "gate.duckdb")
    outcomes = []
    for t in tiles:
        d = ingest_tile(str(t), s)
        if d.outcome == "quarantined":
            raise SystemExit(f"synthetic tile {t.name} fails the quality gate: {d.quarantined}")
        outcomes.append(d.outcome)
    return outcomes


def field_documents(count: int, grids: list[Grid]) -> list[tuple[str, dict]]:
    """``count`` ~1 ha squares (100 m side) on a regular lattice spread evenly over the grids, in
    EPSG:4326, as one GeoJSON FeatureCollection per borrower (10 fields each)."""
    import numpy as np
    from pyproj import Transformer

    margin = 200.0
    pitch = FIELD_SIDE_M + FIELD_GAP_M
    per_side = int((grids[0].size_m - 2 * margin - FIELD_SIDE_M) // pitch) + 1
    slots = per_side * per_side * len(grids)
    if count > slots:  # closer lattice (gaps below 20 m) rather than fields off the imagery
        span = grids[0].size_m - 2 * margin - FIELD_SIDE_M
        per_side = min(math.ceil(math.sqrt(count / len(grids))), int(span // (FIELD_SIDE_M + 2.0)) + 1)
        pitch = span / max(1, per_side - 1)  # per_side counted first: floor(span / pitch) lost one to rounding
        slots = per_side * per_side * len(grids)
    if count > slots:
        raise SystemExit(f"{count} fields do not fit on {len(grids)} grids ({slots} lattice places)")
    chosen = np.unique(np.linspace(0, slots - 1, count).round().astype(np.int64))
    assert len(chosen) == count
    g, rest = np.divmod(chosen, per_side * per_side)
    row, col = np.divmod(rest, per_side)
    lefts = np.array([gr.left for gr in grids])[g] + margin + col * pitch
    tops = np.array([gr.top for gr in grids])[g] - margin - row * pitch
    xs = np.stack([lefts, lefts + FIELD_SIDE_M, lefts + FIELD_SIDE_M, lefts, lefts], axis=1)
    ys = np.stack([tops, tops, tops - FIELD_SIDE_M, tops - FIELD_SIDE_M, tops], axis=1)
    lon, lat = Transformer.from_crs(32632, 4326, always_xy=True).transform(xs.ravel(), ys.ravel())
    lon, lat = np.asarray(lon).reshape(xs.shape), np.asarray(lat).reshape(ys.shape)
    docs = []
    for b in range(0, count, FIELDS_PER_BORROWER):
        feats = [{"type": "Feature", "properties": {"name": f"field-{i:06d}"},
                  "geometry": {"type": "Polygon",
                               "coordinates": [[[round(float(x), 7), round(float(y), 7)]
                                                for x, y in zip(lon[i], lat[i])]]}}
                 for i in range(b, min(count, b + FIELDS_PER_BORROWER))]
        docs.append((f"b-{b // FIELDS_PER_BORROWER:06d}", {"type": "FeatureCollection", "features": feats}))
    return docs


def registered_db(tmp: Path, count: int, grids: list[Grid]) -> tuple[Path, dict]:
    """A database with ``count`` synthetic claims registered (untimed for the night; timed here)."""
    from assets.config import settings as make_settings
    from assets.fields.geometry import read_drawings
    from assets.pipeline import store_drawings_of

    db = tmp / f"registered-{count}-{len(grids)}g" / "night.duckdb"
    db.parent.mkdir(parents=True)
    s = make_settings(db_path=db)
    docs = field_documents(count, grids)
    assert all(len(d["features"]) <= s.max_features_per_file for _, d in docs)
    t0 = time.perf_counter()
    stored = rejected = 0
    # What `register_claims` does per borrower (parse, validate, pledge check, store), REGISTER_BATCH
    # borrowers a transaction: each register_claims call opens the file three times (~20 ms each
    # here), which would make 100k fields a half-hour set-up.
    for start in range(0, len(docs), REGISTER_BATCH):
        batch = [(b, read_drawings(doc, max_features=s.max_features_per_file)) for b, doc in docs[start : start + REGISTER_BATCH]]
        for claims in store_drawings_of(db, batch, s, "bench"):
            stored += len(claims)
            rejected += sum(c.geometry is None for c in claims)
    took = time.perf_counter() - t0
    info = {"fields": count, "grids": len(grids), "register_s": round(took, 2), "stored": stored,
            "rejected": rejected, "register_fields_per_s": round(count / took, 1)}
    print("registered", info, file=sys.stderr, flush=True)
    return db, info


def _variant(v: dict) -> dict:
    return {k: v[k] for k in ("wall_s", "stage_s", "task_work_s", "orchestration_s", "orchestration_fraction") if k in v}


def run_point(tmp: Path, inbox: Path, registered: Path, tiles: int, fields: int, grids: int,
              variants: list[str], dask_processes: bool) -> dict:
    tag = f"t{tiles}-f{fields}"
    out: dict = {"tiles": tiles, "fields": fields, "grids": grids}
    runs: dict[str, dict] = {}
    if "plain" in variants:
        runs["plain"] = plain(tmp, str(inbox), f"{tag}-plain", registered)
        out["reference_tiles"] = runs["plain"]["reference_tiles"]
    if "prefect" in variants:
        runs["prefect"] = flow(tmp, str(inbox), f"{tag}-prefect", None, False, registered)
    if "dask" in variants:
        runs["dask"] = flow(tmp, str(inbox), f"{tag}-dask", "local:2", dask_processes, registered)
    for name, r in runs.items():
        print(f"  {tag} {name}", r, file=sys.stderr, flush=True)
        out[name] = _variant(r)
        out.setdefault("claims", r["claims"])
        if r.get("quarantined"):
            raise SystemExit(f"{tag} {name}: {r['quarantined']} synthetic tiles quarantined")
    out["wall_s"] = {k: r["wall_s"] for k, r in runs.items()}
    out["stage_s"] = {k: r["stage_s"] for k, r in runs.items()}
    if "prefect" in runs:
        pre = runs["prefect"]
        out["prefect_outside_stages_s"] = round(pre["wall_s"] - sum(pre["stage_s"].values()), 3)
        out["statuses"] = [r["status"] for k, r in runs.items() if "status" in r]
        out["overhead_s"], out["overhead_fraction"] = pre["orchestration_s"], pre["orchestration_fraction"]
        if "plain" in runs:  # two runs apart: load and concurrency move this by tens of seconds (README)
            out["wall_difference_s"] = round(pre["wall_s"] - runs["plain"]["wall_s"], 3)
            out["wall_difference_fraction"] = round(out["wall_difference_s"] / pre["wall_s"], 4)
        if "dask" in runs:
            out["dask_speedup"] = round(pre["wall_s"] / runs["dask"]["wall_s"], 3)
    if "plain" in runs:
        st, refs = runs["plain"]["stage_s"], max(1, out["reference_tiles"])
        out["per_tile_s"] = {"ingest": round(st["ingest"] / tiles, 3), "segment_per_reference": round(st["segment"] / refs, 3),
                             "assess_per_field": round(st["assess"] / fields, 5)}
    return out


def full_tile_note(point: dict, tile_px: int, full_px: int = 10_980, segment_full_s: tuple[float, float] = (77.0, 88.0)) -> dict:
    """An estimate, not a measurement: the largest point's night with full 10,980 px tiles."""
    area = (full_px / tile_px) ** 2
    per = point["per_tile_s"]
    ingest = per["ingest"] * point["tiles"] * area
    assess = point["stage_s"]["plain"]["assess"]  # per field and date: tile size barely matters
    refs = point["reference_tiles"]
    lo, hi = (ingest + refs * s + assess for s in segment_full_s)
    over = point.get("overhead_s") or 0.0
    outside = point.get("prefect_outside_stages_s") or 0.0
    cost = f"{over} s of orchestration (wall minus task work): {over / (hi + over):.2%}-{over / (lo + over):.2%} of such a night"
    text = (f"measured tiles are {tile_px} x {tile_px} px ({area:.1f}x smaller than a {full_px:,} px tile), not full "
            f"tiles. Estimate for {point['tiles']} full tiles ({refs} reference tiles segmented) and {point['fields']:,} "
            f"fields: ingest ~{ingest:.0f} s (measured {per['ingest']:.2f} s per {tile_px} px tile, serial, x {area:.1f}), "
            f"segmentation {refs} x {segment_full_s[0]:.0f}-{segment_full_s[1]:.0f} s (bench/segment_tile.py), assessment "
            f"~{assess:.0f} s (as measured): ~{lo:.0f}-{hi:.0f} s of serial task work. Prefect's measured cost at this "
            f"point: {cost}; {outside} s outside the stages = {outside / (hi + outside):.3%}-{outside / (lo + outside):.3%}, "
            "if it does not grow with tile size (per-task costs do not depend on pixels)")
    return {"text": text, "estimated_task_work_s": [round(lo, 1), round(hi, 1)],
            "estimated_overhead_fraction": [round(over / (hi + over), 4), round(over / (lo + over), 4)],
            "estimated_outside_stages_fraction": [round(outside / (hi + outside), 5), round(outside / (lo + outside), 5)]}


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def scale_main(args: argparse.Namespace, tmp: Path) -> dict:
    tiles_list, fields_list = _ints(args.tiles_list), _ints(args.fields_list)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    max_tiles = max(tiles_list)
    # Points: every tile count at the smallest field count, every field count at the most tiles.
    points = [(t, min(fields_list)) for t in sorted(tiles_list)]
    points += [(max_tiles, f) for f in sorted(fields_list) if f != min(fields_list)]
    t0 = time.perf_counter()
    every, grids = build_tiles(tmp / "synthetic", max_tiles, args.tile_px)
    build_s = time.perf_counter() - t0
    # Each date's tile through the gate first; a night that quarantines a tile stops the bench anyway (run_point).
    gate = check_gate(every[: len(_bundled())], tmp) if args.gate_check else ["not checked first"]
    print(f"built {len(every)} tiles of {args.tile_px} px on {len(grids)} grids in {build_s:.1f} s; gate: {gate}",
          file=sys.stderr, flush=True)
    inboxes: dict[int, Path] = {}
    for t in tiles_list:  # the first t tiles (grid by grid, dates in order), linked into an inbox of their own
        inbox = tmp / f"inbox-{t}"
        inbox.mkdir()
        for p in every[:t]:
            os.link(p, inbox / p.name)
        inboxes[t] = inbox
    registered: dict[tuple[int, int], tuple[Path, dict]] = {}
    results = []
    for t, f in points:
        n_grids = math.ceil(t / len(_bundled()))
        key = (f, n_grids)
        if key not in registered:
            registered[key] = registered_db(tmp, f, grids[:n_grids])
        db, reg = registered[key]
        if not results and args.warm_up:  # the first night at this tile size (new shapes for torch and GDAL): not compared
            warm = plain(tmp, str(inboxes[t]), "scale-warm-up", db)
            print("scale warm-up (not compared)", warm, file=sys.stderr, flush=True)
        point = run_point(tmp, inboxes[t], db, t, f, n_grids, variants, args.dask_processes)
        point["register"] = reg
        print(json.dumps(point), flush=True)
        results.append(point)
    largest = max(results, key=lambda p: (p["tiles"], p["fields"] == min(fields_list)))
    return {
        "mode": "scale", "tile_px": args.tile_px, "cpus": os.cpu_count(), "torch_threads": _torch_threads(),
        "points": results, "largest_point": {"tiles": largest["tiles"], "fields": largest["fields"]},
        "overhead_fraction": largest.get("overhead_fraction"), "overhead_s": largest.get("overhead_s"),
        "prefect_outside_stages_s": largest.get("prefect_outside_stages_s"),
        "stage_s": largest["stage_s"], "wall_s": largest["wall_s"], "dask_speedup": largest.get("dask_speedup"),
        "dask_workers": 2, "dask_processes": args.dask_processes, "tile_build_s": round(build_s, 1),
        "full_tile_note": full_tile_note(largest, args.tile_px) if "per_tile_s" in largest else None,
    }


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiles", default=str(REPO / "sample_tiles"), help="tile inbox (folder or fsspec URL)")
    ap.add_argument("--dask-processes", action="store_true", help="Dask workers as processes (default threads)")
    ap.add_argument("--scale", action="store_true", help="synthetic nights over --tiles-list x --fields-list")
    ap.add_argument("--tile-px", type=int, default=2048, help="scale mode: side of each synthetic tile in pixels")
    ap.add_argument("--tiles-list", default="1,5,20", help="scale mode: tile counts (at the fewest fields)")
    ap.add_argument("--fields-list", default="1000,10000", help="scale mode: field counts (at the most tiles)")
    ap.add_argument("--variants", default="plain,prefect,dask", help="scale mode: which of plain,prefect,dask")
    ap.add_argument("--no-gate-check", dest="gate_check", action="store_false",
                    help="scale mode: skip gating each date's tile before the nights (full tiles: 85 s and 1.5 GB each)")
    ap.add_argument("--no-warm-up", dest="warm_up", action="store_false",
                    help="scale mode: skip the uncompared plain night at the first point (full tiles, 100k fields: "
                         "overhead_fraction is measured within the Prefect run, so no plain night is needed)")
    args = ap.parse_args()
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("ASSETS_SNAPSHOT", "0")  # no analyst here: time the night, not its snapshots
    from prefect.testing.utilities import prefect_test_harness

    from assets.config import Settings
    from assets.pipeline import load_models

    load_models(Settings())  # once per process, outside every clock
    with tempfile.TemporaryDirectory() as tmp_, prefect_test_harness(server_startup_timeout=180):
        tmp = Path(tmp_)
        cold = plain(tmp, args.tiles, "warm-up")  # first inference, GDAL and DuckDB start-up: not compared
        print("plain (cold, not compared)", cold, file=sys.stderr, flush=True)
        if args.scale:
            result = scale_main(args, tmp)
            result["plain_cold_wall_s"] = cold["wall_s"]
            print(json.dumps(result))
            return
        base = plain(tmp, args.tiles)
        print("plain", base, file=sys.stderr, flush=True)
        pre = flow(tmp, args.tiles, "prefect", None, False)
        print("prefect", pre, file=sys.stderr, flush=True)
        dsk = flow(tmp, args.tiles, "dask", "local:2", args.dask_processes)
        print("dask", dsk, file=sys.stderr, flush=True)
    result = {
        "tiles": base["tiles"], "claims": base["claims"], "tiles_source": args.tiles,
        "plain_wall_s": base["wall_s"], "prefect_wall_s": pre["wall_s"], "dask_wall_s": dsk["wall_s"],
        "plain_cold_wall_s": cold["wall_s"],
        # wall time minus the time some task run was running, in the same Prefect run (task_work_s)
        "overhead_s": pre["orchestration_s"], "overhead_fraction": pre["orchestration_fraction"],
        "task_work_s": pre["task_work_s"], "dask_overhead_fraction": dsk["orchestration_fraction"],
        "wall_difference_s": round(pre["wall_s"] - base["wall_s"], 3),
        "wall_difference_fraction": round((pre["wall_s"] - base["wall_s"]) / pre["wall_s"], 4),
        # the flow's wall time outside its stages (flow-run start, run reports, before/after snapshots)
        "prefect_outside_stages_s": round(pre["wall_s"] - sum(pre["stage_s"].values()), 3),
        "stage_s": {"plain": base["stage_s"], "prefect": pre["stage_s"], "dask": dsk["stage_s"]},
        "dask_speedup": round(pre["wall_s"] / dsk["wall_s"], 3), "dask_workers": 2,
        "dask_processes": args.dask_processes, "cpus": os.cpu_count(),
        "statuses": [pre["status"], dsk["status"]],
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
