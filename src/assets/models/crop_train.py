"""Train, cross-validate and score the Sentinel-2 crop model (torch, CPU, from scratch).

Honest evaluation is the point: folds are whole spatial blocks (0.1 degree cells or regions), so
a score says how the model does on fields from places it never saw. Temperatures are fitted on
those out-of-block predictions, and a random forest on the same rows and folds is scored in the
same run as the bar to beat. Augmentation mimics what real seasons do: dates lost to cloud,
shorter seasons (a tile catalogue that starts in February), sowing a week or two early or late,
and small radiometric differences between sensors and years.
"""

from __future__ import annotations

import time
import warnings
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from assets.errors import InputError
from assets.models import legend
from assets.models.crop import LTAE, CropModel, TempCNN, interpolate, logits_of, optional_groups, softmax
from assets.models.crop_data import LabelledSeasons
from assets.models.seasons import (
    CORE_BANDS,
    EXTENDED_BANDS,
    GRID_START_DAY,
    RADAR_BANDS,
    SLOT_DAYS,
    channels,
    to_slots,  # fmt: skip
)

DEFAULT_CHANNELS = [*CORE_BANDS, "ndvi"]
FULL_CHANNELS = ["B02", "B03", "B04", "B05", "B06", "B07", "B08", "B11", "B12", "ndvi"]  # the production model's
DEFAULT_OPTIONAL = list(EXTENDED_BANDS)
# Opt-in (`scripts/train_crop.py explore --channels radar`): Sentinel-1 VV / VH as a second optional group,
# not yet measured against the production recipe (model card, "Not tried").
RADAR_CHANNELS = [*FULL_CHANNELS, *RADAR_BANDS]
RADAR_OPTIONAL = [*DEFAULT_OPTIONAL, *RADAR_BANDS]
Progress = Callable[[int], object]


@dataclass(frozen=True)
class Recipe:
    width: int = 32
    hidden: int = 128
    dropout: float = 0.3
    epochs: int = 200
    batch: int = 32
    lr: float = 3e-3
    weight_decay: float = 1e-2
    label_smoothing: float = 0.1
    class_weights: bool = False  # sqrt inverse-frequency weights; off: they cost 1.6 points of accuracy (card)
    p_drop_max: float = 0.5  # each row loses up to this share of its clear dates
    p_truncate: float = 0.3  # share of rows cut to a 6-10 month window
    max_shift_slots: int = 2  # +-20 days of phenology shift
    p_drop_optional: float = 0.5  # share of rows trained without each optional group (red edge + SWIR; radar)
    gain_sd: float = 0.03  # per-row, per-channel multiplicative noise
    min_count: int = 5  # rarer crops train as their group's generic crop
    # A small set (one file of ~200 fields: 7 batches an epoch) is passed over several times an
    # epoch so that every network gets at least this many steps: 600 instead of 200 epochs on one
    # file alone gained 1.1-4.7 points in 4 of 4 runs (card). The pooled model (7,000 steps) is unchanged.
    min_steps: int = 4000
    seed: int = 0
    arch: str = "tempcnn"  # or "ltae": temporal attention over the clear slots (card, "Recipe choice")
    d_model: int = 64  # L-TAE only
    heads: int = 8  # L-TAE only
    d_k: int = 8  # L-TAE only

    def net_config(self) -> dict[str, Any]:
        if self.arch == "ltae":
            return {"kind": "ltae", "d_model": self.d_model, "heads": self.heads, "d_k": self.d_k, "hidden": self.hidden,
                    "dropout": self.dropout}  # fmt: skip
        if self.arch != "tempcnn":
            raise InputError(f"unknown crop architecture {self.arch!r}; use 'tempcnn' or 'ltae'")
        return {"width": self.width, "hidden": self.hidden, "dropout": self.dropout}


@dataclass
class TrainingSet:
    values: np.ndarray  # (n, seasons.N_SLOTS, c) float32
    valid: np.ndarray  # (n, seasons.N_SLOTS) bool
    labels: np.ndarray  # (n,) legend crops, rare ones folded into their group
    blocks: np.ndarray  # (n,) spatial block ids, prefixed by source
    sources: np.ndarray  # (n,) file of each row
    raw_crops: np.ndarray  # (n,) legend crops before folding
    present: np.ndarray  # (n, c) bool: which channels each row's file has
    channels: list[str] = field(default_factory=list)
    optional: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.labels)


def fold_rare(labels: np.ndarray, min_count: int) -> np.ndarray:
    """Crops with fewer than ``min_count`` rows train as their group's generic crop."""
    counts = Counter(labels.tolist())
    out = np.array([c if counts[c] >= min_count else legend.generic(c) for c in labels.tolist()], dtype=object)
    return out.astype(str)


def prepare(sets: list[LabelledSeasons], wanted: list[str], min_count: int = 5,
            optional: list[str] | None = None) -> TrainingSet:  # fmt: skip
    """Merge labelled files through the legend onto the model's channels and dated grid.

    ``optional`` channels may be missing from a file (its rows then train without them).
    """
    optional = [c for c in (optional or []) if c in wanted]
    parts = []
    owner: dict[str, str] = {}  # a place shared by two files is one block, named for the first file
    for s in sets:
        if s.labels is None:
            raise InputError(f"{s.source} has no labels; training needs them")
        raw, present = channels(s.season, wanted, optional)
        values, valid = to_slots(raw, s.season.days, s.season.mask)
        # "unknown" is the model's own answer when unsure, never a crop to learn (WorldCereal's unknown class)
        keep = (valid.sum(axis=1) >= 1) & (s.labels != legend.UNKNOWN)
        name = s.source.rsplit("/", 1)[-1]
        if s.blocks_are_places:  # two files of one place (two composites, two years) never split it
            ids = [f"{owner.setdefault(b, name)}:{b}" for b in s.blocks[keep].astype(str)]  # type: ignore[index]
        else:  # field ids or rows: this file's own
            own = s.blocks if s.blocks is not None else np.arange(len(s)).astype(str)
            ids = [f"{name}:{b}" for b in own[keep].astype(str)]
        parts.append((values[keep], valid[keep], s.labels[keep], np.array(ids, dtype=str),
                      np.full(int(keep.sum()), name), present[keep]))  # fmt: skip
    values, valid, raw, blocks, sources, present_rows = (np.concatenate(p) for p in zip(*parts))
    labels = fold_rare(raw.astype(str), min_count)
    if len(set(labels.tolist())) < 2:
        raise InputError(f"the training data holds a single crop ({labels[0]}); training needs at least two")
    return TrainingSet(values.astype(np.float32), valid, labels, blocks.astype(str), sources.astype(str),
                       raw.astype(str), present_rows.astype(bool), list(wanted), optional)  # fmt: skip


# --------------------------------------------------------------------------- augmentation and training
def augment(values: torch.Tensor, valid: torch.Tensor, present: torch.Tensor, group: torch.Tensor, r: Recipe,
            gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # fmt: skip
    n, t, c = values.shape
    for g in sorted(set(group[group > 0].tolist())):  # each optional group (red edge + SWIR, radar) on its own
        drop = torch.rand(n, generator=gen) < r.p_drop_optional
        present = present & ~(drop[:, None] & (group == g)[None, :])
    keep = torch.rand(n, t, generator=gen) >= torch.rand(n, 1, generator=gen) * r.p_drop_max
    cut = torch.rand(n, generator=gen) < r.p_truncate
    if cut.any():
        length = torch.randint(18, 31, (n,), generator=gen)  # 6-10 months of 10-day slots
        first = valid.float().argmax(dim=1)
        last = t - 1 - valid.flip(1).float().argmax(dim=1)
        span = (last - first - length).clamp(min=0)
        start = first + (torch.rand(n, generator=gen) * (span + 1)).long()
        idx = torch.arange(t).expand(n, t)
        window = (idx >= start[:, None]) & (idx < (start + length)[:, None])
        keep &= torch.where(cut[:, None], window, torch.ones_like(window))
    new_valid = valid & keep
    few = new_valid.sum(dim=1) < 3
    new_valid[few] = valid[few]
    shift = torch.randint(-r.max_shift_slots, r.max_shift_slots + 1, (n,), generator=gen)
    src = (torch.arange(t).expand(n, t) - shift[:, None]).clamp(0, t - 1)
    values = torch.gather(values, 1, src.unsqueeze(-1).expand(n, t, c))
    new_valid = torch.gather(new_valid, 1, src) & (torch.arange(t).expand(n, t) - shift[:, None] >= 0) \
        & (torch.arange(t).expand(n, t) - shift[:, None] < t)
    empty = ~new_valid.any(dim=1)
    new_valid[empty] = torch.gather(valid, 1, src)[empty]
    gain = 1 + r.gain_sd * torch.randn(n, 1, c, generator=gen)
    return values * gain, new_valid, present


def _class_weights(y: np.ndarray, n_classes: int) -> torch.Tensor:
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    w = np.sqrt(counts.sum() / np.maximum(counts, 1))
    return torch.tensor(w / w.mean(), dtype=torch.float32)


def schedule(n_rows: int, r: Recipe) -> tuple[int, int]:
    """(passes over the rows per epoch, optimisation steps) for ``n_rows`` training rows."""
    batches = max(1, (n_rows + r.batch - 1) // r.batch)
    passes = max(1, -(-r.min_steps // (r.epochs * batches)))
    return passes, r.epochs * batches * passes


def train_net(values: np.ndarray, valid: np.ndarray, y: np.ndarray, n_classes: int, r: Recipe, seed: int,
              progress: Progress | None = None, present: np.ndarray | None = None,
              optional: list[int] | None = None) -> TempCNN | LTAE:  # fmt: skip
    """One network (TempCNN or L-TAE) trained on slotted seasons with augmentation (AdamW, one-cycle schedule)."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    v, m, t = torch.from_numpy(values), torch.from_numpy(valid), torch.from_numpy(y.astype(np.int64))
    pr = torch.from_numpy(present if present is not None else np.ones(values.shape[::2], bool))
    cfg = r.net_config()
    net = (LTAE if cfg.pop("kind", "tempcnn") == "ltae" else TempCNN)(values.shape[2], n_classes, optional=optional, **cfg)
    for k in range(values.shape[2]):  # statistics of each channel over the rows that have it
        obs = v[:, :, k][m & pr[:, k : k + 1]]
        if obs.numel():
            net.mean[k], net.scale[k] = obs.mean(), obs.std().clamp(min=1e-3)
    passes, steps = schedule(len(t), r)
    opt = torch.optim.AdamW(net.parameters(), lr=r.lr, weight_decay=r.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=r.lr, total_steps=steps)
    weights = _class_weights(y, n_classes) if r.class_weights else None
    loss_fn = torch.nn.CrossEntropyLoss(weight=weights, label_smoothing=r.label_smoothing)
    done = 0
    for _ in range(r.epochs):
        net.train()
        for _ in range(passes):
            order = torch.randperm(len(t), generator=gen)
            for k in range(0, len(t), r.batch):
                b = order[k : k + r.batch]
                if len(b) < 2 or done >= steps:
                    continue
                xb, mb, pb = augment(v[b], m[b], pr[b], net.group, r, gen)
                loss = loss_fn(logits_of(net, xb, mb, pb), t[b])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                done += 1
        if progress:
            progress(1)
    return net.eval()


def net_logits(net: TempCNN | LTAE, values: np.ndarray, valid: np.ndarray, present: np.ndarray | None = None) -> np.ndarray:
    with torch.inference_mode():
        p = None if present is None else torch.from_numpy(np.ascontiguousarray(present))
        return logits_of(net, torch.from_numpy(values), torch.from_numpy(valid), p).numpy()


def optional_flags(ts: TrainingSet) -> list[int]:
    """Optional group of each channel (`crop.optional_groups`): 0 required."""
    return optional_groups(ts.channels, set(ts.optional))


def present_for_eval(ts: TrainingSet, rows: np.ndarray, core_only: bool = False) -> np.ndarray:
    """Channel presence of held-out rows; ``core_only`` scores them as a 4-band tile would be."""
    present = ts.present[rows].copy()
    if core_only:
        present[:, np.array(optional_flags(ts)) > 0] = False
    return present


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """Temperature minimising held-out negative log-likelihood (Guo et al. 2017)."""
    z = torch.from_numpy(logits.astype(np.float64))
    t = torch.from_numpy(y.astype(np.int64))
    temps = np.exp(np.linspace(np.log(0.25), np.log(8.0), 200))
    nll = [F.cross_entropy(z / temp, t).item() for temp in temps]
    return float(temps[int(np.argmin(nll))])


# --------------------------------------------------------------------------- spatial folds
def block_folds(blocks: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """Fold (0..k-1) of every row; whole blocks go to one fold, folds balanced by row count."""
    if k < 2:
        raise InputError(f"cross-validation needs at least 2 folds, got {k}")
    names, counts = np.unique(blocks, return_counts=True)
    if len(names) < k:
        raise InputError(f"only {len(names)} spatial blocks for {k} folds; use fewer folds")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(names))
    order = order[np.argsort(-counts[order], kind="stable")]  # biggest blocks first, ties shuffled
    load = np.zeros(k)
    fold_of: dict[str, int] = {}
    for i in order:
        f = int(np.argmin(load))
        fold_of[names[i]] = f
        load[f] += counts[i]
    return np.array([fold_of[b] for b in blocks], dtype=np.int64)


def encode(labels: np.ndarray, classes: list[str]) -> np.ndarray:
    """Class indices of ``labels``; names outside ``classes`` are an `InputError`."""
    index = {c: i for i, c in enumerate(classes)}
    unknown = sorted({str(s) for s in labels} - index.keys())
    if unknown:
        raise InputError(f"labels {unknown[:5]} are not classes of this model ({len(classes)} classes: {classes[:6]}...)")
    return np.array([index[str(s)] for s in labels], dtype=np.int64)


def cross_validate(ts: TrainingSet, r: Recipe, classes: list[str], k: int = 5, seed: int = 0,
                   progress: Progress | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:  # fmt: skip
    """Out-of-block logits (n, classes), the fold of every row, and (for a model with optional
    bands) the same rows' logits without them: what a 4-band tile would get."""
    out, folds, views = cross_validate_views(ts, r, classes, k, seed, {"core": list(ts.optional)} if ts.optional else {},
                                             progress)  # fmt: skip
    return out, folds, views.get("core")


def cross_validate_views(ts: TrainingSet, r: Recipe, classes: list[str], k: int, seed: int,
                         views: dict[str, list[str]], progress: Progress | None = None,
                         ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:  # fmt: skip
    """`cross_validate`, with each held-out fold also scored with the channels of every view
    withheld (e.g. ``{"no_radar": ["VV", "VH"]}``: what a tile without Sentinel-1 gets)."""
    y = encode(ts.labels, classes)
    folds = block_folds(ts.blocks, k, seed)
    out = np.zeros((len(y), len(classes)), dtype=np.float32)
    extra = {name: out.copy() for name in views}
    for f in range(k):
        tr, te = folds != f, folds == f
        net = train_net(ts.values[tr], ts.valid[tr], y[tr], len(classes), r, seed=r.seed * 100 + f, progress=progress,
                        present=ts.present[tr], optional=optional_flags(ts))  # fmt: skip
        out[te] = net_logits(net, ts.values[te], ts.valid[te], present_for_eval(ts, te))
        for name, withheld in views.items():
            present = present_for_eval(ts, te)
            present[:, np.isin(ts.channels, withheld)] = False
            extra[name][te] = net_logits(net, ts.values[te], ts.valid[te], present)
    return out, folds, extra


def forest_features(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """What the baseline forest sees: the bridged, normalised grid flattened, plus the mask."""
    v = torch.from_numpy(values)
    m = torch.from_numpy(valid)
    obs = v[m]
    z = torch.where(m.unsqueeze(-1), (v - obs.mean(0)) / obs.std(0).clamp(min=1e-3), torch.zeros_like(v))
    return interpolate(z, m).reshape(len(v), -1).numpy()


def phenology_features(values: np.ndarray, valid: np.ndarray, channels: list[str]) -> np.ndarray:
    """Hand-made season features for a gradient-boosted baseline (NaN where a season cannot say).

    Per channel: 10/50/90th percentiles, mean and spread of the clear observations, and 30-day
    means of the bridged series. From NDVI: peak value and day, amplitude, green-up and senescence
    days (NDVI crossing half its amplitude before / after the peak) and the season's NDVI sum.
    """
    n, t, c = values.shape
    obs = np.where(valid[:, :, None], values, np.nan)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # all-NaN slices (a channel a file lacks) give NaN, said in the docstring
        feats = [np.nanpercentile(obs, q, axis=1) for q in (10, 50, 90)] + [np.nanmean(obs, 1), np.nanstd(obs, 1)]
        v, m = torch.from_numpy(values), torch.from_numpy(valid)
        grid = interpolate(v, m).numpy()  # (n, c + 2, t): bridged values, valid, covered
        bridged = np.where(grid[:, c + 1 : c + 2, :] > 0, grid[:, :c, :], np.nan)  # (n, c, t)
        months = bridged[:, :, : t // 3 * 3].reshape(n, c, t // 3, 3)
        feats.append(np.nanmean(months, axis=3).reshape(n, -1))
        if "ndvi" in channels:
            nd = bridged[:, channels.index("ndvi"), :]
            filled = np.where(np.isfinite(nd), nd, -np.inf)
            peak = filled.argmax(axis=1)
            top, low = np.nanmax(nd, 1), np.nanmin(nd, 1)
            half = (low + (top - low) / 2)[:, None]
            idx = np.arange(t)[None, :]
            above = np.isfinite(nd) & (nd >= half)
            up = np.where(above & (idx <= peak[:, None]), idx, t).min(axis=1)
            down = np.where(above & (idx >= peak[:, None]), idx, -1).max(axis=1)
            day = lambda s: np.where((s >= 0) & (s < t), GRID_START_DAY + SLOT_DAYS * s, np.nan).astype(float)  # noqa: E731
            feats.append(np.stack([top, day(peak), top - low, day(up), day(down), day(down) - day(up),
                                   np.nansum(np.clip(nd - low[:, None], 0, None), 1)], axis=1))  # fmt: skip
    x = np.concatenate([f.reshape(n, -1) for f in feats], axis=1).astype(np.float32)
    return np.where(np.isfinite(x), x, np.nan)


def gbm_cv(ts: TrainingSet, classes: list[str], folds: np.ndarray, seed: int = 0) -> np.ndarray:
    """Out-of-block probabilities of gradient-boosted trees on `phenology_features` (same folds)."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    y = encode(ts.labels, classes)
    x = phenology_features(np.where(ts.present[:, None, :], ts.values, np.nan), ts.valid, ts.channels)
    x = x[:, np.isfinite(x).any(axis=0)]
    out = np.zeros((len(y), len(classes)))
    for f in np.unique(folds):
        tr, te = folds != f, folds == f
        gb = HistGradientBoostingClassifier(learning_rate=0.05, max_iter=300, max_leaf_nodes=15, min_samples_leaf=5,
                                            l2_regularization=1.0, random_state=seed).fit(x[tr], y[tr])  # fmt: skip
        out[np.ix_(te, gb.classes_)] = gb.predict_proba(x[te])
    return out


def forest_cv(ts: TrainingSet, classes: list[str], folds: np.ndarray, seed: int = 0, trees: int = 500) -> np.ndarray:
    """Out-of-block probabilities of a random forest on the same rows and folds (the baseline)."""
    y = encode(ts.labels, classes)
    x = forest_features(ts.values, ts.valid)
    out = np.zeros((len(y), len(classes)))
    for f in np.unique(folds):
        forest_fold(x, y, folds != f, folds == f, out, seed, trees)
    return out


def forest_fold(x: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray, out: np.ndarray, seed: int = 0,
                trees: int = 500, n_jobs: int = 2) -> None:  # fmt: skip
    """One fold of the baseline forest: fit on the ``train`` rows, write the ``test`` rows'
    probabilities into ``out`` (columns of classes the fold never saw stay 0)."""
    from sklearn.ensemble import RandomForestClassifier

    rf = RandomForestClassifier(trees, n_jobs=n_jobs, random_state=seed, class_weight="balanced_subsample")
    rf.fit(x[train], y[train])
    out[np.ix_(test, rf.classes_)] = rf.predict_proba(x[test])


def train_model(ts: TrainingSet, r: Recipe, *, version: str, temperature: float = 1.0,
                progress: Progress | None = None, meta: dict[str, Any] | None = None) -> CropModel:  # fmt: skip
    """The served model: one network trained on every row."""
    classes = sorted(set(ts.labels.tolist()))
    y = encode(ts.labels, classes)
    start = time.perf_counter()
    net = train_net(ts.values, ts.valid, y, len(classes), r, seed=r.seed * 100 + 99, progress=progress,
                    present=ts.present, optional=optional_flags(ts))  # fmt: skip
    info = {"train_s": round(time.perf_counter() - start, 1), "rows": len(y), "recipe": asdict(r)}
    return CropModel(classes=classes, version=version, net=net, channels=list(ts.channels), optional=list(ts.optional),
                     temperature=temperature,
                     config={"net": r.net_config()}, meta={**info, **(meta or {})})  # fmt: skip


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
    """Accuracy, macro F1 (over classes present), per-class precision/recall, calibration error."""
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


def proba_from_logits(logits: np.ndarray, temperature: float) -> np.ndarray:
    return softmax(logits / temperature)

