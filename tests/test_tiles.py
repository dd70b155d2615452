from datetime import date
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from assets.errors import ImageryError
from assets.imagery.index import describe_tile, scan_tiles
from assets.imagery.tiles import file_checksum, open_tile, read_reflectance


def write_tile(path: Path, data: np.ndarray, crs="EPSG:32632", nodata=0, tags=None, descriptions=None) -> Path:
    count, h, w = data.shape
    with rasterio.open(path, "w", driver="GTiff", width=w, height=h, count=count, dtype=data.dtype,
                       crs=crs, transform=from_origin(500000, 6200000, 10, 10), nodata=nodata) as dst:
        dst.write(data)
        if tags:
            dst.update_tags(**tags)
        if descriptions:
            dst.descriptions = descriptions
    return path


def test_reflectance_and_valid_mask(tmp_path: Path) -> None:
    data = np.full((4, 8, 8), 1000, np.uint16)
    data[:, 0, 0] = 0  # nodata pixel
    path = write_tile(tmp_path / "t.tif", data, descriptions=("B04", "B03", "B02", "B08"))
    with open_tile(path) as h:
        assert h.bands == {"red": 1, "green": 2, "blue": 3, "nir": 4}
        refl, valid = read_reflectance(h, ["red", "nir"])
    assert refl.shape == (2, 8, 8) and refl[0, 1, 1] == pytest.approx(0.1)
    assert not valid[0, 0] and valid.sum() == 63 and refl[:, 0, 0].tolist() == [0, 0]


def test_band_order_option_maps_other_sensors(tmp_path: Path) -> None:
    data = np.stack([np.full((4, 4), v, np.uint16) for v in (100, 200, 300, 400)])
    path = write_tile(tmp_path / "bgrn.tif", data)
    with open_tile(path, "bgrn") as h:
        refl, _ = read_reflectance(h, ["red", "blue"])
    assert refl[:, 0, 0].tolist() == pytest.approx([0.03, 0.01])
    with pytest.raises(ImageryError, match="unknown band order"):
        with open_tile(path, "weird"):
            pass


@pytest.mark.parametrize("kwargs, shape, match", [
    (dict(crs=None), (3, 4, 4), "no CRS"),
    (dict(crs="EPSG:4326"), (3, 4, 4), "geographic CRS"),
    (dict(), (2, 4, 4), "at least red, green and blue"),
    (dict(), (3, 1, 1), "at least 2x2"),
])
def test_unusable_tiles_are_refused(tmp_path: Path, kwargs, shape, match) -> None:
    path = write_tile(tmp_path / "bad.tif", np.ones(shape, np.uint16), **kwargs)
    with pytest.raises(ImageryError, match=match):
        with open_tile(path):
            pass


def test_corrupt_and_truncated_files(tmp_path: Path) -> None:
    junk = tmp_path / "junk.tif"
    junk.write_bytes(b"not a tiff at all")
    with pytest.raises(ImageryError, match="not a readable GeoTIFF"):
        with open_tile(junk):
            pass
    good = write_tile(tmp_path / "good.tif", np.random.default_rng(0).integers(1, 5000, (4, 64, 64)).astype(np.uint16))
    truncated = tmp_path / "trunc_20160101.tif"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ImageryError):
        describe_tile(truncated)


def test_describe_tile_dates_clouds_and_checksum(tmp_path: Path) -> None:
    data = np.random.default_rng(1).integers(300, 3000, (4, 10, 10)).astype(np.uint16)  # an image, not a fill
    data[:, :5, :] = 0
    a = write_tile(tmp_path / "S2_20160601.tif", data)
    b = write_tile(tmp_path / "other.tif", data, tags={"ACQUISITION_DATE": "2016-07-01", "CLOUD_FRACTION": "0.2", "SCENE_ID": "X"})
    ra, rb = describe_tile(a), describe_tile(b)
    assert ra.acquired_on == date(2016, 6, 1) and ra.nodata_fraction == pytest.approx(0.5)
    assert ra.cloud_fraction == pytest.approx(0.5)
    assert (rb.acquired_on, rb.cloud_fraction, rb.scene_id) == (date(2016, 7, 1), 0.2, "X")
    copy = tmp_path / "renamed_20160601.tif"
    copy.write_bytes(a.read_bytes())
    assert describe_tile(copy).tile_id == ra.tile_id == "t-" + file_checksum(a)[:16]  # same bytes, same tile
    assert rb.tile_id != ra.tile_id
    copy.unlink()
    assert ra.bounds_lonlat[0] == pytest.approx(9.0, abs=0.1)
    assert [t.acquired_on for t in scan_tiles(tmp_path)] == [date(2016, 6, 1), date(2016, 7, 1)]
    assert len(scan_tiles(tmp_path, until=date(2016, 6, 15))) == 1


def test_undated_and_all_nodata_tiles(tmp_path: Path) -> None:
    with pytest.raises(ImageryError, match="no acquisition date"):
        describe_tile(write_tile(tmp_path / "nodate.tif", np.random.default_rng(2).integers(300, 3000, (3, 4, 4)).astype(np.uint16)))
    with pytest.raises(ImageryError, match="only nodata"):
        describe_tile(write_tile(tmp_path / "empty_20160101.tif", np.zeros((3, 4, 4), np.uint16)))
    empty_dir = tmp_path / "sub"
    empty_dir.mkdir()
    with pytest.raises(ImageryError, match="no GeoTIFF"):
        scan_tiles(empty_dir)


def test_bundled_sample_season_is_valid(repo: Path) -> None:
    tiles = scan_tiles(repo / "sample_tiles")
    assert len(tiles) >= 6
    assert len({(t.crs, t.bounds) for t in tiles}) == 1  # one grid: a per-pixel season
    assert all(t.bands == ("red", "green", "blue", "nir", "re1", "re2", "re3", "swir1", "swir2") for t in tiles)
    assert max(t.cloud_fraction for t in tiles) > 0.05  # one date is partly cloudy on purpose


def test_map_preview_is_web_mercator_with_transparent_clouds(repo: Path) -> None:
    import io

    from PIL import Image

    from assets.imagery.preview import preview_bounds, render_preview

    cloudy = repo / "sample_tiles" / "S2_DK_20160625.tif"
    preview = render_preview(str(cloudy), gain=3.5, max_px=256)
    image = np.asarray(Image.open(io.BytesIO(preview.png)))
    assert image.shape[2] == 4 and max(image.shape[:2]) == 256
    transparent = (image[..., 3] == 0).mean()
    assert 0.1 < transparent < 0.3  # the cloud (14 %) and the reprojection margin are see-through
    assert preview.bounds_lonlat == preview_bounds(str(cloudy), max_px=256)
    west, south, east, north = preview.bounds_lonlat
    tile = describe_tile(cloudy)
    assert west <= tile.bounds_lonlat[0] + 1e-3 and east >= tile.bounds_lonlat[2] - 1e-3 and south < north
