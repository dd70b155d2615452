"""The FastAPI application: `create_app(settings)`; run with `assets serve`."""

from __future__ import annotations

import os
from pathlib import Path
from contextlib import asynccontextmanager
from typing import AsyncIterator, Sequence

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from assets.api import routes
from assets.config import Settings
from assets.errors import AssetsError, InputError, NotFoundError, StoreLockedError


def _status(exc: AssetsError) -> int:
    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, StoreLockedError):
        return 503
    if isinstance(exc, InputError):
        return 422
    return 500


def create_app(settings: Settings, api_keys: Sequence[str] | None = None) -> FastAPI:
    """An app bound to one database; keys default to ASSETS_API_KEYS (comma-separated)."""
    keys = tuple(api_keys if api_keys is not None else
                 [k.strip() for k in os.environ.get("ASSETS_API_KEYS", "").split(",") if k.strip()])

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.settings = settings
        app.state.api_keys = keys
        yield

    app = FastAPI(title="assets", version="0.1.0", lifespan=lifespan,
                  description="Verified farm assets and credit limits for credit teams and farmers.")

    @app.exception_handler(AssetsError)
    async def domain_error(request: Request, exc: AssetsError) -> JSONResponse:
        return JSONResponse(status_code=_status(exc), content={"error": str(exc)})

    @app.get("/health", tags=["ops"])
    def health() -> dict[str, str]:
        return {"status": "ok"}

    for router in (routes.portfolio, routes.borrowers, routes.alerts, routes.imagery):
        app.include_router(router)
    _mount_map(app)
    return app


WEB_DIR = Path(__file__).resolve().parents[1] / "web"


def _mount_map(app: FastAPI) -> None:
    """The farmer's map at /map; Leaflet comes from npm (`npm ci` in src/assets/web)."""
    leaflet = WEB_DIR / "node_modules" / "leaflet" / "dist"
    if leaflet.is_dir():
        app.mount("/vendor/leaflet", StaticFiles(directory=leaflet), name="leaflet")
        app.mount("/map", StaticFiles(directory=WEB_DIR / "static", html=True), name="map")
        return

    @app.get("/map", include_in_schema=False)
    def map_missing() -> JSONResponse:
        return JSONResponse(status_code=503, content={"error": "the map's JavaScript is not installed; run "
                                                      "`npm ci --prefix src/assets/web` (make install does it)"})
