"""Routers: one per resource, each declaring who may use it. Each handler calls one domain or query function.

| router      | who                      |
|-------------|--------------------------|
| auth        | anyone (sign-in itself, throttled per address) |
| me          | any signed-in role       |
| borrowers   | farmer (own borrower only, 404 otherwise), officer |
| portfolio, alerts | officer, operations (both may resolve an alert) |
| reviews     | officer (decides claims waiting for review) |
| docs        | anyone (the API's description; no borrower's data) |
| imagery     | anyone (public Copernicus data) |
"""

from __future__ import annotations

from datetime import date
from typing import Any

import duckdb
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse

from assets import access
from assets.access import Identity, Role
from assets.api.deps import (
    ANY_ROLE,
    allow,
    current_identity,
    get_settings,
    public,
    read_db,
    signin_refused,
    visible_borrower,
)
from assets.api.limits import check_claim_size, client_address, parse_json
from assets.config import Settings
from assets.errors import AuthenticationError, InputError, PermissionDeniedError
from assets.monitor import check_alert_kind
from assets.store import queries

auth = APIRouter(prefix="/auth", tags=["sign-in"], dependencies=[Depends(public)])
me = APIRouter(prefix="/me", tags=["sign-in"], dependencies=[Depends(ANY_ROLE)])
portfolio = APIRouter(prefix="/portfolio", tags=["portfolio"], dependencies=[Depends(allow(Role.OFFICER, Role.OPERATIONS))])
borrowers = APIRouter(prefix="/borrowers", tags=["borrowers"], dependencies=[Depends(allow(Role.FARMER, Role.OFFICER))])
alerts = APIRouter(prefix="/alerts", tags=["alerts"], dependencies=[Depends(allow(Role.OFFICER, Role.OPERATIONS))])
reviews = APIRouter(prefix="/reviews", tags=["reviews"], dependencies=[Depends(allow(Role.OFFICER))])
docs = APIRouter(tags=["docs"], dependencies=[Depends(public)], include_in_schema=False)
# Open satellite imagery (Copernicus): public, so the map's <img> overlay needs no header.
imagery = APIRouter(prefix="/imagery", tags=["imagery"], dependencies=[Depends(public)])
health = APIRouter(tags=["ops"], dependencies=[Depends(public)])

_CLAIMS_BODY = {"requestBody": {"required": True, "content": {"application/json": {"schema": {
    "type": "object", "description": "FeatureCollection, Feature or Polygon in EPSG:4326"}}}}}


@health.get("/health")
def get_health() -> dict[str, str]:
    return {"status": "ok"}


@auth.post("/exchange", openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
    "schema": {"type": "object", "properties": {"code": {"type": "string"}}, "required": ["code"]}}}}})
async def exchange(request: Request, settings: Settings = Depends(get_settings)) -> dict[str, Any]:
    """Trade the one-time code from a sign-in link for a bearer token; the code cannot be used again."""
    doc = parse_json(await request.body(), '{"code": "..."} with the code from your sign-in link')
    code = doc.get("code") if isinstance(doc, dict) else None
    if not isinstance(code, str):
        raise InputError('send {"code": "..."} with the code from your sign-in link')
    try:
        issued = await run_in_threadpool(access.exchange_code, settings.db_path, code, settings)
    except AuthenticationError as e:
        signin_refused(request.app.state.limits, client_address(request), e)
        raise
    return {"token": issued.secret, "token_type": "bearer", "expires_at": issued.expires_at,
            "name": issued.user_name, "role": issued.role.value, "borrower_id": issued.borrower_id}


@me.get("")
def get_me(identity: Identity = Depends(current_identity)) -> dict[str, Any]:
    """Who this token belongs to: the map takes a farmer's borrower from here."""
    return {"name": identity.name, "role": identity.role.value, "borrower_id": identity.borrower_id,
            "expires_at": identity.expires_at}


@me.post("/signout")
async def sign_out(request: Request, identity: Identity = Depends(current_identity),
                   settings: Settings = Depends(get_settings)) -> dict[str, Any]:
    """End this token's session on the server (the map's "Sign out"): it stops working at once, on
    every device that holds it (map tiles within `map_token_cache_s`)."""
    await run_in_threadpool(access.sign_out, settings.db_path, identity)
    return {"signed_out": identity.name}


@portfolio.get("")
def get_portfolio(con: duckdb.DuckDBPyConnection = Depends(read_db)) -> list[dict[str, Any]]:
    """Every borrower's verified area, value range and credit limit in force now (`borrower_limits`)."""
    return queries.portfolio(con)


@borrowers.get("/{borrower_id}")
def get_borrower(borrower_id: str = Depends(visible_borrower),
                 con: duckdb.DuckDBPyConnection = Depends(read_db)) -> dict[str, Any]:
    """A borrower's claims with verdicts, the explanation of each value and limit, history and alerts."""
    from assets.explain import borrower_detail

    return borrower_detail(con, borrower_id)


@borrowers.post("/{borrower_id}/claims", status_code=201, openapi_extra=_CLAIMS_BODY)
async def submit_claims(
    request: Request,
    borrower_id: str = Depends(visible_borrower),
    as_of: date | None = Query(None, description="officers only: verify with imagery up to this date (default "
                               "today), not after today"),
    identity: Identity = Depends(current_identity),
    settings: Settings = Depends(get_settings),
) -> list[dict[str, Any]]:
    """Register and verify field boundaries drawn by a farmer; returns each claim's verdict.

    The body is read only after the caller's role and borrower are checked, so an unauthorised
    caller learns nothing from how a body is parsed. The assessment date is the bank's: a farmer
    cannot choose it (a date before a crop failure, or one after every later night).
    """
    from assets.pipeline import check_as_of, submit_and_assess

    if as_of is not None and identity.role is not Role.OFFICER:
        raise PermissionDeniedError("only a credit officer may set the assessment date (as_of); send the claim "
                                    "without it and it is assessed at today's date")
    when = check_as_of(as_of or settings.today(), settings)
    doc = parse_json(await request.body())
    check_claim_size(doc, settings)

    # Assessments run side by side; only their short write transactions take turns, in the
    # store's one writer (`store.writer`), which numbers and chains the decisions.
    return await run_in_threadpool(submit_and_assess, settings, doc, borrower_id, as_of=when)


@alerts.get("")
def get_alerts(kind: str | None = None, con: duckdb.DuckDBPyConnection = Depends(read_db)) -> list[dict[str, Any]]:
    """Crop-failure and sensor alerts, newest first."""
    return queries.alerts(con, kind=check_alert_kind(kind))


@alerts.post("/{alert_id}/resolve", openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
    "schema": {"type": "object", "required": ["note"], "properties": {"note": {"type": "string"}}}}}}})
async def resolve_alert(alert_id: str, request: Request, identity: Identity = Depends(current_identity),
                        settings: Settings = Depends(get_settings)) -> dict[str, Any]:
    """Close an open alert once dealt with; stored with who and why. A condition still there on a later
    night raises a new alert."""
    from assets import alerts as alert_lifecycle

    shape = '{"note": "what was done"}'
    doc = parse_json(await request.body(), shape)
    if not isinstance(doc, dict) or not isinstance(doc.get("note"), str):
        raise InputError(f"send {shape}")
    resolution = alert_lifecycle.check(alert_lifecycle.Resolution(alert_id, doc["note"], identity.name, "api"),
                                        settings)
    return await run_in_threadpool(alert_lifecycle.resolve, settings, resolution)


@reviews.get("")
def get_reviews(settings: Settings = Depends(get_settings)) -> list[dict[str, Any]]:
    """Claims whose boundary follows no detected field: no limit until an officer decides."""
    from assets import reviews as review_queue

    return review_queue.queue(settings)


@reviews.post("/{claim_id}", openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
    "schema": {"type": "object", "required": ["decision", "note"], "properties": {
        "decision": {"type": "string", "enum": ["approve", "reject"]}, "note": {"type": "string"},
        "verification_id": {"type": "string", "description": "the verdict you looked at (GET /reviews); refused if "
                            "the claim was assessed again since"}}}}}}})
async def decide_review(claim_id: str, request: Request, identity: Identity = Depends(current_identity),
                        settings: Settings = Depends(get_settings)) -> dict[str, Any]:
    """Approve (valued at the verified area) or reject a claim in review; stored with who and why."""
    from assets import reviews as review_queue

    shape = '{"decision": "approve" | "reject", "note": "why"}'
    doc = parse_json(await request.body(), shape)
    if not isinstance(doc, dict) or not isinstance(doc.get("decision"), str):
        raise InputError(f"send {shape}")
    if not isinstance(doc.get("note"), str) or not doc["note"].strip():
        raise InputError(f'a review decision needs a "note" saying why (it is shown to the borrower); send {shape}')
    seen = doc.get("verification_id")
    if seen is not None and not isinstance(seen, str):
        raise InputError('"verification_id" is the verdict you looked at, as text (from GET /reviews)')
    decision = review_queue.Decision(claim_id, doc["decision"], doc["note"], identity.name, "api", seen)

    return await run_in_threadpool(review_queue.decide, settings, review_queue.check(decision, settings))


@docs.get("/openapi.json")
def openapi_schema(request: Request) -> dict[str, Any]:
    return request.app.openapi()


@docs.get("/docs", response_class=HTMLResponse)
def swagger_ui() -> HTMLResponse:
    """Swagger UI from the npm package the map's scripts come from (served at /vendor/swagger-ui):
    the bank's network may not reach a CDN. "Authorize" takes a bearer token to try the routes."""
    return get_swagger_ui_html(openapi_url="/openapi.json", title="assets API",
                               swagger_js_url="/vendor/swagger-ui/swagger-ui-bundle.js",
                               swagger_css_url="/vendor/swagger-ui/swagger-ui.css",
                               swagger_favicon_url="/vendor/swagger-ui/favicon-32x32.png")


@imagery.get("/latest")
def latest_imagery(con: duckdb.DuckDBPyConnection = Depends(read_db)) -> dict[str, Any]:
    """Which tile the map shows, its date and its corners (EPSG:4326)."""
    from assets.imagery.preview import preview_bounds

    tile = queries.preview_tile(con)
    west, south, east, north = preview_bounds(tile["path"])
    return {"tile_id": tile["tile_id"], "acquired_on": tile["acquired_on"], "url": f"/imagery/{tile['tile_id']}.png",
            "bounds": [[south, west], [north, east]]}


@imagery.get("/{tile_id}.png", response_class=Response)
def imagery_png(tile_id: str, request: Request, con: duckdb.DuckDBPyConnection = Depends(read_db),
                settings: Settings = Depends(get_settings)) -> Response:
    """True-colour PNG of a tile in Web Mercator, rendered once per tile (ids are content checksums):
    the route is public, so repeated requests must not cost a render each."""
    from assets.imagery.preview import render_preview

    path = queries.tile_path(con, tile_id)  # 404 for an unknown id, before the cache is consulted
    cache = request.app.state.previews
    png = cache.get((tile_id,))
    if png is None:
        png = render_preview(path, gain=settings.map_gain).png
        cache.put((tile_id,), png)
    return Response(content=png, media_type="image/png", headers={"Cache-Control": "max-age=3600"})
