"""`assets crop train | predict | evaluate`: the Sentinel-2 crop classifier from the command line."""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np

from assets.config import settings as make_settings
from assets.errors import InputError


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add the `crop` command group to the parser."""
    crop = sub.add_parser("crop", help="train, apply and evaluate the crop classifier")
    cmds = crop.add_subparsers(dest="crop_command", metavar="SUBCOMMAND", required=True)

    train = cmds.add_parser("train", help="train a crop model from labelled seasons (.npz, or UCR-style tables)")
    train.add_argument("data", type=Path, nargs="+", help="labelled files, merged through the crop legend")
    train.add_argument("--out", type=Path, required=True, help="where to write the checkpoint (.pt)")
    train.add_argument("--bands", default="B02,B03,B04,B05,B06,B07,B08,B11,B12,ndvi",
                       help="model channels, comma-separated (default: B02-B08, B11, B12 and NDVI)")
    train.add_argument("--optional", default="B05,B06,B07,B11,B12",
                       help="channels the model learns to do without, for tiles that lack them (default: red edge "
                            "and SWIR, so 4-band B02/B03/B04/B08 tiles work); '' for none")
    train.add_argument("--epochs", type=int, default=200, help="training epochs (default 200)")
    train.add_argument("--min-steps", type=int, default=4000,
                       help="a small file is passed over several times an epoch so that every network takes at least "
                            "this many steps (default 4,000, as the card's figures were measured; 0 for exactly --epochs)")
    train.add_argument("--batch", type=int, default=32, help="rows per training step (default 32; larger for big files)")
    train.add_argument("--folds", type=int, default=5,
                       help="spatial-block folds scored and used to fit the temperature; 0 skips (default 5)")
    train.add_argument("--no-forest", action="store_true", help="skip the random-forest baseline on the same folds")
    train.add_argument("--seed", type=int, default=0, help="random seed; the same seed and data give the same model")
    train.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: small nets train faster on one)")
    train.set_defaults(handler=cmd_train)

    predict = cmds.add_parser("predict", help="classify seasons; one CSV row per input row")
    predict.add_argument("data", type=Path, help="seasons file (labels optional)")
    predict.add_argument("--model", type=Path, default=None, help="checkpoint (default: the committed models/crop.pt)")
    predict.add_argument("--out", type=Path, required=True, help="CSV to write")
    predict.add_argument("--unknown-below", type=float, default=None, metavar="P",
                         help="`label` is `unknown` when the top probability is under P (default: the model's own, "
                         "0.45 for the committed model; 0 names every row). `top_crop` is always the most probable crop")
    predict.set_defaults(handler=cmd_predict)

    evaluate = cmds.add_parser("evaluate", help="accuracy, macro F1, per-class table, calibration")
    evaluate.add_argument("data", type=Path, help="labelled seasons file")
    evaluate.add_argument("--model", type=Path, default=None, help="checkpoint (default: the committed models/crop.pt)")
    evaluate.add_argument("--split-by", choices=["spatial_block"], default=None,
                          help="also retrain on the file itself with folds of whole spatial blocks and score those")
    evaluate.add_argument("--plot", type=Path, default=None, help="confusion-matrix PNG to write")
    evaluate.add_argument("--json", action="store_true", help="print one JSON line of the scores at the end")
    evaluate.set_defaults(handler=cmd_evaluate)


def _progress(total: int, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="epoch", dynamic_ncols=True, mininterval=5)


def cmd_train(args: argparse.Namespace) -> int:
    import torch

    from assets.models import crop
    from assets.models import crop_train as ct
    from assets.models.crop_data import read_seasons
    from assets.models.crop_report import summary
    from assets.models.seasons import canonical_bands

    if args.epochs < 1 or args.batch < 2 or args.folds < 0 or args.folds == 1 or args.min_steps < 0:
        raise InputError("--epochs must be at least 1, --batch at least 2, --min-steps 0 or more and --folds 0 (none) "
                         "or at least 2")
    torch.set_num_threads(max(1, args.threads))
    wanted = canonical_bands([b for b in args.bands.split(",") if b.strip()])
    optional = canonical_bands([b for b in args.optional.split(",") if b.strip()])
    if wanted and set(wanted) <= set(optional):
        raise InputError(f"every band of --bands {','.join(wanted)} is also --optional: such a model could run on a "
                         "file with none of them; leave at least one band required (e.g. --optional B05,B06)")
    turn = make_settings().season_turn_days  # one season rule with the pipeline (ASSETS_SEASON_TURN_DAYS)
    sets = [read_seasons(p, labelled=True, turn_days=turn) for p in args.data]
    for s in sets:
        _print_notes(s)
        unknown = int((s.labels == "unknown").sum()) if s.labels is not None else 0
        if unknown:
            print(f"note: {s.source}: {unknown} row(s) labelled 'unknown' are left out (the model answers 'unknown' "
                  "itself when unsure; it is not a crop to learn)")
    recipe = ct.Recipe(epochs=args.epochs, batch=args.batch, seed=args.seed, min_steps=args.min_steps)
    ts = ct.prepare(sets, wanted, recipe.min_count, optional=optional)
    classes = sorted(set(ts.labels.tolist()))
    meta: dict = {"data": [str(p) for p in args.data], "seed": args.seed}
    temperature = 1.0
    if args.folds:
        with _progress(args.folds * args.epochs, "spatial-block folds") as bar:
            logits, folds, core = ct.cross_validate(ts, recipe, classes, args.folds, args.seed, progress=bar.update)
        y = ct.encode(ts.labels, classes)
        temperature = ct.fit_temperature(logits, y)
        scores = ct.score(ct.proba_from_logits(logits, temperature), y, len(classes))
        by_place = all(s.blocks_are_places for s in sets)
        meta["cv"] = {"folds": args.folds, "split": "place" if by_place else "field or row (optimistic)",
                      "keys": sorted({str(s.block_key) for s in sets}), "accuracy": scores.accuracy,
                      "macro_f1": scores.macro_f1, "ece": scores.ece, "n": len(y)}
        if not by_place:
            print("note: " + ", ".join(s.source for s in sets if not s.blocks_are_places) + " gives no place (spatial_block, "
                  "region or lat/lon): its folds are of fields or rows, so neighbours of a scored field were trained on "
                  "and the figures below are optimistic, not out-of-block")
        print(f"{'out-of-block' if by_place else 'field/row folds'} ({args.folds} folds, temperature "
              f"{temperature:.3f}): {summary(scores)}")
        if core is not None:
            four = ct.score(ct.proba_from_logits(core, temperature), y, len(classes))
            meta["cv"]["accuracy_without_optional"] = four.accuracy
            print(f"the same rows without {ts.optional} (a 4-band tile): {summary(four)}")
        if not args.no_forest:
            forest = ct.score(ct.forest_cv(ts, classes, folds, args.seed), y, len(classes))
            meta["cv"]["forest_accuracy"] = forest.accuracy
            print(f"random forest, same rows and folds: {summary(forest)}")
    with _progress(args.epochs, "final model") as bar:
        model = ct.train_model(ts, recipe, version=args.out.stem, temperature=temperature, progress=bar.update, meta=meta)
    crop.save(model, args.out)
    print(f"wrote {args.out} ({len(model.classes)} crops, channels {model.channels}, trained in {model.meta['train_s']:.0f} s)")
    return 0


def _print_notes(data) -> None:
    """Every documented conversion the reader applied, so no face converts silently."""
    for note in filter(None, [data.season.scale_note, data.dropped_bands
                              and f"layers that are not bands were left out: {data.dropped_bands}"]):
        print(f"{data.source}: {note}")


def _load(path: Path | None):
    from assets.models import crop

    return crop.load(path)


def _writable(path: Path, option: str) -> None:
    """Make ``path``'s folder, or say in one line why the file cannot be written there."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a"):
            pass
    except OSError as exc:
        raise InputError(f"cannot write {option} {path}: {exc.strerror or exc}; give a file in a folder you can "
                         "write to") from None


def cmd_predict(args: argparse.Namespace) -> int:
    from assets.config import settings
    from assets.models import legend
    from assets.models.crop_data import read_seasons

    min_dates = settings().min_usable_dates  # what a claim's verdict needs

    model = _load(args.model)
    if args.unknown_below is not None:
        if not 0 <= args.unknown_below <= 1:
            raise InputError(f"--unknown-below {args.unknown_below} is not a probability; give a number from 0 to 1")
        model.unknown_below = args.unknown_below
    data = read_seasons(args.data, strict_labels=False,  # labels only sit beside the calls here
                        turn_days=make_settings().season_turn_days)
    _print_notes(data)
    if args.out.is_dir():
        raise InputError(f"--out {args.out} is a folder; give a file name such as {args.out / 'predictions.csv'}")
    seen = data.season.observed
    proba = np.zeros((len(data), len(model.classes)))
    if seen.any():
        proba[seen] = model.predict_proba(data.season.rows(seen))
    names = model.labels(proba)
    farm = model.farmland_probability(proba)
    _writable(args.out, "--out")
    few = seen & (data.season.mask.sum(axis=1) < min_dates)
    with open(args.out, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["index", "label", "probability", "group", "farmland_probability", "top_crop", "note"]
                   + (["true_label"] if data.labels is not None else []))  # fmt: skip
        for i in range(len(proba)):
            top = float(proba[i].max())
            note = "" if seen[i] else "no clear date"
            note = f"only {int(data.season.mask[i].sum())} clear date(s): unreliable" if few[i] else note
            group = legend.group_of(names[i]) if names[i] in legend.CROPS else ""
            top_crop = model.classes[int(proba[i].argmax())] if seen[i] else ""
            p_top, p_farm = (f"{top:.6f}", f"{farm[i]:.6f}") if seen[i] else ("", "")  # no evidence, not 0
            row = [i, names[i] if seen[i] else legend.UNKNOWN, p_top, group, p_farm, top_crop, note]
            w.writerow(row + ([data.labels[i]] if data.labels is not None else []))
    unsure = sum(1 for i, n in enumerate(names) if seen[i] and n == legend.UNKNOWN)
    extra = f"; {int((~seen).sum())} rows had no clear date" if (~seen).any() else ""
    if few.any():  # a claim needs 3 (`observe`); fewer is a guess, so say it beside the call
        extra += f"; {int(few.sum())} rows had fewer than {min_dates} clear dates (see `note`: unreliable)"
    print(f"wrote {len(proba)} predictions to {args.out} (model {model.version}): {int(seen.sum()) - unsure} named, "
          f"{unsure} `unknown` (top probability under {model.unknown_below:g}; `top_crop` holds the most probable "
          f"crop of every row, --unknown-below 0 names them all){extra}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from assets.models import crop_train as ct
    from assets.models.crop_data import read_seasons
    from assets.models.crop_report import class_table, confusion_plot, summary

    model = _load(args.model)
    data = read_seasons(args.data, labelled=True, turn_days=make_settings().season_turn_days)
    if data.labels is None:
        raise InputError(f"{args.data} has no labels; evaluate needs them (use `assets crop predict` instead)")
    _print_notes(data)
    trained_on = {Path(str(p)).name for p in (model.meta.get("data") or [])}
    if Path(args.data).name in trained_on:
        print(f"note: {Path(args.data).name} is one of the files model {model.version} was trained on, so these "
              "scores are in-sample; the held-out figures are in its model card (out-of-block)")
    unknown = data.labels == "unknown"  # no crop to score against (as `crop train` leaves them out)
    if unknown.any():
        print(f"note: {int(unknown.sum())} row(s) labelled 'unknown' are not scored")
    seen = data.season.observed & ~unknown
    labels = data.labels[seen]
    classes = list(model.classes)
    extra = sorted(set(labels.tolist()) - set(classes))  # crops the model cannot name: always wrong
    proba = model.predict_proba(data.season.rows(seen))
    proba = np.concatenate([proba, np.zeros((len(proba), len(extra)))], axis=1)
    y = ct.encode(labels, classes + extra)
    scores = ct.score(proba, y, len(classes) + len(extra))
    print(f"model {model.version} on {args.data} ({int((~seen).sum())} rows without a clear date skipped): {summary(scores)}")
    if extra:
        print(f"crops the model does not know (scored as wrong): {extra}")
    print(class_table(scores, classes + extra))
    result = {"accuracy": scores.accuracy, "macro_f1": scores.macro_f1, "ece": scores.ece, "n": len(y)}
    if args.split_by:
        if not data.blocks_are_places:
            raise InputError(f"{args.data} has no spatial_block, region or lat/lon array to split by place "
                             f"({'only field ids: groups' if data.block_key == 'groups' else 'none at all'}); "
                             "add its 0.1 degree cells as spatial_block")
        stored = model.meta.get("recipe") or {}
        recipe = ct.Recipe(**{k: v for k, v in stored.items() if k in ct.Recipe.__dataclass_fields__})  # the model's own
        ts = ct.prepare([data], model.channels, recipe.min_count, optional=model.optional)
        own = sorted(set(ts.labels.tolist()))
        logits, _, _ = ct.cross_validate(ts, recipe, own)
        yy = ct.encode(ts.labels, own)
        cv = ct.score(ct.proba_from_logits(logits, ct.fit_temperature(logits, yy)), yy, len(own))
        print(f"retrained on this file, 5 folds of whole places ({data.block_key}): {summary(cv)}")
        result.update(block_cv_accuracy=cv.accuracy, block_cv_macro_f1=cv.macro_f1)
    if args.plot:
        _writable(args.plot, "--plot")
        confusion_plot(scores, classes + extra, args.plot)
        print(f"wrote {args.plot}")
    if args.json:
        print(json.dumps(result))
    return 0
