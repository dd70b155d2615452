"""What the imagery says inside each claimed polygon: coverage, farmland, planted area, crop.

Tiles are grouped by pixel grid (CRS + transform + shape) so that a per-pixel season (maximum
NDVI) can be built; each claim is observed on the grid that covers it on the most dates. Reads
are windowed to the claim's bounding box, so the cost follows the claims, not the tile size.
"""

from __future__ import annotations

from collections import defaultdict
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import rasterio.windows
import shapely
from rasterio.features import geometry_mask
from rasterio.windows import Window

from assets import boundary as bnd
from assets.config import Settings
from assets.fields.geometry import reproject
from assets.imagery.blockcache import shared_cache
from assets.imagery.index import TileRecord
from assets.imagery.masks import usable_mask
from assets.imagery.tiles import TileHandle, open_tile, read_reflectance
from assets.models import legend, seasons
from assets.models.crop import CropModel
from assets.models.seasons import SEASON_END_DAY, SEASON_FIRST_DAY, make_season


@dataclass(frozen=True)
class DateObservation:
    tile_id: str
    observed_on: date
    valid_fraction: float
    ndvi_mean: float | None
    ndvi_p10: float | None
    ndvi_p90: float | None


@dataclass
class ClaimObservation:
    """Everything verification needs from imagery, with the ids of what produced it."""

    claim_id: str
    coverage_fraction: float  # share of the claim inside the chosen grid's footprint
    dates: list[DateObservation] = field(default_factory=list)
    farmland_fraction: float | None = None
    planted_fraction: float | None = None
    crop_probs: dict[str, float] = field(default_factory=dict)
    boundary: bnd.BoundaryAgreement | None = None  # the drawing against the detected fields
    min_valid_fraction: float = 0.5  # a date counts when this share of the field is clear (`Settings.date_min_valid_fraction`)
    season_year: int | None = None  # the season the crop model was shown (`season_year_of`)

    @property
    def tile_ids(self) -> list[str]:
        return [d.tile_id for d in self.dates]

    @property
    def usable_dates(self) -> list[DateObservation]:
        return [d for d in self.dates if d.valid_fraction >= self.min_valid_fraction and d.ndvi_mean is not None]

    @property
    def season_dates(self) -> list[DateObservation]:
        """The usable dates inside the season the crop model was shown (all usable ones when no crop
        call was made): what a verdict may say its crop was confirmed by."""
        if self.season_year is None:
            return self.usable_dates
        first = date(self.season_year, 1, 1) + timedelta(days=SEASON_FIRST_DAY)
        last = date(self.season_year, 1, 1) + timedelta(days=SEASON_END_DAY)
        return [d for d in self.usable_dates if first <= d.observed_on <= last]

    @property
    def crop(self) -> tuple[str | None, float]:
        if not self.crop_probs:
            return None, 0.0
        name = max(self.crop_probs, key=self.crop_probs.__getitem__)
        return name, self.crop_probs[name]

    @property
    def cropland_probability(self) -> float:
        """P(farmland): crops, fallow and managed grass of the legend (not forest, water, buildings)."""
        return float(sum(p for c, p in self.crop_probs.items() if legend.is_farmland(c)))


def _grid_key(t: TileRecord) -> tuple:
    return (t.crs, t.width, t.height, tuple(round(b, 3) for b in t.bounds))


def group_by_grid(tiles: Iterable[TileRecord]) -> list[list[TileRecord]]:
    """Tiles per pixel grid in date order, one per date: a scene delivered twice in other bytes (a
    re-export, another compression) is one observation, the clearer copy (on a tie the smaller tile id),
    not a repeated date that would stop every later night."""
    groups: dict[tuple, dict[date, TileRecord]] = defaultdict(dict)
    for t in tiles:
        same_day = groups[_grid_key(t)]
        kept = same_day.get(t.acquired_on)
        if kept is None or _clearness(t) < _clearness(kept):
            same_day[t.acquired_on] = t
    return [sorted(g.values(), key=lambda t: t.acquired_on) for g in groups.values()]


def _clearness(t: TileRecord) -> tuple[float, str]:
    return (round(max(t.cloud_fraction, t.nodata_fraction), 3), t.tile_id)


def reference_tile(group: Sequence[TileRecord]) -> TileRecord:
    """The clearest tile of a grid (latest on ties): what segmentation looks at.

    Clear means neither cloudy by its tag nor empty by its own pixels, so a tile tagged clean but
    mostly nodata/NaN cannot win; tiles failing the quality gate never reach this point.
    """
    return min(group, key=lambda t: (round(max(t.cloud_fraction, t.nodata_fraction), 3), -t.acquired_on.toordinal()))


def observe_claims(
    claims: dict[str, shapely.Geometry],
    tiles: Sequence[TileRecord],
    segmentations: dict[str, Path],
    crop_model: CropModel,
    settings: Settings | None = None,
) -> dict[str, ClaimObservation]:
    """Observe each claim (EPSG:4326 geometry by claim id) on the tiles that cover it.

    ``segmentations`` maps the reference tile of each grid (see `reference_tile`) to its
    class-probability GeoTIFF (background, field, boundary), written once per tile and model.
    Each tile is opened once, however many claims it holds. ``settings`` holds the boundary
    thresholds (defaults when None).
    """
    settings = settings or Settings()
    groups = group_by_grid(tiles)
    out: dict[str, ClaimObservation] = {}
    assigned: dict[int, list[tuple[str, shapely.Geometry, float]]] = defaultdict(list)
    for cid, geom in claims.items():
        locals_ = [reproject(geom, "EPSG:4326", group[0].crs) for group in groups]
        coverages = [local.intersection(shapely.box(*group[0].bounds)).area / local.area
                     for local, group in zip(locals_, groups)]
        gi = best_grid([(c, len(g)) for c, g in zip(coverages, groups)])
        coverage = 0.0 if gi is None else min(1.0, round(coverages[gi], 6))
        if gi is None or coverage < settings.min_imagery_coverage:
            out[cid] = ClaimObservation(claim_id=cid, coverage_fraction=coverage,
                                        min_valid_fraction=settings.date_min_valid_fraction)
            continue
        assigned[gi].append((cid, locals_[gi], coverage))
    series: list[tuple[str, np.ndarray, np.ndarray, list[date]]] = []
    for gi, members in assigned.items():
        group = groups[gi]
        ref = reference_tile(group)
        with ExitStack() as stack:
            seg = stack.enter_context(rasterio.open(segmentations[ref.tile_id]))
            handles = [stack.enter_context(open_tile(t.path)) for t in group]
            for cid, local, coverage in members:
                obs, bands, mask, days = _observe_on_grid(cid, local, group, handles, seg, settings)
                obs.coverage_fraction = coverage
                out[cid] = obs
                if mask.any():
                    series.append((cid, bands, mask, days))
    if series:
        _classify(series, crop_model, out, settings)
    return out


# Tile band names -> Sentinel-2 names, in the order the season arrays carry them: the four bands
# every tile has, then red edge and SWIR, read when every tile of a grid has them.
SEASON_BANDS: dict[str, str] = {"blue": "B02", "green": "B03", "red": "B04", "nir": "B08"}
EXTENDED_BANDS: dict[str, str] = {"re1": "B05", "re2": "B06", "re3": "B07", "swir1": "B11", "swir2": "B12"}


def season_bands(handles: Sequence[TileHandle]) -> dict[str, str]:
    """The bands a grid's season is read with: the extended set only when every tile has it."""
    if all(set(EXTENDED_BANDS) <= set(h.bands) for h in handles):
        return {**SEASON_BANDS, **EXTENDED_BANDS}
    return dict(SEASON_BANDS)


def best_grid(candidates: Sequence[tuple[float, int]]) -> int | None:
    """Which grid a field is read on, from each grid's (coverage, dates): the best coverage, to the
    tenth of a percent, then the most dates. Rounded: reprojection leaves 1.0000000000000002 on a tile
    of another CRS, and that noise must not pick a grid of one date over one of ten (QA 2026-12-08:
    two verified fields lost their limits); a grid holding the whole field still beats one holding
    96 % of it with more dates (the rest would not be verified, `outside_imagery`)."""
    if not candidates:
        return None

    def rank(i: int) -> tuple[float, int, int]:
        return round(candidates[i][0], 3), candidates[i][1], -i

    return max(range(len(candidates)), key=rank)


def season_year_of(days: Sequence[date], clear: np.ndarray, turn_days: int) -> int:
    """The season a field's series is classified as: `seasons.season_year_of` (the one rule, also
    of `assets crop predict|evaluate`) over its clear dates. Each field's season is its own,
    whatever other fields are assessed beside it (the model's frame, day -180 to 410 of that year,
    still takes an autumn-sown crop's first months)."""
    seen = [d for d, ok in zip(days, clear) if ok]
    return seasons.season_year_of(seen or list(days), turn_days)


def _classify(series: list[tuple[str, np.ndarray, np.ndarray, list[date]]], crop_model: CropModel,
              out: dict[str, ClaimObservation], settings: Settings) -> None:
    """Batched crop-model calls on each field's per-date band means at their real dates.

    Fields read with the extended bands and those read with the four core bands go in separate
    batches, so a 4-band grid never marks a 9-band one's dates as incomplete.
    """
    by_kind: dict[tuple[int, int], list[tuple[str, np.ndarray, np.ndarray, list[date]]]] = defaultdict(list)
    for r in series:
        by_kind[(r[1].shape[1], season_year_of(r[3], r[2], settings.season_turn_days))].append(r)
    for (n_bands, year), batch in sorted(by_kind.items()):
        names = list({**SEASON_BANDS, **EXTENDED_BANDS}.values())[:n_bands]
        t_max = max(len(r[1]) for r in batch)
        x = np.full((len(batch), t_max, n_bands), np.nan, np.float32)
        dates = np.full((len(batch), t_max), "", dtype=object)
        for i, (_, bands, usable, days) in enumerate(batch):
            x[i, : len(bands)][usable] = bands[usable]
            dates[i, : len(days)] = [d.isoformat() for d in days]
        probs = crop_model.predict_proba(make_season(x, names, dates, season_year=year))
        for (cid, *_), p in zip(batch, probs):
            out[cid].crop_probs = {c: float(v) for c, v in zip(crop_model.classes, p)}
            out[cid].season_year = year


def _observe_on_grid(
    cid: str, local: shapely.Geometry, group: Sequence[TileRecord], handles: Sequence[TileHandle],
    seg: rasterio.io.DatasetReader, settings: Settings,
) -> tuple[ClaimObservation, np.ndarray, np.ndarray, list[date]]:
    first = group[0]
    window = rasterio.windows.from_bounds(*local.bounds, transform=seg.transform).round_offsets().round_lengths()
    pad = int(np.ceil(settings.boundary_window_pad_m / abs(seg.transform.a)))  # whole neighbouring fields
    window = Window(window.col_off - pad, window.row_off - pad, window.width + 2 * pad, window.height + 2 * pad)
    window = window.intersection(Window(0, 0, first.width, first.height))
    field_prob = field_probability(seg, window)
    win_transform = rasterio.windows.transform(window, seg.transform)
    shape = (int(window.height), int(window.width))
    inside = geometry_mask([local], out_shape=shape, transform=win_transform, invert=True, all_touched=False)
    if not inside.any():  # thinner than a pixel: take the pixels it touches
        inside = geometry_mask([local], out_shape=shape, transform=win_transform, invert=True, all_touched=True)
    farmland = inside & (field_prob >= settings.field_pixel_probability)
    n_inside = int(inside.sum())
    obs = ClaimObservation(claim_id=cid, coverage_fraction=1.0, min_valid_fraction=settings.date_min_valid_fraction)
    season_max = np.full(shape, -1.0, np.float32)
    band_means, mask_series, days, ndvis = [], [], [], []
    wanted = season_bands(handles)
    # Crop evidence comes from farmland pixels when the claim has enough of them.
    zone = farmland if farmland.sum() >= max(4, 0.2 * n_inside) else inside
    for tile, handle in zip(group, handles):
        if not set(SEASON_BANDS) <= set(handle.bands):
            continue  # an RGB-only tile says nothing about the canopy
        refl, valid = read_reflectance(handle, list(wanted), window=window,
                                       cache=shared_cache(settings.tile_cache_bytes))
        # Cloud left in the pixels (raw L2A scenes do not write it as nodata) is not a clear
        # observation: the crop model was trained with clouds masked, and a cloud reads as bare soil.
        valid = usable_mask(refl, valid, list(wanted))
        red, nir = refl[2], refl[3]
        with np.errstate(divide="ignore", invalid="ignore"):
            ndvi = np.where(valid, (nir - red) / np.maximum(nir + red, 1e-6), np.nan)
        ndvis.append(ndvi.astype(np.float32))
        clear = inside & valid
        valid_fraction = float(clear.sum() / n_inside) if n_inside else 0.0
        picked = zone & valid
        vals = ndvi[picked]
        if vals.size:
            obs.dates.append(DateObservation(tile.tile_id, tile.acquired_on, valid_fraction,
                                             float(vals.mean()), float(np.percentile(vals, 10)), float(np.percentile(vals, 90))))
            season_max = np.where(clear, np.fmax(season_max, np.nan_to_num(ndvi, nan=-1.0)), season_max)
        else:
            obs.dates.append(DateObservation(tile.tile_id, tile.acquired_on, valid_fraction, None, None, None))
        usable = valid_fraction >= settings.date_min_valid_fraction and vals.size > 0
        band_means.append(refl[:, picked].mean(axis=1) if usable else np.full(len(wanted), np.nan))
        mask_series.append(usable)
        days.append(tile.acquired_on)
    obs.farmland_fraction = float(farmland.sum() / n_inside) if n_inside else 0.0
    obs.planted_fraction = float((farmland & (season_max >= settings.planted_ndvi)).sum() / n_inside) if n_inside else 0.0
    obs.boundary = _boundary(seg, window, inside, np.stack(ndvis) if ndvis else None, settings)
    means = np.array(band_means, np.float32).reshape(len(band_means), len(wanted))
    return obs, means, np.array(mask_series, bool), days


def _boundary(seg: rasterio.io.DatasetReader, window: Window, inside: np.ndarray, ndvi: np.ndarray | None,
              settings: Settings) -> bnd.BoundaryAgreement | None:
    """The drawing against the field instances found in its (padded) window; None without the
    three class bands (a single-band probability raster has no boundary class to split fields by)."""
    if seg.count < 3:
        return None
    labels = bnd.field_instances(seg.read([1, 2, 3], window=window), ndvi, settings)
    return bnd.measure(inside, labels, ndvi, settings)


def field_probability(seg: rasterio.io.DatasetReader, window: Window) -> np.ndarray:
    """P(field interior or boundary) in ``window`` of a probability raster (float or uint8 x 255)."""
    bands = [2, 3] if seg.count >= 3 else [1]
    probs = seg.read(bands, window=window).astype(np.float32)
    if seg.dtypes[0] == "uint8":
        probs /= 255.0
    return probs.sum(axis=0)
