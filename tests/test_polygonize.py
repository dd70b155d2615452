"""Probabilities -> field polygons: splitting touching fields, dropping slivers, UTM areas, outputs."""

from __future__ import annotations

import numpy as np
import pytest
from affine import Affine
from rasterio.crs import CRS

from assets.errors import InputError
from assets.fields.polygonize import label_fields, polygonize, polygonize_file, write_fields
from assets.models.segment_train import boundary_classes

UTM = CRS.from_epsg(32632)
T = Affine(10.0, 0.0, 500000.0, 0.0, -10.0, 6200000.0)


def probs_from_ids(ids: np.ndarray, certainty: float = 0.9) -> np.ndarray:
    """Confident probabilities for the classes implied by an instance-id raster."""
    cls = boundary_classes(ids)
    rest = (1 - certainty) / 2
    probs = np.full((3,) + ids.shape, rest, dtype=np.float32)
    for k in range(3):
        probs[k][cls == k] = certainty
    return probs


def two_touching_fields() -> np.ndarray:
    ids = np.zeros((60, 80), dtype=np.int32)
    ids[10:40, 10:40] = 1  # 30 x 30 px = 9 ha
    ids[10:40, 40:70] = 2  # shares its west edge with field 1
    return ids


def test_touching_fields_are_split_along_their_boundary_with_utm_areas():
    frame = polygonize(probs_from_ids(two_touching_fields()), T, UTM)
    assert frame.crs.to_epsg() == 4326
    assert len(frame) == 2
    assert list(frame.columns[:4]) == ["field_id", "area_ha", "field_prob", "n_pixels"]
    # Interior seeds grown back over the one-pixel rim recover each field's full 9 ha.
    assert np.allclose(sorted(frame["area_ha"]), [9.0, 9.0], atol=0.35)
    utm = frame.to_crs(UTM)
    assert utm.geometry.iloc[0].intersection(utm.geometry.iloc[1]).area < 1.0
    assert (frame["field_prob"] > 0.8).all()


def test_merged_extent_without_boundary_stays_one_field():
    ids = two_touching_fields()
    ids[ids == 2] = 1  # one field: no boundary between the halves
    frame = polygonize(probs_from_ids(ids), T, UTM)
    assert len(frame) == 1
    assert frame["area_ha"].iloc[0] == pytest.approx(18.0, abs=0.5)


def test_slivers_are_dropped():
    ids = two_touching_fields()
    ids[50:53, 10:14] = 3  # 12 px = 0.12 ha, its interior only 2 px
    ids[45:48, 60:75] = 4  # hedge-like strip 3 x 15 px
    frame = polygonize(probs_from_ids(ids), T, UTM, min_area_m2=5000)
    assert len(frame) == 2
    assert frame["area_ha"].min() > 5.0


def test_invalid_pixels_never_become_fields():
    probs = probs_from_ids(two_touching_fields())
    valid = np.ones(probs.shape[1:], dtype=bool)
    valid[:, :40] = False  # field 1 lies under nodata
    frame = polygonize(probs, T, UTM, valid=valid)
    assert len(frame) == 1
    assert frame.to_crs(UTM).geometry.iloc[0].bounds[0] >= T.c + 10 * 39


def test_empty_prediction_gives_empty_frame_with_columns():
    probs = np.zeros((3, 20, 20), dtype=np.float32)
    probs[0] = 1
    frame = polygonize(probs, T, UTM)
    assert len(frame) == 0
    assert {"area_ha", "field_prob", "geometry"} <= set(frame.columns)
    assert frame.crs.to_epsg() == 4326


def test_bad_inputs_raise_input_error(tmp_path):
    with pytest.raises(InputError):
        polygonize(np.zeros((2, 5, 5), dtype=np.float32), T, UTM)
    with pytest.raises(InputError):
        polygonize(np.zeros((3, 5, 5), dtype=np.float32))
    with pytest.raises(InputError):
        write_fields(polygonize(probs_from_ids(two_touching_fields()), T, UTM), tmp_path / "out.shp")
    with pytest.raises(InputError):
        polygonize_file(tmp_path / "missing.tif")


def test_area_is_measured_in_utm_even_for_a_non_utm_projected_crs():
    # Web Mercator inflates areas by 1/cos(lat)^2 (~3x at 56N); the reported area must not be.
    from pyproj import Transformer

    x, y = Transformer.from_crs(4326, 3857, always_xy=True).transform(9.0, 56.0)
    merc = Affine(10.0, 0.0, x, 0.0, -10.0, y)
    frame = polygonize(probs_from_ids(two_touching_fields()), merc, CRS.from_epsg(3857))
    scale = np.cos(np.radians(56.0)) ** 2
    assert np.allclose(sorted(frame["area_ha"]), [9.0 * scale, 9.0 * scale], rtol=0.06)


@pytest.mark.parametrize("suffix", [".parquet", ".geojson", ".gpkg"])
def test_write_fields_round_trips(tmp_path, suffix):
    import geopandas as gpd

    frame = polygonize(probs_from_ids(two_touching_fields()), T, UTM)
    out = write_fields(frame, tmp_path / f"fields{suffix}")
    back = gpd.read_parquet(out) if suffix == ".parquet" else gpd.read_file(out)
    assert len(back) == 2
    assert back.crs.to_epsg() == 4326
    assert np.allclose(sorted(back["area_ha"]), sorted(frame["area_ha"]))
    assert not list(tmp_path.glob(".*tmp*"))


def test_polygonize_file_matches_in_memory(tmp_path):
    import rasterio

    probs = probs_from_ids(two_touching_fields())
    path = tmp_path / "probs.tif"
    with rasterio.open(path, "w", driver="GTiff", width=80, height=60, count=3, dtype="uint8",
                       crs=UTM, transform=T) as dst:
        dst.write(np.rint(probs * 255).astype(np.uint8))
    a = polygonize(probs, T, UTM)
    b = polygonize_file(path)
    assert len(a) == len(b) == 2
    assert np.allclose(sorted(a["area_ha"]), sorted(b["area_ha"]))
    assert np.allclose(sorted(a["field_prob"]), sorted(b["field_prob"]), atol=0.01)


def test_label_fields_accepts_uint8_and_float_alike():
    probs = probs_from_ids(two_touching_fields())
    la = label_fields(probs)
    lb = label_fields(np.rint(probs * 255).astype(np.uint8))
    assert la.max() == lb.max() == 2
    assert np.array_equal(la > 0, lb > 0)


def test_fields_cut_by_processing_strips_are_rejoined(monkeypatch):
    import assets.fields.polygonize as poly

    probs = probs_from_ids(two_touching_fields())
    whole = polygonize(probs, T, UTM)
    monkeypatch.setattr(poly, "_STRIP", 7)  # strip edges cut through both fields several times
    cut = polygonize(probs, T, UTM)
    assert len(cut) == len(whole) == 2
    assert all(g.geom_type == "Polygon" for g in cut.geometry)
    assert np.allclose(sorted(cut["area_ha"]), sorted(whole["area_ha"]))


def test_growth_does_not_depend_on_processing_strips():
    from assets.fields.polygonize import _grow_once

    rng = np.random.default_rng(0)
    labels = np.where(rng.random((64, 40)) < 0.05, rng.integers(1, 9, (64, 40)), 0).astype(np.int32)
    extent = rng.random((64, 40)) < 0.8
    a, b = labels.copy(), labels.copy()
    _grow_once(a, extent, strip=64)
    _grow_once(b, extent, strip=5)
    assert np.array_equal(a, b)
    assert (a > 0).sum() > (labels > 0).sum()
