import json
from pathlib import Path

import pytest
from shapely.geometry import box, mapping

from assets.errors import InputError
from assets.fields.geometry import (
    ClaimGeometryError,
    Drawing,
    area_ha,
    claim_id,
    ha_to_mu,
    read_drawings,
    reproject,
    utm_crs,
    validate_drawing,
)

LIMITS = dict(min_area_ha=0.05, max_area_ha=2000)


def square_lonlat(x0: float = 512500, y0: float = 6245000, side: float = 100.0):
    """A side x side metre square in UTM 32N, returned in EPSG:4326."""
    return reproject(box(x0, y0, x0 + side, y0 + side), "EPSG:32632", "EPSG:4326")


def test_area_is_measured_in_local_utm() -> None:
    assert area_ha(square_lonlat(side=100)) == pytest.approx(1.0, rel=1e-3)
    assert ha_to_mu(1.0) == 15.0
    assert utm_crs(9.2, 56.3).to_epsg() == 32632
    assert utm_crs(-58.4, -34.6).to_epsg() == 32721


def test_reads_collections_features_and_bare_geometries(tmp_path: Path) -> None:
    poly = mapping(square_lonlat())
    fc = {"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {"name": "A"}, "geometry": poly}]}
    assert read_drawings(fc)[0].name == "A"
    assert read_drawings({"type": "Feature", "properties": None, "geometry": poly})[0].name == "field 1"
    f = tmp_path / "bare.geojson"
    f.write_text(json.dumps(poly))
    assert read_drawings(f)[0].geojson["type"] == "Polygon"


@pytest.mark.parametrize("content, match", [
    ("{not json", "not valid GeoJSON"),
    ('{"features": []}', "no 'type'"),
    ('{"type": "FeatureCollection", "features": []}', "no features"),
    ('{"type": "FeatureCollection", "features": [{"type": "Feature"}]}', "has no geometry"),
])
def test_bad_files_are_named(tmp_path: Path, content: str, match: str) -> None:
    f = tmp_path / "bad.geojson"
    f.write_text(content)
    with pytest.raises(InputError, match=match):
        read_drawings(f)


def test_missing_file() -> None:
    with pytest.raises(InputError, match="not found"):
        read_drawings("/no/such/claims.geojson")


@pytest.mark.parametrize("geometry, code", [
    ({"type": "Polygon", "coordinates": [[[9.2, 56.3], [9.21, 56.31], [9.21, 56.3], [9.2, 56.31], [9.2, 56.3]]]}, "self_intersection"),
    ({"type": "Point", "coordinates": [9.2, 56.3]}, "not_a_polygon"),
    ({"type": "Polygon", "coordinates": [[[512500, 6245000], [512600, 6245000], [512600, 6245100], [512500, 6245000]]]}, "not_lon_lat"),
    ({"type": "Polygon", "coordinates": [[[9.2, 56.3], [9.20001, 56.3], [9.20001, 56.30001], [9.2, 56.3]]]}, "too_small"),
    ({"type": "Polygon", "coordinates": [[[9.0, 56.0], [9.0]]]}, "malformed"),
])
def test_unusable_drawings_get_a_reason_code(geometry: dict, code: str) -> None:
    with pytest.raises(ClaimGeometryError) as info:
        validate_drawing(Drawing("f", geometry), **LIMITS)
    assert info.value.code == code
    assert "'f'" in str(info.value)


def test_too_large() -> None:
    big = mapping(square_lonlat(side=5000))  # 2,500 ha
    with pytest.raises(ClaimGeometryError) as info:
        validate_drawing(Drawing("huge", big), **LIMITS)
    assert info.value.code == "too_large"


def test_claim_id_is_stable_and_per_borrower() -> None:
    g = mapping(square_lonlat())
    g2 = json.loads(json.dumps(g))
    assert claim_id("b1", g) == claim_id("b1", g2)
    assert claim_id("b1", g) != claim_id("b2", g)


def test_real_surveyed_smallholder_fields(shared_data: Path) -> None:
    """319 field boundaries walked by surveyors in Kenya: the drawings small farmers make."""
    from pyproj import Geod

    from assets.config import Settings

    s = Settings()
    drawings = read_drawings(shared_data / "fields" / "kenya_2019_survey.geojson")
    geod = Geod(ellps="WGS84")
    accepted, too_small = 0, 0
    for d in drawings:
        try:
            geom = validate_drawing(d, min_area_ha=s.min_area_ha, max_area_ha=s.max_area_ha)
        except ClaimGeometryError as exc:
            assert exc.code == "too_small", str(exc)
            too_small += 1
            continue
        accepted += 1
        geodesic_ha = abs(geod.geometry_area_perimeter(geom)[0]) / 10_000
        assert area_ha(geom) == pytest.approx(geodesic_ha, rel=2e-3)  # UTM area matches the ellipsoid
    assert accepted >= 310 and too_small <= 9
