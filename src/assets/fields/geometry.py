"""Validate, reproject and measure field boundaries drawn by farmers.

A drawing is kept in EPSG:4326 (what web maps and GeoJSON speak) and measured in its local UTM
zone, where a square metre is a square metre. Problems are reported, never silently repaired:
a bow-tie drawing has no single meaning, so the farmer is asked to redraw it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import shapely
from pyproj import CRS, Transformer
from shapely.geometry import MultiPolygon, Polygon, shape
from shapely.validation import explain_validity

from assets.errors import GeometryError, InputError

M2_PER_HA = 10_000.0
MU_PER_HA = 15.0  # 1 mu = 666.67 m2, the unit Chinese farmers and banks use


class ClaimGeometryError(GeometryError):
    """A drawing that cannot be used; ``code`` is the machine-readable reason."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Drawing:
    """One polygon a farmer submitted, as parsed from GeoJSON (before validation)."""

    name: str
    geojson: dict[str, Any]  # the Feature's geometry, exactly as submitted


def ha_to_mu(area_ha: float) -> float:
    return area_ha * MU_PER_HA


@lru_cache(maxsize=64)
def utm_crs(lon: float, lat: float) -> CRS:
    """The WGS 84 / UTM zone containing (lon, lat)."""
    zone = int((lon + 180) // 6) % 60 + 1
    return CRS.from_epsg((32600 if lat >= 0 else 32700) + zone)


@lru_cache(maxsize=64)
def _transformer(src: str, dst: str) -> Transformer:
    return Transformer.from_crs(src, dst, always_xy=True)


def reproject(geom: shapely.Geometry, src_crs: str | CRS, dst_crs: str | CRS) -> shapely.Geometry:
    """Reproject a shapely geometry (axis order: x/lon first, always)."""
    t = _transformer(CRS.from_user_input(src_crs).to_string(), CRS.from_user_input(dst_crs).to_string())
    return shapely.transform(geom, t.transform, interleaved=False)


def to_utm(geom_wgs84: shapely.Geometry) -> tuple[shapely.Geometry, CRS]:
    c = geom_wgs84.centroid
    crs = utm_crs(round(c.x, 3), round(c.y, 3))
    return reproject(geom_wgs84, "EPSG:4326", crs), crs


def area_ha(geom_wgs84: shapely.Geometry) -> float:
    """Area in hectares, measured in the local UTM zone."""
    utm, _ = to_utm(geom_wgs84)
    return utm.area / M2_PER_HA


def read_drawings(source: str | Path | dict[str, Any]) -> list[Drawing]:
    """Polygons from a GeoJSON FeatureCollection, Feature or bare geometry (file path or dict)."""
    if isinstance(source, dict):
        doc = source
        label = "request body"
    else:
        path = Path(source)
        label = str(path)
        if not path.is_file():
            raise InputError(f"claim file {path} not found; pass a GeoJSON file of field polygons")
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InputError(f"{path} is not valid GeoJSON ({exc}); export the boundary as GeoJSON") from exc
    if not isinstance(doc, dict) or "type" not in doc:
        raise InputError(f"{label} is not GeoJSON (no 'type'); expected a FeatureCollection of polygons")
    if doc["type"] == "FeatureCollection":
        features = doc.get("features") or []
    elif doc["type"] == "Feature":
        features = [doc]
    else:
        features = [{"type": "Feature", "properties": {}, "geometry": doc}]
    if not features:
        raise InputError(f"{label} holds no features; draw at least one field boundary")
    drawings = []
    for i, feat in enumerate(features, start=1):
        if not isinstance(feat, dict) or not isinstance(feat.get("geometry"), dict):
            raise InputError(f"{label}: feature {i} has no geometry; every feature must be a polygon")
        props = feat.get("properties") or {}
        drawings.append(Drawing(name=str(props.get("name") or f"field {i}"), geojson=feat["geometry"]))
    return drawings


def validate_drawing(drawing: Drawing, *, min_area_ha: float, max_area_ha: float) -> Polygon | MultiPolygon:
    """The drawing as a valid EPSG:4326 polygon, or `ClaimGeometryError` naming what to fix."""
    gj = drawing.geojson
    if gj.get("type") not in ("Polygon", "MultiPolygon"):
        raise ClaimGeometryError(
            "not_a_polygon", f"'{drawing.name}' is a {gj.get('type')}; draw a closed field boundary (Polygon)"
        )
    try:
        geom = shape(gj)
    except Exception as exc:  # shapely raises several types for malformed coordinates
        raise ClaimGeometryError("malformed", f"'{drawing.name}' has malformed coordinates ({exc}); redraw it") from exc
    if geom.is_empty:
        raise ClaimGeometryError("empty", f"'{drawing.name}' is empty; draw at least three corners")
    minx, miny, maxx, maxy = geom.bounds
    if not (-180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90):
        raise ClaimGeometryError(
            "not_lon_lat",
            f"'{drawing.name}' has coordinates outside longitude/latitude range ({minx:.1f}, {miny:.1f}); "
            "send EPSG:4326 [longitude, latitude] pairs, not projected metres or swapped axes",
        )
    if not geom.is_valid:
        why = explain_validity(geom)
        code = "self_intersection" if "Self-intersection" in why or "Ring Self-intersection" in why else "invalid"
        raise ClaimGeometryError(
            code, f"'{drawing.name}' is not a simple field boundary ({why}); redraw it without crossing lines"
        )
    area = area_ha(geom)
    if area < min_area_ha:
        raise ClaimGeometryError(
            "too_small", f"'{drawing.name}' covers {area:.3f} ha, below the {min_area_ha} ha minimum; check the drawing"
        )
    if area > max_area_ha:
        raise ClaimGeometryError(
            "too_large", f"'{drawing.name}' covers {area:,.0f} ha, above the {max_area_ha:,.0f} ha limit; split it into fields"
        )
    return geom


def claim_id(borrower_id: str, geojson: dict[str, Any]) -> str:
    """Stable id: the same borrower submitting the same drawing gets the same claim (idempotent)."""
    canonical = json.dumps(_rounded(geojson), sort_keys=True, separators=(",", ":"))
    return "c-" + hashlib.sha256(f"{borrower_id}|{canonical}".encode()).hexdigest()[:16]


def _rounded(obj: Any) -> Any:
    if isinstance(obj, float):
        return round(obj, 7)
    if isinstance(obj, (list, tuple)):
        return [_rounded(v) for v in obj]
    if isinstance(obj, dict):
        return {k: _rounded(v) for k, v in obj.items()}
    return obj
