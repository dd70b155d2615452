"""Validate, reproject and measure field boundaries drawn by farmers.

A drawing is kept in EPSG:4326 (what web maps and GeoJSON speak) and measured in its local UTM
zone, where a square metre is a square metre. Problems are reported, never silently repaired:
a bow-tie drawing has no single meaning, so the farmer is asked to redraw it.
"""

from __future__ import annotations

import hashlib
import json
import math
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

import shapely
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError
from shapely.geometry import MultiPolygon, Polygon, shape
from shapely.validation import explain_validity

from assets.config import Settings
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
    declared_crop: str | None = None  # `properties.crop` as the farmer wrote it (free text)


def ha_to_mu(area_ha: float) -> float:
    return area_ha * MU_PER_HA


def great_circle_km(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Haversine distance in km between two lon/lat points (mean Earth radius 6,371 km)."""
    la1, la2, dl = math.radians(lat1), math.radians(lat2), math.radians(lon2 - lon1)
    h = math.sin((la2 - la1) / 2) ** 2 + math.cos(la1) * math.cos(la2) * math.sin(dl / 2) ** 2
    return 12_742.0 * math.asin(min(1.0, math.sqrt(h)))


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


def read_drawings(source: str | Path | dict[str, Any], *, max_features: int | None = None) -> list[Drawing]:
    """Polygons from a GeoJSON FeatureCollection, Feature or bare geometry (file path or dict).

    Whole-file problems (a `crs` member naming another CRS, more than ``max_features`` features)
    raise before anything is stored; problems of one drawing are left to `validate_drawing`.
    """
    cap = Settings.model_fields["max_features_per_file"].default if max_features is None else max_features
    if isinstance(source, dict):
        doc = source
        label = "request body"
    else:
        path = Path(source)
        label = str(path)
        if not path.is_file():
            raise InputError(f"claim file {path} not found; pass a GeoJSON file of field polygons")
        try:
            doc = json.loads(path.read_text(encoding="utf-8-sig"))  # a byte-order mark is harmless
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InputError(f"{path} is not valid GeoJSON ({exc}); export the boundary as GeoJSON") from exc
        except ValueError as exc:  # an integer of thousands of digits (Python's int-parsing limit)
            raise InputError(f"{path} holds a number too long to be a coordinate ({str(exc)[:60]}); "
                             "export the boundary as GeoJSON") from None
        except RecursionError:
            raise InputError(f"{path} nests its arrays too deeply to be GeoJSON; export the boundary as GeoJSON") from None
    if not isinstance(doc, dict) or "type" not in doc:
        raise InputError(f"{label} is not GeoJSON (no 'type'); expected a FeatureCollection of polygons")
    _check_crs_member(doc, label)
    if doc["type"] == "FeatureCollection":
        features = doc.get("features") or []
    elif doc["type"] == "Feature":
        features = [doc]
    else:
        features = [{"type": "Feature", "properties": {}, "geometry": doc}]
    if not isinstance(features, list):
        raise InputError(f"{label}: 'features' is not a list; expected a FeatureCollection of polygons")
    if not features:
        raise InputError(f"{label} holds no features; draw at least one field boundary")
    if len(features) > cap:
        raise InputError(
            f"{label} holds {len(features):,} features, more than the {cap:,} accepted in one submission; "
            f"split it into files of at most {cap:,} fields (nothing was stored)"
        )
    drawings = []
    for i, feat in enumerate(features, start=1):
        if not isinstance(feat, dict) or not isinstance(feat.get("geometry"), dict):
            raise InputError(f"{label}: feature {i} has no geometry; every feature must be a polygon")
        _check_crs_member(feat, f"{label}: feature {i}")
        _check_crs_member(feat["geometry"], f"{label}: feature {i}")
        props = feat.get("properties") or {}
        if not isinstance(props, dict):
            raise InputError(f"{label}: feature {i} has 'properties' that are not an object "
                             f"({type(props).__name__}); give them as {{\"name\": \"...\"}} or leave them out")
        declared = props.get("crop", props.get("declared_crop"))
        if declared is not None and not isinstance(declared, str):
            raise InputError(f"{label}: feature {i} declares its crop as {json.dumps(declared)[:40]}; give it as text "
                             '({"crop": "maize"}) or leave it out')
        name = props.get("name")
        if isinstance(name, (dict, list, bool)):
            raise InputError(f"{label}: feature {i}'s name is {type(name).__name__} {json.dumps(name)[:40]}; give "
                             'it as text ({"name": "North field"}) or leave it out')
        name = str(name if name is not None and name != "" else f"field {i}")
        for what, text in (("name", name), ("crop", declared or "")):
            _check_printable(text, f"{label}: feature {i}'s {what}")
        drawings.append(Drawing(name=name, geojson=feat["geometry"], declared_crop=(declared or "").strip() or None))
    return drawings


# Bidirectional overrides and isolates reorder what an officer reads ("approved" shown for "devorppa").
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _check_printable(text: str, label: str) -> None:
    """Refuse control characters in text shown to officers: a name carrying escape sequences or line
    breaks can clear an officer's terminal or add fake rows to the review queue."""
    for ch in text:
        if unicodedata.category(ch) == "Cc" or ch in _BIDI_CONTROLS:
            raise InputError(f"{label} contains the control character U+{ord(ch):04X}; use plain text "
                             "(letters, digits, spaces, punctuation) on one line")


def _check_crs_member(obj: dict[str, Any], label: str) -> None:
    """Refuse a (pre-RFC 7946) `crs` member unless it names WGS 84 longitude/latitude."""
    member = obj.get("crs")
    if member is None:
        return
    name = None
    if isinstance(member, dict) and isinstance(member.get("properties"), dict):
        name = member["properties"].get("name")
    fix = "export the boundary in EPSG:4326 longitude/latitude (the only CRS GeoJSON allows) and drop the 'crs' member"
    if not isinstance(name, str) or not name.strip():
        raise GeometryError(f"{label} has a 'crs' member that names no CRS ({json.dumps(member)[:80]}); {fix}")
    try:
        crs = CRS.from_user_input(name.strip())
    except (CRSError, ValueError, TypeError):  # an unknown or malformed name
        raise GeometryError(f"{label} declares an unknown CRS {name!r} in its 'crs' member; {fix}") from None
    if not crs.equals(CRS.from_user_input("OGC:CRS84"), ignore_axis_order=True):
        raise GeometryError(f"{label} declares its coordinates in {name} ({crs.name}), not longitude/latitude; {fix}")


def validate_drawing(
    drawing: Drawing, *, min_area_ha: float, max_area_ha: float,
    max_extent_deg: float = Settings.model_fields["max_drawing_extent_deg"].default,
    footprints_lonlat: Sequence[tuple[float, float, float, float]] = (),
) -> Polygon | MultiPolygon:
    """The drawing as a valid EPSG:4326 polygon, or `ClaimGeometryError` naming what to fix.

    ``footprints_lonlat`` (the imagery we hold) lets swapped latitude/longitude be recognised:
    such a drawing misses every footprint while its swapped twin lands on one.
    """
    gj = drawing.geojson
    name = drawing.name
    if gj.get("type") not in ("Polygon", "MultiPolygon"):
        raise ClaimGeometryError(
            "not_a_polygon", f"'{name}' is a {gj.get('type')}; draw a closed field boundary (Polygon)"
        )
    _check_rings(name, gj)
    try:
        geom = shapely.force_2d(shape(gj))  # a GPS app's altitudes: verification and the stored field are 2-D
    except Exception as exc:  # shapely raises several types for malformed coordinates
        raise ClaimGeometryError("malformed", f"'{name}' has malformed coordinates ({exc}); redraw it") from exc
    if geom.is_empty:
        raise ClaimGeometryError("empty", f"'{name}' is empty; draw at least three corners")
    minx, miny, maxx, maxy = geom.bounds
    if not (-180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90):
        if max(abs(minx), abs(maxx), abs(miny), abs(maxy)) <= 360:  # just past the range: not metres
            hint = ("they look like [latitude, longitude]: put longitude first" if -90 <= minx <= maxx <= 90
                    and -180 <= miny <= maxy <= 180 else "longitude runs from -180 to 180 and latitude from -90 to 90")
        else:
            hint = "send EPSG:4326 [longitude, latitude] pairs, not projected metres"
        raise ClaimGeometryError(
            "not_lon_lat",
            f"'{name}' has coordinates outside longitude/latitude range ({minx:.1f}, {miny:.1f}); {hint}",
        )
    _check_extent(name, geom, max_extent_deg)
    if footprints_lonlat and not _meets(geom, footprints_lonlat):
        swapped = shapely.transform(geom, lambda xy: xy[:, ::-1])
        if _meets(swapped, footprints_lonlat):
            raise ClaimGeometryError(
                "swapped_axes",
                f"'{name}' lies where we hold no imagery, but with latitude and longitude swapped it lies on our "
                f"imagery (near {swapped.centroid.x:.3f} E, {swapped.centroid.y:.3f} N); send [longitude, latitude] pairs",
            )
    if geom.convex_hull.area == 0:  # every corner on one line: no land, whatever GEOS calls it
        raise ClaimGeometryError("too_small", f"'{name}' encloses no area (its corners lie on one line); draw the "
                                 "field's outline with at least three corners")
    if not geom.is_valid:
        why = explain_validity(geom)
        code = "self_intersection" if "Self-intersection" in why or "Ring Self-intersection" in why else "invalid"
        raise ClaimGeometryError(
            code, f"'{name}' is not a simple field boundary ({why}); redraw it without crossing lines"
        )
    area = area_ha(geom)
    if not math.isfinite(area):
        raise ClaimGeometryError("malformed", f"'{name}' cannot be measured (area {area}); redraw it")
    if area < min_area_ha:
        raise ClaimGeometryError(
            "too_small", f"'{name}' covers {area:.3f} ha, below the {min_area_ha} ha minimum; check the drawing"
        )
    if area > max_area_ha:
        raise ClaimGeometryError(
            "too_large", f"'{name}' covers {area:,.0f} ha, above the {max_area_ha:,.0f} ha limit; split it into fields"
        )
    return geom


def _check_rings(name: str, gj: dict[str, Any]) -> None:
    """Numbers, closed rings: what RFC 7946 requires and shapely would otherwise guess at."""
    coords = gj.get("coordinates")
    polygons = [coords] if gj.get("type") == "Polygon" else coords
    if not isinstance(polygons, (list, tuple)) or not polygons:
        raise ClaimGeometryError("malformed", f"'{name}' has no coordinates; draw at least three corners")
    for polygon in polygons:
        if not isinstance(polygon, (list, tuple)) or not polygon:
            raise ClaimGeometryError("malformed", f"'{name}' has a polygon without rings; redraw it")
        for ring in polygon:
            if not isinstance(ring, (list, tuple)) or not all(isinstance(p, (list, tuple)) for p in ring):
                raise ClaimGeometryError("malformed", f"'{name}' has a ring that is not a list of corners; redraw it")
            for p in ring:
                if len(p) < 2:
                    raise ClaimGeometryError("malformed", f"'{name}' has a corner {p} without two coordinates; redraw it")
                if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in p):
                    raise ClaimGeometryError(
                        "coordinates_not_numbers",
                        f"'{name}' has a corner given as {json.dumps(p)[:60]}; coordinates must be numbers, "
                        "e.g. [9.25, 56.36], not text in quotes: re-export the boundary as GeoJSON",
                    )
                if not all(abs(v) < 1e300 and math.isfinite(v) for v in p):  # abs: a 400-digit int overflows float
                    raise ClaimGeometryError("malformed", f"'{name}' has a corner {p} that is not a finite number; redraw it")
            if len(ring) < 4:
                raise ClaimGeometryError(
                    "malformed", f"'{name}' has a ring of {len(ring)} position(s); a field needs at least three corners"
                )
            if list(ring[0][:2]) != list(ring[-1][:2]):
                raise ClaimGeometryError(
                    "unclosed_ring",
                    f"'{name}' is not closed: its last corner {list(ring[-1][:2])} is not its first "
                    f"{list(ring[0][:2])}; repeat the first corner at the end of the ring, as GeoJSON requires",
                )


def _check_extent(name: str, geom: shapely.Geometry, max_extent_deg: float) -> None:
    """A field is a few km across: a drawing spanning degrees is a mistake, not a field."""
    minx, miny, maxx, maxy = geom.bounds
    width, height = maxx - minx, maxy - miny
    if width > 180:  # maybe a small field drawn across the 180th meridian
        xs = shapely.get_coordinates(geom)[:, 0]
        shifted = xs % 360
        if height <= max_extent_deg and shifted.max() - shifted.min() <= max_extent_deg:
            raise ClaimGeometryError(
                "crosses_antimeridian",
                f"'{name}' crosses the 180th meridian, so read literally it runs the wrong way round the Earth; "
                "split it there into two polygons (a MultiPolygon), one on each side, as GeoJSON requires",
            )
    if width > max_extent_deg or height > max_extent_deg:
        whole = " (the whole Earth)" if width >= 359 and height >= 179 else ""
        raise ClaimGeometryError(
            "not_one_field",
            f"'{name}' spans {width:.2f} degrees of longitude and {height:.2f} of latitude{whole}, more than the "
            f"{max_extent_deg} degrees a single field can; draw the corners of the field itself",
        )


def _meets(geom: shapely.Geometry, footprints: Sequence[tuple[float, float, float, float]]) -> bool:
    return any(geom.intersects(shapely.box(*b)) for b in footprints)


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
