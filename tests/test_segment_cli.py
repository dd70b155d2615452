"""`assets fields detect`: end to end through the real CLI on real imagery and on bad input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio

from assets.cli import main

REPO = Path(__file__).resolve().parents[1]


def data_dir() -> Path:
    for cand in (Path(__file__).resolve().parents[2] / "shared" / "data", Path("/work/shared/data")):
        if (cand / "tiles" / "s2_rgbn_2dates_ftw_sample.tif").is_file():
            return cand
    pytest.skip("shared/data/tiles not found beside the repository (real Sentinel-2 sample needed)")


def test_detect_writes_polygons_probabilities_and_summary(tmp_path, capsys):
    import geopandas as gpd

    tile = data_dir() / "tiles" / "s2_rgbn_2dates_ftw_sample.tif"  # 8 bands: 2 dates of R, G, B, NIR
    gpkg, parquet, probs = tmp_path / "f.gpkg", tmp_path / "f.parquet", tmp_path / "p.tif"
    rc = main(["fields", "detect", str(tile), "--out", str(gpkg), "--out", str(parquet),
               "--probabilities", str(probs), "--quiet"])
    assert rc == 0
    out = capsys.readouterr().out
    a, b = gpd.read_file(gpkg), gpd.read_parquet(parquet)
    assert len(a) == len(b) > 10
    assert a.crs.to_epsg() == 4326
    assert f"{len(a)} fields" in out and "ha total" in out
    assert abs(float(a["area_ha"].sum()) - float(out.split("fields, ")[1].split(" ha")[0])) < 0.1
    with rasterio.open(tile) as src, rasterio.open(probs) as p:
        assert (p.width, p.height, p.count, p.crs) == (src.width, src.height, 3, src.crs)
    # Areas are real hectares: the sample is 578 x 379 px of 10 m = 2,190 ha in all.
    assert 0 < a["area_ha"].sum() < 2190.7


def test_band_order_maps_other_sensors(tmp_path, capsys):
    """A BGR(N)-ordered export gives the same fields once --band-order names its bands."""
    import geopandas as gpd

    tile = data_dir() / "tiles" / "s2_rgbn_2dates_ftw_sample.tif"
    with rasterio.open(tile) as src:
        arr = src.read([3, 2, 1, 4], window=rasterio.windows.Window(0, 0, 256, 256))
        profile = src.profile
    profile.update(count=4, width=256, height=256, transform=src.window_transform(rasterio.windows.Window(0, 0, 256, 256)))
    rgbn = tmp_path / "rgbn.tif"
    bgrn = tmp_path / "bgrn.tif"
    with rasterio.open(bgrn, "w", **profile) as dst:
        dst.write(arr)
    with rasterio.open(rgbn, "w", **profile) as dst:
        dst.write(arr[[2, 1, 0, 3]])
    assert main(["fields", "detect", str(rgbn), "--out", str(tmp_path / "a.geojson"), "--quiet"]) == 0
    assert main(["fields", "detect", str(bgrn), "--band-order", "bgrn", "--out", str(tmp_path / "b.geojson"),
                 "--quiet"]) == 0
    a, b = gpd.read_file(tmp_path / "a.geojson"), gpd.read_file(tmp_path / "b.geojson")
    assert len(a) == len(b) > 0
    assert np.allclose(sorted(a["area_ha"]), sorted(b["area_ha"]))


@pytest.mark.parametrize("case", ["missing", "garbage", "nocrs", "geographic", "one_pixel"])
def test_bad_tiles_exit_2_with_one_line_error_and_no_output(tmp_path, capsys, case):
    from affine import Affine

    path = tmp_path / "bad.tif"
    arr = np.full((4, 20, 20), 1000, dtype=np.uint16)
    kw = dict(driver="GTiff", count=4, dtype="uint16", width=20, height=20,
              transform=Affine(10, 0, 500000, 0, -10, 6200000))
    if case == "garbage":
        path.write_bytes(b"II*\x00garbage" * 20)
    elif case == "nocrs":
        with rasterio.open(path, "w", **kw) as dst:
            dst.write(arr)
    elif case == "geographic":
        with rasterio.open(path, "w", **{**kw, "crs": "EPSG:4326", "transform": Affine(1e-4, 0, 9, 0, -1e-4, 56)}) as dst:
            dst.write(arr)
    elif case == "one_pixel":
        with rasterio.open(path, "w", **{**kw, "crs": "EPSG:32632", "width": 1, "height": 1}) as dst:
            dst.write(arr[:, :1, :1])
    out = tmp_path / "fields.gpkg"
    rc = main(["fields", "detect", str(path), "--out", str(out), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert err.startswith("error: ") and "\n" not in err
    assert not out.exists()


def test_fully_cloudy_tile_gives_empty_output_with_reason(tmp_path, capsys):
    import geopandas as gpd
    from affine import Affine

    path = tmp_path / "cloud.tif"
    with rasterio.open(path, "w", driver="GTiff", count=4, dtype="uint16", width=64, height=64, nodata=0,
                       crs="EPSG:32632", transform=Affine(10, 0, 500000, 0, -10, 6200000)) as dst:
        dst.write(np.full((4, 64, 64), 7000, dtype=np.uint16))  # thick cloud everywhere
    out = tmp_path / "fields.geojson"
    assert main(["fields", "detect", str(path), "--out", str(out), "--quiet"]) == 0
    assert "0 fields" in capsys.readouterr().out
    assert len(gpd.read_file(out)) == 0


def test_unknown_output_format_and_model_errors(tmp_path, capsys):
    tile = data_dir() / "tiles" / "s2_rgbn_2dates_ftw_sample.tif"
    assert main(["fields", "detect", str(tile), "--out", str(tmp_path / "f.shp")]) == 2
    assert main(["fields", "detect", str(tile), "--out", str(tmp_path / "f.gpkg"),
                 "--model", str(tmp_path / "nope.pt")]) == 2
    errs = capsys.readouterr().err.strip().splitlines()
    assert len(errs) == 2 and all(e.startswith("error: ") for e in errs)


def test_console_script_help_lists_band_order():
    proc = subprocess.run([sys.executable, "-m", "assets.cli", "fields", "detect", "--help"],
                          capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0 and "--band-order" in proc.stdout and "--probabilities" in proc.stdout
