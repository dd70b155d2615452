"""Windowed inference: grid, seam-free blending, nodata/cloud masks, file output, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

from assets.errors import ImageryError, InputError
from assets.imagery.masks import cloud_mask
from assets.imagery.tiles import open_tile
from assets.imagery.windows import (
    blend_weights,
    iter_strips,
    predict_raster,
    predict_raster_to_file,
    window_grid,
)
from assets.models.segment import Segmenter, load

REPO = Path(__file__).resolve().parents[1]


def data_dir() -> Path:
    for cand in (Path(__file__).resolve().parents[2] / "shared" / "data", Path("/work/shared/data")):
        if (cand / "denmark" / "s2_rgb_2016.tif").is_file():
            return cand
    pytest.skip("shared/data/denmark not found beside the repository (real Sentinel-2 scene needed)")


@pytest.fixture(scope="module")
def model() -> Segmenter:
    return load(REPO / "models" / "segment.pt")


@pytest.fixture(scope="module")
def scene_tif(tmp_path_factory) -> Path:
    """The real Danish scene as a 4-band s2-ordered uint16 GeoTIFF (the scene has no NIR: a constant
    land-like 0.3 stands in; the model does not use it, only the water mask does)."""
    src_path = data_dir() / "denmark" / "s2_rgb_2016.tif"
    out = tmp_path_factory.mktemp("scene") / "scene.tif"
    with rasterio.open(src_path) as src:
        rgb = src.read()
        profile = src.profile
    profile.update(count=4, nodata=0, tiled=True, blockxsize=128, blockysize=128, compress="deflate")
    with rasterio.open(out, "w", **profile) as dst:
        dst.write(np.concatenate([rgb, np.full_like(rgb[:1], 3000)]))
    return out


@pytest.fixture(scope="module")
def small_tif(scene_tif, tmp_path_factory) -> Path:
    """The scene's north-west 264 x 300 px: enough fields, a third of the pixels."""
    out = tmp_path_factory.mktemp("small") / "small.tif"
    with rasterio.open(scene_tif) as src:
        arr = src.read(window=rasterio.windows.Window(0, 0, 300, 264))
        profile = src.profile
        profile.update(width=300, height=264)
    with rasterio.open(out, "w", **profile) as dst:
        dst.write(arr)
    return out


def pixel_model() -> Segmenter:
    """A per-pixel (1x1 conv) model: its output cannot depend on the window, so blending must be exact."""
    import torch

    torch.manual_seed(0)
    net = torch.nn.Conv2d(3, 3, 1)
    return Segmenter(version="pixel", bands=("red", "green", "blue"), net=net,
                     mean=np.full(3, 0.1, np.float32), std=np.full(3, 0.05, np.float32))


def test_window_grid_covers_raster_on_the_pooling_grid():
    rows, cols = window_grid(1000, 300, 256, 64)
    for axis, n in ((rows, 1000), (cols, 300)):
        assert axis[0][0] == 0 and axis[-1][0] + axis[-1][1] == n  # covers the raster exactly
        assert all(s % 16 == 0 for s, _ in axis)  # on the pooling grid
        assert all(256 <= size <= 256 + 15 for _, size in axis)  # no thin sliver at the end
        assert all(b[0] - a[0] <= 256 - 64 for a, b in zip(axis, axis[1:]))  # overlap kept
    assert window_grid(100, 40, 512, 64) == ([(0, 100)], [(0, 40)])
    with pytest.raises(InputError):
        window_grid(100, 100, 256, 200)
    with pytest.raises(InputError):
        window_grid(100, 100, 16, 0)


def test_blend_weights_ramp_to_the_edges():
    w = blend_weights(64, 64, 16)
    assert w.shape == (64, 64)
    assert w[32, 32] == 1.0
    assert 0 < w[0, 32] < 0.05 and w[0, 0] < w[0, 32]
    assert np.allclose(w, w[::-1, ::-1])


def test_blending_is_exact_for_a_window_independent_model(small_tif):
    m = pixel_model()
    whole = predict_raster(small_tif, m, window_px=1024, overlap_px=0)
    tiled = predict_raster(small_tif, m, window_px=96, overlap_px=40)
    assert np.allclose(whole.probs, tiled.probs, atol=1e-5)
    assert np.allclose(whole.probs.sum(0), 1.0, atol=1e-5)


def test_seam_same_field_in_one_window_or_across_several(scene_tif, model):
    """The issue's seam test: a field predicted inside one window vs cut by window edges."""
    from assets.fields.polygonize import polygonize

    one = predict_raster(scene_tif, model, window_px=1024, overlap_px=64)  # whole scene in one window
    many = predict_raster(scene_tif, model, window_px=192, overlap_px=64)  # window edges every 128 px
    diff = np.abs(one.probs - many.probs)
    assert diff.mean() < 0.002
    assert np.quantile(diff, 0.999) < 0.08 and diff.max() < 0.25
    assert (one.probs.argmax(0) != many.probs.argmax(0)).mean() < 0.002
    # No seam lines: along window-edge columns the disagreement is no worse than near it.
    rows, cols = window_grid(*one.probs.shape[1:], 192, 64)
    edges = sorted({c for c, w in cols[1:]} | {c + w for c, w in cols[:-1]})
    assert diff[1][:, edges].max() < 0.25
    # The same fields come out: every sizeable field of the single-window run has a twin.
    a = polygonize(one).to_crs(one.crs)
    b = polygonize(many).to_crs(one.crs)
    assert len(a) > 20
    big = a[a.area > 20_000]
    matched = 0
    for geom in big.geometry:
        inter = b.geometry.intersection(geom).area
        j = int(np.argmax(inter.to_numpy()))
        iou = inter.iloc[j] / geom.union(b.geometry.iloc[j]).area
        matched += iou > 0.9
    assert matched >= 0.95 * len(big)


def test_nodata_cloud_and_water_never_produce_fields(small_tif, model, tmp_path):
    from assets.fields.polygonize import polygonize

    with rasterio.open(small_tif) as src:
        arr, profile = src.read(), src.profile
    arr[:, 100:220, 50:200] = 0  # nodata hole over farmland
    arr[:3, 160:240, 180:290] = 6000  # thick cloud: bright, colourless
    arr[3, 160:240, 180:290] = 6500
    arr[:, 20:80, 200:290] = np.array([400, 700, 600, 200], dtype=np.uint16)[:, None, None]  # open water
    path = tmp_path / "holes.tif"
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(arr)
    res = predict_raster(path, model, window_px=256, overlap_px=32)
    for rs, cs in ((slice(100, 220), slice(50, 200)), (slice(160, 240), slice(180, 290))):
        assert not res.valid[rs, cs].any()
        assert np.all(res.probs[0, rs, cs] == 1.0) and np.all(res.probs[1:, rs, cs] == 0.0)
    assert res.valid[20:80, 200:290].all()  # water is valid imagery, just never a field
    assert np.all(res.probs[1:, 20:80, 200:290] == 0.0)
    frame = polygonize(res).to_crs(res.crs)
    assert len(frame) > 3
    t = res.transform
    for r0, r1, c0, c1 in ((100, 220, 50, 200), (160, 240, 180, 290), (20, 80, 200, 290)):
        from shapely.geometry import box

        x0, y0 = t @ (c0 + 1, r1 - 1)
        x1, y1 = t @ (c1 - 1, r0 + 1)
        hole = box(x0, y0, x1, y1)
        assert frame.geometry.intersection(hole).area.max() < 1.0


def test_cloud_mask_flags_white_not_fields():
    refl = np.zeros((3, 2, 2), dtype=np.float32)
    refl[:, 0, 0] = 0.6  # cloud
    refl[:, 0, 1] = (0.30, 0.22, 0.15)  # bright bare soil: coloured
    refl[:, 1, 0] = (0.04, 0.08, 0.03)  # crop
    refl[:, 1, 1] = 0.35  # colourless and bright: cloud
    m = cloud_mask(refl, ("red", "green", "blue"))
    assert m.tolist() == [[True, False], [False, True]]


def test_all_nodata_gives_empty_result_with_reason(tmp_path, model):
    from assets.fields.polygonize import polygonize

    path = tmp_path / "empty.tif"
    with rasterio.open(path, "w", driver="GTiff", width=64, height=48, count=4, dtype="uint16", nodata=0,
                       crs="EPSG:32632", transform=Affine(10, 0, 500000, 0, -10, 6200000)) as dst:
        dst.write(np.zeros((4, 48, 64), dtype=np.uint16))
    res = predict_raster(path, model)
    assert res.reason and "nodata" in res.reason
    assert len(polygonize(res)) == 0
    summary = predict_raster_to_file(path, model, tmp_path / "p.tif")
    assert summary.reason and summary.valid_fraction == 0.0


def test_file_output_matches_in_memory_and_strips_stay_bounded(small_tif, model, tmp_path):
    res = predict_raster(small_tif, model, window_px=160, overlap_px=32)
    out = tmp_path / "probs.tif"
    summary = predict_raster_to_file(small_tif, model, out, window_px=160, overlap_px=32)
    assert summary.path == out and 0.99 < summary.valid_fraction <= 1.0
    with rasterio.open(out) as src:
        q = src.read()
        assert src.crs == res.crs and src.transform == res.transform
        assert src.descriptions == ("background", "field", "boundary")
    assert np.abs(q / 255.0 - res.probs).max() <= 0.5 / 255 + 1e-6
    with open_tile(small_tif) as handle:
        heights = [p.shape[1] for _, p, _ in iter_strips(handle, model, window_px=160, overlap_px=32)]
    assert max(heights) <= 160 + 15 and sum(heights) == res.probs.shape[1]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def _write(path: Path, arr: np.ndarray, **kw) -> Path:
    profile = dict(driver="GTiff", width=arr.shape[2], height=arr.shape[1], count=arr.shape[0],
                   dtype=arr.dtype, transform=Affine(10, 0, 500000, 0, -10, 6200000))
    profile.update(kw)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(arr)
    return path


def test_bad_inputs_raise_imagery_errors(tmp_path, model, small_tif):
    ok = np.full((4, 40, 40), 1000, dtype=np.uint16)
    cases = {
        "nocrs": _write(tmp_path / "nocrs.tif", ok),
        "geographic": _write(tmp_path / "geo.tif", ok, crs="EPSG:4326",
                             transform=Affine(1e-4, 0, 9, 0, -1e-4, 56)),
        "one_pixel": _write(tmp_path / "one.tif", ok[:, :1, :1], crs="EPSG:32632"),
        "two_bands": _write(tmp_path / "two.tif", ok[:2], crs="EPSG:32632"),
    }
    truncated = tmp_path / "truncated.tif"
    truncated.write_bytes(small_tif.read_bytes()[:5000])
    cases["truncated"] = truncated
    garbage = tmp_path / "garbage.tif"
    garbage.write_bytes(b"not a tiff at all" * 10)
    cases["garbage"] = garbage
    for name, path in cases.items():
        with pytest.raises(ImageryError):
            predict_raster(path, model)
        out = tmp_path / f"{name}_probs.tif"
        with pytest.raises(ImageryError):
            predict_raster_to_file(path, model, out)
        assert not out.exists(), name
    with pytest.raises(ImageryError):  # the model's bands are not in the file
        predict_raster(small_tif, model, band_order="nir,swir,red_edge,green")
