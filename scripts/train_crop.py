"""Reproduce the production crop model and the evidence in models/crop_card.md.

    python scripts/train_crop.py dev   --out /tmp/crop_dev      # 80/20 stratified split: tune + score
    python scripts/train_crop.py final --temperature T --temperature-sparse TS   # same recipe, every labelled row
    python scripts/train_crop.py calibrate --dev /tmp/crop_dev  # (re)fit dev temperatures, copy them to models/crop.pt
    python scripts/train_crop.py card  --dev /tmp/crop_dev      # metrics JSON + PNGs for the card
    python scripts/train_crop.py cv --fold K --out /tmp/crop_cv  # one of 5 stratified folds (run K=0..4,
    python scripts/train_crop.py cv-report --out /tmp/crop_cv    #   two at a time), then pool them
    python scripts/train_crop.py curve                           # ExtraTrees learning curve on the folds (~1 min)

The UCR test split is never read: only Crop_TRAIN.npy + Crop_VALIDATION.npy (5,759 rows).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from assets.models import crop
from assets.models import crop_train as ct
from assets.models.crop_data import read_series

REPO = Path(__file__).resolve().parents[1]
DATA = next(
    (p for p in (REPO.parent / "shared" / "data" / "crop-series", Path("/work/shared/data/crop-series")) if p.is_dir()),
    REPO.parent / "shared" / "data" / "crop-series",
)
HOLDOUT, SPLIT_SEED = 0.2, 0


def labelled_rows() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    parts = [read_series(DATA / f) for f in ("Crop_TRAIN.npy", "Crop_VALIDATION.npy")]
    x = np.concatenate([p.x for p in parts])
    labels = np.concatenate([p.labels for p in parts])
    values, valid = crop.to_grid(x)
    return values, valid, labels


def recipe(args: argparse.Namespace) -> ct.Recipe:
    return ct.Recipe(teachers=args.teachers, teacher_epochs=args.epochs, seed=args.seed)


def bar(r: ct.Recipe, desc: str):  # noqa: ANN201
    from tqdm import tqdm

    return tqdm(total=ct.total_epochs(r), desc=desc, unit="epoch", mininterval=10)


def cmd_dev(args: argparse.Namespace) -> None:
    values, valid, labels = labelled_rows()
    tr, va = ct.stratified_split(labels, HOLDOUT, SPLIT_SEED)
    r = recipe(args)
    with bar(r, "dev") as b:
        model, teachers = ct.train_model(values[tr], valid[tr], labels[tr], ["ndvi"], r,
                                         calib=(values[va], valid[va], labels[va]), version="crop-dev",
                                         progress=b.update)  # fmt: skip
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    crop.save(model, out / "student.pt")
    torch.save(teachers, out / "teachers.pt")
    print(json.dumps({"temperature": model.temperature, "temperature_sparse": model.temperature_sparse,
                      "train_s": model.meta["train_s"]}))  # fmt: skip


def cmd_final(args: argparse.Namespace) -> None:
    values, valid, labels = labelled_rows()
    r = recipe(args)
    with bar(r, "final") as b:
        model, _ = ct.train_model(values, valid, labels, ["ndvi"], r,
                                  temperature=(args.temperature, args.temperature_sparse),
                                  version=args.version, progress=b.update)  # fmt: skip
    model.meta.update({"rows": int(len(labels)), "data": "UCR Crop TRAIN+VALIDATION", "machine": machine()})
    crop.save(model, args.model_out)
    print(json.dumps({"wrote": str(args.model_out), "train_s": model.meta["train_s"]}))


def cmd_calibrate(args: argparse.Namespace) -> None:
    """Refit the dev student's temperatures on the held-out rows and give them to the final weights."""
    values, valid, labels = labelled_rows()
    _, va = ct.stratified_split(labels, HOLDOUT, SPLIT_SEED)
    dev = crop.load(Path(args.dev) / "student.pt")
    ct.calibrate(dev, values[va], valid[va], labels[va])
    crop.save(dev, Path(args.dev) / "student.pt")
    final = crop.load(args.model_out)
    final.temperature, final.temperature_sparse = dev.temperature, dev.temperature_sparse
    final.meta["temperature_from"] = "dev run (80/20 split, seed 0): fitted on its 1,152 held-out rows"
    crop.save(final, args.model_out)
    print(json.dumps({"temperature": dev.temperature, "temperature_sparse": dev.temperature_sparse}))


def machine() -> str:
    import os

    return f"{platform.machine()} {platform.processor() or ''} {os.cpu_count()} cores, torch threads 1".strip()


def cmd_card(args: argparse.Namespace) -> None:
    from assets.models.crop_report import class_table, confusion_plot, reliability_plot

    values, valid, labels = labelled_rows()
    _, va = ct.stratified_split(labels, HOLDOUT, SPLIT_SEED)
    dev = crop.load(Path(args.dev) / "student.pt")
    teachers = torch.load(Path(args.dev) / "teachers.pt", weights_only=False)
    y = ct.encode(labels[va], dev.classes)
    n = len(dev.classes)
    sparse = valid[va] & ct.sparse_mask(len(va), seed=1)
    res: dict[str, object] = {"n_val": int(len(va)), "temperature": dev.temperature,
                              "temperature_sparse": dev.temperature_sparse, "train_s": dev.meta.get("train_s")}  # fmt: skip
    raw = ct.score(ct.softmax(dev.logits(values[va], mask=valid[va])), y, n)
    raw_sp = ct.score(ct.softmax(dev.logits(values[va], mask=sparse)), y, n)
    full = ct.score(dev.predict_proba(values[va], mask=valid[va]), y, n)
    sp = ct.score(dev.predict_proba(values[va], mask=sparse), y, n)
    ens = ct.score(ct.proba_of(teachers, values[va], valid[va]), y, n)
    ens_sp = ct.score(ct.proba_of(teachers, values[va], sparse), y, n)
    members = [ct.score(ct.proba_of(m, values[va], valid[va]), y, n).accuracy for m in teachers.members]
    for name, s in [("student", full), ("student_uncalibrated", raw), ("student_sparse", sp),
                    ("student_sparse_uncalibrated", raw_sp),
                    ("cnn_ensemble", ens), ("cnn_ensemble_sparse", ens_sp)]:  # fmt: skip
        res[name] = {"accuracy": s.accuracy, "macro_f1": s.macro_f1, "ece": s.ece, "nll": s.nll}
    res["cnn_members_accuracy"] = members
    farm = np.array([c in crop.CROPLAND for c in dev.classes])
    p = dev.predict_proba(values[va], mask=valid[va])
    res["cropland_accuracy"] = float(np.mean((p[:, farm].sum(axis=1) > 0.5) == farm[y]))
    out = Path(args.card_dir)
    confusion_plot(full, dev.classes, out / "crop_confusion.png", title="Validation confusion (dev student, 46 dates)")
    reliability_plot({"before scaling": raw, f"T={dev.temperature:.2f}": full, "sparse 6-8 dates": sp},
                     out / "crop_reliability.png")  # fmt: skip
    (Path(args.dev) / "class_table.md").write_text(class_table(full, dev.classes) + "\n")
    final_path = args.model_out
    if final_path.is_file():
        final = crop.load(final_path)
        fp = final.predict_proba(values[va], mask=sparse)
        res["final"] = {"version": final.version, "train_s": final.meta.get("train_s"), "temperature": final.temperature,
                        "rows": final.meta.get("rows"), "machine": final.meta.get("machine"),
                        "seen_val_accuracy": float(np.mean(final.predict_proba(values[va], mask=valid[va]).argmax(1) == y)),
                        "seen_val_sparse_accuracy": float(np.mean(fp.argmax(1) == y))}  # fmt: skip
    (Path(args.dev) / "card.json").write_text(json.dumps(res, indent=1))
    print(json.dumps(res, indent=1))
    print(class_table(full, dev.classes))


CV_FOLDS, CV_SEED = 5, 11


def cmd_cv(args: argparse.Namespace) -> None:
    """Train the production recipe on 4/5 of the labelled rows; score it on the other fifth.

    Every row is scored exactly once over the five folds, so the pooled accuracy rests on 5,759
    predictions instead of one 1,152-row holdout. Probabilities use the production temperatures
    (fitted on the dev split, never on these folds), so the ECE here is out-of-sample too.
    """
    values, valid, labels = labelled_rows()
    fold = ct.stratified_folds(labels, CV_FOLDS, CV_SEED)
    tr, te = np.flatnonzero(fold != args.fold), np.flatnonzero(fold == args.fold)
    production = crop.load(args.model_out)
    r = recipe(args)
    with bar(r, f"cv fold {args.fold}") as b:
        model, _ = ct.train_model(values[tr], valid[tr], labels[tr], ["ndvi"], r, classes=production.classes,
                                  temperature=(production.temperature, production.temperature_sparse),
                                  version=f"crop-cv{args.fold}", progress=b.update)  # fmt: skip
    sparse = valid[te] & ct.sparse_mask(len(te), seed=100 + args.fold)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    np.savez(out / f"fold{args.fold}.npz", rows=te, proba=model.predict_proba(values[te], mask=valid[te]),
             proba_sparse=model.predict_proba(values[te], mask=sparse), train_s=model.meta["train_s"])  # fmt: skip
    print(json.dumps({"fold": args.fold, "rows": int(len(te)), "train_s": model.meta["train_s"]}))


def cmd_cv_report(args: argparse.Namespace) -> None:
    """Pool the fold predictions: accuracy, macro F1, ECE and cropland accuracy with their spread."""
    _, _, labels = labelled_rows()
    classes = crop.load(args.model_out).classes
    y = ct.encode(labels, classes)
    farm = np.array([c in crop.CROPLAND for c in classes])
    folds = [np.load(Path(args.out) / f"fold{k}.npz") for k in range(CV_FOLDS)]
    rows = np.concatenate([f["rows"] for f in folds])
    res: dict[str, object] = {"folds": CV_FOLDS, "rows": len(rows),
                              "train_s_per_fold": [float(f["train_s"]) for f in folds]}  # fmt: skip
    for key, name in (("proba", "full"), ("proba_sparse", "sparse_6_8")):
        proba = np.concatenate([f[key] for f in folds])
        pooled = ct.score(proba, y[rows], len(classes))
        per_fold = [float(np.mean(f[key].argmax(1) == y[f["rows"]])) for f in folds]
        half_width = 1.96 * np.sqrt(pooled.accuracy * (1 - pooled.accuracy) / len(rows))
        res[name] = {"accuracy": round(pooled.accuracy, 4), "ci95": [round(pooled.accuracy - half_width, 4),
                     round(pooled.accuracy + half_width, 4)], "per_fold": [round(a, 4) for a in per_fold],
                     "fold_std": round(float(np.std(per_fold, ddof=1)), 4), "macro_f1": round(pooled.macro_f1, 4),
                     "ece": round(pooled.ece, 4),
                     "cropland_accuracy": round(float(np.mean((proba[:, farm].sum(1) > 0.5) == farm[y[rows]])), 4)}  # fmt: skip
    (Path(args.out) / "cv.json").write_text(json.dumps(res, indent=1))
    print(json.dumps(res, indent=1))


def cmd_curve(args: argparse.Namespace) -> None:
    """How accuracy grows with training rows: complete-series ExtraTrees (the cheap teacher) on the
    cross-validation folds, each training fold subsampled per class to 40/60/80/100 %."""
    from sklearn.ensemble import ExtraTreesClassifier

    values, valid, labels = labelled_rows()
    y = ct.encode(labels, ct.class_names(labels))
    x = ct.full_tree_features(crop.features(torch.from_numpy(values), torch.from_numpy(valid)))
    fold = ct.stratified_folds(labels, CV_FOLDS, CV_SEED)
    curve: dict[int, float] = {}
    for frac in (0.4, 0.6, 0.8, 1.0):
        accs, sizes = [], []
        for k in range(CV_FOLDS):
            tr, te = np.flatnonzero(fold != k), np.flatnonzero(fold == k)
            if frac < 1:
                tr = tr[ct.stratified_split(labels[tr], 1 - frac, seed=k)[0]]
            trees = ExtraTreesClassifier(300, max_features=0.2, n_jobs=2, random_state=0).fit(x[tr], y[tr])
            accs.append(float(np.mean(trees.predict(x[te]) == y[te])))
            sizes.append(len(tr))
        curve[int(np.mean(sizes))] = round(float(np.mean(accs)), 4)
    print(json.dumps({"extra_trees_accuracy_by_training_rows": curve}))


def main() -> None:
    torch.set_num_threads(1)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["dev", "final", "calibrate", "card", "cv", "cv-report", "curve"])
    ap.add_argument("--fold", type=int, default=0, help="cv: which of the 5 folds to hold out")
    ap.add_argument("--teachers", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="/tmp/crop_dev")
    ap.add_argument("--dev", default="/tmp/crop_dev")
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--temperature-sparse", type=float, default=None)
    ap.add_argument("--version", default=time.strftime("crop-%Y%m%d"))
    ap.add_argument("--model-out", type=Path, default=REPO / "models" / "crop.pt")
    ap.add_argument("--card-dir", type=Path, default=REPO / "models")
    args = ap.parse_args()
    modes = {"dev": cmd_dev, "final": cmd_final, "calibrate": cmd_calibrate, "card": cmd_card, "cv": cmd_cv,
             "cv-report": cmd_cv_report, "curve": cmd_curve}  # fmt: skip
    modes[args.mode](args)


if __name__ == "__main__":
    main()
