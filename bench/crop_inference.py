"""Crop classifier throughput on this CPU: series per second through the public call.

    python bench/crop_inference.py [--model models/crop.pt] [--rows 100000] [--threads 2]

Two inputs, both timed through ``CropModel.predict_proba`` (season slotting, interpolation,
network, temperature softmax; the season's validation is done once, outside the timing):

* ``multiband``: the production model on real Sentinel-2 seasons (the France 2023 ten-day
  composites from ../shared/data, 51 dates with their real clouds, B02/B03/B04/B08 + NDVI),
  tiled up to --rows; synthetic curves when the data is absent.
* ``single_band_46``: the same architecture built for NDVI only, on 46-date single-band series
  (UCR Crop rows when present): the issue's reference input. Its weights are untrained (speed
  does not depend on them), so it says nothing about accuracy.

Best of --repeats runs. Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from assets.models import crop
from assets.models.seasons import Season, make_season

REPO = Path(__file__).resolve().parents[1]
DATA = next((p for p in (REPO.parent / "shared" / "data", Path("/work/shared/data")) if p.is_dir()), None)


def multiband(rows: int) -> Season:
    f = DATA / "s2-crops" / "fra2023_westfrance_dekad.npz" if DATA else None
    if f is not None and f.is_file():
        z = np.load(f)
        idx = [list(z["bands"]).index(b) for b in ("B02", "B03", "B04", "B08")]
        x = z["X"][:, :, idx][z["mask"].any(axis=1)]  # rows with at least one clear date
        x = np.resize(x, (rows, *x.shape[1:]))
        return make_season(x, ["B02", "B03", "B04", "B08"], z["dates"])
    rng = np.random.default_rng(0)
    x = rng.uniform(0.02, 0.4, (rows, 36, 4)).astype(np.float32)
    return make_season(x, ["B02", "B03", "B04", "B08"], days=np.arange(36) * 10.0)


def single_band(rows: int) -> Season:
    f = DATA / "crop-series" / "Crop_VALIDATION.npy" if DATA else None
    if f is not None and f.is_file():
        x = np.resize(np.load(f)[:, 1:].astype(np.float32), (rows, 46))
    else:
        x = np.random.default_rng(0).uniform(0.1, 0.9, (rows, 46)).astype(np.float32)
    return make_season(x, ["ndvi"], days=8.0 * np.arange(46))


def best_rate(fn, rows: int, repeats: int) -> float:
    fn()  # warm-up (allocator, kernels)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return rows / best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = crop.load(args.model)
    multi = multiband(args.rows)
    multi_rate = best_rate(lambda: model.predict_proba(multi), args.rows, args.repeats)
    ndvi_net = crop.build_net({"channels": ["ndvi"], "classes": model.classes, "net": model.config.get("net", {})})
    ndvi_model = crop.CropModel(classes=model.classes, version="ndvi-speed", net=ndvi_net, channels=["ndvi"])
    single = single_band(args.rows)
    single_rate = best_rate(lambda: ndvi_model.predict_proba(single), args.rows, args.repeats)
    result = {
        "single_band_46_series_per_s": round(single_rate),
        "multiband_series_per_s": round(multi_rate),
        "multiband_channels": model.channels,
        "rows": args.rows,
        "threads": args.threads,
        "model": model.version,
        "params": sum(p.numel() for p in model.net.parameters()),
        "machine": f"{platform.machine()} {os.cpu_count()} cores, load avg {os.getloadavg()[0]:.1f} (shared)",
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
