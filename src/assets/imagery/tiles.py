"""Open and validate a GeoTIFF/COG, map band names to indexes, read reflectance with a valid mask.

Validation happens once, on open, so every later step can trust the handle: a projected CRS
(areas are measured in metres), at least red/green/blue, a numeric dtype, more than one pixel.
"""

from __future__ import annotations

import hashlib
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.errors import RasterioError
from rasterio.windows import Window

from assets.errors import ImageryError
from assets.imagery.blockcache import BlockCache

# Documented band orders. "s2" is what the bundled tiles and the Danish scene use.
BAND_ORDERS: dict[str, tuple[str, ...]] = {
    "s2": ("red", "green", "blue", "nir"),
    "rgb": ("red", "green", "blue"),
    "bgrn": ("blue", "green", "red", "nir"),
    "s2_2dates": ("red", "green", "blue", "nir", "red_2", "green_2", "blue_2", "nir_2"),
}
_DESCRIPTION_ALIASES = {
    "b04": "red", "b4": "red", "red": "red",
    "b03": "green", "b3": "green", "green": "green",
    "b02": "blue", "b2": "blue", "blue": "blue",
    "b08": "nir", "b8": "nir", "nir": "nir",
    # Red edge and SWIR (10 or 20 m bands resampled to the tile grid): read by the crop model when present.
    "b05": "re1", "b06": "re2", "b07": "re3", "b8a": "nir08", "b11": "swir1", "b12": "swir2",
}
REFLECTANCE_SCALE = 10000.0  # Sentinel-2 L2A digital numbers -> reflectance


@dataclass(frozen=True)
class TileInfo:
    path: Path
    crs: CRS
    transform: Affine
    width: int
    height: int
    count: int
    dtype: str
    nodata: float | None
    bands: tuple[str, ...]

    @property
    def res_m(self) -> float:
        return float(abs(self.transform.a))

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(minx, miny, maxx, maxy) in the tile's CRS."""
        return tuple(rasterio.transform.array_bounds(self.height, self.width, self.transform))


@dataclass
class TileHandle:
    src: rasterio.io.DatasetReader
    bands: dict[str, int]  # name -> 1-based band index
    info: TileInfo
    identity: tuple[str, int, int] | None = None  # (path, size, mtime_ns): the file these pixels came from


def resolve_band_order(src: rasterio.io.DatasetReader, band_order: str | Sequence[str] | None) -> tuple[str, ...]:
    """Band names for each band: explicit order, else band descriptions, else the "s2" order."""
    if isinstance(band_order, str):
        if band_order in BAND_ORDERS:
            names = BAND_ORDERS[band_order]
        else:
            names = tuple(n.strip().lower() for n in band_order.split(",") if n.strip())
            if len(names) < 2:
                raise ImageryError(
                    f"unknown band order {band_order!r}; use one of {sorted(BAND_ORDERS)} "
                    "or a comma list such as red,green,blue,nir"
                )
    elif band_order is not None:
        names = tuple(band_order)
    else:
        described = tuple(_DESCRIPTION_ALIASES.get((d or "").strip().lower(), "") for d in src.descriptions)
        if all(described) and len(set(described)) == len(described):
            names = described
        elif src.count == 8:
            names = BAND_ORDERS["s2_2dates"]
        else:
            names = BAND_ORDERS["s2"][: src.count] if src.count <= 4 else BAND_ORDERS["s2"] + tuple(
                f"band{i}" for i in range(5, src.count + 1)
            )
    if len(names) > src.count:
        raise ImageryError(
            f"{src.name}: band order names {len(names)} bands but the file has {src.count}; "
            "pass a shorter --band-order"
        )
    return tuple(names)


@contextmanager
def open_tile(path: str | Path, band_order: str | Sequence[str] | None = None) -> Iterator[TileHandle]:
    """Open and validate a tile; the dataset is closed when the block ends."""
    path = Path(path)
    if not path.is_file():
        raise ImageryError(f"tile {path} does not exist; check the path")
    try:
        src = rasterio.open(path)
    except RasterioError as exc:
        raise ImageryError(f"{path} is not a readable GeoTIFF ({exc}); re-download or re-export it") from exc
    try:
        handle = _validated(src, path, band_order)
        stat = path.stat()
        handle.identity = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
        yield handle
    finally:
        src.close()


def _validated(src: rasterio.io.DatasetReader, path: Path, band_order: str | Sequence[str] | None) -> TileHandle:
    if src.crs is None:
        raise ImageryError(f"{path} has no CRS; assign one (e.g. gdal_edit.py -a_srs EPSG:32632) and retry")
    if not src.crs.is_projected:
        raise ImageryError(
            f"{path} is in a geographic CRS ({src.crs}); reproject it to its UTM zone so field areas "
            "can be measured in metres (gdalwarp -t_srs EPSG:326xx)"
        )
    if src.width < 2 or src.height < 2:
        raise ImageryError(f"{path} is {src.width}x{src.height} px; a tile must be at least 2x2 px")
    if src.count < 3:
        raise ImageryError(f"{path} has {src.count} band(s); at least red, green and blue are needed")
    dtype = np.dtype(src.dtypes[0])
    if dtype.kind not in "uif":
        raise ImageryError(f"{path} has {dtype} pixels; expected integer or float reflectance")
    names = resolve_band_order(src, band_order)
    missing = {"red", "green", "blue"} - set(names)
    if missing:
        raise ImageryError(f"{path}: band order {names} lacks {sorted(missing)}; pass --band-order")
    info = TileInfo(
        path=path, crs=src.crs, transform=src.transform, width=src.width, height=src.height,
        count=src.count, dtype=str(dtype), nodata=src.nodata, bands=names,
    )
    return TileHandle(src=src, bands={n: i + 1 for i, n in enumerate(names)}, info=info)


def read_reflectance(
    handle: TileHandle, names: Sequence[str], window: Window | None = None, cache: BlockCache | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Reflectance (0..1, float32) for ``names`` and a mask that is False on nodata/cloud.

    With ``cache`` (a server's or flow's `BlockCache`), the decoded pixels are kept for the next read.

    Integer tiles are taken as reflectance x 10000 (Sentinel-2 L2A); float tiles as reflectance.
    A pixel is invalid when any requested band equals the nodata value (0 when unset, the
    convention for Sentinel-2 products) or is not finite.
    """
    unknown = [n for n in names if n not in handle.bands]
    if unknown:
        raise ImageryError(
            f"{handle.info.path} has no band(s) {unknown}; it has {list(handle.bands)} (use --band-order)"
        )
    indexes = [handle.bands[n] for n in names]
    try:
        raw = None
        if cache is not None and window is not None and handle.identity is not None:
            raw = cache.read((*handle.identity, tuple(indexes)), (handle.info.height, handle.info.width), window,
                             lambda w: handle.src.read(indexes, window=w))
        if raw is None:
            raw = handle.src.read(indexes, window=window)
    except RasterioError as exc:
        raise ImageryError(f"{handle.info.path} is corrupt or truncated ({exc}); re-download it") from exc
    nodata = handle.info.nodata if handle.info.nodata is not None else 0
    valid = np.all(np.isfinite(raw) & (raw != nodata), axis=0) if raw.dtype.kind == "f" else np.all(raw != nodata, axis=0)
    data = raw.astype(np.float32)
    if np.dtype(handle.info.dtype).kind in "ui":
        data /= REFLECTANCE_SCALE
    data[:, ~valid] = 0.0
    return data, valid


def file_checksum(path: str | Path) -> str:
    """sha256 of the file, streamed: identifies a tile regardless of its name or location."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
