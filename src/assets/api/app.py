"""The FastAPI application: `create_app(settings)`; run with `assets serve`."""

from __future__ import annotations

import logging
import secrets
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator, Sequence

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from assets import access
from assets.api import credit, maps, routes
from assets.api.deps import known_query_parameters, public
from assets.api.limits import BodyLimitMiddleware, Limits
from assets.api.middleware import AuditMiddleware, SecurityHeadersMiddleware
from assets.config import Settings
from assets.errors import (
    AssetsError,
    AuthenticationError,
    InputError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    StoreLockedError,
    TooLargeError,
)
from assets.imagery import maptiles
from assets.store.writer import WriterService

log = logging.getLogger("assets.api")

# Most specific first: TooLargeError is an InputError.
_STATUS: tuple[tuple[type[AssetsError], int], ...] = (
    (AuthenticationError, 401), (PermissionDeniedError, 403), (NotFoundError, 404), (TooLargeError, 413),
    (RateLimitError, 429), (StoreLockedError, 503), (InputError, 422))


def _status(exc: AssetsError) -> int:
    return next((code for kind, code in _STATUS if isinstance(exc, kind)), 500)


def _headers(exc: AssetsError) -> dict[str, str]:
    if isinstance(exc, RateLimitError):
        return {"Retry-After": str(exc.retry_after_s)}
    if isinstance(exc, AuthenticationError):
        return {"WWW-Authenticate": 'Bearer realm="assets"'}
    return {}


def validation_message(errors: Sequence[Any]) -> str:
    """One sentence from FastAPI's validation errors: ``as_of: 'notadate' is not a valid date (YYYY-MM-DD)``."""
    parts = []
    for e in errors:
        where = ".".join(str(p) for p in e.get("loc", ())[1:]) or "request"
        got = f"{e['input']!r} " if "input" in e and e["input"] is not None and e.get("type") != "missing" else ""
        said = str(e.get("msg") or "is not valid").replace("Input should", "should").replace("Value error, ", "")
        want = _WANTS.get(str(e.get("type", "")), said)
        parts.append(f"{where}: {got}{want}")
    return "; ".join(parts) + "; correct it and send the request again"


# What a parameter wanted, by pydantic's error type.
_WANTS = {"missing": "is required", "float_parsing": "is not a number", "int_parsing": "is not a whole number",
          "date_from_datetime_parsing": "is not a valid date (YYYY-MM-DD)", "date_parsing": "is not a valid date (YYYY-MM-DD)",
          "datetime_parsing": "is not a valid time (YYYY-MM-DDTHH:MM:SS)", "datetime_from_date_parsing":
          "is not a valid time (YYYY-MM-DDTHH:MM:SS)", "bool_parsing": "is not true or false"}


def create_app(settings: Settings, api_keys: Sequence[str] | None = None, *, own_store: bool = False) -> FastAPI:
    """An app bound to one database.

    With ``own_store`` (`assets serve`) the app owns the database file while it runs: a
    `store.writer.WriterService` takes the writes of other processes (nightly flow, sensor
    ingester) and publishes the read snapshot analysts open.

    Users and tokens live in the database (`assets users ...`). ``api_keys`` (default:
    `Settings.officer_api_keys`, from ASSETS_API_KEYS, comma-separated) are extra officer keys without expiry, for scripts and for
    `assets serve`'s one-off demo key.
    """
    keys = access.static_keys(api_keys if api_keys is not None else settings.officer_api_keys,
                              min_chars=settings.api_key_min_chars)  # a weak key stops the start, not a request

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.settings = settings
        _limit_torch_threads(settings.serve_torch_threads)
        app.state.static_keys = keys
        app.state.limits = Limits(settings)
        app.state.writer = WriterService(settings.db_path).start() if own_store else None
        app.state.map_tiles = maptiles.TileCache(settings.map_tile_cache_tiles)  # rendered PNGs, LRU
        app.state.previews = maptiles.TileCache(settings.preview_cache_images)  # public whole-tile PNGs
        app.state.map_pictures = maptiles.MercatorImages(settings.map_picture_max_pixels, settings.map_max_zoom)
        app.state.empty_tile = maptiles.transparent_png()
        app.state.tile_identities = {}  # sha256(token) -> (identity, trusted until), see deps.tile_identity
        app.state.map_catalogue = maptiles.CatalogueCache(settings.map_catalogue_cache_s)
        from assets.propose import Segmentations

        app.state.segmentations = Segmentations(settings)  # field proposals: model loaded on first tap
        try:
            yield
        finally:
            if app.state.writer is not None:
                app.state.writer.stop()

    # /docs and /openapi.json are served by routes.docs, for officers only.
    app = FastAPI(title="assets", version="0.1.0", lifespan=lifespan, docs_url=None, redoc_url=None,
                  dependencies=[Depends(known_query_parameters)],
                  openapi_url=None, description="Verified farm assets and credit limits for credit teams and farmers.")
    app.add_middleware(AuditMiddleware)
    app.add_middleware(BodyLimitMiddleware, max_body_bytes=settings.max_body_bytes)
    app.add_middleware(SecurityHeadersMiddleware)  # added last = outermost: every answer gets the headers

    @app.exception_handler(AssetsError)
    async def domain_error(request: Request, exc: AssetsError) -> JSONResponse:
        said = {"error": str(exc), **({"code": exc.code} if exc.code else {})}
        return JSONResponse(status_code=_status(exc), content=said, headers=_headers(exc))

    @app.exception_handler(RequestValidationError)
    async def parameter_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        """FastAPI's own checks (a query parameter that is not a number or a date) answer in the same
        one-line ``{"error": ...}`` shape as every other refusal, naming the parameter and what it wants."""
        return JSONResponse(status_code=422, content={"error": validation_message(exc.errors())})

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        """Starlette's own refusals (an unknown path, a method a route does not take) in the same shape."""
        said = {404: f"no such address {request.url.path}; the API's routes are listed at /docs",
                405: f"{request.method} is not allowed on {request.url.path}"}.get(exc.status_code, str(exc.detail))
        return JSONResponse(status_code=exc.status_code, content={"error": said}, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
        """A bug, not bad input: logged with its traceback under a reference the caller can quote."""
        ref = secrets.token_hex(4)
        log.exception("unexpected error %s on %s %s", ref, request.method, request.url.path)
        return JSONResponse(status_code=500, content={
            "error": f"internal error (reference {ref}); nothing you sent was wrong as far as the server can tell: "
                     "try again, and give the bank this reference if it happens again"})

    for router in (routes.health, routes.auth, routes.me, routes.portfolio, routes.borrowers, routes.alerts,
                   routes.imagery, routes.reviews, routes.docs):
        app.include_router(router)
    app.include_router(credit.credit)  # officers: explain, history, filtered portfolio (#14)
    for router in (maps.map_api, maps.map_tiles, maps.borrower_fields, maps.fields):  # the map (#13); before the /map mount
        app.include_router(router)
    _mount_map(app, settings.web_dir)
    return app


def server_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's options for this service: X-Forwarded-For believed only from `Settings.trusted_proxies`
    (from anyone else a client could choose the address its failed sign-ins count against)."""
    return {"proxy_headers": bool(settings.trusted_proxies), "forwarded_allow_ips": settings.trusted_proxies or None}


def _mount_map(app: FastAPI, web_dir: Path) -> None:
    """The farmer's map at /map; Leaflet, Leaflet-Geoman and the API docs' Swagger UI come from npm
    (`npm ci` in src/assets/web; the wheel ships them)."""
    leaflet = web_dir / "node_modules" / "leaflet" / "dist"
    geoman = web_dir / "node_modules" / "@geoman-io" / "leaflet-geoman-free" / "dist"
    swagger = web_dir / "node_modules" / "swagger-ui-dist"
    if swagger.is_dir():
        app.mount("/vendor/swagger-ui", StaticFiles(directory=swagger), name="swagger-ui")
    if leaflet.is_dir() and geoman.is_dir():
        app.mount("/vendor/leaflet", StaticFiles(directory=leaflet), name="leaflet")
        app.mount("/vendor/leaflet-geoman", StaticFiles(directory=geoman), name="leaflet-geoman")
        app.mount("/map", StaticFiles(directory=web_dir / "static", html=True), name="map")
        return
    missing = APIRouter(dependencies=[Depends(public)], include_in_schema=False)

    @missing.get("/map")
    def map_missing() -> JSONResponse:
        return JSONResponse(status_code=503, content={"error": "the map's JavaScript is not installed; run "
                                                      "`npm ci --prefix src/assets/web` (make install does it)"})

    app.include_router(missing)


def _limit_torch_threads(n: int) -> None:
    """Each request runs its models on one field: with torch's intra-op pool on top of the request
    threads, a one-field crop call took ~40 ms waking threads instead of ~0.5 ms (20 farmers at
    once oversubscribe the cores), so the server's requests are its parallelism."""
    if n > 0:
        import torch

        torch.set_num_threads(n)
