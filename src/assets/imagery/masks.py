"""Which pixels may hold a field: nodata, cloud and water masks applied around segmentation.

The bundled tiles already write clouds as nodata, but raw Level-2A scenes do not, so a
conservative brightness/whiteness test flags thick clouds too: a cloud is bright in all visible
bands at once and nearly colourless, which bare soil (red-brown), crops (green) and water (dark)
are not. Thin haze is not caught; it does not hide field boundaries.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

#: Mean visible reflectance above which a colourless pixel counts as cloud.
CLOUD_BRIGHTNESS = 0.30
#: (max - min) / mean of the visible bands below which a pixel is "colourless".
CLOUD_WHITENESS = 0.20


def cloud_mask(refl: np.ndarray, bands: Sequence[str], *, brightness: float = CLOUD_BRIGHTNESS,
               whiteness: float = CLOUD_WHITENESS) -> np.ndarray:
    """True where a pixel looks like thick cloud (needs red, green, blue among ``bands``)."""
    idx = [list(bands).index(b) for b in ("red", "green", "blue")]
    vis = refl[idx]
    mean = vis.mean(axis=0)
    spread = vis.max(axis=0) - vis.min(axis=0)
    return (mean > brightness) & (spread < whiteness * np.maximum(mean, 1e-6))


#: McFeeters NDWI (green - nir) / (green + nir) above which a pixel is open water.
WATER_NDWI = 0.1


def water_mask(green: np.ndarray, nir: np.ndarray, *, threshold: float = WATER_NDWI) -> np.ndarray:
    """True on open water (rivers, lakes): never farmland. Needs NIR, so only used when a tile has it.

    The RGB-only model was trained on a scene without large water bodies and can mistake a
    bright, turbid river for a bare field; water's near-zero NIR makes the spectral test reliable.
    """
    g = green.astype(np.float32)
    n = nir.astype(np.float32)
    return (g - n) > threshold * np.maximum(g + n, 1e-6)


def usable_mask(refl: np.ndarray, valid: np.ndarray, bands: Sequence[str], *, clouds: bool = True,
                grow_px: int = 2) -> np.ndarray:
    """Valid (not nodata) and not cloud; clouds are grown by ``grow_px`` to cover their soft edges."""
    usable = valid.copy()
    if clouds:
        cm = cloud_mask(refl, bands) & valid
        if cm.any():
            if grow_px > 0:
                from scipy import ndimage

                cm = ndimage.binary_dilation(cm, iterations=grow_px)
            usable &= ~cm
    return usable


def apply_mask(probs: np.ndarray, usable: np.ndarray) -> np.ndarray:
    """Force unusable pixels to certain background (1, 0, 0) in place: no field is ever invented there."""
    bad = ~usable
    if bad.any():
        probs[0][bad] = 1.0
        probs[1][bad] = 0.0
        probs[2][bad] = 0.0
    return probs
