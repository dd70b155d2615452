"""The decoded-pixel cache behind claim reads: same pixels as the file, bounded, never stale."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.windows import Window

from assets.imagery.blockcache import CHUNK_PX, BlockCache
from assets.imagery.tiles import open_tile, read_reflectance

REPO = Path(__file__).resolve().parents[1]
TILE = sorted((REPO / "sample_tiles").glob("S2_DK_*.tif"))[0]


@pytest.mark.parametrize("window", [Window(0, 0, 10, 10), Window(200, 150, 120, 140),  # across four chunks
                                    Window(250, 250, 12, 12), Window(400, 380, 52, 33),  # the raster's far edge
                                    Window(0, 0, 452, 413)])
def test_cached_reads_equal_direct_reads(window: Window) -> None:
    cache = BlockCache(64 << 20)
    with open_tile(TILE) as handle:
        direct = read_reflectance(handle, ["red", "nir", "blue"], window=window)
        first = read_reflectance(handle, ["red", "nir", "blue"], window=window, cache=cache)
        again = read_reflectance(handle, ["red", "nir", "blue"], window=window, cache=cache)
    for got in (first, again):
        assert np.array_equal(got[0], direct[0]) and np.array_equal(got[1], direct[1])
    assert cache.hits > 0 and cache.misses > 0


def test_windows_off_the_raster_or_fractional_are_read_directly() -> None:
    cache = BlockCache(64 << 20)
    with open_tile(TILE) as handle:
        for window in (Window(-5, 0, 20, 20), Window(440, 0, 20, 20), Window(1.5, 2, 10, 10)):
            direct = handle.src.read(1, window=window, boundless=False)
            got, _ = read_reflectance(handle, ["red"], window=window, cache=cache)
            assert got.shape[1:] == direct.shape
    assert cache.hits == cache.misses == 0


def test_the_cache_stays_within_its_byte_budget() -> None:
    one_chunk = CHUNK_PX * CHUNK_PX * 2  # one uint16 band
    cache = BlockCache(2 * one_chunk)
    with open_tile(TILE) as handle:
        read_reflectance(handle, ["red"], window=Window(0, 0, 452, 413), cache=cache)  # four chunks
    assert 0 < cache._bytes <= 2 * one_chunk and len(cache._chunks) < 4  # the oldest chunks dropped


def test_a_file_replaced_under_the_same_name_is_read_afresh(tmp_path) -> None:
    path = tmp_path / "tile.tif"
    shutil.copy(TILE, path)
    cache = BlockCache(64 << 20)
    window = Window(100, 100, 50, 50)
    with open_tile(path) as handle:
        before, _ = read_reflectance(handle, ["red"], window=window, cache=cache)
    with rasterio.open(path, "r+") as dst:  # a re-delivered tile: other pixels
        dst.write(np.full((dst.height, dst.width), 1234, dst.dtypes[0]), 1)
    os.utime(path, ns=(1, 1))
    with open_tile(path) as handle:
        after, _ = read_reflectance(handle, ["red"], window=window, cache=cache)
    assert not np.array_equal(before, after) and np.allclose(after, 0.1234)
