"""Can any published time-series classifier family reach issue #3's 0.80 on this data?

Fits the strongest non-deep families of the `aeon` toolkit (random dilated shapelets, MultiRocket +
Hydra, QUANT, DrCIF, ...) and our complete-series ExtraTrees on exactly the rows `train_crop.py`
uses: the 80/20 dev split or its 5 stratified cross-validation folds. Each family's held-out
probabilities go to OUT; `report` pools them and scores every family and every equal-weight mix of
up to three (mixes are chosen on the rows they are scored on, so the best one is optimistic).

    # research only, not a runtime dependency; its numba pins numpy < 2.4, so give it its own environment
    python -m venv --system-site-packages /tmp/research && /tmp/research/bin/pip install -e '.[research]'
    /tmp/research/bin/python scripts/crop_family_sweep.py fit dev rdst quant et          # 1,152 dev rows, ~4 min
    /tmp/research/bin/python scripts/crop_family_sweep.py fit cv rdst quant mrhydra et   # 5 folds x each family, ~14 min
    /tmp/research/bin/python scripts/crop_family_sweep.py report cv --student /tmp/crop_cv   # + the shipped recipe's folds

Complete 46-date series only (the families cannot take masked dates); the UCR test split is never read.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from train_crop import CV_FOLDS, CV_SEED, HOLDOUT, SPLIT_SEED, labelled_rows

from assets.models import crop
from assets.models import crop_train as ct

FAMILIES = ("rdst", "quant", "mrhydra", "weasel2", "drcif", "rist", "rstsf", "hc2", "et")
RIDGE_SCALE = 4.0  # ridge decision values -> softmax(4 d): the NLL-best of 1, 2, 4, 8, 16 for RDST on the dev split


def make(name: str) -> Any:  # noqa: ANN401 - aeon and scikit-learn estimators
    from sklearn.ensemble import ExtraTreesClassifier

    if name == "et":
        return ExtraTreesClassifier(600, max_features=0.2, n_jobs=1, random_state=0)
    try:
        import aeon.classification.convolution_based as conv
        import aeon.classification.dictionary_based as dic
        import aeon.classification.hybrid as hyb
        import aeon.classification.interval_based as itv
        import aeon.classification.shapelet_based as shp
    except ImportError as e:
        raise SystemExit(f"family {name!r} needs aeon ({e}): install the `research` extra in its own venv, "
                         "as this script's docstring shows") from e  # fmt: skip

    return {
        "rdst": lambda: shp.RDSTClassifier(random_state=0, n_jobs=1),
        "quant": lambda: itv.QUANTClassifier(random_state=0),
        "mrhydra": lambda: conv.MultiRocketHydraClassifier(random_state=0, n_jobs=1),
        "weasel2": lambda: dic.WEASEL_V2(random_state=0, n_jobs=1),
        "drcif": lambda: itv.DrCIFClassifier(n_estimators=200, random_state=0, n_jobs=1),
        "rist": lambda: hyb.RISTClassifier(random_state=0, n_jobs=1),
        "rstsf": lambda: itv.RSTSF(random_state=0, n_jobs=1),
        "hc2": lambda: hyb.HIVECOTEV2(time_limit_in_minutes=20, random_state=0, n_jobs=1),
    }[name]()


def inputs(name: str, values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """aeon wants (n, channels, time); the trees get the full-season teacher's features."""
    if name == "et":
        return ct.full_tree_features(crop.features(torch.from_numpy(values), torch.from_numpy(valid)))
    return values[:, :, 0].astype(np.float64)[:, None, :]


def soft_proba(model: Any, x: np.ndarray, n_classes: int) -> np.ndarray:  # noqa: ANN401
    """Class probabilities in class-index order; ridge-based families give 0/1 from predict_proba,
    so their decision values are softened instead (mixing needs graded scores)."""
    est, tr = getattr(model, "estimator_", None), getattr(model, "transformer_", None)
    if est is not None and tr is not None and hasattr(est, "decision_function"):
        z = RIDGE_SCALE * est.decision_function(tr.transform(x))
        z = np.exp(z - z.max(axis=1, keepdims=True))
        p = z / z.sum(axis=1, keepdims=True)
    else:
        p = model.predict_proba(x)
    out = np.zeros((len(x), n_classes))
    out[:, np.asarray(model.classes_).astype(int)] = p
    return out


def splits(split: str, labels: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    if split == "dev":
        return [ct.stratified_split(labels, HOLDOUT, SPLIT_SEED)]
    fold = ct.stratified_folds(labels, CV_FOLDS, CV_SEED)
    return [(np.flatnonzero(fold != k), np.flatnonzero(fold == k)) for k in range(CV_FOLDS)]


def cmd_fit(args: argparse.Namespace) -> None:
    values, valid, labels = labelled_rows()
    classes = ct.class_names(labels)
    y = ct.encode(labels, classes)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name in args.families:
        x = inputs(name, values, valid)
        t0, rows, proba = time.time(), [], []
        for tr, te in splits(args.split, labels):
            model = make(name).fit(x[tr], y[tr])
            rows.append(te)
            proba.append(soft_proba(model, x[te], len(classes)))
        rows_all, p = np.concatenate(rows), np.concatenate(proba)
        np.savez(out / f"{args.split}_{name}.npz", rows=rows_all, proba=p)
        acc = float(np.mean(p.argmax(1) == y[rows_all]))
        print(json.dumps({"family": name, "split": args.split, "accuracy": round(acc, 4),
                          "fit_s": round(time.time() - t0)}), flush=True)  # fmt: skip


def cmd_report(args: argparse.Namespace) -> None:
    _, _, labels = labelled_rows()
    classes = ct.class_names(labels)
    y = ct.encode(labels, classes)
    fams: dict[str, np.ndarray] = {}
    for f in sorted(Path(args.out).glob(f"{args.split}_*.npz")):
        d = np.load(f)
        p = np.zeros((len(labels), len(classes)))
        p[d["rows"]] = d["proba"]
        fams[f.stem.split("_", 1)[1]] = p
    if args.student and args.split == "cv":  # out-of-fold probabilities of the shipped recipe (train_crop.py cv)
        p = np.zeros((len(labels), len(classes)))
        for k in range(CV_FOLDS):
            d = np.load(Path(args.student) / f"fold{k}.npz")
            p[d["rows"]] = d["proba"]
        fams["student"] = p
    if not fams:
        raise SystemExit(f"no {args.split}_*.npz in {args.out}: run `fit {args.split} FAMILY...` first")
    scored = np.flatnonzero(next(iter(fams.values())).sum(axis=1) > 0)

    def acc(p: np.ndarray) -> float:
        return round(float(np.mean(p[scored].argmax(1) == y[scored])), 4)

    mixes = [(acc(sum(fams[n] for n in combo)), "+".join(combo))
             for r in (2, 3) for combo in itertools.combinations(sorted(fams), r)]  # fmt: skip
    mixes.sort(reverse=True)
    res = {"split": args.split, "rows": int(len(scored)), "families": {n: acc(p) for n, p in fams.items()},
           "all_averaged": acc(sum(fams.values())), "best_mixes_optimistic": dict((m, a) for a, m in mixes[:5])}  # fmt: skip
    print(json.dumps(res, indent=1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["fit", "report"])
    ap.add_argument("split", choices=["dev", "cv"])
    ap.add_argument("families", nargs="*", default=["rdst", "quant", "et"], help=f"fit: any of {', '.join(FAMILIES)}")
    ap.add_argument("--out", default="/tmp/crop_sweep")
    ap.add_argument("--student", default=None, help="report cv: a `train_crop.py cv --out` directory")
    args = ap.parse_args()
    if unknown := sorted(set(args.families) - set(FAMILIES)):
        ap.error(f"unknown famil{'y' if len(unknown) == 1 else 'ies'} {', '.join(unknown)}: choose from {', '.join(FAMILIES)}")
    {"fit": cmd_fit, "report": cmd_report}[args.mode](args)


if __name__ == "__main__":
    main()
