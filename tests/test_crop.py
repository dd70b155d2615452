"""Crop model on Sentinel-2 seasons: legend, season checks, masks, two-year seasons, bad input, CLI."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from assets.errors import InputError, ModelError
from assets.models import crop, legend
from assets.models import crop_train as ct
from assets.models.crop_data import LabelledSeasons, read_seasons
from assets.models.seasons import GRID_START_DAY, N_SLOTS, SLOT_DAYS, canonical_band, make_season, season_days, to_slots
from tests.conftest import run_cli

BANDS = ["B02", "B03", "B04", "B08"]


def synthetic(n: int, seed: int = 0, dates: int = 24) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two crops with different green-up dates: 'maize' peaks in summer, 'wheat' in spring.

    Returns reflectance (n, dates, 4), ISO dates spanning Oct .. Sep (a two-year season), labels.
    """
    rng = np.random.default_rng(seed)
    start = np.datetime64("2022-10-05")
    iso = np.array([str(start + np.timedelta64(15 * i, "D")) for i in range(dates)])
    days = season_days(iso)[0]
    labels = np.where(np.arange(n) % 2 == 0, "maize", "winter_common_soft_wheat")
    peak = np.where(labels == "maize", 200.0, 110.0)[:, None] + rng.normal(0, 8, (n, 1))
    ndvi = 0.15 + 0.7 * np.exp(-(((days[None, :] - peak) / 35.0) ** 2))
    red = 0.12 - 0.09 * ndvi
    nir = red * (1 + ndvi) / (1 - ndvi)
    x = np.stack([red * 0.8, red * 1.1, red, nir], axis=2).astype(np.float32)
    x += rng.normal(0, 0.004, x.shape).astype(np.float32)
    cloud = rng.random((n, dates)) < 0.3
    x[cloud] = np.nan
    return x, iso, labels


def write_npz(path: Path, n: int = 120, seed: int = 0, **extra: object) -> Path:
    x, iso, labels = synthetic(n, seed)
    arrays = {"spatial_block": np.array([f"{i % 10}.0_1.0" for i in range(n)]), **extra}
    np.savez(path, X=x, bands=np.array(BANDS), dates=iso, labels=labels,
             **{k: v for k, v in arrays.items() if v is not None})
    return path


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> crop.CropModel:
    path = write_npz(tmp_path_factory.mktemp("crop") / "train.npz", n=160)
    data = read_seasons(path)
    ts = ct.prepare([data], ct.DEFAULT_CHANNELS, min_count=1)
    return ct.train_model(ts, ct.Recipe(epochs=25, width=8, hidden=16, min_steps=0), version="tiny")


# --------------------------------------------------------------------------- legend
@pytest.mark.parametrize("label, expected", [
    ("maize", "maize"), ("grain_maize_corn_popcorn", "maize"), ("winter_common_soft_wheat", "wheat"),
    ("longterm_meadows", "grasslands"), ("temporary_meadows", "grasslands"), ("unspecified_sorghum", "sorghum"),
    ("Vårbyg", "spring_barley"), ("Silomajs", "maize"), ("Græs med kløver/lucerne", "grasslands"),
    ("Rajgræs, hybrid", "grass_fodder_crops"), ("Permanent græs, lavt udb", "grasslands"),
    ("Juletræer og pyntegrønt", "other_permanent_crops"), ("corn", "maize"), ("temporary meadow", "grasslands"),
    ("silage maize", "maize"), ("hardwood", "trees_broadleaved"), ("玉米", "maize"), ("水稻", "rice"),
    ("Winter Wheat", "wheat"), ("ＭＡＩＺＥ", "maize"),
    # the Kenyan survey's own crop names (ML review 2026-12-07: 29 of its 319 fields were unknown)
    ("Bean", "dry_pulses_legumes"), ("Fallowland", "not_cultivated_fallow"), ("Sugarcane", "grass_fodder_crops"),
    ("Sweetpotato", "potatoes"), ("Banana", "fruits"),
])  # fmt: skip
def test_legend_maps_every_source(label: str, expected: str) -> None:
    assert legend.to_crop(label) == expected


def test_legend_hierarchy_grass_is_farmland_forest_is_not() -> None:
    assert legend.crop("grasslands").land == "grassland" and legend.is_farmland("grass_fodder_crops")
    assert legend.crop("maize").group == "cereals" and legend.is_farmland("not_cultivated_fallow")
    for name in ("trees_unspecified", "open_water", "built_up", "shrubland", legend.UNKNOWN):
        assert not legend.is_farmland(name)
    assert legend.generic("oats") == "cereals" and legend.generic("camelina" if False else "sunflower") == "other_oilseeds"
    assert set(legend.UCR.values()) <= set(legend.CROPS)


def test_labels_outside_the_legend_are_named() -> None:
    with pytest.raises(InputError, match="'moon cheese'"):
        legend.to_crops(["maize", "moon cheese"])


def test_valuation_parameters_key_on_the_legend() -> None:
    from assets.valuation import load_params

    params = load_params()
    assert set(params.crops) <= set(legend.CROPS)
    assert {"maize", "wheat", "grasslands", "sorghum", "grass_fodder_crops"} <= set(params.crops)


# --------------------------------------------------------------------------- seasons
@pytest.mark.parametrize("name, expected", [("B4", "B04"), ("b04", "B04"), ("red", "B04"), ("nir", "B08"),
                                            ("B8A", "B8A"), ("swir_1", "B11"), ("NDVI", "ndvi")])
def test_band_names_are_canonical(name: str, expected: str) -> None:
    assert canonical_band(name) == expected


def test_unknown_or_duplicate_bands_are_errors() -> None:
    x = np.full((2, 3, 2), 0.1, np.float32)
    with pytest.raises(InputError, match="not a Sentinel-2 band"):
        make_season(x, ["B04", "thermal"], days=[0, 10, 20])
    with pytest.raises(InputError, match="twice"):
        make_season(x, ["B4", "red"], days=[0, 10, 20])


def test_two_year_season_days_are_relative_to_the_harvest_year() -> None:
    days, year = season_days(np.array(["2022-10-01", "2023-03-01", "2023-07-01"]))
    assert year == 2023 and days[0] < 0 < days[1] < days[2]
    assert days[0] == -92 and GRID_START_DAY <= days[0]


def test_empty_months_padded_after_a_season_do_not_move_it() -> None:
    """QA 2026-12-07: 12 clear months then 24 empty ones moved the season a year on, and every clear
    date was pressed into the grid's first slot: accuracy 0.89 -> 0.00, no word said."""
    months = np.array([f"{2017 + m // 12}-{m % 12 + 1:02d}-15" for m in range(36)])
    x = np.full((2, 36, 4), np.nan, np.float32)
    x[:, :12] = 0.1
    padded = make_season(x, BANDS, months)
    alone = make_season(x[:, :12], BANDS, months[:12])
    assert padded.season_year == alone.season_year == 2017
    assert np.array_equal(padded.days[:, :12], alone.days) and padded.mask[:, :12].all()
    assert padded.scale_note is None  # nothing clear was left out


def test_clear_dates_outside_the_season_window_are_left_out_and_said() -> None:
    dates = np.array(["2015-06-01", "2016-03-01", "2017-03-01", "2017-06-01", "2017-09-01"])
    s = make_season(np.full((1, 5, 4), 0.1, np.float32), BANDS, dates)
    assert s.season_year == 2017 and s.mask.tolist() == [[False, False, True, True, True]]
    assert "2 clear observation(s) outside the season window were left out" in (s.scale_note or "")


def test_scaled_reflectance_is_divided_and_said_so() -> None:
    x = np.full((1, 3, 4), 1500.0, np.float32)
    x[:, :, 0] = 400.0  # real land has a dark band (blue): otherwise it reads as the +1,000 offset of 2022 on
    s = make_season(x, BANDS, days=[0, 10, 20])
    assert np.allclose(s.x[:, :, 1:], 0.15) and np.allclose(s.x[:, :, 0], 0.04) and "10,000" in (s.scale_note or "")


def test_the_l2a_offset_of_baseline_04_is_subtracted_and_said() -> None:
    """QA 2026-12-07: data of 2022 on (x 10,000 + 1,000) was only divided: accuracy 0.89 -> 0.01."""
    x, iso, _ = synthetic(30, seed=2)
    plain = make_season(x * 10000, BANDS, iso)
    offset = make_season(x * 10000 + 1000, BANDS, iso)
    assert np.allclose(plain.x, x, atol=1e-5, equal_nan=True) and "divided by 10,000" in (plain.scale_note or "")
    assert np.allclose(offset.x, x, atol=1e-5, equal_nan=True) and "1,000 was subtracted" in (offset.scale_note or "")


@pytest.mark.parametrize("base, values, match", [(1500.0, 65535.0, "saturated or raw"), (0.1, -0.5, "below"),
                                                  (12.0, 12.0, "percent")])
def test_impossible_reflectance_is_an_error(base: float, values: float, match: str) -> None:
    x = np.full((1, 3, 4), base, np.float32)
    x[0, 1, 2] = values
    with pytest.raises(InputError, match=match):
        make_season(x, BANDS, days=[0, 10, 20])


def test_a_few_bad_pixels_never_rescale_a_file() -> None:
    """Flanders (real, 0-1) holds 50 values of 2.5-6.2 in 10 rows: those observations are masked
    and said so; the file stays 0-1 (it used to be divided by 10,000 as a whole)."""
    x = np.full((20, 3, 4), 0.15, np.float32)
    x[:3, 1, 2] = 5.0  # impossible for 0-1 reflectance
    s = make_season(x, BANDS, days=[0, 10, 20])
    assert np.allclose(s.x[~np.isnan(s.x)], 0.15) and not s.mask[:3, 1].any() and s.mask[3:].all()
    assert "3 observation(s) with reflectance above 2" in (s.scale_note or "") and "10,000" not in s.scale_note


def test_all_zero_observations_are_nodata() -> None:
    """uint16 files often store nodata as 0: an observation with every band 0 is not clear sky."""
    x = np.full((2, 3, 4), 1500, np.uint16)
    x[:, :, 0] = 400  # a dark blue band, as on real land
    x[0, :, :] = 0  # a row never observed
    x[1, 2, :] = 0
    s = make_season(x, BANDS, days=[0, 10, 20])
    assert not s.mask[0].any() and s.mask[1].tolist() == [True, True, False]
    assert "4 observation(s) with every band 0 were read as nodata" in (s.scale_note or "")
    assert "10,000" in s.scale_note and np.allclose(s.x[1, :2, 1:], 0.15)


def test_unordered_dates_and_no_clear_date_are_errors() -> None:
    x = np.full((1, 3, 4), 0.1, np.float32)
    with pytest.raises(InputError, match="out of order"):
        make_season(x, BANDS, np.array(["2023-05-01", "2023-04-01", "2023-06-01"]))
    with pytest.raises(InputError, match="no series has a single clear date"):
        make_season(np.full((1, 3, 4), np.nan, np.float32), BANDS, days=[0, 10, 20])


def test_nan_is_a_mask_never_a_value() -> None:
    x = np.full((1, 4, 4), 0.1, np.float32)
    x[0, 2, 1] = np.nan  # one band missing: the whole date is not observed
    s = make_season(x, BANDS, days=[0, 10, 20, 30])
    assert s.mask.tolist() == [[True, True, False, True]]
    values, valid = to_slots(s.x, s.days, s.mask)
    assert valid.sum() == 3 and np.isfinite(values).all()
    slot0 = int(round((0 - GRID_START_DAY) / SLOT_DAYS))
    assert valid[0, slot0] and values.shape == (1, N_SLOTS, 4)


def test_masked_value_does_not_change_the_output(tiny_model: crop.CropModel) -> None:
    x, iso, _ = synthetic(6, seed=3)
    x = np.nan_to_num(x, nan=0.1)
    mask = np.ones(x.shape[:2], bool)
    mask[:, 5] = False
    a = tiny_model.predict_proba(make_season(x, BANDS, iso, mask=mask))
    x2 = x.copy()
    x2[:, 5] = 0.9  # garbage under the mask
    b = tiny_model.predict_proba(make_season(x2, BANDS, iso, mask=mask))
    assert np.allclose(a, b, atol=1e-6)


# --------------------------------------------------------------------------- model
def test_tiny_model_learns_and_probabilities_sum_to_one(tiny_model: crop.CropModel) -> None:
    x, iso, labels = synthetic(80, seed=7)
    season = make_season(x, BANDS, iso)
    proba = tiny_model.predict_proba(season)
    assert np.allclose(proba.sum(axis=1), 1, atol=1e-5)
    truth = legend.to_crops(list(labels))
    assert np.mean(np.array(tiny_model.predict(season)) == np.array(truth)) > 0.8


def test_low_confidence_is_unknown(tiny_model: crop.CropModel) -> None:
    from dataclasses import replace

    strict = replace(tiny_model, unknown_below=0.6)
    names = strict.labels(np.array([[0.55, 0.45], [0.9, 0.1]]))
    assert names == [legend.UNKNOWN, tiny_model.classes[0]]


def test_model_needs_its_bands(tiny_model: crop.CropModel) -> None:
    x = np.full((2, 3, 3), 0.1, np.float32)
    with pytest.raises(InputError, match=r"missing \['B08', 'ndvi'\]"):
        tiny_model.predict_proba(make_season(x, ["B02", "B03", "B04"], days=[0, 10, 20]))


def test_checkpoint_round_trip_and_wrong_arch(tiny_model: crop.CropModel, tmp_path: Path) -> None:
    import torch

    path = crop.save(tiny_model, tmp_path / "m.pt")
    again = crop.load(path)
    x, iso, _ = synthetic(5, seed=1)
    s = make_season(x, BANDS, iso)
    assert np.allclose(again.predict_proba(s), tiny_model.predict_proba(s), atol=1e-6)
    ckpt = torch.load(path, weights_only=False)
    ckpt["arch"] = "something_else"
    torch.save(ckpt, tmp_path / "bad.pt")
    with pytest.raises(ModelError, match="something_else"):
        crop.load(tmp_path / "bad.pt")


def test_folded_network_gives_the_same_logits(tiny_model: crop.CropModel) -> None:
    import torch

    x, iso, _ = synthetic(8, seed=2)
    values, valid, present = tiny_model.slots(make_season(x, BANDS, iso))
    with torch.inference_mode():
        plain = crop.logits_of(tiny_model.net, torch.from_numpy(values), torch.from_numpy(valid)).numpy()
    assert present.all() and np.allclose(plain, tiny_model.logits_slotted(values, valid), atol=1e-4)


def test_ltae_learns_masks_dates_and_round_trips(tmp_path: Path) -> None:
    """The temporal-attention option: learns the synthetic crops, ignores masked dates, reloads."""
    data = read_seasons(write_npz(tmp_path / "train.npz", n=160))
    ts = ct.prepare([data], ct.DEFAULT_CHANNELS, min_count=1)
    model = ct.train_model(ts, ct.Recipe(epochs=30, arch="ltae", d_model=16, heads=4, d_k=4, hidden=16, min_steps=0), version="lt")
    assert isinstance(model.net, crop.LTAE)
    x, iso, labels = synthetic(60, seed=7)
    season = make_season(x, BANDS, iso)
    assert np.mean(np.array(model.predict(season)) == np.array(legend.to_crops(list(labels)))) > 0.8
    x = np.nan_to_num(x, nan=0.1)
    mask = np.ones(x.shape[:2], bool)
    mask[:, 5] = False
    x2 = x.copy()
    x2[:, 5] = 0.9
    a, b = (model.predict_proba(make_season(v, BANDS, iso, mask=mask)) for v in (x, x2))
    assert np.allclose(a, b, atol=1e-6)
    again = crop.load(crop.save(model, tmp_path / "lt.pt"))
    assert isinstance(again.net, crop.LTAE) and np.allclose(again.predict_proba(season), model.predict_proba(season), atol=1e-6)


def test_phenology_features_find_the_peak_day(tmp_path: Path) -> None:
    data = read_seasons(write_npz(tmp_path / "train.npz", n=40))
    ts = ct.prepare([data], ct.DEFAULT_CHANNELS, min_count=1)
    x = ct.phenology_features(ts.values, ts.valid, ts.channels)
    assert len(x) == 40 and not np.isinf(x).any()
    peak_day = x[:, 5 * len(ts.channels) + len(ts.channels) * (N_SLOTS // 3) + 1]  # after 5 stats and 30-day means
    maize = ts.labels == "maize"
    assert np.nanmedian(peak_day[maize]) - np.nanmedian(peak_day[~maize]) > 50  # synthetic peaks: day 200 vs 110


def test_block_folds_keep_blocks_whole() -> None:
    blocks = np.array([f"b{i % 13}" for i in range(200)])
    folds = ct.block_folds(blocks, 5, seed=1)
    for b in np.unique(blocks):
        assert len(set(folds[blocks == b].tolist())) == 1
    assert np.bincount(folds).min() >= 30
    with pytest.raises(InputError, match="spatial blocks"):
        ct.block_folds(blocks[:2], 5)


def test_rare_crops_fold_into_their_group() -> None:
    out = ct.fold_rare(np.array(["maize"] * 6 + ["oats", "sunflower"]), 5)
    assert out.tolist() == ["maize"] * 6 + ["cereals", "other_oilseeds"]


# --------------------------------------------------------------------------- files and CLI
def test_npz_reader_maps_labels_and_blocks(tmp_path: Path) -> None:
    data = read_seasons(write_npz(tmp_path / "a.npz", n=10))
    assert isinstance(data, LabelledSeasons) and set(data.labels) == {"maize", "wheat"}
    assert data.blocks is not None and data.season.season_year == 2023


@pytest.mark.parametrize("content, match", [
    ({"X": np.zeros((2, 3, 2), np.float32)}, "no 'bands' names"),
    ({"X": np.zeros((2, 3, 1), np.float32)}, "no 'dates'"),
    ({"X": np.full((2, 3, 1), 0.1, np.float32), "bands": np.array(["B04"]), "dates": np.array(["x", "y", "z"])},
     "not an ISO date"),
    ({"X": np.full((2, 2, 1), 0.1, np.float32), "bands": np.array(["B04"]), "dates": np.array(["2023-01-01", "2023-02-01"]),
      "labels": np.array(["maize", "moon cheese"])}, "not in the crop legend"),
])  # fmt: skip
def test_bad_files(tmp_path: Path, content: dict, match: str) -> None:
    path = tmp_path / "bad.npz"
    np.savez(path, **content)
    with pytest.raises(InputError, match=match):
        read_seasons(path)


def test_cli_train_predict_evaluate(tmp_path: Path) -> None:
    data = write_npz(tmp_path / "d.npz", n=100)
    out = tmp_path / "m.pt"
    r = run_cli("crop", "train", str(data), str(write_npz(tmp_path / "e.npz", n=40, seed=5)), "--out", str(out),
                "--epochs", "8", "--min-steps", "0", "--folds", "2", cwd=tmp_path)  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    assert "out-of-block" in r.stdout and "random forest" in r.stdout
    pred = tmp_path / "p.csv"
    r = run_cli("crop", "predict", str(data), "--model", str(out), "--out", str(pred), cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    rows = list(csv.DictReader(open(pred)))
    assert len(rows) == 100 and {row["label"] for row in rows} <= {"maize", "wheat", legend.UNKNOWN}
    assert all(r["top_crop"] in {"maize", "wheat"} for r in rows)
    assert all(r["label"] in (r["top_crop"], legend.UNKNOWN) for r in rows) and "named" in r.stdout
    r = run_cli("crop", "predict", str(data), "--model", str(out), "--out", str(pred), "--unknown-below", "0.99",
                cwd=tmp_path)
    cautious = list(csv.DictReader(open(pred)))
    assert [x["top_crop"] for x in cautious] == [x["top_crop"] for x in rows]
    assert all(x["label"] == (x["top_crop"] if float(x["probability"]) >= 0.99 else legend.UNKNOWN) for x in cautious)
    r = run_cli("crop", "predict", str(data), "--model", str(out), "--out", str(pred), "--unknown-below", "0",
                cwd=tmp_path)
    assert all(x["label"] == x["top_crop"] for x in csv.DictReader(open(pred)))
    r = run_cli("crop", "predict", str(data), "--model", str(out), "--out", str(pred), "--unknown-below", "45",
                cwd=tmp_path)
    assert r.returncode == 2 and "not a probability" in r.stderr
    r = run_cli("crop", "evaluate", str(data), "--model", str(out), "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads(r.stdout.strip().splitlines()[-1])["n"] == 100
    # rows labelled 'unknown' are not scored (code review 2026-12-08: they counted as always wrong)
    x, iso, labels = synthetic(100, 0)
    np.savez(tmp_path / "u.npz", X=x, bands=np.array(BANDS), dates=iso, spatial_block=np.array(["b"] * 100),
             labels=np.where(np.arange(100) < 30, "unknown", labels))
    r = run_cli("crop", "evaluate", str(tmp_path / "u.npz"), "--model", str(out), "--json", cwd=tmp_path)
    assert r.returncode == 0 and "30 row(s) labelled 'unknown' are not scored" in r.stdout, r.stderr[-2000:]
    assert json.loads(r.stdout.strip().splitlines()[-1])["n"] == 70


def test_cli_predict_names_missing_bands(tmp_path: Path, tiny_model: crop.CropModel) -> None:
    model = crop.save(tiny_model, tmp_path / "m.pt")
    x, iso, _ = synthetic(4)
    path = tmp_path / "rgb.npz"
    np.savez(path, X=x[:, :, :3], bands=np.array(["blue", "green", "red"]), dates=iso)
    r = run_cli("crop", "predict", str(path), "--model", str(model), "--out", str(tmp_path / "p.csv"), cwd=tmp_path)
    assert r.returncode == 2 and "missing ['B08', 'ndvi']" in r.stderr and "Traceback" not in r.stderr


def test_cli_predict_takes_unknown_labels_bytes_names_and_says_what_it_converted(
        tmp_path: Path, tiny_model: crop.CropModel, capsys) -> None:
    """Labels only sit beside predict's calls, so one outside the legend is kept as written; bands and
    dates saved as bytes are decoded; every conversion is printed; a folder as --out is refused."""
    from assets.cli import main

    model = crop.save(tiny_model, tmp_path / "m.pt")
    x, iso, labels = synthetic(6)
    labels = labels.copy()
    labels[0] = "moonbeans"
    path = tmp_path / "odd.npz"
    np.savez(path, X=x * 10000, bands=np.array([b.encode() for b in BANDS]), dates=np.array([d.encode() for d in iso]),
             labels=labels)
    out = tmp_path / "p.csv"
    assert main(["crop", "predict", str(path), "--model", str(model), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "divided by 10,000" in printed  # the conversion is said, not done silently
    rows = list(csv.DictReader(open(out)))
    assert rows[0]["true_label"] == "moonbeans" and len(rows) == 6
    assert main(["crop", "predict", str(path), "--model", str(model), "--out", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err
    blank = tmp_path / "blank.npz"
    x[0] = np.nan  # a row with no clear date: no probability at all, not 0
    np.savez(blank, X=x, bands=np.array(BANDS), dates=iso)
    assert main(["crop", "predict", str(blank), "--model", str(model), "--out", str(out)]) == 0
    first = next(csv.DictReader(open(out)))
    assert first["note"] == "no clear date" and first["probability"] == "" and first["farmland_probability"] == ""


def test_cli_crop_refuses_what_it_cannot_honestly_answer(tmp_path: Path, tiny_model: crop.CropModel, capsys) -> None:
    """QA 2026-12-07: a model whose every band was optional ran on a file with none of them; 2 clear
    dates were called without a word; an unwritable --out or --plot ended in a traceback."""
    from assets.cli import main
    from assets.models.seasons import channels

    data = write_npz(tmp_path / "d.npz", n=20)
    assert main(["crop", "train", str(data), "--bands", "B02,B03", "--optional", "B02,B03",
                 "--out", str(tmp_path / "m.pt")]) == 2
    assert "also --optional" in capsys.readouterr().err and not (tmp_path / "m.pt").exists()
    x, iso, _ = synthetic(3)
    with pytest.raises(InputError, match="missing"):  # nothing the model reads is in the data
        channels(make_season(x[:, :, :1], ["B02"], iso), ["B11", "B12"], optional=("B11", "B12"))
    model = crop.save(tiny_model, tmp_path / "m.pt")
    x[0, 2:] = np.nan  # row 0 keeps at most 2 clear dates
    x[0, :2] = 0.1
    sparse = tmp_path / "sparse.npz"
    np.savez(sparse, X=x, bands=np.array(BANDS), dates=iso)
    out = tmp_path / "p.csv"
    assert main(["crop", "predict", str(sparse), "--model", str(model), "--out", str(out)]) == 0
    assert "1 rows had fewer than 3 clear dates" in capsys.readouterr().out
    notes = [r["note"] for r in csv.DictReader(open(out))]
    assert notes[0] == "only 2 clear date(s): unreliable" and notes[1:] == ["", ""]
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert main(["crop", "predict", str(sparse), "--model", str(model), "--out", str(blocker / "p.csv")]) == 2
    assert "cannot write --out" in capsys.readouterr().err
    labelled = write_npz(tmp_path / "l.npz", n=12)
    assert main(["crop", "evaluate", str(labelled), "--model", str(model), "--plot", str(blocker / "c.png")]) == 2
    assert "cannot write --plot" in capsys.readouterr().err


def test_committed_model_on_real_sentinel2(shared_data: Path) -> None:
    """The production model reads every shared s2-crops file and names real crops (not a score:
    the card's held-out figures come from spatial-block cross-validation)."""
    model = crop.load()
    assert model.channels == ct.FULL_CHANNELS and model.optional == ct.DEFAULT_OPTIONAL
    data = read_seasons(shared_data / "s2-crops" / "fra2023_westfrance_dekad.npz")
    names = model.predict(data.season.rows(data.season.observed))
    assert set(names) <= set(model.classes) | {legend.UNKNOWN}
    assert {"maize", "wheat", "grasslands"} <= set(model.classes)


def test_optional_bands_are_used_when_present_and_done_without_otherwise(tmp_path: Path) -> None:
    """One model for 4-band tiles and full Sentinel-2: red edge / SWIR change the answer when
    present, and their absence is a flag, not an error (but a missing core band still is)."""
    x, iso, labels = synthetic(120, seed=4)
    extra = np.stack([x[:, :, 2] * 1.5, x[:, :, 3] * 0.6, x[:, :, 3] * 0.9, x[:, :, 2] * 2.0, x[:, :, 2] * 1.6], axis=2)
    full_bands = [*BANDS, "B05", "B06", "B07", "B11", "B12"]
    data = LabelledSeasons(make_season(np.concatenate([x, extra], axis=2), full_bands, iso),
                           np.array(legend.to_crops(list(labels))), None, np.arange(120).astype(str), "full.npz")
    ts = ct.prepare([data], ct.FULL_CHANNELS, 1, optional=ct.DEFAULT_OPTIONAL)
    assert ts.optional == ct.DEFAULT_OPTIONAL and ts.present.all()
    model = ct.train_model(ts, ct.Recipe(epochs=15, width=8, hidden=16, min_steps=0), version="opt")
    assert model.bands == ["B02", "B03", "B04", "B08"] and model.net.n_optional == 1 and int(model.net.optional.sum()) == 5
    four = model.predict_proba(make_season(x, BANDS, iso))
    nine = model.predict_proba(make_season(np.concatenate([x, extra], axis=2), full_bands, iso))
    assert four.shape == nine.shape and not np.allclose(four, nine, atol=1e-4)
    again = crop.load(crop.save(model, tmp_path / "opt.pt"))
    assert again.optional == model.optional and np.allclose(again.predict_proba(make_season(x, BANDS, iso)), four, atol=1e-6)
    with pytest.raises(InputError, match=r"missing \['B08'"):
        model.predict_proba(make_season(x[:, :, :3], BANDS[:3], iso))


def test_pipeline_reads_extended_bands_only_when_every_tile_has_them() -> None:
    from types import SimpleNamespace

    from assets.observe import season_bands

    core = SimpleNamespace(bands={"red": 1, "green": 2, "blue": 3, "nir": 4})
    full = SimpleNamespace(bands={**core.bands, "re1": 5, "re2": 6, "re3": 7, "swir1": 8, "swir2": 9})
    assert list(season_bands([full, full]).values()) == ["B02", "B03", "B04", "B08", "B05", "B06", "B07", "B11", "B12"]
    assert list(season_bands([full, core]).values()) == ["B02", "B03", "B04", "B08"]


def test_coverage_rows_accuracy_when_named():
    """Selective accuracy: fields under the threshold are `unknown` and leave the accuracy."""
    from assets.models.crop_report import coverage_rows

    top_p = np.array([0.95, 0.8, 0.5, 0.4, 0.2])
    correct = np.array([True, True, False, True, False])
    rows = {r["threshold"]: r for r in coverage_rows(top_p, correct, (0.0, 0.45, 0.9, 0.99))}
    assert rows[0.0] == {"threshold": 0.0, "coverage": 1.0, "accuracy": 0.6}
    assert rows[0.45] == {"threshold": 0.45, "coverage": 0.6, "accuracy": 0.667}
    assert rows[0.9] == {"threshold": 0.9, "coverage": 0.2, "accuracy": 1.0}
    assert rows[0.99] == {"threshold": 0.99, "coverage": 0.0, "accuracy": None}
    with pytest.raises(ValueError, match="differ in shape"):
        coverage_rows(top_p, correct[:3])


def test_small_training_sets_get_at_least_min_steps():
    """One file of ~200 fields is passed over several times an epoch; the pooled set is not."""
    r = ct.Recipe(epochs=200, batch=32, min_steps=4000)
    assert ct.schedule(197, r) == (3, 4200)  # 7 batches an epoch
    assert ct.schedule(1094, r) == (1, 7000)  # the production model's schedule is unchanged
    assert ct.schedule(10, ct.Recipe(epochs=3, batch=32, min_steps=0)) == (1, 3)


def test_train_net_takes_the_scheduled_steps(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    steps = []
    real_step = torch.optim.AdamW.step
    monkeypatch.setattr(torch.optim.AdamW, "step", lambda self, *a, **k: (steps.append(1), real_step(self, *a, **k))[1])
    ts = ct.prepare([read_seasons(write_npz(tmp_path / "t.npz", n=40))], ct.DEFAULT_CHANNELS, min_count=1)
    r = ct.Recipe(epochs=2, batch=16, width=4, hidden=8, min_steps=12)  # 3 batches an epoch, 2 passes
    ct.train_net(ts.values, ts.valid, ct.encode(ts.labels, sorted(set(ts.labels))), 2, r, seed=0)
    assert len(steps) == ct.schedule(len(ts.labels), r)[1] == 12


def test_one_place_in_two_files_is_one_block(tmp_path: Path) -> None:
    """QA 2026-12-08: block ids were prefixed by their file, so the same 0.1 degree cell in two files
    (two composites of one region, or one file given twice) landed in different folds: the forest's
    "out-of-block" accuracy rose from 0.68 to 0.95 on a file given twice."""
    a = read_seasons(write_npz(tmp_path / "a.npz", n=40))
    b = read_seasons(write_npz(tmp_path / "b.npz", n=40))
    ts = ct.prepare([a, b], ct.DEFAULT_CHANNELS, min_count=1)
    assert len(set(ts.blocks.tolist())) == 10 and all(blk.startswith("a.npz:") for blk in ts.blocks)
    folds = ct.block_folds(ts.blocks, 5)
    assert (folds[: len(a)] == folds[len(a):]).all()  # each field and its copy are in one fold


def test_splits_fall_back_to_places_from_lat_lon_and_say_when_they_are_only_fields(tmp_path: Path, capsys) -> None:
    """QA 2026-12-08: a file without spatial_block was split by field id and still called out-of-block."""
    from assets.cli import main as cli_main

    n = 40
    lat, lon = 47.0 + (np.arange(n) % 4) * 0.1 + 0.05, np.full(n, 0.55)
    cells = read_seasons(write_npz(tmp_path / "c.npz", n=n, spatial_block=None, lat=lat, lon=lon))
    assert cells.block_key == "lat/lon" and len(set(cells.blocks.tolist())) == 4 and cells.blocks_are_places
    assert sorted(set(cells.blocks.tolist())) == ["47.0_0.5", "47.1_0.5", "47.2_0.5", "47.3_0.5"]  # WorldCereal's names
    x, iso, labels = synthetic(n, 0)
    np.savez(tmp_path / "g.npz", X=x, bands=np.array(BANDS), dates=iso, labels=labels,
             groups=np.array([f"field-{i}" for i in range(n)]))
    fields = read_seasons(tmp_path / "g.npz")
    assert fields.block_key == "groups" and not fields.blocks_are_places
    model = tmp_path / "m.pt"
    assert cli_main(["crop", "train", str(tmp_path / "g.npz"), "--out", str(model), "--epochs", "1", "--folds", "2",
                     "--min-steps", "0", "--no-forest"]) == 0
    out = capsys.readouterr().out
    assert "field/row folds" in out and "optimistic, not out-of-block" in out and "out-of-block (" not in out
    assert cli_main(["crop", "evaluate", str(tmp_path / "g.npz"), "--model", str(model), "--split-by",
                     "spatial_block"]) == 2
    assert "no spatial_block, region or lat/lon" in capsys.readouterr().err


def test_an_ndvi_layer_is_checked_and_the_bands_win(tmp_path: Path) -> None:
    """QA 2026-12-08: an `ndvi` layer stored x 10,000 was used unchecked in place of the NDVI of B04/B08:
    every row a confident wrong crop (204 of 250 'trees' at probability 1.0), accuracy 0.004."""
    from assets.models.seasons import channels, make_season

    x, iso, _ = synthetic(20, 0)
    red, nir = x[:, :, BANDS.index("B04")], x[:, :, BANDS.index("B08")]
    ndvi = (nir - red) / (nir + red)
    with_layer = make_season(np.concatenate([x, (ndvi * 10_000)[:, :, None]], axis=2), [*BANDS, "ndvi"], iso)
    plain = make_season(x, list(BANDS), iso)
    got, _ = channels(with_layer, ["B04", "ndvi"])
    want, _ = channels(plain, ["B04", "ndvi"])
    assert np.allclose(got, want, equal_nan=True)  # NDVI from the bands, whatever the layer says
    only = make_season((ndvi * 10_000)[:, :, None], ["ndvi"], iso)  # no bands: the layer, scaled back
    assert "x 10,000 and was divided" in only.scale_note
    assert np.nanmax(np.abs(channels(only, ["ndvi"])[0])) <= 1.0
    with pytest.raises(InputError, match="layer 'ndvi' has values up to .*an index runs from -1 to 1"):
        make_season((ndvi * 5e6)[:, :, None], ["ndvi"], iso)


def test_rows_labelled_unknown_are_never_a_class(tmp_path: Path) -> None:
    """QA 2026-12-08: WorldCereal's `unknown` class was learnt, colliding with the model's own 'unknown'."""
    x, iso, labels = synthetic(40, 0)
    labels = np.where(np.arange(40) < 10, "unknown", labels)
    np.savez(tmp_path / "u.npz", X=x, bands=np.array(BANDS), dates=iso, labels=labels,
             spatial_block=np.array([f"{i % 5}.0_1.0" for i in range(40)]))
    ts = ct.prepare([read_seasons(tmp_path / "u.npz")], ct.DEFAULT_CHANNELS, min_count=1)
    assert "unknown" not in set(ts.labels.tolist()) and len(ts.labels) <= 30


def test_the_cli_reads_a_season_by_the_pipelines_rule() -> None:
    """QA 2026-12-08: the CLI took the year of a file's middle clear date, the pipeline the newest
    clear date less 60 days: a French season cut at the end of March (Sept .. March) was 2022 to the
    CLI and 2023 to the pipeline, and the two agreed on 45 % of calls."""
    from assets.models.seasons import season_year_of

    midseason = [f"2022-{m:02d}-10" for m in range(9, 13)] + [f"2023-{m:02d}-10" for m in range(1, 4)]
    assert season_days(np.array(midseason))[1] == 2023
    assert season_days(np.array(midseason[:4] + ["2023-01-20"]))[1] == 2022  # January: the season just harvested
    assert season_year_of([np.datetime64("2023-03-10").astype(object)]) == 2023


@pytest.mark.parametrize("year, says", [("abc", "season_year must be one harvest year"),
                                        (np.array([], dtype=int), "season_year must be one harvest year"),
                                        (1990, "no clear date falls in season 1990")])
def test_a_bad_season_year_is_a_clear_error(tmp_path: Path, year, says: str) -> None:
    """QA 2026-12-08: 'abc' and an empty season_year gave tracebacks; 1990 said the series were all cloud."""
    with pytest.raises(InputError, match=says):
        read_seasons(write_npz(tmp_path / "y.npz", n=10, season_year=year))


def test_a_stray_late_date_in_a_few_rows_does_not_move_the_files_season() -> None:
    """Code review 2026-12-08: with the newest clear date of the whole file deciding, one row's stray
    date two years on moved every row's season. The file's season is the median of its rows' own
    (each by the pipeline's rule), and the turn of the year is the setting's."""
    dates = np.array(["2016-10-01", "2017-01-01", "2017-04-01", "2017-07-01", "2019-06-01"])
    clear = np.ones((11, 5), bool)
    clear[:10, 4] = False  # only the last row saw the stray 2019 date
    assert season_days(dates, clear=clear)[1] == 2017
    january = np.array(["2022-10-01", "2023-01-20"])
    assert season_days(january)[1] == 2022 and season_days(january, turn_days=0)[1] == 2023
