"""`assets crop train | predict | evaluate`: the crop classifier from the command line."""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np

from assets.errors import InputError


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add the `crop` command group to the parser."""
    crop = sub.add_parser("crop", help="train, apply and evaluate the crop classifier")
    cmds = crop.add_subparsers(dest="crop_command", metavar="SUBCOMMAND", required=True)

    train = cmds.add_parser("train", help="train a crop model from labelled series (.npy/.tsv UCR style or .npz)")
    train.add_argument("data", type=Path, help="labelled series file")
    train.add_argument("--out", type=Path, required=True, help="where to write the checkpoint (.pt)")
    train.add_argument("--epochs", type=int, default=60, help="epochs per teacher network (default 60)")
    train.add_argument("--teachers", type=int, default=2, help="masked-date teacher networks (default 2)")
    train.add_argument("--student-epochs", type=int, default=None, help="distillation epochs (default 2x --epochs)")
    train.add_argument("--trees", type=int, default=300, help="ExtraTrees in the tree teacher, 0 for none (default 300)")
    train.add_argument("--full-teachers", type=int, default=2,
                       help="TempCNNs trained on complete series only, teaching the student's complete inputs (default 2)")
    train.add_argument("--full-trees", type=int, default=600,
                       help="ExtraTrees trained on complete series only, 0 for none (default 600)")
    train.add_argument("--distil-copies", type=int, default=24, help="augmented copies per row for distillation (default 24)")
    train.add_argument("--no-student", action="store_true", help="serve the teacher ensemble itself (slower, no distillation)")
    train.add_argument("--holdout", type=float, default=0.15, help="stratified fraction held out to calibrate and score (default 0.15)")
    train.add_argument("--temperature", type=float, default=None,
                       help="use this temperature instead of fitting one (with --holdout 0 to train on every row)")  # fmt: skip
    train.add_argument("--seed", type=int, default=0, help="random seed; the same seed and data give the same model")
    train.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    train.set_defaults(handler=cmd_train)

    predict = cmds.add_parser("predict", help="classify series; one CSV row per input row")
    predict.add_argument("data", type=Path, help="series file (labels optional)")
    predict.add_argument("--model", type=Path, default=None, help="checkpoint (default: the committed models/crop.pt)")
    predict.add_argument("--out", type=Path, required=True, help="CSV to write")
    predict.set_defaults(handler=cmd_predict)

    evaluate = cmds.add_parser("evaluate", help="accuracy, macro F1, per-class table and confusion plot")
    evaluate.add_argument("data", type=Path, help="labelled series file")
    evaluate.add_argument("--model", type=Path, default=None, help="checkpoint (default: the committed models/crop.pt)")
    evaluate.add_argument("--plot", type=Path, default=None, help="confusion-matrix PNG to write")
    evaluate.add_argument("--sparse", action="store_true", help="also score on 6-8 random April-September dates per series")
    evaluate.add_argument("--json", action="store_true", help="print one JSON line of the scores at the end")
    evaluate.set_defaults(handler=cmd_evaluate)


def _progress(total: int, desc: str):  # noqa: ANN202 - tqdm bar
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="epoch", dynamic_ncols=True)


def cmd_train(args: argparse.Namespace) -> int:
    import torch

    from assets.models import crop
    from assets.models import crop_train as ct
    from assets.models.crop_data import read_series, select_bands

    if args.epochs < 1 or args.teachers < 1 or min(args.trees, args.distil_copies, args.full_teachers, args.full_trees) < 0:
        raise InputError("--epochs and --teachers must be at least 1; --trees, --full-teachers, --full-trees and "
                         "--distil-copies must not be negative")
    if not 0 <= args.holdout < 0.9:
        raise InputError("--holdout must be in [0, 0.9)")
    if args.holdout == 0 and args.temperature is None:
        raise InputError("--holdout 0 leaves nothing to calibrate on; also pass --temperature T (from an earlier run)")
    torch.set_num_threads(max(1, args.threads))
    data = read_series(args.data, labelled=True)
    if data.labels is None:
        raise InputError(f"{args.data} has no labels; training needs them")
    values, valid = crop.to_grid(select_bands(data, data.bands), data.doy, data.mask)
    labels = data.labels
    classes = ct.class_names(labels)
    if len(classes) < 2:
        raise InputError(f"{args.data} holds a single class ({classes}); training needs at least two")
    recipe = ct.Recipe(teachers=args.teachers, teacher_epochs=args.epochs,
                       student_epochs=args.student_epochs or 2 * args.epochs,
                       student=None if args.no_student else dict(ct.DEFAULT_STUDENT), seed=args.seed,
                       trees=args.trees, distil_copies=args.distil_copies, full_teachers=args.full_teachers,
                       full_epochs=max(1, 2 * args.epochs // 3), full_trees=args.full_trees)  # fmt: skip
    if args.holdout > 0:
        tr, ho = ct.stratified_split(labels, args.holdout, args.seed)
        if len(ho) == 0 or len(tr) < 2:
            raise InputError(f"{args.data} has too few rows ({len(labels)}) for --holdout {args.holdout}")
    else:
        tr, ho = np.arange(len(labels)), np.array([], dtype=np.int64)
    with _progress(ct.total_epochs(recipe), "training") as bar:
        model, _ = ct.train_model(
            values[tr], valid[tr], labels[tr], data.bands, recipe,
            calib=(values[ho], valid[ho], labels[ho]) if len(ho) else None, temperature=args.temperature,
            version=args.out.stem, progress=bar.update, classes=classes,
        )  # fmt: skip
    if len(ho):
        proba = model.predict_proba(values[ho], mask=valid[ho])
        scores = ct.score(proba, ct.encode(labels[ho], model.classes), len(model.classes))
        model.meta["holdout"] = {"n": int(len(ho)), "accuracy": scores.accuracy, "macro_f1": scores.macro_f1, "ece": scores.ece}
        from assets.models.crop_report import summary

        ts = f", sparse {model.temperature_sparse:.3f}" if model.temperature_sparse is not None else ""
        print(f"holdout ({len(ho)} rows, temperature {model.temperature:.3f}{ts}): {summary(scores)}")
    model.meta.update({"data": str(args.data), "seed": args.seed, "rows": int(len(tr))})
    crop.save(model, args.out)
    print(f"wrote {args.out} ({len(model.classes)} classes, trained in {model.meta['train_s']:.0f} s)")
    return 0


def _load(path: Path | None):  # noqa: ANN202
    from assets.models import crop

    return crop.load(path)


def cmd_predict(args: argparse.Namespace) -> int:
    from assets.models import crop_train as ct
    from assets.models.crop_data import read_series, select_bands

    model = _load(args.model)
    data = read_series(args.data, labelled=None)
    if data.labels is not None:
        ct.encode(data.labels, model.classes)  # unknown label names are an error, not a silent miss
    proba = model.predict_proba(select_bands(data, model.bands), data.doy, data.mask)
    best = proba.argmax(axis=1)
    farm = model.is_cropland(proba)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["index", "label", "probability", "cropland_probability"] + (["true_label"] if data.labels is not None else []))
        for i in range(len(proba)):
            row = [i, model.classes[best[i]], f"{proba[i, best[i]]:.6f}", f"{farm[i]:.6f}"]
            w.writerow(row + ([data.labels[i]] if data.labels is not None else []))
    print(f"wrote {len(proba)} predictions to {args.out} (model {model.version})")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from assets.models import crop_train as ct
    from assets.models.crop_report import class_table, confusion_plot, summary

    from assets.models.crop_data import read_series, select_bands

    model = _load(args.model)
    data = read_series(args.data, labelled=True)
    if data.labels is None:
        raise InputError(f"{args.data} has no labels; evaluate needs them (use `assets crop predict` instead)")
    y = ct.encode(data.labels, model.classes)
    x = select_bands(data, model.bands)
    scores = ct.score(model.predict_proba(x, data.doy, data.mask), y, len(model.classes))
    print(f"model {model.version} on {args.data}: {summary(scores)}")
    print(class_table(scores, model.classes))
    result = {"accuracy": scores.accuracy, "macro_f1": scores.macro_f1, "ece": scores.ece, "n": len(y)}
    if args.sparse:
        from assets.models.crop import to_grid

        values, valid = to_grid(x, data.doy, data.mask)
        sparse = valid & ct.sparse_mask(len(y), seed=0)
        keep = sparse.any(axis=1)
        s2 = ct.score(model.predict_proba(values[keep], mask=sparse[keep]), y[keep], len(model.classes))
        print(f"sparse (6-8 April-September dates): {summary(s2)}")
        result.update(sparse_accuracy=s2.accuracy, sparse_macro_f1=s2.macro_f1, sparse_ece=s2.ece)
    if args.plot:
        confusion_plot(scores, model.classes, args.plot)
        print(f"wrote {args.plot}")
    if args.json:
        print(json.dumps(result))
    return 0
