"""Boundary agreement: does a drawing follow the fields the imagery shows?

A farmer draws a polygon; the segmentation finds field instances. An honest drawing lies on one
detected field (all of it, or a part such as half a field) or on a few whole neighbouring
fields. A fraudulent one is *inflated* (a whole field plus the neighbours' land and the road:
valued at the field's area) or follows no field at all (moved across several fields: sent to a
credit officer, never to a limit).

Instances come from the segmentation's interior seeds split wherever the per-pixel season
changes: one field is one crop, so neighbouring fields the network merged still separate when
their NDVI trajectories differ. Everything here is numpy on one window; no I/O.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from assets.config import Settings
from assets.fields.polygonize import label_masks, seed_and_extent

MATCH, INFLATED, MISMATCH, NO_FIELDS = "match", "inflated", "mismatch", "no_fields"


def ndvi_stack(red_nir: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> np.ndarray:
    """(T, H, W) NDVI from per-date (red, nir, valid) arrays, NaN where a pixel is not clear."""
    out = []
    for red, nir, valid in red_nir:
        with np.errstate(divide="ignore", invalid="ignore"):
            out.append(np.where(valid, (nir - red) / np.maximum(nir + red, 1e-6), np.nan).astype(np.float32))
    return np.stack(out) if out else np.zeros((0, 0, 0), np.float32)


def season_edges(ndvi: np.ndarray) -> np.ndarray:
    """Per pixel, the largest RMS NDVI difference (over dates both are clear) to a 4-neighbour.

    Inside one field this is the texture (~0.02); between two crops it is the gap between
    their seasons (0.1-0.7). Pixels with no common clear date count as 0 (no evidence)."""
    if ndvi.ndim != 3 or ndvi.shape[0] == 0:
        return np.zeros(ndvi.shape[1:] if ndvi.ndim == 3 else (0, 0), np.float32)
    _, h, w = ndvi.shape
    edge = np.zeros((h, w), np.float32)
    for dy, dx in ((0, 1), (1, 0)):
        a, b = ndvi[:, : h - dy, : w - dx], ndvi[:, dy:, dx:]
        diff = (a - b) ** 2
        n = np.sum(~np.isnan(diff), axis=0)
        with np.errstate(invalid="ignore"):
            d = np.sqrt(np.where(n > 0, np.nansum(diff, axis=0) / np.maximum(n, 1), 0.0)).astype(np.float32)
        np.maximum(edge[: h - dy, : w - dx], d, out=edge[: h - dy, : w - dx])
        np.maximum(edge[dy:, dx:], d, out=edge[dy:, dx:])
    return edge


def _near(mask: np.ndarray) -> np.ndarray:
    """``mask`` grown by one pixel in all 8 directions (within one pixel of a True pixel)."""
    p = np.pad(mask, 1)
    h, w = mask.shape
    out = mask.copy()
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            out |= p[dy:dy + h, dx:dx + w]
    return out


def _erode(mask: np.ndarray) -> np.ndarray:
    """Pixels of ``mask`` whose four neighbours are all in it."""
    p = np.pad(mask, 1)
    return mask & p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:]


def _label_edges(labels: np.ndarray) -> np.ndarray:
    """Pixels with a 4-neighbour of another label (field against field, road or wood); the
    window's own border does not count, since a field may go on beyond it."""
    edge = np.zeros(labels.shape, bool)
    for dy, dx in ((0, 1), (1, 0)):
        h, w = labels.shape[0] - dy, labels.shape[1] - dx
        d = labels[:h, :w] != labels[dy:, dx:]
        edge[:h, :w] |= d
        edge[dy:, dx:] |= d
    return edge


def outer_rim(labels: np.ndarray) -> np.ndarray:
    """Field pixels within one pixel (8 directions) of land with no field: the mixed pixels a
    field's outer edge runs through (its edge against a touching field is not outer)."""
    return (labels > 0) & _near(labels == 0)


def edge_contrast(inside: np.ndarray, labels: np.ndarray, interior_px: int = 3) -> float | None:
    """How much more the drawing's rim runs along detected field edges than its interior does.

    An edge pixel is one whose label differs from a 4-neighbour's (field against field, road or
    wood). Over-segmented fields have edges inside too, so the score is a contrast: the share of
    rim pixels within one pixel of an edge minus the same share over the interior (pixels at
    least ``interior_px`` inside the rim). A drawing of a field, or of half of one, keeps most of
    its rim on edges (0.5-1); one moved across fields cuts through them (about 0-0.3). None when
    the drawing has no interior to compare with (a few pixels wide)."""
    near = _near(_label_edges(labels))
    rim = inside & ~_erode(inside)
    interior = inside
    for _ in range(interior_px):
        interior = _erode(interior)
    if not rim.any() or not interior.any():
        return None
    return float(near[rim].mean() - near[interior].mean())


def field_instances(probs: np.ndarray, ndvi: np.ndarray | None, settings: Settings) -> np.ndarray:
    """(3, H, W) class probabilities (+ (T, H, W) NDVI) -> (H, W) int32 field labels, 0 = none.

    Seeds are field-extent pixels that are neither the network's boundary class nor on a season
    edge; their 4-connected components grow back into the extent (`label_masks`)."""
    _, extent = seed_and_extent(probs, None)
    p = probs.astype(np.float32) / (255.0 if probs.dtype == np.uint8 else 1.0)
    seeds = extent & (p[2] < np.maximum(p[0], p[1]))
    if ndvi is not None and ndvi.size:
        seeds &= season_edges(ndvi) < settings.boundary_season_edge
    return label_masks(seeds, extent, min_seed_px=settings.boundary_min_seed_px)


@dataclass(frozen=True)
class FieldCover:
    """One detected field the drawing meets."""

    field_px: int  # pixels of the detected field in the window
    inside_px: int  # of them, inside the drawing
    inside_rim_px: int = 0  # of those, on its outer rim (within a pixel of land with no field)

    @property
    def cover(self) -> float:
        """Share of the field inside the drawing (1 = the drawing holds the whole field)."""
        return self.inside_px / self.field_px if self.field_px else 0.0

    def inside_area_px(self, rim_weight: float) -> float:
        """The field's area inside the drawing in pixels, its outer-rim pixels counted ``rim_weight``.

        A rim pixel is a mixed pixel (the field's edge runs through it): counted whole, every
        detected field carries part of a ring of verge, which a drawing inflated around the field
        would be paid for (`Settings.boundary_rim_weight` says how it was measured)."""
        return self.inside_px - (1.0 - rim_weight) * self.inside_rim_px


@dataclass(frozen=True)
class BoundaryAgreement:
    """How a drawing sits on the detected fields, in pixels of the imagery's grid."""

    drawing_px: int
    fields: tuple[FieldCover, ...] = ()  # largest share of the drawing first
    season_spread: float = 0.0  # share of the drawing's field pixels off its main field's season
    season_dates: int = 0  # dates the seasons were compared on
    edge_contrast: float | None = None  # rim on detected edges minus interior on them (`edge_contrast`)

    def share(self, f: FieldCover) -> float:
        return f.inside_px / self.drawing_px if self.drawing_px else 0.0

    def area_share(self, f: FieldCover, rim_weight: float) -> float:
        """Share of the drawing's area on field ``f``, its mixed rim pixels counted ``rim_weight``."""
        return f.inside_area_px(rim_weight) / self.drawing_px if self.drawing_px else 0.0

    @property
    def off_field_fraction(self) -> float:
        """Share of the drawing on no detected field: field edges, roads, buildings, woods, water."""
        on = sum(f.inside_px for f in self.fields)
        return 1.0 - on / self.drawing_px if self.drawing_px else 0.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["fields"] = [{"field_px": f.field_px, "inside_px": f.inside_px, "inside_rim_px": f.inside_rim_px,
                        "cover": round(f.cover, 3), "share": round(self.share(f), 3)} for f in self.fields[:8]]
        d["off_field_fraction"] = round(self.off_field_fraction, 3)
        d["season_spread"] = round(self.season_spread, 3)
        d["edge_contrast"] = None if self.edge_contrast is None else round(self.edge_contrast, 3)
        return d


def measure(inside: np.ndarray, labels: np.ndarray, ndvi: np.ndarray | None, settings: Settings) -> BoundaryAgreement:
    """Which detected fields the drawing (``inside`` mask) covers, how much of each, how many
    seasons its field pixels follow and whether its rim runs along field edges."""
    n = int(inside.sum())
    if n == 0:
        return BoundaryAgreement(drawing_px=0)
    ids, inside_px = np.unique(labels[inside], return_counts=True)
    keep = ids > 0
    ids, inside_px = ids[keep], inside_px[keep]
    totals = np.bincount(labels.ravel(), minlength=int(labels.max()) + 1)
    rim_inside = np.bincount(labels[inside & outer_rim(labels)], minlength=totals.size)
    order = np.argsort(-inside_px, kind="stable")
    fields = tuple(FieldCover(int(totals[ids[i]]), int(inside_px[i]), int(rim_inside[ids[i]])) for i in order)
    spread, n_dates = 0.0, 0
    if fields and ndvi is not None and ndvi.size:
        spread, n_dates = _season_spread(inside & (labels > 0), inside & (labels == ids[order[0]]), ndvi, settings)
    return BoundaryAgreement(drawing_px=n, fields=fields, season_spread=spread, season_dates=n_dates,
                             edge_contrast=edge_contrast(inside, labels))


def _season_spread(on_fields: np.ndarray, main: np.ndarray, ndvi: np.ndarray, settings: Settings,
                   candidates: int = 48) -> tuple[float, int]:
    """Share of ``on_fields`` pixels whose season is further than `boundary_season_rms` from the
    drawing's commonest season (dates clear on most of the drawing only).

    The commonest season is the candidate pixel of the ``main`` field with the most pixels near
    it: a median would sit between two crops and call every pixel an outlier."""
    pix = ndvi[:, on_fields]  # (T, n)
    clear = np.mean(~np.isnan(pix), axis=1) >= 0.5
    if clear.sum() < 3 or not main.any():
        return 0.0, int(clear.sum())
    pix = pix[clear]
    main_pix = ndvi[clear][:, main]
    picks = main_pix[:, np.linspace(0, main_pix.shape[1] - 1, min(candidates, main_pix.shape[1])).astype(int)]
    best = None
    with np.errstate(invalid="ignore"):
        for ref in picks.T:
            rms = np.sqrt(np.nanmean((pix - ref[:, None]) ** 2, axis=0))
            far = float(np.mean(rms[~np.isnan(rms)] > settings.boundary_season_rms)) if (~np.isnan(rms)).any() else 0.0
            best = far if best is None else min(best, far)
    return float(best or 0.0), int(clear.sum())


@dataclass(frozen=True)
class BoundaryJudgement:
    """What the agreement means for the claim: ``kind`` is match | inflated | mismatch | no_fields;
    ``field_fraction`` is the share of the drawing that may be valued: for an inflated drawing the
    field(s) it follows, for a match all but the neighbouring fields it bites into;
    ``code``/``message`` become the claim's reason."""

    kind: str
    field_fraction: float = 1.0
    code: str = "ok"
    message: str = ""
    details: dict[str, Any] = field(default_factory=dict)


def _off_neighbours(b: BoundaryAgreement, others: tuple[FieldCover, ...], settings: Settings) -> float:
    """Share of a matching drawing not on neighbouring fields it only partly covers: a drawing
    that follows its field but bites into the next one is not valued for the bite (that land is
    the neighbour's, pledged or not)."""
    return 1.0 - sum(b.share(f) for f in others if f.cover < settings.boundary_whole_field_min)


def _within_whole_fields(match: BoundaryJudgement, b: BoundaryAgreement, whole: list[FieldCover],
                         settings: Settings) -> BoundaryJudgement:
    """A matching drawing that holds whole detected fields is valued at most at their area, plus
    `Settings.boundary_match_slack`: a ring of verge, hedge and road drawn around a field is not field
    (a 10 m ring added 21 % to one field's limit)."""
    if not whole or b.fields[0].cover < settings.boundary_whole_field_min:
        return match  # part of a field (half of it, say): nothing to measure the drawing by
    cap = sum(b.area_share(f, settings.boundary_rim_weight) for f in whole) * (1.0 + settings.boundary_match_slack)
    if cap >= match.field_fraction:
        return match
    return BoundaryJudgement(MATCH, cap, "boundary_verge",
                             f"the drawing runs {1 - cap / (1 + settings.boundary_match_slack):.0%} beyond the "
                             f"field{'s' if len(whole) > 1 else ''} the imagery shows (verges, hedges, roads or "
                             "neighbours' land); the field as the imagery shows it is valued", match.details)


def judge(b: BoundaryAgreement | None, settings: Settings) -> BoundaryJudgement:
    """Decide match / inflated / mismatch from an agreement (thresholds in `Settings.boundary_*`)."""
    if b is None or not b.fields:
        return BoundaryJudgement(NO_FIELDS)
    best = b.fields[0]
    within = b.share(best)
    whole = [f for f in b.fields if f.cover >= settings.boundary_whole_field_min]
    whole_share = sum(b.share(f) for f in whole)
    cut = [f for f in b.fields if f.cover < settings.boundary_whole_field_min
           and b.share(f) >= settings.boundary_cut_field_min]
    cut_share = sum(b.share(f) for f in cut)
    details = {"within_field": round(within, 3), "whole_fields": len(whole), "whole_field_share": round(whole_share, 3),
               "cut_fields": len(cut), "cut_field_share": round(cut_share, 3),
               "off_field": round(b.off_field_fraction, 3), "season_spread": round(b.season_spread, 3),
               "edge_contrast": None if b.edge_contrast is None else round(b.edge_contrast, 3)}
    mixed = b.season_spread > settings.boundary_max_season_spread
    unaligned = b.edge_contrast is not None and b.edge_contrast < settings.boundary_min_edge_contrast
    match = None
    if within >= settings.boundary_match_min and not mixed:
        match = BoundaryJudgement(MATCH, _off_neighbours(b, b.fields[1:], settings), details=details)
    elif whole_share >= settings.boundary_match_min and (len(whole) > 1 or not mixed):
        # a few whole neighbouring fields
        match = BoundaryJudgement(MATCH, _off_neighbours(b, b.fields, settings), details=details)
    if match is not None and not unaligned:
        return _within_whole_fields(match, b, whole, settings)
    if match is not None:
        return BoundaryJudgement(MISMATCH, match.field_fraction, "boundary_unaligned",
                                 f"the drawing lies on farmland but its edge does not follow the field edges the "
                                 f"imagery shows (edge agreement {b.edge_contrast:.2f}, honest drawings score over "
                                 f"{settings.boundary_min_edge_contrast:.1f}): it may be drawn across other fields; "
                                 "a credit officer will check it before any credit", details)
    if mixed and within >= settings.boundary_match_min:
        return BoundaryJudgement(MISMATCH, within, "mixed_seasons",
                                 f"the drawing lies on one detected field but {b.season_spread:.0%} of its pixels "
                                 "follow another season than the rest (one field is one crop): it looks like parts "
                                 "of several fields; a credit officer will check it before any credit", details)
    # An inflated drawing is valued at the whole fields that hold a real share of it: slivers it
    # swallows on the way (hedges, field corners, fragments of neighbours) are not the farmer's field.
    valued = [f for f in whole if b.share(f) >= settings.boundary_cut_field_min] or whole[:1]
    whole_share = sum(b.area_share(f, settings.boundary_rim_weight) for f in valued)
    if whole and whole_share >= settings.boundary_inflated_min and not cut:
        return BoundaryJudgement(INFLATED, whole_share, "boundary_inflated",
                                 f"the drawing is larger than the field the imagery shows: {len(valued)} detected "
                                 f"field(s) fill {whole_share:.0%} of it, the rest is {b.off_field_fraction:.0%} "
                                 f"field edges, roads or other land and {cut_share:.0%} neighbouring fields; only "
                                 "the detected field is valued", details)
    if whole and whole_share >= settings.boundary_inflated_min:
        return BoundaryJudgement(INFLATED, whole_share, "boundary_inflated",
                                 f"the drawing reaches beyond its field: {len(valued)} detected field(s) fill "
                                 f"{whole_share:.0%} of it and {cut_share:.0%} lies on {len(cut)} neighbouring "
                                 "field(s); only the detected field is valued", details)
    return BoundaryJudgement(MISMATCH, max(within, whole_share), "boundary_mismatch",
                             f"the boundary follows no field in the imagery: {cut_share:.0%} of the drawing lies on "
                             f"{len(cut)} field(s) it only partly covers and {b.off_field_fraction:.0%} on field "
                             "edges, roads or other land; a credit officer will check it before any credit", details)
