"""Reproduce the production crop model and every figure in models/crop_card.md.

    python scripts/train_crop.py card  --out /tmp/crop_card   # spatial-block CV: pooled, per file, forest, plots
    python scripts/train_crop.py curve --out /tmp/crop_card   # learning curve: accuracy against training fields
    python scripts/train_crop.py cropmask --out /tmp/crop_card  # Digital Earth Africa crop / non-crop, leave one region out
    python scripts/train_crop.py final                        # models/crop.pt from every row (temperature from card)
    python scripts/train_crop.py ucr --out /tmp/crop_card     # does UCR Crop help on France 2023? (NDVI forest)
    python scripts/train_crop.py explore --tag prod --out D && python scripts/train_crop.py coverage --tag prod --out D
                                                              # accuracy when the model names a crop vs how often

Data: the four WorldCereal files of ../shared/data/s2-crops (France 2023 ten-day, East Africa
2017, Corsica 2022, Flanders 2021 monthly), merged through the crop legend. Every score is
out-of-block: 5 folds of whole 0.1-degree spatial blocks, so a field is always scored by a model
that saw no field of its block. "Main classes" are the issue's: France grassland, maize, wheat,
fallow, sunflower, rapeseed, soy, barley; East Africa sorghum, maize, oilseeds, trees, pulses.
The held-out halves of France 2023 and East Africa are not in ../shared/data and were never read.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from assets.models import crop
from assets.models import crop_train as ct
from assets.models.crop_data import read_seasons
from assets.models.crop_report import class_table, confusion_plot, coverage_rows, reliability_plot

REPO = Path(__file__).resolve().parents[1]
DATA = next((p for p in (REPO.parent / "shared" / "data" / "s2-crops", Path("/work/shared/data/s2-crops")) if p.is_dir()),
            REPO.parent / "shared" / "data" / "s2-crops")  # fmt: skip
FILES = ["fra2023_westfrance_dekad.npz", "eastafrica2017_monthly.npz", "fra2022_corsica_monthly.npz",
         "bel2021_flanders_monthly.npz"]  # fmt: skip
MAIN = {
    "fra2023_westfrance_dekad.npz": ["grasslands", "maize", "wheat", "not_cultivated_fallow", "sunflower",
                                     "rapeseed_rape", "soy_soybeans", "barley"],
    "eastafrica2017_monthly.npz": ["sorghum", "maize", "other_oilseeds", "trees_mixed", "dry_pulses_legumes"],
}  # fmt: skip
EPOCHS = 200
CHANNELS, OPTIONAL = ct.FULL_CHANNELS, ct.DEFAULT_OPTIONAL  # red edge / SWIR optional: 4-band tiles work too


def chosen_files(args: argparse.Namespace) -> list[str]:
    """``--files`` (comma-separated names in DATA), else the card's four files."""
    return args.files.split(",") if args.files else FILES


def per_file(ts: ct.TrainingSet, classes: list[str], proba: np.ndarray, name: str) -> dict:
    """Scores on one file's rows: all rows (own labels) and the main classes."""
    rows = ts.sources == name
    pred = np.array(classes)[proba.argmax(axis=1)]
    truth = ts.raw_crops  # before rare crops were folded: a folded crop called by its group is wrong
    out = {"n": int(rows.sum()), "accuracy_all": float((pred[rows] == truth[rows]).mean())}
    if name in MAIN:
        sel = rows & np.isin(truth, MAIN[name])
        out.update(n_main=int(sel.sum()), accuracy_main=float((pred[sel] == truth[sel]).mean()))
        out["recall_main"] = {c: float((pred[sel & (truth == c)] == c).mean()) for c in MAIN[name] if (sel & (truth == c)).any()}
        out["precision_main"] = {c: float((truth[rows & (pred == c)] == c).mean()) for c in MAIN[name]
                                 if (rows & (pred == c)).any()}  # fmt: skip
    return out


def run_cv(files: list[str], seed: int = 0, forest: bool = True, recipe: ct.Recipe | None = None) -> dict:
    sets = [read_seasons(DATA / f) for f in files]
    recipe = recipe or ct.Recipe(epochs=EPOCHS, seed=seed)
    ts = ct.prepare(sets, CHANNELS, recipe.min_count, optional=OPTIONAL)
    classes = sorted(set(ts.labels.tolist()))
    start = time.perf_counter()
    logits, folds, core = ct.cross_validate(ts, recipe, classes, 5, seed)
    y = ct.encode(ts.labels, classes)
    temperature = ct.fit_temperature(logits, y)
    proba = ct.proba_from_logits(logits, temperature)
    four = ct.proba_from_logits(core, temperature)
    result = {"files": files, "classes": classes, "temperature": temperature, "cv_s": round(time.perf_counter() - start),
              "scores": ct.score(proba, y, len(classes)), "scores_4band": ct.score(four, y, len(classes)),
              "per_file": {f: per_file(ts, classes, proba, f) for f in files},
              "per_file_4band": {f: per_file(ts, classes, four, f) for f in files}}
    if forest:
        fp = ct.forest_cv(ts, classes, folds, seed)
        result["forest_per_file"] = {f: per_file(ts, classes, fp, f) for f in files}
    return result


def cmd_card(args: argparse.Namespace) -> None:
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report: dict = {"machine": f"{platform.processor() or platform.machine()}, torch {torch.__version__}"}
    pooled = run_cv(FILES)
    s = pooled.pop("scores")
    s4 = pooled.pop("scores_4band")
    report["pooled"] = {**pooled, "accuracy": s.accuracy, "macro_f1": s.macro_f1, "ece": s.ece,
                        "accuracy_4band": s4.accuracy, "macro_f1_4band": s4.macro_f1, "ece_4band": s4.ece}
    confusion_plot(s, pooled["classes"], out / "crop_confusion.png", "Pooled, out-of-block (row-normalised)")
    reliability_plot({"pooled out-of-block": s}, out / "crop_reliability.png")
    (out / "class_table.md").write_text(class_table(s, pooled["classes"]))
    for f in MAIN:  # each main file retrained alone: what `assets crop train FILE` gives
        alone = run_cv([f])
        sa = alone.pop("scores")
        alone.pop("scores_4band")
        report[f"alone:{f}"] = {**alone, "accuracy": sa.accuracy, "macro_f1": sa.macro_f1, "ece": sa.ece}
    (out / "card.json").write_text(json.dumps(report, indent=1, default=float))
    print(json.dumps({k: v.get("per_file") for k, v in report.items() if isinstance(v, dict) and "per_file" in v},
                     default=float))  # fmt: skip


def cmd_curve(args: argparse.Namespace) -> None:
    """Learning curve: main-class accuracy of the production recipe and of the forest against the
    number of training fields, pooled 4 files (or ``--files``), the card's 5 block folds.

    Each fold's training rows are subsampled (one seeded draw per share, nested: a smaller share's
    fields are a subset of a larger one's), its held-out block fold is scored in full, so every
    point is out-of-block and the points differ only in how many fields were learnt from."""
    torch.set_num_threads(1)
    shares = [float(s) for s in args.shares.split(",")]
    recipe = ct.Recipe(epochs=args.epochs, seed=args.seed)
    files = chosen_files(args)
    ts = ct.prepare([read_seasons(DATA / f) for f in files], CHANNELS, recipe.min_count, optional=OPTIONAL)
    classes = sorted(set(ts.labels.tolist()))
    y = ct.encode(ts.labels, classes)
    folds = ct.block_folds(ts.blocks, 5, args.seed)
    x_forest = ct.forest_features(ts.values, ts.valid)
    rng = np.random.default_rng(args.seed)
    order = {f: rng.permutation(np.flatnonzero(folds != f)) for f in range(5)}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for share in shares:
        net_p = np.zeros((len(y), len(classes)), np.float32)
        rf_p = np.zeros((len(y), len(classes)))
        n_train = []
        start = time.perf_counter()
        for f in range(5):
            tr = np.sort(order[f][: max(20, round(share * len(order[f])))])
            te = folds == f
            n_train.append(len(tr))
            net = ct.train_net(ts.values[tr], ts.valid[tr], y[tr], len(classes), recipe, seed=recipe.seed * 100 + f,
                               present=ts.present[tr], optional=ct.optional_flags(ts))  # fmt: skip
            net_p[te] = ct.net_logits(net, ts.values[te], ts.valid[te], ct.present_for_eval(ts, te))
            ct.forest_fold(x_forest, y, tr, te, rf_p, args.seed, n_jobs=1)
        row: dict = {"share": share, "train_fields_per_fold": round(float(np.mean(n_train)), 1),
                     "seconds": round(time.perf_counter() - start)}  # fmt: skip
        for name in (f for f in files if f in MAIN):
            net_s, rf_s = per_file(ts, classes, net_p, name), per_file(ts, classes, rf_p, name)
            row[name] = {"n_main": net_s["n_main"], "network": round(net_s["accuracy_main"], 3),
                         "forest": round(rf_s["accuracy_main"], 3)}  # fmt: skip
        rows.append(row)
        print(json.dumps(row), flush=True)
        (out / f"curve{'_' + args.tag if args.tag else ''}.json").write_text(json.dumps(rows, indent=1))


def cmd_cropmask(args: argparse.Namespace) -> None:
    """Cropland vs not on Digital Earth Africa's points: leave one of 8 regions out.

    ``--rows`` seeded random points of the 30,065 (0: all of them); every region is scored on its
    own points by a network, a forest and gradient-boosted trees that saw none of them. The
    gradient-boosted trees are also scored with each region's features standardised over that
    region's own points (labels unused: what a new region's imagery alone allows) and with the
    file's rain and slope layers added (side data the platform's tiles do not carry).
    """
    from sklearn.ensemble import HistGradientBoostingClassifier

    torch.set_num_threads(1)
    data = read_seasons(DATA / "deafrica_cropmask.npz")
    with np.load(DATA / "deafrica_cropmask.npz") as z:
        side = np.concatenate([z["rain"], z["slope"][:, None]], axis=1).astype(np.float32)
        full = z["X"].reshape(len(z["X"]), -1).astype(np.float32)  # every layer, derived ones too
    if args.rows:
        keep = np.sort(np.random.default_rng(0).choice(len(data), args.rows, replace=False))
        data = replace(data, season=data.season.rows(keep), labels=data.labels[keep], raw_labels=data.raw_labels[keep],
                       blocks=data.blocks[keep])  # fmt: skip
        side, full = side[keep], full[keep]
    recipe = ct.Recipe(epochs=args.epochs, batch=128, arch=args.arch, lr=args.lr)
    ts = ct.prepare([data], CHANNELS, 1, optional=OPTIONAL)
    assert len(ts) == len(side), "every DEA point has a clear date"
    classes = sorted(set(ts.labels.tolist()))
    y = ct.encode(ts.labels, classes)
    k = len(set(ts.blocks.tolist()))
    start = time.perf_counter()
    folds = ct.block_folds(ts.blocks, k, 0)
    models = {}
    if args.epochs:
        logits, folds, _ = ct.cross_validate(ts, recipe, classes, k)
        models[args.arch] = logits
    models["forest"] = ct.forest_cv(ts, classes, folds, trees=200)
    bands = ts.values[:, ts.valid.any(axis=0), :].reshape(len(ts), -1)  # the two composites' bands + NDVI
    region_z = bands.copy()
    for f in np.unique(folds):  # per-region standardisation, labels unused
        sel = folds == f
        region_z[sel] = (bands[sel] - bands[sel].mean(0)) / bands[sel].std(0).clip(1e-6)
    for name, x in (("gbm", bands), ("gbm_region_norm", region_z), ("gbm_all_layers_rain_slope", np.concatenate([full, side], 1))):
        out = np.zeros((len(y), len(classes)))
        for f in np.unique(folds):
            tr, te = folds != f, folds == f
            gb = HistGradientBoostingClassifier(learning_rate=0.05, max_iter=300, random_state=0).fit(x[tr], y[tr])
            out[te] = gb.predict_proba(x[te])
        models[name] = out
    regions = {b.split(":", 1)[1]: int(folds[ts.blocks == b][0]) for b in sorted(set(ts.blocks.tolist()))}
    per_region = {r: {m: round(float((p[folds == f].argmax(1) == y[folds == f]).mean()), 4) for m, p in models.items()}
                  for r, f in regions.items()}  # fmt: skip
    out = {"n": len(y), "epochs": args.epochs, "arch": args.arch, "dropped_bands": data.dropped_bands,
           "s": round(time.perf_counter() - start),
           "accuracy": {m: round(float((p.argmax(1) == y).mean()), 4) for m, p in models.items()},
           "per_region": per_region}  # fmt: skip
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / f"cropmask{args.tag}.json").write_text(json.dumps(out, indent=1))
    print(json.dumps(out))


def cmd_explore(args: argparse.Namespace) -> None:
    """One recipe on the card's pooled folds: France / East Africa main-class accuracy, one JSON line.

    ``--baselines`` scores the forest and gradient-boosted phenology features on the same folds
    instead of a network. Every line is appended to OUT/explore.jsonl (the card's "Recipe choice").
    """
    torch.set_num_threads(1)
    files = chosen_files(args)
    sets = [read_seasons(DATA / f) for f in files]
    recipe = ct.Recipe(epochs=args.epochs, seed=args.seed, arch=args.arch, lr=args.lr, width=args.width,
                       d_model=args.d_model, p_drop_max=args.p_drop_max, max_shift_slots=args.shift)  # fmt: skip
    wanted, optional = (ct.RADAR_CHANNELS, ct.RADAR_OPTIONAL) if args.channels == "radar" else (CHANNELS, OPTIONAL)
    ts = ct.prepare(sets, wanted, recipe.min_count, optional=optional)
    classes = sorted(set(ts.labels.tolist()))
    y = ct.encode(ts.labels, classes)
    start = time.perf_counter()
    folds = ct.block_folds(ts.blocks, 5, 0)
    runs = {}
    if args.blend:  # average saved out-of-block probabilities (network logits are temperature-scaled first)
        probas = []
        for name in args.blend.split(","):
            a = np.load(Path(args.out) / name)
            probas.append(a if ("forest" in name or "gbm" in name) else ct.proba_from_logits(a, ct.fit_temperature(a, y)))
        runs["blend:" + args.blend] = np.mean(probas, axis=0)
    elif args.baselines:
        runs["forest"] = ct.forest_cv(ts, classes, folds, args.seed)
        if not args.skip_gbm:
            runs["gbm_phenology"] = ct.gbm_cv(ts, classes, folds, args.seed)
        for name, proba in runs.items():
            np.save(Path(args.out) / f"oob_{name}_s{args.seed}.npy", proba)
    else:
        views = {"no_radar": list(crop.RADAR_BANDS)} if set(crop.RADAR_BANDS) <= set(wanted) else {}
        logits, folds2, extra = ct.cross_validate_views(ts, recipe, classes, 5, 0, views)
        assert (folds2 == folds).all()
        temperature = ct.fit_temperature(logits, y)
        runs[args.arch] = ct.proba_from_logits(logits, temperature)
        for name, z in extra.items():
            runs[f"{args.arch}:{name}"] = ct.proba_from_logits(z, temperature)
        np.save(Path(args.out) / f"oob_{args.tag or args.arch}_s{args.seed}.npy", logits)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    for name, proba in runs.items():
        row = {"run": name, "tag": args.tag, "recipe": {k: v for k, v in vars(recipe).items()} if name == args.arch else None,
               "s": round(time.perf_counter() - start), "accuracy_all": float((proba.argmax(1) == y).mean())}
        for f in files:
            if f in MAIN:
                row[f.split("_")[0] + "_main"] = round(per_file(ts, classes, proba, f)["accuracy_main"], 4)
        print(json.dumps(row))
        with open(Path(args.out) / "explore.jsonl", "a") as fh:
            fh.write(json.dumps(row) + "\n")


def cmd_coverage(args: argparse.Namespace) -> None:
    """Accuracy when the model names a crop against how often it does, from the out-of-block logits
    `explore --tag T` saved (OUT/oob_T_s{seed}.npy), temperature-scaled as the card's model is."""
    files = chosen_files(args)
    ts = ct.prepare([read_seasons(DATA / f) for f in files], CHANNELS, ct.Recipe().min_count, optional=OPTIONAL)
    classes = sorted(set(ts.labels.tolist()))
    y = ct.encode(ts.labels, classes)
    logits = np.load(Path(args.out) / f"oob_{args.tag or args.arch}_s{args.seed}.npy")
    proba = ct.proba_from_logits(logits, ct.fit_temperature(logits, y))
    correct = np.array(classes)[proba.argmax(1)] == ts.raw_crops  # a folded rare crop called by its group is wrong
    top = proba.max(1)
    report = {"all fields": coverage_rows(top, correct)}
    for name in (f for f in files if f in MAIN):
        sel = (ts.sources == name) & np.isin(ts.raw_crops, MAIN[name])
        report[name.split("_")[0] + " main"] = coverage_rows(top[sel], correct[sel])
    for name, rows in report.items():
        print(name, " ".join(f"{r['threshold']}: {r['coverage']} / {r['accuracy']}" for r in rows))
    print(json.dumps(report))


def cmd_ucr(args: argparse.Namespace) -> None:
    """Does UCR Crop help on real Sentinel-2? France 2023 main classes, NDVI only, the card's block folds.

    A forest on France 2023 NDVI (bridged onto UCR's 46 dates, day 1 + 8 i of the harvest year) is
    scored out-of-block trained on France alone, on France plus the 4,607 UCR training series, and on
    UCR alone (does the profile transfer at all?), for calendar shifts of UCR's assumed dates (UCR
    gives none). Only `Crop_TRAIN.npy` is read.
    """
    from sklearn.ensemble import RandomForestClassifier

    from assets.models.crop_data import UCR_DAYS
    from assets.models.seasons import channels

    grid = UCR_DAYS + 1.0

    def ndvi_on_grid(data, shift: float = 0.0) -> np.ndarray:
        s = data.season
        nd = channels(s, ["ndvi"])[0][:, :, 0]  # UCR's own NDVI, or derived from B04 / B08 as the model does
        out = np.full((len(nd), len(grid)), np.nan)
        for i in range(len(nd)):
            ok = s.mask[i] & np.isfinite(nd[i])
            if ok.sum() >= 2:
                out[i] = np.interp(grid, s.days[i][ok] + shift, nd[i][ok])
        return out

    name = FILES[0]
    fr = read_seasons(DATA / name)
    ucr = read_seasons(DATA.parent / "crop-series" / "Crop_TRAIN.npy")
    xf, yf, yu = ndvi_on_grid(fr), fr.labels.astype(str), ucr.labels.astype(str)
    keep = np.isfinite(xf).all(axis=1)
    folds = ct.block_folds(fr.blocks.astype(str), 5, 0)
    main = keep & np.isin(yf, MAIN[name])
    rows = []
    for shift in (0.0, -32.0, -16.0, 16.0, 32.0):
        xu = ndvi_on_grid(ucr, shift)
        for mode in (("france", "france+ucr", "ucr") if shift == 0 else ("france+ucr", "ucr")):
            pred = np.empty(len(yf), dtype=object)
            for f in range(5):
                tr, te = (folds != f) & keep, (folds == f) & keep
                x, y = {"france": (xf[tr], yf[tr]), "ucr": (xu, yu),
                        "france+ucr": (np.concatenate([xf[tr], xu]), np.concatenate([yf[tr], yu]))}[mode]  # fmt: skip
                rf = RandomForestClassifier(300, n_jobs=2, random_state=args.seed, class_weight="balanced_subsample")
                pred[te] = rf.fit(x, y).predict(xf[te])
            rows.append({"train": mode, "ucr_shift_days": shift,
                         "france_main": round(float((pred[main] == yf[main]).mean()), 4), "n_main": int(main.sum())})
            print(json.dumps(rows[-1]), flush=True)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "ucr_transfer.json").write_text(json.dumps(rows, indent=1))


def cmd_final(args: argparse.Namespace) -> None:
    torch.set_num_threads(1)
    card = json.loads((Path(args.card) / "card.json").read_text())
    sets = [read_seasons(DATA / f) for f in FILES]
    recipe = ct.Recipe(epochs=EPOCHS)
    ts = ct.prepare(sets, CHANNELS, recipe.min_count, optional=OPTIONAL)
    meta = {"data": FILES, "cv": {k: card["pooled"][k] for k in ("accuracy", "macro_f1", "ece")},
            "split": "5 folds of whole spatial blocks"}  # fmt: skip
    model = ct.train_model(ts, recipe, version=args.version, temperature=card["pooled"]["temperature"], meta=meta)
    crop.save(model, REPO / "models" / "crop.pt")
    print(f"wrote models/crop.pt {model.version}: {len(model.classes)} crops, {model.meta['train_s']} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name, fn in (("card", cmd_card), ("curve", cmd_curve), ("cropmask", cmd_cropmask), ("final", cmd_final),
                     ("explore", cmd_explore), ("ucr", cmd_ucr), ("coverage", cmd_coverage)):  # fmt: skip
        p = sub.add_parser(name)
        p.add_argument("--arch", default="tempcnn")
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--epochs", type=int, default=EPOCHS if name != "cropmask" else 10)
        p.add_argument("--lr", type=float, default=3e-3)
        p.add_argument("--width", type=int, default=32)
        p.add_argument("--d-model", type=int, default=64)
        p.add_argument("--p-drop-max", type=float, default=0.5)
        p.add_argument("--shift", type=int, default=2)
        p.add_argument("--files", default="")
        p.add_argument("--channels", choices=("optical", "radar"), default="optical",
                       help="explore: optical = the production Sentinel-2 channels; radar = + Sentinel-1 VV/VH (optional)")
        p.add_argument("--tag", default="")
        p.add_argument("--baselines", action="store_true")
        p.add_argument("--skip-gbm", action="store_true")
        p.add_argument("--blend", default="", help="explore: comma-separated oob_*.npy files in OUT to average")
        p.add_argument("--rows", type=int, default=0 if name != "cropmask" else 12000)
        p.add_argument("--shares", default="0.125,0.25,0.5,0.75,1.0", help="curve: shares of each fold's training fields")
        p.add_argument("--out", default="/tmp/crop_card")
        p.add_argument("--card", default="/tmp/crop_card")
        p.add_argument("--version", default=time.strftime("crop-s2-%Y-%m-%d"))
        p.set_defaults(fn=fn)
    args = ap.parse_args()
    args.fn(args)


if __name__ == "__main__":
    main()
