"""The gate a tile passes before use: tags parsed strictly, reflectance scale and range, clear pixels.

One bad file must not decide anyone's limit: an all-NaN or raw-digital-number tile dated latest
with a clean cloud tag would otherwise become the segmentation reference and see no field
anywhere. Each check names what is wrong and what to do, and a tile that fails is quarantined
(`QuarantinedTile`, stored in `tile_quarantine`) while the night goes on with the others.
Pixel statistics come from an even sample gathered while the catalogue reads the tile by block,
so the gate costs no second pass over the file.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Sequence

import numpy as np

from assets.config import Settings
from assets.errors import ImageryError
from assets.imagery.masks import cloud_mask

_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}([T ].*)?$")


class TileQualityError(ImageryError):
    """A readable tile that must not be used; ``code`` is the machine-readable reason."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class QuarantinedTile:
    """A tile kept out of every assessment, with the reason an operator can act on."""

    tile_id: str
    path: Path
    code: str
    reason: str

    def row(self, now: datetime) -> dict[str, object]:
        """The `tile_quarantine` table row."""
        return {"tile_id": self.tile_id, "path": str(self.path), "code": self.code, "reason": self.reason,
                "quarantined_at": now}

    def summary(self) -> dict[str, str]:
        return {"tile": self.path.name, "code": self.code, "reason": self.reason}


def quarantine(path: Path, exc: Exception, checksum: str | None) -> QuarantinedTile:
    """The quarantine record for ``path``; keyed by its bytes like `tiles`, by its path if unreadable."""
    tile_id = "t-" + checksum[:16] if checksum else "p-" + hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]
    code = getattr(exc, "code", None) or ("unreadable" if not isinstance(exc, ImageryError) else "invalid")
    reason = str(exc) if isinstance(exc, ImageryError) else f"{path} could not be read ({exc}); re-download it"
    return QuarantinedTile(tile_id=tile_id, path=path, code=code, reason=reason)


@dataclass(frozen=True)
class TileTags:
    acquired_on: date | None  # None: no ACQUISITION_DATE tag (the file name may carry the date)
    cloud_fraction: float | None  # None: no CLOUD_FRACTION tag (the nodata share stands in)


def parse_tags(tags: dict[str, str], path: Path, *, today: date | None = None) -> TileTags:
    """ACQUISITION_DATE and CLOUD_FRACTION, refused (not guessed around) when present but wrong."""
    today = today or datetime.now(timezone.utc).date()  # acquisition dates are UTC
    acquired_on = None
    raw_date = tags.get("ACQUISITION_DATE")
    if raw_date is not None:
        text = raw_date.strip()
        try:
            if not _ISO_DATE.match(text):
                raise ValueError(text)
            acquired_on = date.fromisoformat(text[:10])
        except ValueError:
            raise TileQualityError("bad_tag", f"{path.name}: ACQUISITION_DATE tag {raw_date!r} is not a date; "
                                   "set it to YYYY-MM-DD (gdal_edit.py -mo ACQUISITION_DATE=2016-09-21)") from None
        if acquired_on > today:
            raise TileQualityError("bad_tag", f"{path.name}: ACQUISITION_DATE {acquired_on} is in the future "
                                   f"(today is {today}); correct the tag")
    cloud = None
    raw_cloud = tags.get("CLOUD_FRACTION")
    if raw_cloud is not None:
        try:
            cloud = float(raw_cloud.strip())
        except ValueError:
            cloud = math.nan
        if not (math.isfinite(cloud) and 0.0 <= cloud <= 1.0):
            raise TileQualityError("bad_tag", f"{path.name}: CLOUD_FRACTION tag {raw_cloud!r} is not a fraction "
                                   "between 0 and 1; set it to the cloudy share of the tile (e.g. 0.12) or remove it")
    return TileTags(acquired_on=acquired_on, cloud_fraction=cloud)


@dataclass
class PixelStats:
    """Counts over every pixel and an even sample of the clear ones, gathered block by block."""

    stride: int
    nodata: float
    scale: float  # divide by this for reflectance 0..1
    pixels: int = 0
    nodata_pixels: int = 0  # every band nodata, or any band not finite
    samples: list[np.ndarray] = field(default_factory=list)

    @classmethod
    def for_tile(cls, width: int, height: int, dtype: str, nodata: float | None, settings: Settings) -> PixelStats:
        stride = max(1, int(math.sqrt(width * height / max(1, settings.tile_sample_pixels))))
        scale = 10000.0 if np.dtype(dtype).kind in "ui" else 1.0
        return cls(stride=stride, nodata=nodata if nodata is not None else 0, scale=scale)

    def add(self, block: np.ndarray) -> None:
        """Count one (bands, rows, cols) block and keep its sampled clear pixels."""
        invalid = np.all(block == self.nodata, axis=0)
        if block.dtype.kind == "f":
            invalid |= ~np.all(np.isfinite(block), axis=0)
        self.pixels += invalid.size
        self.nodata_pixels += int(invalid.sum())
        sub = block[:, :: self.stride, :: self.stride]
        clear = ~invalid[:: self.stride, :: self.stride] & np.all(sub != self.nodata, axis=0)
        if clear.any():
            self.samples.append(sub[:, clear].astype(np.float64) / self.scale)

    @property
    def nodata_fraction(self) -> float:
        return self.nodata_pixels / self.pixels if self.pixels else 1.0

    def sample(self) -> np.ndarray:
        """(bands, n) reflectance of the sampled clear pixels."""
        return np.concatenate(self.samples, axis=1) if self.samples else np.zeros((0, 0))


def check_pixels(stats: PixelStats, path: Path, bands: Sequence[str], dtype: str, cloud_tag: float | None,
                 settings: Settings) -> None:
    """Refuse a tile whose pixels are not surface reflectance one can judge fields by."""
    name = path.name
    valid = 1.0 - stats.nodata_fraction
    if valid < settings.tile_min_valid_fraction:
        raise TileQualityError("valid_pixels", f"{name}: only {valid:.1%} of the pixels hold data (nodata or NaN "
                               f"elsewhere), below the {settings.tile_min_valid_fraction:.0%} needed; re-export the "
                               "scene or drop it")
    refl = stats.sample()
    if refl.size == 0:
        return
    lo, hi = np.percentile(refl, [1, 99])
    integer = np.dtype(dtype).kind in "ui"
    if hi > settings.tile_max_reflectance:
        what = (f"values reach {hi * stats.scale:,.0f}, i.e. reflectance {hi:.1f}: not reflectance x 10000 "
                "(raw digital numbers or another scale)" if integer else
                f"float values reach {hi:,.1f}: a float tile must hold reflectance 0-1 (this looks like digital "
                "numbers, e.g. reflectance x 10000)")
        raise TileQualityError("scale", f"{name}: {what}; export Sentinel-2 L2A surface reflectance as uint16 "
                               "x 10000 or float 0-1")
    if hi < settings.tile_min_bright_reflectance:
        what = (f"values only reach {hi * stats.scale:,.0f} (an 8-bit picture, 0-255?)" if integer else
                f"float values only reach {hi:.4f} (scaled twice?)")
        raise TileQualityError("scale", f"{name}: {what}; nothing on the ground is that dark in every band: "
                               "export surface reflectance as uint16 x 10000 or float 0-1")
    darkest = float(np.percentile(refl.min(axis=0), 1))
    if integer and darkest > settings.tile_max_darkest_reflectance:
        raise TileQualityError("offset", f"{name}: even the darkest band of nearly every clear pixel is above "
                               f"{darkest * stats.scale:,.0f} (reflectance {darkest:.2f}; real scenes have water, shade "
                               "or vegetation under 500): a Sentinel-2 L2A product of processing baseline 04.00 or "
                               "later (reflectance x 10000 + 1000) or a tile under cloud; subtract the 1000 offset "
                               "(BOA_ADD_OFFSET) when exporting, or drop the cloudy scene")
    if lo < settings.tile_min_reflectance:
        raise TileQualityError("range", f"{name}: values go down to {lo:.2f}; reflectance cannot be negative: "
                               "check the offset applied when the tile was exported")
    for i, band in enumerate(bands[: refl.shape[0]]):
        if float(refl[i].std()) < settings.tile_min_band_std:
            raise TileQualityError("band_stats", f"{name}: band {band} has the same value ({refl[i, 0] * stats.scale:g}) "
                                   "at every clear pixel: a fill, not an image; re-export the tile")
    if cloud_tag is not None and {"red", "green", "blue"} <= set(bands):
        seen = float(cloud_mask(refl[:, :, None].astype(np.float32), bands)[:, 0].mean()) * valid
        if seen > cloud_tag + settings.tile_cloud_tag_tolerance:
            raise TileQualityError("cloud_tag", f"{name}: the CLOUD_FRACTION tag says {cloud_tag:.0%} but {seen:.0%} "
                                   "of the tile is bright, colourless cloud; mask the clouds as nodata or correct the tag")
