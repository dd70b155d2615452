"""Benchmark: a full Sentinel-2 tile (10,980 x 10,980 px, 4 bands) through segmentation + polygons.

The tile is built (untimed) by mirror-tiling the real Sentinel-2 sample
``shared/data/tiles/s2_rgbn_2dates_ftw_sample.tif`` (first date, R G B NIR) into a tiled deflate
GeoTIFF, as a COG-like input would be. Each size runs in a fresh subprocess so that its peak RSS
is its own. Targets (issue 4): <= 120 s and <= 2048 MiB for the full tile.

    python bench/segment_tile.py [--sizes 1024,2048,4096,10980] [--window 1024] [--threads 2]

Prints one JSON line per size and, last, one JSON object summarising the full-tile run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def sample_path() -> Path:
    for cand in (REPO.parent / "shared" / "data", Path("/work/shared/data")):
        p = cand / "tiles" / "s2_rgbn_2dates_ftw_sample.tif"
        if p.is_file():
            return p
    sys.exit("shared/data/tiles/s2_rgbn_2dates_ftw_sample.tif not found beside the repository")


def build_tile(out: Path, size: int) -> None:
    """Mirror-tile the real sample into a size x size 4-band uint16 deflate GeoTIFF, strip by strip."""
    import rasterio
    from affine import Affine

    with rasterio.open(sample_path()) as src:
        base = src.read([1, 2, 3, 4])
        crs = src.crs
        x0, y0 = src.transform.c, src.transform.f
    # A 2x2 mirror unit tiles seamlessly (fields continue across the joins, like real land).
    unit = np.concatenate([base, base[:, :, ::-1]], axis=2)
    unit = np.concatenate([unit, unit[:, ::-1, :]], axis=1)
    uh, uw = unit.shape[1:]
    profile = dict(driver="GTiff", width=size, height=size, count=4, dtype="uint16", nodata=0, crs=crs,
                   transform=Affine(10.0, 0.0, x0, 0.0, -10.0, y0), tiled=True, blockxsize=512,
                   blockysize=512, compress="deflate", predictor=2, interleave="pixel", BIGTIFF="IF_SAFER")
    reps_x = -(-size // uw)
    with rasterio.open(out, "w", **profile) as dst:
        dst.descriptions = ("B04", "B03", "B02", "B08")
        for r0 in range(0, size, 512):
            n = min(512, size - r0)
            rows = (np.arange(r0, r0 + n) % uh)
            strip = np.tile(unit[:, rows, :], (1, 1, reps_x))[:, :, :size]
            dst.write(strip, window=rasterio.windows.Window(0, r0, size, n))


def run_one(tile: Path, window: int, threads: int) -> dict:
    """The timed pipeline, in this (fresh) process: segment to a probabilities file, polygonise, write."""
    import torch

    torch.set_num_threads(threads)
    import rasterio

    from assets.fields.polygonize import polygonize_file, write_fields
    from assets.imagery.windows import predict_raster_to_file
    from assets.models.segment import load

    with rasterio.Env(GDAL_CACHEMAX=64, GDAL_NUM_THREADS=1):
        t0 = time.perf_counter()
        model = load()
        rss_start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        with tempfile.TemporaryDirectory(prefix="segbench-") as tmp:
            t1 = time.perf_counter()
            summary = predict_raster_to_file(tile, model, Path(tmp) / "probs.tif", window_px=window)
            t2 = time.perf_counter()
            rss_segment = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            frame = polygonize_file(Path(tmp) / "probs.tif")
            t3 = time.perf_counter()
            write_fields(frame, Path(tmp) / "fields.parquet")
            t4 = time.perf_counter()
    mpx = summary.width * summary.height / 1e6
    return {
        "size": summary.width, "mpx": round(mpx, 2), "wall_s": round(t4 - t0, 2),
        "segment_s": round(t2 - t1, 2), "polygonize_s": round(t3 - t2, 2), "write_s": round(t4 - t3, 2),
        "load_s": round(t1 - t0, 2), "mpx_per_s": round(mpx / (t4 - t0), 3),
        "segment_mpx_per_s": round(mpx / (t2 - t1), 3), "n_fields": int(len(frame)),
        "total_ha": round(float(frame["area_ha"].sum()), 1) if len(frame) else 0.0,
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "peak_rss_after_segment_mib": round(rss_segment, 1), "rss_at_start_mib": round(rss_start, 1),
        "threads": threads, "window_px": window, "model": model.version,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1024,2048,4096,10980")
    ap.add_argument("--window", type=int, default=1024)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--_run", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._run:
        print(json.dumps(run_one(Path(args._run), args.window, args.threads)))
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    results = []
    with tempfile.TemporaryDirectory(prefix="segbench-tiles-") as tmp:
        for size in sizes:
            tile = Path(tmp) / f"tile_{size}.tif"
            build_tile(tile, size)
            env = {**os.environ, "GDAL_CACHEMAX": "64", "OMP_NUM_THREADS": str(args.threads)}
            proc = subprocess.run([sys.executable, __file__, "--_run", str(tile), "--window", str(args.window),
                                   "--threads", str(args.threads)], capture_output=True, text=True, env=env)
            if proc.returncode != 0:
                sys.exit(f"benchmark run for {size}^2 failed:\n{proc.stderr[-3000:]}")
            res = json.loads(proc.stdout.strip().splitlines()[-1])
            res["input_mib"] = round(tile.stat().st_size / 2**20, 1)
            results.append(res)
            print(json.dumps(res), flush=True)
            tile.unlink()
    full = results[-1]
    base = results[0]
    scaling = [{"size": r["size"], "mpx": r["mpx"], "wall_s": r["wall_s"],
                "s_per_mpx": round(r["wall_s"] / r["mpx"], 3)} for r in results]
    summary = {
        "bench": "segment_tile", **{k: full[k] for k in ("size", "mpx", "wall_s", "peak_rss_mib", "mpx_per_s",
                                                        "segment_s", "polygonize_s", "segment_mpx_per_s",
                                                        "n_fields", "total_ha", "threads", "window_px", "model")},
        "target_wall_s": 120, "target_peak_rss_mib": 2048,
        "meets_time": full["wall_s"] <= 120, "meets_memory": full["peak_rss_mib"] <= 2048,
        "scaling": scaling,
        "time_ratio_vs_pixels": round((full["wall_s"] / base["wall_s"]) / (full["mpx"] / base["mpx"]), 3),
        "cpu": _cpu(), "load_avg_1m": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(summary))


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} x{os.cpu_count()}"
    except OSError:
        pass
    return f"unknown x{os.cpu_count()}"


if __name__ == "__main__":
    main()
