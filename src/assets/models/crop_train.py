"""Train, distil and calibrate crop classifiers; score them (accuracy, macro F1, ECE).

Recipe: an ensemble of TempCNN teachers trained with date-masking augmentation (full series,
random cloud dropout, and 4-10 date "Sentinel-2 season" subsets) plus an ExtraTrees teacher
whose errors differ; and full-season experts (TempCNNs and ExtraTrees on values and their first
two differences, fitted on complete series only), which are more accurate where every date is
there. One small conv student learns the experts' probabilities on the (nearly) complete copies
of the rows and the masked teachers' on the rest, then is temperature-scaled on a held-out split
so the probabilities the valuation multiplies by are calibrated.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from assets.errors import InputError
from assets.models.crop import N_SLOTS, CropModel, CropNet, build_member, features, softmax

SEASON_SLOTS = (11, 35)  # April..September on the 8-day grid (doy 89..273)
DEFAULT_TEACHER = {"kind": "tempcnn", "width": 64, "kernel": 5, "hidden": 256, "dropout": 0.3}
DEFAULT_STUDENT = {"kind": "conv", "width": 16, "hidden": 256, "dropout": 0.2}

Progress = Callable[[int], None]


@dataclass
class Recipe:
    """Everything that decides a trained model, so a run is reproducible from its card."""

    teachers: int = 2  # masked-date TempCNN teachers (a third added nothing: 0.743 vs 0.744)
    teacher_epochs: int = 60
    teacher: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_TEACHER))
    trees: int = 300  # ExtraTrees teacher whose errors differ from the CNNs' (0 = none)
    tree_weight: float = 0.4  # its share of the teacher probabilities
    tree_copies: int = 4  # augmented copies of each row the trees see
    full_teachers: int = 2  # TempCNNs trained on complete series only (0 = none)
    full_epochs: int = 40
    full_trees: int = 600  # ExtraTrees on complete series (0 = none)
    full_from: float = 0.78  # share of valid dates where the full-season experts start to take over
    student: dict[str, Any] | None = field(default_factory=lambda: dict(DEFAULT_STUDENT))
    distil_copies: int = 24  # augmented copies of each row the student learns teacher outputs on
    student_epochs: int = 30
    student_batch: int = 512
    batch: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-4
    p_full: float = 0.4
    p_sparse: float = 0.3
    seed: int = 0


# --------------------------------------------------------------------------- augmentation
def augment(values: torch.Tensor, valid: torch.Tensor, gen: torch.Generator, p_full: float, p_sparse: float,
            noise: float = 0.01) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """Random cloud masks, sparse seasonal subsets, +-1 slot shifts and small noise."""
    n, t, _ = values.shape
    u = torch.rand(n, generator=gen)
    keep = torch.ones(n, t, dtype=torch.bool)
    drop = (u >= p_full) & (u < 1 - p_sparse)
    if drop.any():
        rate = 0.3 + 0.7 * torch.rand(n, 1, generator=gen)
        keep[drop] = (torch.rand(n, t, generator=gen) < rate)[drop]
    sparse = u >= 1 - p_sparse
    if sparse.any():
        lo, hi = SEASON_SLOTS
        score = torch.rand(n, t, generator=gen)
        score[:, :lo] = 2.0
        score[:, hi:] = 2.0
        k = torch.randint(4, 11, (n, 1), generator=gen)
        rank = score.argsort(dim=1).argsort(dim=1)
        keep[sparse] = (rank < k)[sparse]
    new_valid = valid & keep
    empty = ~new_valid.any(dim=1)
    new_valid[empty] = valid[empty]
    shift = torch.randint(-1, 2, (1,), generator=gen).item()
    vals = values + noise * torch.randn(values.shape, generator=gen)
    if shift:
        vals = torch.roll(vals, shift, dims=1)
        new_valid = torch.roll(new_valid, shift, dims=1)
        edge = 0 if shift > 0 else t - 1
        lost = new_valid[:, edge].clone()
        new_valid[:, edge] = False
        restore = lost & ~new_valid.any(dim=1)
        new_valid[restore, edge] = True
    return vals, new_valid


def sparse_mask(n: int, k_range: tuple[int, int] = (6, 8), seed: int = 0) -> np.ndarray:
    """Evaluation masks: ``k`` random dates (k in k_range) within April-September per series."""
    rng = np.random.default_rng(seed)
    lo, hi = SEASON_SLOTS
    mask = np.zeros((n, N_SLOTS), dtype=bool)
    for i in range(n):
        k = rng.integers(k_range[0], k_range[1] + 1)
        mask[i, rng.choice(np.arange(lo, hi), size=k, replace=False)] = True
    return mask


# --------------------------------------------------------------------------- training
def _step(opt: torch.optim.Optimizer, sched: torch.optim.lr_scheduler.LRScheduler, loss: torch.Tensor) -> None:
    """One optimiser step (teachers and the distilled student train alike)."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    sched.step()


def _batches(n: int, batch: int, gen: torch.Generator) -> list[torch.Tensor]:
    perm = torch.randperm(n, generator=gen)
    return [perm[i : i + batch] for i in range(0, n, batch) if len(perm[i : i + batch]) > 1]


def _cosine(opt: torch.optim.Optimizer, steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    warm = max(1, steps // 10)
    return torch.optim.lr_scheduler.LambdaLR(
        opt, lambda i: min(1.0, (i + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(i, steps) / steps))
    )


def train_member(values: np.ndarray, valid: np.ndarray, y: np.ndarray, n_classes: int, spec: dict[str, Any],
                 recipe: Recipe, epochs: int, seed: int, progress: Progress | None = None) -> nn.Module:  # fmt: skip
    """One network trained on labels, with fresh date-masking augmentation every batch."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    v_all, m_all = torch.from_numpy(values), torch.from_numpy(valid)
    y_all = torch.from_numpy(y.astype(np.int64))
    model = build_member(spec, 2 * values.shape[2], n_classes)
    opt = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    sched = _cosine(opt, epochs * max(1, math.ceil(len(y) / recipe.batch)))
    for _ in range(epochs):
        model.train()
        for idx in _batches(len(y), recipe.batch, gen):
            v, m = augment(v_all[idx], m_all[idx], gen, recipe.p_full, recipe.p_sparse)
            loss = F.cross_entropy(model(features(v, m)), y_all[idx], label_smoothing=0.05)
            _step(opt, sched, loss)
        if progress:
            progress(1)
    model.eval()
    return model


def augmented_copies(values: np.ndarray, valid: np.ndarray, copies: int, recipe: Recipe,
                     seed: int) -> tuple[torch.Tensor, np.ndarray]:  # fmt: skip
    """Network inputs for the rows as given plus ``copies`` augmented versions; also the row index."""
    gen = torch.Generator().manual_seed(seed)
    v_all, m_all = torch.from_numpy(values), torch.from_numpy(valid)
    parts, rows = [features(v_all, m_all)], [np.arange(len(values))]
    for _ in range(copies):
        for start in range(0, len(values), 1024):  # one shift draw per chunk
            v, m = augment(v_all[start : start + 1024], m_all[start : start + 1024], gen, recipe.p_full, recipe.p_sparse)
            parts.append(features(v, m))
            rows.append(np.arange(start, start + len(v)))
    return torch.cat(parts), np.concatenate(rows)


def tree_features(x: torch.Tensor | np.ndarray) -> np.ndarray:
    """Flat inputs for the tree teacher: values, mask and first differences of the values."""
    f = x.numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    bands = f.shape[1] // 2
    diff = np.diff(f[:, :bands], axis=2).reshape(len(f), -1)
    return np.concatenate([f.reshape(len(f), -1), diff], axis=1)


def train_trees(values: np.ndarray, valid: np.ndarray, y: np.ndarray, recipe: Recipe, seed: int):  # noqa: ANN201
    """ExtraTrees on augmented copies: a teacher whose mistakes differ from the CNNs'."""
    from sklearn.ensemble import ExtraTreesClassifier

    x, rows = augmented_copies(values, valid, recipe.tree_copies, recipe, seed)
    trees = ExtraTreesClassifier(recipe.trees, min_samples_leaf=2, max_features="sqrt", n_jobs=1, random_state=seed)
    return trees.fit(tree_features(x), y[rows])


def full_tree_features(x: torch.Tensor | np.ndarray) -> np.ndarray:
    """Inputs for the full-season trees: each band's values and first and second differences."""
    f = x.numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    v = f[:, : f.shape[1] // 2]
    return np.concatenate([v, np.diff(v, axis=2), np.diff(v, 2, axis=2)], axis=2).reshape(len(f), -1)


def cnn_proba(net: nn.Module, x: torch.Tensor) -> np.ndarray:
    """Softmax of a network over network inputs ``x``, in chunks, without autograd."""
    with torch.inference_mode():
        logits = torch.cat([net(x[i : i + 4096]) for i in range(0, len(x), 4096)])
    return F.softmax(logits, dim=1).numpy()


def forest_proba(trees: Any, x: torch.Tensor, featurize: Callable[[torch.Tensor], np.ndarray],
                 n_classes: int) -> np.ndarray:  # fmt: skip
    """A forest's probabilities over ``x`` in chunks, in ``n_classes`` columns (a class absent
    from its training rows gets 0)."""
    p = np.zeros((len(x), n_classes))
    p[:, trees.classes_] = np.concatenate(
        [trees.predict_proba(featurize(x[i : i + 8192])) for i in range(0, len(x), 8192)]
    )
    return p


@dataclass
class FullSeasonExperts:
    """Teachers for complete series: TempCNNs and ExtraTrees that never saw a masked date.

    The masked teachers pay for their robustness to clouds with accuracy on complete series
    (dev split 0.743 / 0.747); these reach 0.758 / 0.757 alone and 0.776 together
    (scripts/crop_full_season_experiment.py)."""

    cnns: nn.Module | None
    trees: Any
    n_classes: int

    def proba(self, x: torch.Tensor) -> np.ndarray:
        """Mean of the CNN ensemble's and the trees' probabilities on network inputs ``x``."""
        parts = []
        if self.cnns is not None:
            parts.append(cnn_proba(self.cnns, x))
        if self.trees is not None:
            parts.append(forest_proba(self.trees, x, full_tree_features, self.n_classes))
        return (sum(parts) / len(parts)).astype(np.float32)


def train_full_experts(values: np.ndarray, valid: np.ndarray, y: np.ndarray, n_classes: int, recipe: Recipe,
                       seed: int, progress: Progress | None = None) -> FullSeasonExperts | None:  # fmt: skip
    """Full-season experts: no date masking beyond what the data has (only the +-1 slot shift and noise)."""
    if not recipe.full_teachers and not recipe.full_trees:
        return None
    no_masking = copy.copy(recipe)
    no_masking.p_full, no_masking.p_sparse = 1.0, 0.0
    cnns = [
        train_member(values, valid, y, n_classes, recipe.teacher, no_masking, recipe.full_epochs, seed=seed + i,
                     progress=progress)  # fmt: skip
        for i in range(recipe.full_teachers)
    ]
    trees = None
    if recipe.full_trees:
        from sklearn.ensemble import ExtraTreesClassifier

        x = features(torch.from_numpy(values), torch.from_numpy(valid))
        trees = ExtraTreesClassifier(recipe.full_trees, max_features=0.2, n_jobs=1, random_state=seed)
        trees.fit(full_tree_features(x), y)
    return FullSeasonExperts(CropNet(cnns).eval() if cnns else None, trees, n_classes)


def full_share(x: torch.Tensor, full_from: float) -> np.ndarray:
    """Weight of the full-season experts per input: 0 up to ``full_from`` of the dates valid,
    rising linearly to 1 for a complete series."""
    bands = x.shape[1] // 2
    frac = x[:, bands, :].float().mean(dim=1).numpy()
    return np.clip((frac - full_from) / max(1e-6, 1.0 - full_from), 0.0, 1.0)


def teacher_proba(cnns: nn.Module | None, trees: Any, x: torch.Tensor, tree_weight: float) -> np.ndarray:
    """Teacher probabilities on network inputs ``x``: CNN ensemble mixed with the trees."""
    parts, weights = [], []
    if cnns is not None:
        parts.append(cnn_proba(cnns, x))
        weights.append(1.0 - (tree_weight if trees is not None else 0.0))
    if trees is not None:
        parts.append(forest_proba(trees, x, tree_features, int(trees.classes_.max()) + 1))
        weights.append(tree_weight if cnns is not None else 1.0)
    return sum(w * p for w, p in zip(weights, parts)).astype(np.float32)


def distil(x: torch.Tensor, target: np.ndarray, y: np.ndarray, n_classes: int, spec: dict[str, Any], in_ch: int,
           recipe: Recipe, seed: int, progress: Progress | None = None) -> nn.Module:  # fmt: skip
    """Student learning the teachers' probabilities on a fixed augmented set (plus a little of the labels)."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = build_member(spec, in_ch, n_classes)
    opt = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    sched = _cosine(opt, recipe.student_epochs * max(1, math.ceil(len(x) / recipe.student_batch)))
    tgt = torch.from_numpy(target).clamp_min(1e-8)
    yt = torch.from_numpy(y.astype(np.int64))
    for _ in range(recipe.student_epochs):
        model.train()
        for idx in _batches(len(x), recipe.student_batch, gen):
            out = model(x[idx])
            logp = F.log_softmax(out, dim=1)
            loss = F.kl_div(logp, tgt[idx], reduction="batchmean") + 0.2 * F.nll_loss(logp, yt[idx])
            _step(opt, sched, loss)
        if progress:
            progress(1)
    model.eval()
    return model


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """Temperature minimising held-out negative log-likelihood (Guo et al. 2017)."""
    z = torch.from_numpy(logits.astype(np.float64))
    t = torch.from_numpy(y.astype(np.int64))
    best, best_nll = 1.0, float("inf")
    for temp in np.exp(np.linspace(np.log(0.25), np.log(8.0), 200)):
        nll = F.cross_entropy(z / temp, t).item()
        if nll < best_nll:
            best, best_nll = float(temp), nll
    return best


def calibrate(model: CropModel, values: np.ndarray, valid: np.ndarray, labels: np.ndarray) -> None:
    """Fit the full-series temperature, and one for 6-8 date seasonal subsets of the same rows."""
    y = encode(labels, model.classes)
    model.temperature = fit_temperature(model.logits(values, mask=valid), y)
    sparse = valid & sparse_mask(len(values), seed=7)
    keep = sparse.any(axis=1)
    if keep.sum() >= 20:
        model.temperature_sparse = fit_temperature(model.logits(values[keep], mask=sparse[keep]), y[keep])


def encode(labels: np.ndarray, classes: list[str]) -> np.ndarray:
    """Class indices of ``labels``; unknown names are an `InputError`."""
    index = {c: i for i, c in enumerate(classes)}
    unknown = sorted({str(label) for label in labels} - index.keys())
    if unknown:
        raise InputError(f"labels {unknown[:5]} are not classes of this model ({len(classes)} classes: {classes[:6]}...)")
    return np.array([index[str(label)] for label in labels], dtype=np.int64)


def stratified_split(labels: np.ndarray, frac: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train_idx, holdout_idx) with ``frac`` of every class held out."""
    rng = np.random.default_rng(seed)
    hold: list[int] = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        rng.shuffle(idx)
        hold.extend(idx[: int(round(frac * len(idx)))].tolist())
    hold_arr = np.sort(np.array(hold, dtype=np.int64))
    train = np.setdiff1d(np.arange(len(labels)), hold_arr)
    return train, hold_arr


def stratified_folds(labels: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Fold number (0..k-1) of every row, each class dealt round-robin over the folds after a
    seeded shuffle, so every fold holds about 1/k of every class."""
    if k < 2:
        raise InputError(f"cross-validation needs at least 2 folds, got {k}")
    rng = np.random.default_rng(seed)
    fold = np.empty(len(labels), dtype=np.int64)
    offset = 0
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        rng.shuffle(idx)
        fold[idx] = (offset + np.arange(len(idx))) % k
        offset += len(idx)  # rotate so small classes do not all start in fold 0
    return fold


def train_model(values: np.ndarray, valid: np.ndarray, labels: np.ndarray, bands: list[str], recipe: Recipe,
                calib: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
                temperature: float | tuple[float, float | None] | None = None,
                version: str = "crop", progress: Progress | None = None,
                classes: list[str] | None = None) -> tuple[CropModel, CropNet]:  # fmt: skip
    """Teachers, optional student, then temperature (fitted on ``calib`` or given).

    Returns the served model and the teacher ensemble (the same net when there is no student).
    """
    if len(values) < 2:
        raise InputError("need at least two labelled series to train")
    classes = classes or class_names(labels)
    y = encode(labels, classes)
    start = time.perf_counter()
    teachers = [
        train_member(values, valid, y, len(classes), recipe.teacher, recipe, recipe.teacher_epochs,
                     seed=recipe.seed * 1000 + i, progress=progress)  # fmt: skip
        for i in range(recipe.teachers)
    ]
    ensemble = CropNet(teachers).eval()
    members: list[dict[str, Any]] = [dict(recipe.teacher)] * recipe.teachers
    net = ensemble
    if recipe.student is not None:
        trees = train_trees(values, valid, y, recipe, seed=recipe.seed * 1000 + 500) if recipe.trees else None
        if progress:
            progress(1)
        experts = train_full_experts(values, valid, y, len(classes), recipe, seed=recipe.seed * 1000 + 700,
                                     progress=progress)  # fmt: skip
        x, rows = augmented_copies(values, valid, recipe.distil_copies, recipe, seed=recipe.seed * 1000 + 501)
        target = teacher_proba(ensemble if recipe.teachers else None, trees, x, recipe.tree_weight)
        if experts is not None:
            w = full_share(x, recipe.full_from)
            near = np.flatnonzero(w > 0)
            for chunk in range(0, len(near), 16384):
                idx = near[chunk : chunk + 16384]
                target[idx] = w[idx, None] * experts.proba(x[idx]) + (1 - w[idx, None]) * target[idx]
        if progress:
            progress(1)
        student = distil(x, target, y[rows], len(classes), recipe.student, 2 * values.shape[2], recipe,
                         seed=recipe.seed * 1000 + 999, progress=progress)  # fmt: skip
        net, members = CropNet([student]).eval(), [dict(recipe.student)]
    train_s = time.perf_counter() - start
    model = CropModel(classes=classes, version=version, net=net, bands=list(bands),
                      config={"members": members}, meta={"train_s": round(train_s, 1), "recipe": _recipe_dict(recipe)})  # fmt: skip
    if temperature is not None:
        full_t, sparse_t = temperature if isinstance(temperature, tuple) else (temperature, None)
        model.temperature = float(full_t)
        model.temperature_sparse = None if sparse_t is None else float(sparse_t)
    elif calib is not None:
        calibrate(model, *calib)
    return model, ensemble


def class_names(labels: np.ndarray) -> list[str]:
    """The distinct labels in model column order: UCR Crop's order first, any others after by name."""
    return sorted({str(s) for s in labels}, key=_class_order)


def _class_order(name: str) -> tuple[int, str]:
    from assets.models.crop import UCR_CROP_CLASSES

    return (UCR_CROP_CLASSES.index(name), name) if name in UCR_CROP_CLASSES else (999, name)


def _recipe_dict(recipe: Recipe) -> dict[str, Any]:
    return copy.deepcopy(recipe.__dict__)


def total_epochs(recipe: Recipe) -> int:
    if recipe.student is None:
        return recipe.teachers * recipe.teacher_epochs
    full = recipe.full_teachers * recipe.full_epochs
    return recipe.teachers * recipe.teacher_epochs + full + recipe.student_epochs + 2


# --------------------------------------------------------------------------- scoring
@dataclass
class Scores:
    accuracy: float
    macro_f1: float
    ece: float
    nll: float
    confusion: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray
    support: np.ndarray
    reliability: list[tuple[float, float, int]]  # (mean confidence, accuracy, count) per bin


def score(proba: np.ndarray, y: np.ndarray, n_classes: int, bins: int = 15) -> Scores:
    """Accuracy, macro F1, per-class precision/recall, expected calibration error."""
    pred = proba.argmax(axis=1)
    conf = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(conf, (y, pred), 1)
    tp = np.diag(conf).astype(float)
    precision = np.divide(tp, conf.sum(axis=0), out=np.zeros(n_classes), where=conf.sum(axis=0) > 0)
    recall = np.divide(tp, conf.sum(axis=1), out=np.zeros(n_classes), where=conf.sum(axis=1) > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros(n_classes), where=precision + recall > 0)
    present = conf.sum(axis=1) > 0
    top = proba.max(axis=1)
    correct = pred == y
    edges = np.linspace(0, 1, bins + 1)
    ece, rel = 0.0, []
    for lo, hi in zip(edges[:-1], edges[1:]):
        sel = (top > lo) & (top <= hi)
        if sel.any():
            ece += sel.mean() * abs(top[sel].mean() - correct[sel].mean())
            rel.append((float(top[sel].mean()), float(correct[sel].mean()), int(sel.sum())))
    nll = float(-np.log(np.clip(proba[np.arange(len(y)), y], 1e-12, None)).mean())
    return Scores(float(correct.mean()), float(f1[present].mean()), float(ece), nll, conf, precision, recall, f1,
                  conf.sum(axis=1), rel)  # fmt: skip


def ensemble_logits(net: nn.Module, values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Logits of any crop network on grid data (used to score teachers against the student)."""
    with torch.inference_mode():
        return net(features(torch.from_numpy(values), torch.from_numpy(valid))).numpy()


def proba_of(net: nn.Module, values: np.ndarray, valid: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    return softmax(ensemble_logits(net, values, valid) / temperature)
