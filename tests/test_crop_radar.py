"""Sentinel-1 VV / VH as an optional input group of the crop model (issue #11: every band the data has)."""

from __future__ import annotations

import numpy as np
import pytest

from assets.errors import InputError
from assets.models import crop
from assets.models import crop_train as ct
from assets.models.crop_data import LabelledSeasons, read_seasons
from assets.models.seasons import RADAR_BANDS, channels, make_season, with_radar

DATES = ["2023-03-01", "2023-04-01", "2023-05-01", "2023-06-01", "2023-07-01", "2023-08-01"]
BANDS = ["B02", "B03", "B04", "B08"]


def _season(n: int = 4):
    rng = np.random.default_rng(0)
    return make_season(rng.uniform(0.02, 0.4, (n, len(DATES), 4)), BANDS, np.array(DATES))


def test_radar_gaps_are_bridged_in_time_and_rows_without_radar_are_absent():
    season = _season(3)
    db = np.full((3, len(DATES), 2), np.nan)
    db[0, :, 0] = db[0, :, 1] = [-10, np.nan, -14, -16, np.nan, -20]  # gaps bridged from this row's own dates
    db[1] = -12.0
    out = with_radar(season, db)  # row 2 has no radar at all
    assert out.radar is not None
    assert out.radar[0, 1, 0] == pytest.approx(-12.0, abs=0.1) and out.radar[0, 4, 1] == pytest.approx(-18.0, abs=0.1)  # by day
    values, present = channels(out, ["B02", "ndvi", "VV", "VH"], ["VV", "VH"])
    assert present[:, 2:].tolist() == [[True, True], [True, True], [False, False]]
    assert np.isfinite(values).all()  # absent radar is zero and flagged, never NaN
    assert out.rows(np.array([True, False, True])).radar.shape == (2, len(DATES), 2)


def test_radar_must_be_db():
    with pytest.raises(InputError, match="convert it to dB"):
        with_radar(_season(2), np.full((2, len(DATES), 2), 0.05) * 1000)
    with pytest.raises(InputError, match=r"\(n, dates, 2\)"):
        with_radar(_season(2), np.zeros((2, len(DATES), 3)))


def test_worldcereal_radar_encoding_is_read_as_db(tmp_path):
    n = 3
    rng = np.random.default_rng(1)
    s1_db = rng.uniform(-25, -5, (n, len(DATES), 2))
    path = tmp_path / "s.npz"
    np.savez(path, X=rng.uniform(0.02, 0.4, (n, len(DATES), 4)).astype(np.float32), bands=np.array(BANDS),
             dates=np.array(DATES), X_s1=(10 ** ((s1_db + 83) / 20)).astype(np.float32), bands_s1=np.array(["VV", "VH"]),
             labels=np.array(["maize", "wheat", "maize"]))  # fmt: skip
    data = read_seasons(path)
    assert data.season.radar is not None
    np.testing.assert_allclose(data.season.radar, s1_db, atol=1e-3)


def test_model_with_radar_group_trains_round_trips_and_serves_optical_only(tmp_path):
    rng = np.random.default_rng(2)
    n = 40
    x = rng.uniform(0.02, 0.4, (n, len(DATES), 4))
    labels = np.array(["maize", "wheat"] * (n // 2))
    db = np.where(labels[:, None, None] == "maize", -8.0, -18.0) + rng.normal(0, 0.5, (n, len(DATES), 2))
    season = with_radar(make_season(x, BANDS, np.array(DATES)), db)
    data = LabelledSeasons(season, labels, labels, np.arange(n).astype(str), "radar.npz")
    wanted = [*BANDS, "ndvi", *RADAR_BANDS]
    ts = ct.prepare([data], wanted, 1, optional=list(RADAR_BANDS))
    assert ct.optional_flags(ts) == [0, 0, 0, 0, 0, 2, 2]
    model = ct.train_model(ts, ct.Recipe(epochs=30, p_drop_optional=0.3, min_steps=0), version="t", temperature=1.0, meta={})
    assert model.net.n_optional == 1
    path = crop.save(model, tmp_path / "m.pt")
    loaded = crop.load(path)
    np.testing.assert_allclose(loaded.logits(season), model.logits(season), atol=1e-4)
    # radar separates the two crops here, so with it the model is right on the training rows ...
    assert (np.array(loaded.predict(season)) == labels).mean() >= 0.9
    # ... and an optical-only season (a platform tile) is still classified, the radar group flagged absent
    optical = make_season(x, BANDS, np.array(DATES))
    proba = loaded.predict_proba(optical)
    assert proba.shape == (n, len(loaded.classes)) and np.allclose(proba.sum(axis=1), 1)
    assert not np.allclose(proba, loaded.predict_proba(season))
