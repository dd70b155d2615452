"""The map's routers (#13): XYZ imagery tiles, what the imagery holds, a borrower's fields as
GeoJSON, and the detected field under a tapped point.

| router      | who                      |
|-------------|--------------------------|
| map         | any signed-in role |
| map_tiles   | any signed-in role; tiles have their own request budget (`map_tiles_per_token_per_min`) |
| borrower_fields | farmer (own borrower only, 404 otherwise), officer |
| fields      | farmer, officer (officers file claims for borrowers too) |
"""

from __future__ import annotations

import json
from typing import Any

import duckdb
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.concurrency import run_in_threadpool

from assets.access import Role
from assets.api.deps import allow, allow_tiles, get_settings, read_db, visible_borrower
from assets.config import Settings
from assets.imagery import maptiles
from assets.store import connect, queries
from assets.store.tiles import map_tile_rows

map_api = APIRouter(prefix="/map", tags=["map"], dependencies=[Depends(allow(*Role))])
# Tiles only: a map page fetches dozens at once, so their identity is cached briefly (`deps.tile_identity`)
# and they have their own budget; a revoked token may fetch tiles for that long, nothing else.
map_tiles = APIRouter(prefix="/map", tags=["map"], dependencies=[Depends(allow_tiles(*Role))])
borrower_fields = APIRouter(prefix="/borrowers", tags=["map"], dependencies=[Depends(allow(Role.FARMER, Role.OFFICER))])
fields = APIRouter(prefix="/fields", tags=["map"], dependencies=[Depends(allow(Role.FARMER, Role.OFFICER))])


def _imagery(con: duckdb.DuckDBPyConnection, settings: Settings) -> maptiles.MapImagery:
    return maptiles.choose_imagery(map_tile_rows(con), settings.map_cloud_free_max)


@map_api.get("/imagery")
def map_imagery(con: duckdb.DuckDBPyConnection = Depends(read_db),
                settings: Settings = Depends(get_settings)) -> dict[str, Any]:
    """What the map's tiles show: per scene the newest clean tile, the latest date and the cloud-free dates."""
    imagery = _imagery(con, settings)
    bounds = imagery.bounds_lonlat
    return {"tiles_url": "/map/tiles/{z}/{x}/{y}.png", "max_zoom": settings.map_max_zoom,
            "latest_date": imagery.latest_date, "cloud_free_dates": list(imagery.cloud_free_dates),
            "cloud_free_max": settings.map_cloud_free_max,
            "shown": [{"tile_id": s.tile_id, "acquired_on": s.acquired_on, "cloud_fraction": s.cloud_fraction,
                       "bounds": [[s.bounds_lonlat[1], s.bounds_lonlat[0]], [s.bounds_lonlat[3], s.bounds_lonlat[2]]]}
                      for s in imagery.sources],
            "bounds": None if bounds is None else [[bounds[1], bounds[0]], [bounds[3], bounds[2]]]}


@map_tiles.get("/tiles/{z}/{x}/{y}.png", response_class=Response)
def map_tile(z: int, x: int, y: int, request: Request, settings: Settings = Depends(get_settings)) -> Response:
    """A 256 px true-colour Web Mercator tile of the newest clean imagery; transparent outside it."""
    maptiles.check_xyz(z, x, y, settings.map_max_zoom)

    def read() -> maptiles.MapImagery:
        with connect(settings.db_path) as con:
            return _imagery(con, settings)

    sources = request.app.state.map_catalogue.get(read).sources
    cache: maptiles.TileCache = request.app.state.map_tiles
    key = (tuple(s.tile_id for s in sources), z, x, y)
    png = cache.get(key)
    if png is None:
        png = maptiles.render_xyz(sources, z, x, y, gain=settings.map_gain,
                                     images=request.app.state.map_pictures) or request.app.state.empty_tile
        cache.put(key, png)
    # Private: only signed-in users may fetch it. Tile ids are content checksums, so an hour is safe.
    return Response(content=png, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})


@borrower_fields.get("/{borrower_id}/fields")
def borrower_field_shapes(borrower_id: str = Depends(visible_borrower),
                          con: duckdb.DuckDBPyConnection = Depends(read_db)) -> dict[str, Any]:
    """The borrower's fields as drawn, with their current status: a GeoJSON FeatureCollection (EPSG:4326)."""
    features = []
    for row in queries.claim_shapes(con, borrower_id):
        geometry = json.loads(row.pop("geojson") or "null")
        features.append({"type": "Feature", "id": row["claim_id"], "geometry": geometry or None, "properties": row})
    return {"type": "FeatureCollection", "borrower_id": borrower_id, "features": features}


@fields.get("/proposal")
async def field_proposal(request: Request,
                         lon: float = Query(..., description="longitude of the tapped point, degrees (EPSG:4326)"),
                         lat: float = Query(..., description="latitude of the tapped point, degrees (EPSG:4326)"),
                         settings: Settings = Depends(get_settings)) -> dict[str, Any]:
    """The detected field boundary under a point, as a GeoJSON Feature with its area (ha, mu):
    404 outside the imagery or off any detected field, 422 for a point that is not one."""
    from assets.pipeline import stored_tiles
    from assets.propose import check_point, propose_field

    check_point(lon, lat)

    def run() -> dict[str, Any]:
        with connect(settings.db_path) as con:
            tiles = stored_tiles(con, settings.today())
        return propose_field(lon, lat, tiles, request.app.state.segmentations, settings).to_geojson()

    return await run_in_threadpool(run)
