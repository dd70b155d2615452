"""scripts/crop_family_sweep.py: the comparison behind the crop card's family table.

Only the pieces that could silently skew that table are tested (aeon itself is an optional
research dependency): probability columns land on the right class index, ridge scores are
softened rather than 0/1, and the CV splits score every row exactly once.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from sklearn.ensemble import ExtraTreesClassifier
from sklearn.linear_model import RidgeClassifierCV
from sklearn.preprocessing import FunctionTransformer

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def sweep():  # noqa: ANN201 - a module loaded from scripts/
    sys.path.insert(0, str(SCRIPTS))
    try:
        spec = importlib.util.spec_from_file_location("crop_family_sweep", SCRIPTS / "crop_family_sweep.py")
        module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
        spec.loader.exec_module(module)  # type: ignore[union-attr]
        return module
    finally:
        sys.path.remove(str(SCRIPTS))


def toy(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Classes 2, 5 and 7 of 9 (as if the others were missing from a training fold)."""
    rng = np.random.default_rng(seed)
    y = np.repeat([2, 5, 7], 30)
    return rng.standard_normal((90, 4)) + y[:, None], y


def test_probabilities_land_on_their_class_index() -> None:
    m = sweep()
    x, y = toy()
    p = m.soft_proba(ExtraTreesClassifier(20, random_state=0).fit(x, y), x, 9)
    assert p.shape == (90, 9)
    assert np.all(p[:, [0, 1, 3, 4, 6, 8]] == 0)
    assert np.mean(p.argmax(1) == y) > 0.9
    np.testing.assert_allclose(p.sum(1), 1.0)


def test_ridge_families_are_softened_not_zero_one() -> None:
    m = sweep()
    x, y = toy()
    model = SimpleNamespace(estimator_=RidgeClassifierCV().fit(x, y), transformer_=FunctionTransformer().fit(x),
                            classes_=np.array([2, 5, 7]))  # fmt: skip
    p = m.soft_proba(model, x, 9)
    np.testing.assert_allclose(p.sum(1), 1.0)
    assert len(np.unique(p.round(6))) > 10  # graded, unlike aeon's 0/1 predict_proba
    assert np.array_equal(p.argmax(1), model.estimator_.predict(x))


def test_cv_splits_score_every_row_once_and_never_train_on_it() -> None:
    m = sweep()
    labels = np.repeat(np.array([f"c{i}" for i in range(6)]), 11)
    parts = m.splits("cv", labels)
    held = np.concatenate([te for _, te in parts])
    assert sorted(held) == list(range(len(labels)))
    assert all(not set(tr) & set(te) for tr, te in parts)
    (tr, te), = m.splits("dev", labels)
    assert len(te) and not set(tr) & set(te)
