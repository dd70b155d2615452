"""Routers: one per resource. Each handler calls one domain or query function."""

from __future__ import annotations

from datetime import date
from typing import Any

import duckdb
from fastapi import APIRouter, Body, Depends, Query, Response

from assets.api.deps import get_settings, read_db, require_key
from assets.config import Settings
from assets.store import queries

portfolio = APIRouter(prefix="/portfolio", tags=["portfolio"], dependencies=[Depends(require_key)])
borrowers = APIRouter(prefix="/borrowers", tags=["borrowers"], dependencies=[Depends(require_key)])
alerts = APIRouter(prefix="/alerts", tags=["alerts"], dependencies=[Depends(require_key)])
# Open satellite imagery (Copernicus): public, so the map's <img> overlay needs no header.
imagery = APIRouter(prefix="/imagery", tags=["imagery"])


@portfolio.get("")
def get_portfolio(con: duckdb.DuckDBPyConnection = Depends(read_db)) -> list[dict[str, Any]]:
    """Every borrower's verified area, value and credit limit."""
    return queries.portfolio(con)


@borrowers.get("/{borrower_id}")
def get_borrower(borrower_id: str, con: duckdb.DuckDBPyConnection = Depends(read_db)) -> dict[str, Any]:
    """A borrower's claims with verdicts, the explanation of each value and limit, history and alerts."""
    return queries.borrower(con, borrower_id)


@borrowers.post("/{borrower_id}/claims", status_code=201)
def submit_claims(
    borrower_id: str,
    geojson: dict[str, Any] = Body(..., description="FeatureCollection, Feature or Polygon in EPSG:4326"),
    as_of: date | None = Query(None, description="verify with imagery up to this date (default today)"),
    settings: Settings = Depends(get_settings),
) -> list[dict[str, Any]]:
    """Register and verify field boundaries drawn by a farmer; returns each claim's verdict."""
    from assets.pipeline import submit_and_assess

    return submit_and_assess(settings, geojson, borrower_id, as_of=as_of or date.today())


@alerts.get("")
def get_alerts(kind: str | None = None, con: duckdb.DuckDBPyConnection = Depends(read_db)) -> list[dict[str, Any]]:
    """Crop-failure and sensor alerts, newest first."""
    return queries.alerts(con, kind=kind)


@imagery.get("/latest")
def latest_imagery(con: duckdb.DuckDBPyConnection = Depends(read_db)) -> dict[str, Any]:
    """Which tile the map shows, its date and its corners (EPSG:4326)."""
    from assets.imagery.preview import preview_bounds

    tile = queries.preview_tile(con)
    west, south, east, north = preview_bounds(tile["path"])
    return {"tile_id": tile["tile_id"], "acquired_on": tile["acquired_on"], "url": f"/imagery/{tile['tile_id']}.png",
            "bounds": [[south, west], [north, east]]}


@imagery.get("/{tile_id}.png", response_class=Response)
def imagery_png(tile_id: str, con: duckdb.DuckDBPyConnection = Depends(read_db)) -> Response:
    """True-colour PNG of a tile in Web Mercator."""
    from assets.imagery.preview import render_preview

    png = render_preview(queries.tile_path(con, tile_id)).png
    return Response(content=png, media_type="image/png", headers={"Cache-Control": "max-age=3600"})
