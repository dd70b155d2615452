"""Retrain models/segment.pt from the Danish scene: `python scripts/train_segment.py [--steps N]`.

Reads ../shared/data/denmark (never copied into the repo), trains on one thread, holds out the
eastern strip, writes the checkpoint and the card's overlay figure, and prints the held-out
metrics as JSON. `--rescore PT` only re-scores an existing checkpoint with the current
post-processing (storing the metrics in it) and redraws the figure.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from assets.models.segment_train import TrainConfig, evaluate, load_scene, overlay_figure, sample_figure, train

REPO = Path(__file__).resolve().parents[1]


def data_dir() -> Path:
    for cand in (REPO.parent / "shared" / "data", Path("/work/shared/data")):
        if (cand / "denmark").is_dir():
            return cand / "denmark"
    raise SystemExit("shared/data/denmark not found beside the repository")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--steps", type=int, default=TrainConfig.steps)
    ap.add_argument("--widths", default=",".join(map(str, TrainConfig.widths)))
    ap.add_argument("--crop", type=int, default=TrainConfig.crop)
    ap.add_argument("--batch", type=int, default=TrainConfig.batch)
    ap.add_argument("--lr", type=float, default=TrainConfig.lr)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--boundary-weight", type=float, default=TrainConfig.class_weights[2])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(REPO / "models" / "segment.pt"))
    ap.add_argument("--version", default="segment-dk2016-v1")
    ap.add_argument("--figure", default=str(REPO / "models" / "segment_holdout_overlay.png"))
    ap.add_argument("--rescore", metavar="PT", help="re-score this checkpoint instead of training")
    args = ap.parse_args()
    if args.rescore:
        rescore(Path(args.rescore), Path(args.figure))
        return
    cfg = TrainConfig(widths=tuple(int(w) for w in args.widths.split(",")), steps=args.steps, crop=args.crop,
                      batch=args.batch, lr=args.lr, seed=args.seed, threads=args.threads,
                      class_weights=(1.0, 1.0, args.boundary_weight))
    d = data_dir()
    scene = load_scene(d / "s2_rgb_2016.tif", d / "parcels_2016.gpkg", cfg.holdout_frac)
    model = train(scene, cfg, args.out, version=args.version, log=lambda m: print(m, flush=True))
    overlay_figure(model, scene, args.figure)
    print(json.dumps({"out": args.out, **model.metrics}))


def rescore(pt: Path, png: Path) -> None:
    import torch

    from assets.models.segment import load

    d = data_dir()
    scene = load_scene(d / "s2_rgb_2016.tif", d / "parcels_2016.gpkg")
    model = load(pt)
    model.metrics = evaluate(model, scene)
    ckpt = torch.load(pt, map_location="cpu", weights_only=False)
    ckpt["metrics"] = model.metrics
    tmp = pt.with_suffix(".tmp")
    torch.save(ckpt, tmp)
    tmp.replace(pt)
    overlay_figure(model, scene, png)
    sample = d.parent / "tiles" / "s2_rgbn_2dates_ftw_sample.tif"
    if sample.is_file():
        sample_figure(model, sample, png.with_name("segment_ftw_sample.png"))
    print(json.dumps({"model": str(pt), "version": model.version, **model.metrics}))


if __name__ == "__main__":
    main()
