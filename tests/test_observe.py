"""What the crop model is shown of a field (ML review 2026-12-07): the field's own season, whatever
else the catalogue or the night holds, and clouds left in the pixels masked like the training data."""

from __future__ import annotations

import json
import shutil
from datetime import date
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.warp import transform_bounds
from rasterio.windows import from_bounds

from assets.config import Settings
from assets.observe import ClaimObservation, _classify, season_year_of

REPO = Path(__file__).resolve().parents[1]


def test_a_fields_season_is_that_of_its_newest_clear_date() -> None:
    days = [date(2016, 3, 1), date(2016, 8, 1), date(2017, 2, 1), date(2017, 8, 1), date(2017, 9, 30)]
    clear = np.array([True, True, True, True, True])
    assert season_year_of(days, clear, 60) == 2017
    assert season_year_of(days[:3], clear[:3], 60) == 2016  # newest in February: the season just harvested
    assert season_year_of(days, np.array([True, True, False, False, False]), 60) == 2016  # cloudy 2017: not seen
    assert season_year_of(days[:2] + days[3:], np.ones(4, bool), 60) == 2017  # two seasons: the newer


class RecordingModel:
    """Records the season year and rows of each call; answers 'wheat' for everything."""

    classes = ("wheat", "maize")
    version = "recording"

    def __init__(self) -> None:
        self.calls: list[tuple[int | None, int]] = []

    def predict_proba(self, season) -> np.ndarray:
        self.calls.append((season.season_year, len(season)))
        return np.tile([0.9, 0.1], (len(season), 1))


def _series(cid: str, year: int) -> tuple[str, np.ndarray, np.ndarray, list[date]]:
    days = [date(year, m, 10) for m in (3, 5, 7, 9)]
    return cid, np.full((4, 4), 0.2, np.float32), np.ones(4, bool), days


def test_one_fields_season_does_not_depend_on_the_others_of_the_night() -> None:
    """A claim on a grid imaged a year later used to move every claim's season year (the middle clear
    date of the whole batch), turning a maize field at 0.97 into non-cropland."""
    model = RecordingModel()
    out = {c: ClaimObservation(claim_id=c, coverage_fraction=1.0) for c in ("a", "b", "c")}
    _classify([_series("a", 2016), _series("b", 2017), _series("c", 2017)], model, out, Settings())  # type: ignore[arg-type]
    assert sorted(model.calls) == [(2016, 1), (2017, 2)]
    assert all(o.crop == ("wheat", pytest.approx(0.9)) for o in out.values())


@pytest.mark.slow
def test_a_cloud_left_in_the_pixels_is_not_a_clear_date(tmp_path: Path) -> None:
    """A tile whose clouds are not written as nodata (raw L2A) passed the gate with an honest cloud
    tag, and the cloud over a maize field became a clear observation: it was called vegetables."""
    from assets.pipeline import load_models, submit_and_assess
    from assets.store import connect

    tiles = tmp_path / "tiles"
    shutil.copytree(REPO / "sample_tiles", tiles, ignore=shutil.ignore_patterns("claims", "sensors"))
    doc = json.loads((REPO / "sample_tiles/claims/farmer-003.geojson").read_text())
    doc["features"] = doc["features"][:1]  # Grain maize
    ring = np.array(doc["features"][0]["geometry"]["coordinates"][0])
    cloudy = tiles / "S2_DK_20160812.tif"
    with rasterio.open(cloudy) as src:
        profile, tags, data = src.profile, src.tags(), src.read()
        west, south, east, north = transform_bounds("EPSG:4326", src.crs, ring[:, 0].min(), ring[:, 1].min(),
                                                    ring[:, 0].max(), ring[:, 1].max())
        win = from_bounds(west, south, east, north, src.transform).round_offsets().round_lengths()
    r0, c0 = int(win.row_off), int(win.col_off)
    data[:, r0:r0 + int(win.height), c0:c0 + int(win.width)] = 6500  # opaque white cloud over the field
    share = (int(win.height) * int(win.width)) / (data.shape[1] * data.shape[2])
    with rasterio.open(cloudy, "w", **profile) as dst:
        dst.write(data)
        dst.update_tags(**{**tags, "CLOUD_FRACTION": f"{share:.4f}"})  # honestly tagged: the gate lets it in
    settings = Settings(db_path=tmp_path / "a.duckdb", tiles_dir=tiles)
    (row,) = submit_and_assess(settings, doc, "farmer-003", as_of=date(2016, 9, 30), models=load_models(settings))
    with connect(settings.db_path) as con:
        seen = dict(con.execute("SELECT observed_on, valid_fraction FROM observations WHERE claim_id = ?",
                                [row["claim_id"]]).fetchall())
    assert seen[date(2016, 8, 12)] < 0.5 and seen[date(2016, 9, 21)] > 0.9  # the cloudy date is not counted
    assert row["crop"] in ("maize", "unknown")  # without its August date; the cloud made it vegetables_fruits


def test_a_verdict_counts_the_dates_of_the_season_it_judged() -> None:
    """ML review 2026-12-07: with 2016 and 2017 in the catalogue the verdict said 'confirmed by 10
    satellite dates' while the crop model had seen one season of them."""
    from assets.observe import DateObservation
    from assets.verify import verify_claim

    days = [date(2015, 3, 1), date(2015, 5, 1), date(2016, 4, 10), date(2016, 6, 10), date(2016, 8, 10),
            date(2016, 9, 10)]
    obs = ClaimObservation(claim_id="c1", coverage_fraction=1.0, farmland_fraction=0.95, planted_fraction=0.9,
                           crop_probs={"wheat": 0.9, "barley": 0.1}, season_year=2016,
                           dates=[DateObservation(f"t{i}", d, 1.0, 0.6, 0.5, 0.7) for i, d in enumerate(days)])
    assert [d.observed_on.year for d in obs.season_dates] == [2016] * 4  # spring 2015 is before day -185 (5 July)
    v = verify_claim(claim_id="c1", claimed_area_ha=10.0, observation=obs, overlap_area_ha=0.0,
                     sensor_evidence=None, settings=Settings())
    assert "confirmed by 4 satellite dates" in v.reasons[-1].message


def test_a_field_is_read_on_the_grid_with_most_dates_not_on_rounding_noise() -> None:
    """Ops QA 2026-12-08: one tile in EPSG:3857 covered two fields 1.0000000000000002 against their UTM
    grid's 1.0 (ten dates): they were judged on that one date, rejected, and their limits went to 0."""
    from assets.observe import best_grid

    assert best_grid([(1.0, 10), (1.0000000000000002, 1)]) == 0
    assert best_grid([(0.9999999999999998, 10), (1.0000000000000002, 1)]) == 0
    assert best_grid([(0.96, 10), (1.0, 9)]) == 1  # the whole field beats 96 % of it with more dates
    assert best_grid([(0.9999, 3), (1.0, 1)]) == 0  # equal to a tenth of a percent: the dates decide
    assert best_grid([(0.5, 10), (0.97, 1)]) == 1  # the one that covers it
    assert best_grid([(0.5, 10), (0.6, 1)]) == 1  # neither covers it: the better (no_imagery)
    assert best_grid([]) is None
