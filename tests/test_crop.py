"""Crop classifier: input formats, masking, calibration output, CLI round trip, bad input."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from assets.cli import main
from assets.errors import InputError, ModelError
from assets.models import crop
from assets.models import crop_train as ct
from assets.models.crop_data import read_series, select_bands

REPO = Path(__file__).resolve().parents[1]


def shared_data() -> Path | None:
    for root in (Path(__file__).resolve().parents[2] / "shared" / "data", Path("/work/shared/data")):
        if (root / "crop-series" / "Crop_TRAIN.npy").is_file():
            return root
    return None


def synthetic(n_per: int = 40, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three separable phenologies on the 46-slot grid: early peak, late peak, flat."""
    rng = np.random.default_rng(seed)
    t = np.arange(crop.N_SLOTS)
    shapes = [0.2 + 0.6 * np.exp(-((t - 14) / 4) ** 2), 0.2 + 0.6 * np.exp(-((t - 30) / 4) ** 2), np.full(46, 0.1)]
    x = np.concatenate([s + 0.03 * rng.standard_normal((n_per, 46)) for s in shapes]).astype(np.float32)
    y = np.repeat([1, 2, 11], n_per)  # corn, wheat, water
    return x, y


@pytest.fixture(scope="module")
def tiny_model() -> crop.CropModel:
    torch.manual_seed(0)
    x, y = synthetic()
    values, valid = crop.to_grid(x)
    labels = np.array([crop.UCR_CROP_CLASSES[i - 1] for i in y])
    recipe = ct.Recipe(teachers=1, teacher_epochs=4, student_epochs=6, batch=32, seed=0, trees=20, distil_copies=3,
                       full_teachers=0, full_trees=20,
                       teacher={"kind": "tempcnn", "width": 8, "hidden": 16, "dropout": 0.1},
                       student={"kind": "mlp", "hidden": 32, "depth": 1})  # fmt: skip
    model, _ = ct.train_model(values, valid, labels, ["ndvi"], recipe, calib=(values, valid, labels))
    return model


def test_tiny_model_learns_and_probabilities_sum_to_one(tiny_model: crop.CropModel) -> None:
    x, y = synthetic(seed=1)
    proba = tiny_model.predict_proba(x)
    assert proba.shape == (len(x), 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    assert (proba >= 0).all()
    truth = [crop.UCR_CROP_CLASSES[i - 1] for i in y]
    assert np.mean(np.array(tiny_model.predict(x)) == np.array(truth)) > 0.9
    assert tiny_model.temperature > 0


def test_masked_slot_value_does_not_change_output(tiny_model: crop.CropModel) -> None:
    x, _ = synthetic(n_per=5, seed=2)
    mask = np.ones_like(x, dtype=bool)
    mask[:, ::3] = False
    mask[:, 40:] = False
    other = x.copy()
    other[~mask] = np.random.default_rng(3).uniform(-5, 5, size=(~mask).sum())
    other[0, 0] = np.nan  # a cloudy NaN behind the mask is fine
    np.testing.assert_allclose(tiny_model.predict_proba(x, mask=mask), tiny_model.predict_proba(other, mask=mask), atol=1e-6)


def test_sparse_dates_land_on_nearest_grid_slot() -> None:
    x = np.array([[0.1, 0.5, 0.9]], dtype=np.float32)
    values, valid = crop.to_grid(x, doy=np.array([100, 150, 153]))
    assert valid.sum() == 2  # 150 and 153 share the slot of doy 153 (index 19)
    assert valid[0, 12] and valid[0, 19]
    assert values[0, 19, 0] == pytest.approx(0.7)  # averaged
    feats = crop.features(torch.from_numpy(values), torch.from_numpy(valid))
    assert feats.shape == (1, 2, crop.N_SLOTS)
    assert feats[0, 0, 15].item() == pytest.approx(0.1 + 0.6 * 3 / 7, abs=1e-5)  # linear in time
    assert feats[0, 0, 0].item() == pytest.approx(0.1) and feats[0, 0, 45].item() == pytest.approx(0.7)


def test_grid_and_cropland_constants() -> None:
    assert crop.GRID_DOY.shape == (46,) and crop.GRID_DOY[0] == 1 and crop.GRID_DOY[1] == 9
    assert "corn" in crop.CROPLAND and "dense building" not in crop.CROPLAND and "lake" not in crop.CROPLAND
    assert crop.CROPLAND <= set(crop.UCR_CROP_CLASSES)


def test_bad_inputs_are_input_errors(tiny_model: crop.CropModel) -> None:
    x, _ = synthetic(n_per=2)
    with pytest.raises(InputError, match="46 dates"):
        tiny_model.predict_proba(x[:, :30])
    nan = x.copy()
    nan[0, 3] = np.nan
    with pytest.raises(InputError, match="NaN"):
        tiny_model.predict_proba(nan)
    with pytest.raises(InputError, match="bands"):
        tiny_model.predict_proba(np.stack([x, x], axis=2))
    with pytest.raises(InputError, match="0 rows"):
        tiny_model.predict_proba(np.zeros((0, 46), dtype=np.float32))
    with pytest.raises(InputError, match="no valid date"):
        tiny_model.predict_proba(x, mask=np.zeros_like(x, dtype=bool))
    with pytest.raises(InputError, match="doy"):
        tiny_model.predict_proba(x[:, :5], doy=np.arange(6))


def test_ucr_and_npz_formats_read_the_same(tmp_path: Path) -> None:
    x, y = synthetic(n_per=3)
    np.save(tmp_path / "d.npy", np.column_stack([y, x]).astype(np.float32))
    np.savetxt(tmp_path / "d.tsv", np.column_stack([y, x]), delimiter="\t")
    names = np.array([crop.UCR_CROP_CLASSES[i - 1] for i in y])
    np.savez(tmp_path / "d.npz", X=x[:, :, None], labels=names, bands=np.array(["ndvi"]))
    a, b, c = (read_series(tmp_path / f) for f in ("d.npy", "d.tsv", "d.npz"))
    for d in (a, b, c):
        assert d.x.shape == (9, 46, 1) and list(d.labels) == list(names)
        np.testing.assert_allclose(d.x, a.x, atol=1e-6)
    unlabelled = tmp_path / "u.npy"
    np.save(unlabelled, x)
    assert read_series(unlabelled).labels is None


def test_npz_dates_mask_and_red_nir(tmp_path: Path) -> None:
    red = np.full((2, 3), 0.1, dtype=np.float32)
    nir = np.full((2, 3), 0.5, dtype=np.float32)
    dates = np.array(["2024-04-10", "2024-06-01", ""])
    np.savez(tmp_path / "s2.npz", X=np.stack([red, nir], axis=2), bands=np.array(["red", "nir"]), dates=dates)
    d = read_series(tmp_path / "s2.npz")
    assert d.doy is not None and d.doy[0, 0] == 101 and not d.mask[0, 2]
    ndvi = select_bands(d, ["ndvi"])
    np.testing.assert_allclose(ndvi[:, :2, 0], 0.4 / 0.6, rtol=1e-5)
    values, valid = crop.to_grid(ndvi, d.doy, d.mask)
    assert valid.sum(axis=1).tolist() == [2, 2]


@pytest.mark.parametrize(
    ("content", "match"),
    [(b"", "empty"), (None, "no array 'X'"), ("nan", "NaN")],
)
def test_bad_files(tmp_path: Path, content: object, match: str) -> None:
    path = tmp_path / ("bad.npz" if content is None else "bad.npy")
    if content is None:
        np.savez(path, Y=np.zeros(3))
    elif content == "nan":
        arr = np.ones((3, 47), dtype=np.float32)
        arr[1, 5] = np.nan
        np.save(path, arr)
    else:
        path.write_bytes(content)  # type: ignore[arg-type]
    with pytest.raises(InputError, match=match):
        read_series(path)


def test_checkpoint_round_trip_and_wrong_arch(tiny_model: crop.CropModel, tmp_path: Path) -> None:
    path = crop.save(tiny_model, tmp_path / "tiny.pt")
    back = crop.load(path)
    x, _ = synthetic(n_per=4, seed=5)
    np.testing.assert_allclose(back.predict_proba(x), tiny_model.predict_proba(x), atol=1e-6)
    assert back.classes == tiny_model.classes and back.temperature == tiny_model.temperature
    torch.save({"arch": "segment_unet", "version": "x", "config": {}, "state_dict": {}}, tmp_path / "seg.pt")
    with pytest.raises(ModelError, match="segment_unet"):
        crop.load(tmp_path / "seg.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError):
        crop.load(tmp_path / "junk.pt")


def test_cli_train_predict_evaluate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    x, y = synthetic(n_per=30)
    data = tmp_path / "train.npy"
    np.save(data, np.column_stack([y, x]).astype(np.float32))
    out = tmp_path / "m.pt"
    args = ["crop", "train", str(data), "--out", str(out), "--epochs", "2", "--teachers", "1", "--seed", "3",
            "--trees", "20", "--distil-copies", "2", "--full-teachers", "1", "--full-trees", "10"]
    assert main(args) == 0
    first = crop.load(out).predict_proba(x)
    assert main(args) == 0  # same seed, same model
    np.testing.assert_allclose(crop.load(out).predict_proba(x), first, atol=1e-6)

    preds = tmp_path / "p.csv"
    assert main(["crop", "predict", str(data), "--model", str(out), "--out", str(preds)]) == 0
    rows = list(csv.DictReader(open(preds)))
    assert len(rows) == len(x) and rows[0]["index"] == "0"
    assert {r["label"] for r in rows} <= {"corn", "wheat", "water"}
    assert all(0 < float(r["probability"]) <= 1 for r in rows)

    plot = tmp_path / "conf.png"
    assert main(["crop", "evaluate", str(data), "--model", str(out), "--plot", str(plot), "--sparse"]) == 0
    assert plot.stat().st_size > 1000 and "macro F1" in capsys.readouterr().out


def test_cli_errors_are_one_line(tmp_path: Path, tiny_model: crop.CropModel, capsys: pytest.CaptureFixture[str]) -> None:
    model = crop.save(tiny_model, tmp_path / "tiny.pt")
    x, _ = synthetic(n_per=2)
    bad = tmp_path / "bad.npz"
    np.savez(bad, X=x[:, :, None], labels=np.array(["corn"] * 3 + ["unicorn"] * 3))
    assert main(["crop", "predict", str(bad), "--model", str(model), "--out", str(tmp_path / "o.csv")]) == 2
    assert "unicorn" in capsys.readouterr().err
    empty = tmp_path / "e.tsv"
    empty.write_text("")
    assert main(["crop", "predict", str(empty), "--model", str(model), "--out", str(tmp_path / "o.csv")]) == 2
    assert "empty" in capsys.readouterr().err
    assert main(["crop", "predict", str(bad), "--model", str(tmp_path / "none.pt"), "--out", str(tmp_path / "o.csv")]) == 2
    assert "not found" in capsys.readouterr().err


def test_committed_model_scores_on_shared_validation() -> None:
    """Smoke check of the shipped file: it loads and scores. The production weights were retrained
    on TRAIN+VALIDATION, so this is not a generalisation figure (see models/crop_card.md)."""
    root = shared_data()
    if root is None:
        pytest.skip("shared data crop-series/ not found beside the repo or at /work/shared/data")
    path = REPO / "models" / "crop.pt"
    if not path.is_file():
        pytest.skip("models/crop.pt not committed yet")
    model = crop.load(path)
    data = read_series(root / "crop-series" / "Crop_VALIDATION.npy")
    rows = np.random.default_rng(0).choice(len(data), 600, replace=False)
    proba = model.predict_proba(data.x[rows, :, 0])
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    acc = np.mean(np.array(model.classes)[proba.argmax(axis=1)] == data.labels[rows])
    assert acc > 0.75, acc


def test_sparse_rows_use_their_own_temperature(tiny_model: crop.CropModel) -> None:
    x, _ = synthetic(n_per=2, seed=6)
    mask = np.zeros_like(x, dtype=bool)
    mask[:, 12:30:3] = True  # 6 dates
    model = crop.CropModel(tiny_model.classes, "t", tiny_model.net, temperature=1.0, temperature_sparse=3.0)
    z_full, z_sparse = model.logits(x), model.logits(x, mask=mask)
    np.testing.assert_allclose(model.predict_proba(x), crop.softmax(z_full / 1.0), atol=1e-6)
    np.testing.assert_allclose(model.predict_proba(x, mask=mask), crop.softmax(z_sparse / 3.0), atol=1e-6)
    assert model.temperatures(np.array([26]))[0] == pytest.approx(2.0)  # halfway between 12 and 40 slots


def test_cli_predict_sparse_npz_with_dates(tmp_path: Path, tiny_model: crop.CropModel) -> None:
    """Sentinel-2-like input: 7 dates with ISO strings, one cloudy (NaN + mask False)."""
    model = crop.save(tiny_model, tmp_path / "tiny.pt")
    x, _ = synthetic(n_per=4, seed=8)
    cols = [11, 14, 17, 20, 23, 26, 29]
    dates = np.array([str(np.datetime64("2024-01-01") + int(crop.GRID_DOY[c]) - 1) for c in cols])
    sparse = x[:, cols].copy()
    mask = np.ones_like(sparse, dtype=bool)
    sparse[:, 2], mask[:, 2] = np.nan, False
    data = tmp_path / "s2.npz"
    np.savez(data, X=sparse[:, :, None], dates=dates, mask=mask, bands=np.array(["ndvi"]))
    out = tmp_path / "p.csv"
    assert main(["crop", "predict", str(data), "--model", str(model), "--out", str(out)]) == 0
    rows = list(csv.DictReader(open(out)))
    expected = tiny_model.predict_proba(sparse, doy=crop.GRID_DOY[cols], mask=mask)
    assert [r["label"] for r in rows] == [tiny_model.classes[i] for i in expected.argmax(axis=1)]
    np.testing.assert_allclose([float(r["probability"]) for r in rows], expected.max(axis=1), atol=1e-5)


def test_full_season_experts_weight_and_inputs() -> None:
    """The experts teach complete inputs, fade out by `full_from`, and see values + differences."""
    values = torch.rand(4, crop.N_SLOTS, 1)
    valid = torch.ones(4, crop.N_SLOTS, dtype=torch.bool)
    valid[1, :5] = False  # 41/46 valid
    valid[2, :12] = False  # 34/46 = 0.74 < 0.78: no share for the experts
    valid[3, :30] = False
    w = ct.full_share(crop.features(values, valid), full_from=0.78)
    assert w[0] == 1.0 and 0.0 < w[1] < 1.0 and w[2] == 0.0 and w[3] == 0.0
    feats = ct.full_tree_features(crop.features(values, valid))
    assert feats.shape == (4, 3 * crop.N_SLOTS - 3)
    np.testing.assert_allclose(feats[0, crop.N_SLOTS : crop.N_SLOTS + 3], np.diff(values[0, :4, 0].numpy()), atol=1e-6)


def test_full_season_experts_give_probabilities_or_nothing() -> None:
    x, y = synthetic()
    values, valid = crop.to_grid(x)
    recipe = ct.Recipe(full_teachers=1, full_epochs=2, full_trees=10, batch=32,
                       teacher={"kind": "tempcnn", "width": 8, "hidden": 16, "dropout": 0.1})  # fmt: skip
    y = np.unique(y, return_inverse=True)[1]
    experts = ct.train_full_experts(values, valid, y, 3, recipe, seed=0)
    p = experts.proba(crop.features(torch.from_numpy(values), torch.from_numpy(valid)))
    assert p.shape == (len(x), 3)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-5)
    assert np.mean(p.argmax(axis=1) == y) > 0.9
    assert ct.train_full_experts(values, valid, y, 3, ct.Recipe(full_teachers=0, full_trees=0), seed=0) is None


def test_conv_student_shape() -> None:
    net = crop.build_member(dict(ct.DEFAULT_STUDENT), 2, 24).eval()
    assert net(torch.rand(5, 2, crop.N_SLOTS)).shape == (5, 24)


@pytest.mark.parametrize("spec", [dict(ct.DEFAULT_STUDENT), dict(ct.DEFAULT_TEACHER)])
def test_served_network_has_batchnorm_folded_with_same_outputs(spec: dict) -> None:
    """Inference runs a BatchNorm-free copy; its logits must equal the trained network's."""
    torch.manual_seed(0)
    net = crop.CropNet([crop.build_member(spec, 2, 24)])
    with torch.no_grad():  # non-trivial running statistics, as after training
        for bn in (m for m in net.modules() if isinstance(m, torch.nn.BatchNorm1d)):
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2.0)
            bn.weight.uniform_(0.5, 1.5)
    model = crop.CropModel(list(crop.UCR_CROP_CLASSES), "t", net, config={"members": [spec]})
    assert not any(isinstance(m, torch.nn.BatchNorm1d) for m in model._infer.modules())
    x, _ = synthetic(n_per=5)
    with torch.inference_mode():
        v, m = (torch.from_numpy(a) for a in crop.to_grid(x))
        expected = net.eval()(crop.features(v, m)).numpy()
    np.testing.assert_allclose(model.logits(x), expected, rtol=1e-4, atol=1e-4)


def test_class_names_put_ucr_classes_in_ucr_order_and_others_after_by_name() -> None:
    labels = np.array(["zeta", "wheat", "alpha", "corn", "wheat", "7"])
    assert ct.class_names(labels) == ["corn", "wheat", "7", "alpha", "zeta"]


def test_stratified_split_and_folds_keep_every_class_balanced() -> None:
    labels = np.repeat(np.array(["corn", "wheat", "water", "lake"]), [50, 23, 7, 2])
    train, hold = ct.stratified_split(labels, 0.2, seed=0)
    assert len(np.intersect1d(train, hold)) == 0 and len(train) + len(hold) == len(labels)
    assert [int(np.sum(labels[hold] == c)) for c in ("corn", "wheat", "water")] == [10, 5, 1]
    fold = ct.stratified_folds(labels, 5, seed=3)
    assert fold.shape == labels.shape and set(fold.tolist()) == set(range(5))
    for c in np.unique(labels):
        counts = np.bincount(fold[labels == c], minlength=5)
        assert counts.max() - counts.min() <= 1, (c, counts)
    sizes = np.bincount(fold)
    assert sizes.max() - sizes.min() <= 1  # small classes are rotated, not all dealt into fold 0
    np.testing.assert_array_equal(fold, ct.stratified_folds(labels, 5, seed=3))
    assert not np.array_equal(fold, ct.stratified_folds(labels, 5, seed=4))
    with pytest.raises(InputError, match="at least 2 folds"):
        ct.stratified_folds(labels, 1, seed=0)
