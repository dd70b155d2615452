"""The map's API (#13): XYZ tiles from the catalogue, the imagery summary, the detected-field proposal.

Real tiles and the real segmentation model on the bundled season; no crop model is needed.
"""

from __future__ import annotations

import io
import json
import math
from datetime import date
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
import shapely.geometry
from fastapi.testclient import TestClient
from PIL import Image

from assets import access
from assets.api.app import create_app
from assets.config import Settings
from assets.fields.geometry import area_ha
from assets.imagery import maptiles
from assets.pipeline import catalogue_tiles
from assets.store import connect

REPO = Path(__file__).resolve().parents[1]


def _xyz(lon: float, lat: float, z: int) -> tuple[int, int]:
    n = 1 << z
    return int((lon + 180) / 360 * n), int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)


def _rgba(png: bytes) -> np.ndarray:
    image = Image.open(io.BytesIO(png))
    assert image.size == (256, 256) and image.mode == "RGBA"
    return np.asarray(image)


def _field(name: str, index: int) -> shapely.geometry.Polygon:
    doc = json.loads((REPO / f"sample_tiles/claims/{name}.geojson").read_text())
    return shapely.geometry.shape(doc["features"][index]["geometry"])


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> tuple[Settings, dict[str, dict[str, str]]]:
    db = tmp_path_factory.mktemp("map") / "map.duckdb"
    settings = Settings(db_path=db)
    catalogue_tiles(db, settings.tiles_dir, settings=settings)
    with connect(db) as con:
        access.add_user(con, "wang", "farmer", "farmer-001")
        access.add_user(con, "ops", "operations")
        tokens = {n: access.issue_token(con, n, days=1).secret for n in ("wang", "ops")}
    return settings, {n: {"Authorization": f"Bearer {t}"} for n, t in tokens.items()}


@pytest.fixture
def client(world) -> Iterator[TestClient]:
    with TestClient(create_app(world[0], api_keys=[])) as c:
        yield c


def test_a_tile_inside_the_imagery_has_pixels_and_outside_is_transparent(client, world) -> None:
    farmer = world[1]["wang"]
    lon, lat = _field("farmer-001", 1).representative_point().coords[0]
    x, y = _xyz(lon, lat, 16)
    inside = client.get(f"/map/tiles/16/{x}/{y}.png", headers=farmer)
    assert inside.status_code == 200 and inside.headers["content-type"] == "image/png"
    assert inside.headers["cache-control"].startswith("private")
    rgba = _rgba(inside.content)
    assert (rgba[..., 3] == 255).all() and rgba[..., :3].std() > 3  # an image, not a flat fill
    again = client.get(f"/map/tiles/16/{x}/{y}.png", headers=farmer)
    assert again.content == inside.content and client.app.state.map_tiles.hits >= 1  # from the LRU
    outside = client.get(f"/map/tiles/16/{x + 200}/{y}.png", headers=farmer)  # ~100 km east
    assert outside.status_code == 200 and (_rgba(outside.content)[..., 3] == 0).all()
    # The imagery's west edge: part image, part transparent; a zoom-12 tile holds the whole scene.
    edge = _rgba(client.get("/map/tiles/16/{}/{}.png".format(*_xyz(9.2007, lat, 16)), headers=farmer).content)
    assert 0 < (edge[..., 3] > 0).mean() < 1
    whole = _rgba(client.get("/map/tiles/12/{}/{}.png".format(*_xyz(lon, lat, 12)), headers=farmer).content)
    assert 0 < (whole[..., 3] > 0).mean() < 0.5
    # Operations may look at the map too; nobody without a token.
    assert client.get(f"/map/tiles/16/{x}/{y}.png", headers=world[1]["ops"]).status_code == 200
    assert client.get(f"/map/tiles/16/{x}/{y}.png").status_code == 401


@pytest.mark.parametrize("path", ["/map/tiles/20/1/1.png", "/map/tiles/-1/0/0.png", "/map/tiles/3/8/0.png",
                                  "/map/tiles/3/0/8.png", "/map/tiles/3/-1/0.png", "/map/tiles/a/0/0.png",
                                  "/map/tiles/3/0/0.5.png"])
def test_bad_tile_coordinates_are_refused(client, world, path: str) -> None:
    r = client.get(path, headers=world[1]["wang"])
    assert r.status_code == 422, r.text
    assert "map_max_zoom" in r.text or "does not exist" in r.text or "is not a whole number" in r.text


def test_the_imagery_summary_names_the_latest_and_cloud_free_dates(client, world) -> None:
    r = client.get("/map/imagery", headers=world[1]["wang"]).json()
    assert r["latest_date"] == "2016-09-21" and r["tiles_url"] == "/map/tiles/{z}/{x}/{y}.png"
    assert "2016-06-25" not in r["cloud_free_dates"] and len(r["cloud_free_dates"]) == 6  # 14 % cloud on 25 June
    assert [s["acquired_on"] for s in r["shown"]] == ["2016-09-21"]  # the newest clean tile of the one grid
    (south, west), (north, east) = r["bounds"]
    assert 56.3 < south < north < 56.4 and 9.2 < west < east < 9.3


def test_the_public_tile_preview_is_rendered_once(client, monkeypatch) -> None:
    """QA 2026-12-07: every anonymous GET re-rendered the whole tile (~0.5 s of CPU each)."""
    import assets.imagery.preview as preview

    renders = []
    real = preview.render_preview
    gains = []
    monkeypatch.setattr(preview, "render_preview",
                        lambda path, **kw: renders.append(path) or gains.append(kw["gain"]) or real(path, **kw))
    latest = client.get("/imagery/latest").json()
    first = client.get(latest["url"])
    assert first.status_code == 200 and first.headers["content-type"] == "image/png"
    assert client.get(latest["url"]).content == first.content
    assert len(renders) == 1
    assert gains == [client.app.state.settings.map_gain]  # ASSETS_MAP_GAIN brightens this picture as the tiles
    assert client.get("/imagery/t-0000000000000000.png").status_code == 404
    assert len(renders) == 1


def test_choose_imagery_prefers_the_newest_clean_tile_per_grid() -> None:
    from datetime import date

    def row(tile_id: str, day: int, cloud: float, minx: float = 0.0) -> dict:
        return {"tile_id": tile_id, "path": f"{tile_id}.tif", "acquired_on": date(2016, 5, day), "cloud_fraction": cloud,
                "nodata_fraction": 0.0, "crs": "EPSG:32632", "width": 10, "height": 10, "minx": minx, "miny": 0.0,
                "min_lon": minx, "min_lat": 0.0, "max_lon": minx + 1, "max_lat": 1.0}

    chosen = maptiles.choose_imagery([row("a", 1, 0.0), row("b", 9, 0.5), row("c", 5, 0.05), row("d", 2, 0.6, 50.0),
                                      row("e", 3, 0.4, 50.0)], 0.1)
    assert {s.tile_id for s in chosen.sources} == {"c", "e"}  # newest clean; else the clearest
    assert [d.day for d in chosen.cloud_free_dates] == [1, 5] and chosen.latest_date.day == 9


def test_tapping_inside_a_field_proposes_its_detected_boundary(client, world) -> None:
    drawn = _field("farmer-002", 0)  # winter wheat, 14.3 ha
    lon, lat = drawn.representative_point().coords[0]
    r = client.get("/fields/proposal", params={"lon": lon, "lat": lat}, headers=world[1]["wang"])
    assert r.status_code == 200, r.text
    feature = r.json()
    proposed = shapely.geometry.shape(feature["geometry"])
    assert feature["type"] == "Feature" and proposed.geom_type == "Polygon" and proposed.is_valid
    assert proposed.contains(shapely.geometry.Point(lon, lat))
    assert proposed.intersection(drawn).area / proposed.union(drawn).area > 0.8  # the field the farmer drew
    props = feature["properties"]
    assert props["area_ha"] == pytest.approx(area_ha(proposed), rel=1e-3)
    assert props["area_mu"] == pytest.approx(props["area_ha"] * 15, rel=1e-3)
    assert props["source"] == "segmentation" and props["acquired_on"] and props["tile_id"].startswith("t-")


def test_a_point_outside_the_imagery_or_on_no_field_gets_a_clear_answer(client, world) -> None:
    farmer = world[1]["wang"]
    outside = client.get("/fields/proposal", params={"lon": 10.5, "lat": 56.35}, headers=farmer)
    assert outside.status_code == 404 and "no satellite imagery at 10.50000, 56.35000" in outside.json()["error"]
    assert outside.json()["code"] == "no_imagery"  # the map words it in the farmer's language
    town = _field("farmer-003", 2)  # "Plot in town": no field there
    lon, lat = town.representative_point().coords[0]
    off = client.get("/fields/proposal", params={"lon": lon, "lat": lat}, headers=farmer)
    assert off.status_code == 404 and "no field detected" in off.json()["error"] and off.json()["code"] == "no_field"
    assert "draw it by hand" in off.json()["error"]
    for params in ({"lon": 56.35, "lat": 109.2}, {"lon": "nan", "lat": 56.3}, {"lon": 9.2}):
        bad = client.get("/fields/proposal", params=params, headers=farmer)
        assert bad.status_code == 422, (params, bad.text)
    assert client.get("/fields/proposal", params={"lon": 9.24, "lat": 56.35}, headers=world[1]["ops"]).status_code == 403


def test_map_tiles_have_their_own_budget(world) -> None:
    settings, headers = world

    with TestClient(create_app(settings.model_copy(update={"requests_per_token_per_min": 2, "map_tiles_per_token_per_min": 5}),
                               api_keys=[])) as c:
        codes = [c.get("/map/tiles/3/0/0.png", headers=headers["wang"]).status_code for _ in range(6)]
        assert codes == [200] * 5 + [429]
        assert c.get("/me", headers=headers["wang"]).status_code == 200  # the API budget is untouched


def test_tiles_sampled_from_the_mercator_picture_match_a_direct_warp(world) -> None:
    """The fast path (one warp per scene, sampled per tile) draws what a per-tile warp draws."""
    settings = world[0]
    with connect(settings.db_path) as con:
        from assets.store.tiles import usable_tile_rows

        rows = usable_tile_rows(con, date.today())
    sources = maptiles.choose_imagery(rows, settings.map_cloud_free_max).sources
    images = maptiles.MercatorImages(max_pixels=50_000_000, max_zoom=settings.map_max_zoom)
    lon, lat = _field("farmer-001", 1).representative_point().coords[0]
    for z in (12, 14, 16, 18):
        x, y = _xyz(lon, lat, z)
        fast = _rgba(maptiles.render_xyz(sources, z, x, y, images=images))
        slow = _rgba(maptiles.render_xyz(sources, z, x, y))
        both = (fast[..., 3] > 0) & (slow[..., 3] > 0)
        assert both.mean() > 0.3 and abs((fast[..., 3] > 0).mean() - (slow[..., 3] > 0).mean()) < 0.05
        diff = np.abs(fast[..., :3].astype(int) - slow[..., :3].astype(int))[both]
        assert np.median(diff) <= 12, f"zoom {z}: the picture differs from the warp by {np.median(diff)}"
    picture = images.get(sources[0], 3.5)
    assert picture is not None and picture.max_zoom == settings.map_max_zoom  # scene resolution: all zooms


def test_a_scene_over_the_picture_budget_falls_back_to_warping_each_tile(world) -> None:
    settings = world[0]
    with connect(settings.db_path) as con:
        from assets.store.tiles import usable_tile_rows

        rows = usable_tile_rows(con, date.today())
    source = maptiles.choose_imagery(rows, settings.map_cloud_free_max).sources[0]
    small = maptiles.mercator_picture(source, 3.5, max_pixels=20_000, max_zoom=19)
    assert small is not None and small.rgba.shape[0] * small.rgba.shape[1] <= 20_000
    assert small.max_zoom == small.zoom < 14  # coarsened: deeper zooms are warped per tile
    assert maptiles.mercator_picture(source, 3.5, max_pixels=0, max_zoom=19) is None
    lon, lat = _field("farmer-001", 1).representative_point().coords[0]
    x, y = _xyz(lon, lat, 16)
    images = maptiles.MercatorImages(max_pixels=20_000, max_zoom=19)
    tile = _rgba(maptiles.render_xyz([source], 16, x, y, images=images))
    assert (tile[..., 3] == 255).all() and tile[..., :3].std() > 3
