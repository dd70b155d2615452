"""Bad drawing input: each mistake a farmer's tool can make gets a rejection naming it and the fix."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
from shapely.geometry import mapping

from assets.config import Settings
from assets.errors import GeometryError, InputError
from assets.fields.geometry import ClaimGeometryError, Drawing, read_drawings, validate_drawing
from tests.test_geometry import square_lonlat

S = Settings()
LIMITS = dict(min_area_ha=S.min_area_ha, max_area_ha=S.max_area_ha, max_extent_deg=S.max_drawing_extent_deg)
FIELD = mapping(square_lonlat(side=150))  # a 2.25 ha field in Denmark
RING = [list(p) for p in FIELD["coordinates"][0]]
DENMARK = (9.0, 56.0, 9.5, 56.6)  # lon/lat footprint of imagery we hold


def _reject(geometry: dict, **kwargs) -> ClaimGeometryError:
    with pytest.raises(ClaimGeometryError) as info:
        validate_drawing(Drawing("north field", geometry), **{**LIMITS, **kwargs})
    assert isinstance(info.value, GeometryError) and "'north field'" in str(info.value)
    return info.value


def test_a_good_field_still_passes_with_every_check() -> None:
    geom = validate_drawing(Drawing("ok", FIELD), **LIMITS, footprints_lonlat=[DENMARK])
    assert geom.area > 0


def test_unclosed_ring() -> None:
    exc = _reject({"type": "Polygon", "coordinates": [RING[:-1]]})
    assert exc.code == "unclosed_ring" and "repeat the first corner" in str(exc)


def test_coordinates_given_as_strings() -> None:
    exc = _reject({"type": "Polygon", "coordinates": [[[str(x), str(y)] for x, y in RING]]})
    assert exc.code == "coordinates_not_numbers" and "must be numbers" in str(exc)


def test_swapped_latitude_and_longitude() -> None:
    swapped = {"type": "Polygon", "coordinates": [[[y, x] for x, y in RING]]}
    exc = _reject(swapped, footprints_lonlat=[DENMARK])
    assert exc.code == "swapped_axes" and "[longitude, latitude]" in str(exc)
    # Without imagery there to compare with, the drawing is left to verification (no_imagery).
    assert validate_drawing(Drawing("north field", swapped), **LIMITS).area > 0


def test_swapped_axes_outside_latitude_range() -> None:
    # A latitude given first, with the longitude beyond 90 degrees: out of range, with the swap named.
    exc = _reject({"type": "Polygon", "coordinates": [[[56.3, 120.1], [56.301, 120.1], [56.301, 120.101], [56.3, 120.1]]]})
    assert exc.code == "not_lon_lat" and "latitude, longitude" in str(exc)


def test_polygon_across_the_antimeridian() -> None:
    fiji = {"type": "Polygon", "coordinates": [[[179.999, -16.5], [-179.999, -16.5], [-179.999, -16.499],
                                                [179.999, -16.499], [179.999, -16.5]]]}
    exc = _reject(fiji)
    assert exc.code == "crosses_antimeridian" and "split it" in str(exc)


def test_the_whole_earth() -> None:
    earth = {"type": "Polygon", "coordinates": [[[-180, -90], [180, -90], [180, 90], [-180, 90], [-180, -90]]]}
    exc = _reject(earth)
    assert exc.code == "not_one_field" and "whole Earth" in str(exc)


def test_a_crs_member_naming_another_crs(tmp_path: Path) -> None:
    doc = {"type": "FeatureCollection", "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::32632"}},
           "features": [{"type": "Feature", "properties": {"name": "a"}, "geometry": FIELD}]}
    with pytest.raises(GeometryError, match="EPSG:4326 longitude/latitude"):
        read_drawings(doc)
    f = tmp_path / "utm.geojson"
    f.write_text(json.dumps(doc))
    with pytest.raises(GeometryError, match="32632"):
        read_drawings(f)
    # Naming WGS 84 (either spelling) is harmless; an unnamed or unknown crs is refused.
    for ok in ("urn:ogc:def:crs:OGC:1.3:CRS84", "EPSG:4326"):
        assert len(read_drawings({**doc, "crs": {"type": "name", "properties": {"name": ok}}})) == 1
    with pytest.raises(GeometryError, match="unknown CRS"):
        read_drawings({**doc, "crs": {"type": "name", "properties": {"name": "EPSG:banana"}}})
    feature_crs = {"type": "Feature", "crs": {"type": "name", "properties": {"name": "EPSG:3857"}}, "geometry": FIELD}
    with pytest.raises(GeometryError, match="3857"):
        read_drawings(feature_crs)


def test_too_many_features_are_refused_before_anything_is_stored(tmp_path: Path, db_path: Path) -> None:
    from assets.pipeline import register_claims, submit_and_assess
    from assets.store import connect

    feats = [{"type": "Feature", "properties": {"name": f"f{i}"},
              "geometry": mapping(square_lonlat(x0=512500 + 200 * (i % 70), y0=6245000 + 200 * (i // 70)))}
             for i in range(5000)]
    f = tmp_path / "many.geojson"
    f.write_text(json.dumps({"type": "FeatureCollection", "features": feats}))
    s = Settings(db_path=db_path, tiles_dir=tmp_path / "no-tiles")
    with pytest.raises(InputError, match=f"more than the {s.max_features_per_file:,}"):
        register_claims(db_path, f, "farmer-9", s)
    with pytest.raises(InputError, match="nothing was stored"):
        submit_and_assess(s, f, "farmer-9", as_of=date(2016, 9, 30))
    with connect(db_path) as con:
        assert con.execute("SELECT count(*) FROM claims").fetchone()[0] == 0
    # The cap is a setting.
    assert len(read_drawings(f, max_features=5000)) == 5000


def test_bad_drawings_are_stored_rejected_with_their_reason(db_path: Path) -> None:
    from assets.pipeline import register_claims
    from assets.store import connect

    doc = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"name": "open"}, "geometry": {"type": "Polygon", "coordinates": [RING[:-1]]}},
        {"type": "Feature", "properties": {"name": "earth"}, "geometry": {"type": "Polygon", "coordinates": [
            [[-180, -90], [180, -90], [180, 90], [-180, 90], [-180, -90]]]}},
        {"type": "Feature", "properties": {"name": "good"}, "geometry": FIELD},
    ]}
    claims = register_claims(db_path, doc, "farmer-8", Settings(db_path=db_path))
    assert [(c.name, c.status, c.reason_code) for c in claims] == [
        ("open", "rejected", "unclosed_ring"), ("earth", "rejected", "not_one_field"), ("good", "submitted", None)]
    with connect(db_path) as con:
        assert con.execute("SELECT count(*) FROM claims WHERE status = 'rejected' AND reason <> ''").fetchone()[0] == 2


def test_malformed_files_get_one_line_errors_on_the_cli(tmp_path: Path, db_path: Path, capsys) -> None:
    """QA 2026-12-07: `properties` as a string, a BOM, deep nesting, a 5,000-character name and a
    20,001-corner field each reached a traceback or slipped past the API's own caps."""
    from assets.cli import main
    from assets.store import connect

    feature = {"type": "Feature", "properties": {"name": "north field"}, "geometry": FIELD}
    bom = tmp_path / "bom.geojson"
    bom.write_bytes(b"\xef\xbb\xbf" + json.dumps({"type": "FeatureCollection", "features": [feature]}).encode())
    assert [d.name for d in read_drawings(bom)] == ["north field"]  # Windows editors write one: harmless
    cases = {
        "props.geojson": ({**feature, "properties": "north field"}, "'properties' that are not an object"),
        "deep.geojson": ("[" * 100_000 + "]" * 100_000, "nests its arrays too deeply"),
        "name.geojson": ({**feature, "properties": {"name": "n" * 5000}}, "above the limit of 120"),
        "corners.geojson": ({**feature, "geometry": {"type": "Polygon", "coordinates": [
            [[9.2 + 0.00001 * i, 56.3 + 0.00001 * (i % 2)] for i in range(20_001)] + [[9.2, 56.3]]]}},
            "more than 20,000 corners"),
    }
    for name, (doc, says) in cases.items():
        f = tmp_path / name
        f.write_text(doc if isinstance(doc, str) else json.dumps({"type": "FeatureCollection", "features": [doc]}))
        assert main(["claims", "submit", str(f), "--borrower", "farmer-9", "--db", str(db_path),
                     "--date", "2016-09-30"]) == 2, name
        err = capsys.readouterr().err
        assert err.startswith("error: ") and says in err and err.count("\n") == 1, (name, err)
    with connect(db_path) as con:
        assert con.execute("SELECT count(*) FROM claims").fetchone()[0] == 0


def test_an_interrupted_submission_leaves_no_claim_without_a_verdict(tmp_path: Path, db_path: Path,
                                                                    monkeypatch) -> None:
    """QA 2026-12-07: Ctrl-C during the assessment of a 500-field file left 500 claims `submitted`,
    holding their land, with no decision."""
    import assets.pipeline as pipeline
    from assets.store import connect

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "assess_claims", interrupted)
    repo = Path(__file__).resolve().parents[1]
    s = Settings(db_path=db_path, tiles_dir=repo / "sample_tiles")
    doc = json.loads((repo / "sample_tiles/claims/farmer-001.geojson").read_text())
    with pytest.raises(KeyboardInterrupt):
        pipeline.submit_and_assess(s, doc, "farmer-new", as_of=date(2016, 9, 30))
    with connect(db_path) as con:
        assert con.execute("SELECT count(*) FROM claims").fetchone()[0] == 0


def test_flat_rings_and_near_range_coordinates_are_named_for_what_they_are() -> None:
    flat = _reject({"type": "Polygon", "coordinates": [[[9.2, 56.3], [9.21, 56.3], [9.22, 56.3], [9.2, 56.3]]]})
    assert flat.code == "too_small" and "encloses no area" in str(flat)  # was "self-intersection"
    past = _reject({"type": "Polygon", "coordinates": [[[180.001, 56.3], [180.002, 56.3], [180.002, 56.31],
                                                        [180.001, 56.3]]]})
    assert "longitude runs from -180 to 180" in str(past) and "metres" not in str(past)
    metres = _reject({"type": "Polygon", "coordinates": [[[500000, 6200000], [500100, 6200000], [500100, 6200100],
                                                          [500000, 6200000]]]})
    assert "not projected metres" in str(metres)


@pytest.mark.parametrize("name", ["Nice field\x1b[2J\x1b[31mAPPROVED by bank", "two\nlines", "tab\there",
                                  "right\u202eto left"])
def test_names_and_crops_with_control_characters_are_refused(name: str) -> None:
    """QA 2026-12-08: a field name with escape sequences cleared the officer's terminal and printed a
    red "APPROVED by bank" and a fake row above the review queue."""
    feature = {"type": "Feature", "properties": {"name": name}, "geometry": FIELD}
    with pytest.raises(InputError, match=r"feature 1's name contains the control character U\+"):
        read_drawings(feature)
    crop = {"type": "Feature", "properties": {"name": "ok", "crop": name}, "geometry": FIELD}
    with pytest.raises(InputError, match="feature 1's crop contains the control character"):
        read_drawings(crop)
    assert read_drawings({"type": "Feature", "properties": {"name": "东地 north, 2 ha (maize)"}, "geometry": FIELD})[0].name


def test_stored_control_characters_print_as_escapes_in_cli_tables() -> None:
    from assets.cli.render import table

    out = table([{"name": "a\x1b[2Jb\nc", "ha": 1.5}], ["name", "ha"])
    assert "\x1b" not in out and "\n" not in out.splitlines()[-1] and "a\\x1b[2Jb\\nc" in out
    assert "东\u3000地" in table([{"name": "东\u3000地"}], ["name"])  # a full-width space is text


def test_a_drawing_with_altitudes_is_kept_in_two_dimensions() -> None:
    """QA 2026-12-08: a GPS app's [lon, lat, alt] corners were stored 3-D and then broke the portfolio
    report for the whole bank."""
    with_z = {"type": "Polygon", "coordinates": [[[x, y, 55.0] for x, y in RING]]}
    geom = validate_drawing(Drawing("gps", with_z), **LIMITS)
    assert not geom.has_z and geom.equals(validate_drawing(Drawing("flat", FIELD), **LIMITS))


def test_huge_numbers_and_object_names_are_clear_errors(tmp_path: Path) -> None:
    """QA 2026-12-08: a 401-digit corner gave OverflowError, a 5,001-digit one ValueError (both tracebacks),
    and a name given as an object was stored as Python's repr."""
    big = {"type": "Polygon", "coordinates": [[[10 ** 400, 56.1], [9.2, 56.1], [9.2, 56.2], [10 ** 400, 56.1]]]}
    assert _reject(big).code == "malformed"
    f = tmp_path / "bigint.geojson"
    f.write_text('{"type": "Polygon", "coordinates": [[[' + "9" * 5001 + ', 56.1], [9.2, 56.1], [9.2, 56.2]]]}')
    with pytest.raises(InputError, match="a number too long to be a coordinate"):
        read_drawings(f)
    for name in ({"x": [1, 2]}, [1], True):
        with pytest.raises(InputError, match="feature 1's name is"):
            read_drawings({"type": "Feature", "properties": {"name": name}, "geometry": FIELD})
    assert read_drawings({"type": "Feature", "properties": {"name": 7}, "geometry": FIELD})[0].name == "7"
    assert read_drawings({"type": "Feature", "properties": {"name": ""}, "geometry": FIELD})[0].name == "field 1"
