"""Dependencies shared by the routers: settings, a store connection, who is calling, what they may do.

Every route declares its audience with exactly one of `public` or `allow(...)` as a router
dependency; `route_roles` reads that declaration back, and the route x role tests fail for a
route that declares neither.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import duckdb
from fastapi import Depends, FastAPI, Request, Security
from fastapi.routing import APIRoute
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from assets import access
from assets.access import Identity, Role
from assets.api.limits import Limits, client_address
from assets.config import Settings
from assets.errors import AuthenticationError, InputError, NotFoundError, PermissionDeniedError, SignInEndedError
from assets.store import connect

_bearer = HTTPBearer(auto_error=False, description="a token from `assets users token` or a sign-in link")
_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="the same token (older clients)")
# One body for every borrower a farmer may not see, existing or not, so 404 tells nothing.
HIDDEN_BORROWER = "no such borrower among those you may see; a farmer sees only their own (GET /me)"


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def read_db(settings: Settings = Depends(get_settings)) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection for one request, closed when the response is sent.

    Not read-only on purpose: DuckDB refuses a read-write connection in a process that holds a
    read-only one to the same file, and claim submissions write while the map's image loads.
    Read-write connections within one process share one database instance.
    """
    with connect(settings.db_path) as con:
        yield con


def current_identity(
    request: Request,
    con: duckdb.DuckDBPyConnection = Depends(read_db),
    bearer: HTTPAuthorizationCredentials | None = Security(_bearer),
    api_key: str | None = Security(_api_key),
) -> Identity:
    """The caller, from `Authorization: Bearer` (or X-API-Key); throttled per address and token."""
    identity = _identify(request, con, bearer, api_key)
    request.app.state.limits.check_token(identity.token_id or identity.name)
    return identity


def tile_identity(
    request: Request,
    settings: Settings = Depends(get_settings),
    bearer: HTTPAuthorizationCredentials | None = Security(_bearer),
    api_key: str | None = Security(_api_key),
) -> Identity:
    """`current_identity` for map tiles: a map view loads dozens at once, so they count against
    their own budget (`map_tiles_per_token_per_min`), and a verified token is remembered for
    `map_token_cache_s` (tiles are public imagery, no borrower's data) so a tile opens no
    database connection; a revoked token may fetch tiles for that long, nothing else."""
    presented = bearer.credentials if bearer is not None else api_key
    remembered: dict[str, tuple[Identity, float]] = request.app.state.tile_identities
    key = hashlib.sha256(presented.encode("utf-8", "replace")).hexdigest() if presented else ""
    hit = remembered.get(key)
    now = time.monotonic()
    if hit is not None and hit[1] > now and (hit[0].expires_at is None or hit[0].expires_at > access.utcnow()):
        identity = request.state.identity = hit[0]
    else:
        with connect(settings.db_path) as con:
            identity = _identify(request, con, bearer, api_key)
        if len(remembered) > 10_000:
            remembered.clear()
        remembered[key] = (identity, now + settings.map_token_cache_s)
    request.app.state.limits.check_tiles(identity.token_id or identity.name)
    return identity


def _identify(request: Request, con: duckdb.DuckDBPyConnection, bearer: HTTPAuthorizationCredentials | None,
              api_key: str | None) -> Identity:
    presented = bearer.credentials if bearer is not None else api_key
    if not presented:
        raise AuthenticationError("sign in first: send `Authorization: Bearer <token>` (from your sign-in link "
                                  "or `assets users token`)")
    try:
        identity = access.verify(con, presented, static_keys=request.app.state.static_keys)
    except AuthenticationError as e:
        signin_refused(request.app.state.limits, client_address(request), e)
        raise
    request.state.identity = identity  # read by the audit middleware
    return identity


def signin_refused(limits: Limits, address: str, error: AuthenticationError) -> None:
    """Count a refused token or code against its address, unless its holder presented it.

    A guess (an unknown token, a wrong secret) counts, and an address past the limit is refused
    with 429 from then on. A real token that was revoked or expired, or a link opened again
    (`SignInEndedError`), is its holder's, and a guesser cannot make one: counting it let one
    farmer's map, panning with a revoked sign-in, lock everyone behind that address out. A valid
    token always gets in (tokens are 256-bit secrets: the limit slows guessing, nothing more)."""
    if isinstance(error, SignInEndedError):
        return
    limits.check_signin(address)
    limits.signin_failed(address)


def _query_names(dependant: Any) -> set[str]:
    names = {p.alias for p in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


def known_query_parameters(request: Request) -> None:
    """Refuse a query parameter the route does not take (422 naming it and the ones it takes): a
    misspelt filter (`?desc=true`, `?min_limit=`) must not answer 200 with everything, unfiltered."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute) or not request.query_params:
        return
    allowed = _query_names(route.dependant)
    unknown = sorted(set(request.query_params) - allowed)
    if unknown:
        takes = ", ".join(sorted(allowed)) if allowed else "no query parameters"
        raise InputError(f"{request.url.path} does not take {', '.join(unknown)}; it takes {takes}")


def public() -> None:
    """Declares a route open to anyone (health, public imagery, sign-in itself)."""


public.roles = None  # type: ignore[attr-defined]


_AS = {Role.FARMER: "a farmer", Role.OFFICER: "an officer", Role.OPERATIONS: "an operations user"}


def allow(*roles: Role, identify: Callable[..., Identity] = current_identity) -> Callable[..., Identity]:
    """A router dependency admitting only ``roles``; others get 403, callers without a token 401."""
    names = ", ".join(r.value for r in roles)

    def dependency(identity: Identity = Depends(identify)) -> Identity:
        if identity.role not in roles:
            raise PermissionDeniedError(f"this resource is for {names}; you are signed in as {_AS[identity.role]}")
        return identity

    dependency.roles = frozenset(roles)  # type: ignore[attr-defined]
    return dependency


ANY_ROLE = allow(*Role)


def allow_tiles(*roles: Role) -> Callable[..., Identity]:
    """`allow` for map tiles, counted against the tile budget (`tile_identity`)."""
    return allow(*roles, identify=tile_identity)


def visible_borrower(borrower_id: str, identity: Identity = Depends(current_identity)) -> str:
    """The path's borrower if the caller may see it: a farmer only their own, identical 404 otherwise."""
    if identity.role is Role.FARMER:
        if borrower_id != identity.borrower_id:
            raise NotFoundError(HIDDEN_BORROWER)
        return borrower_id
    return access.canonical_id(borrower_id, "borrower id")


_UNDECLARED = object()


def served_routes(app: FastAPI) -> list[Any]:
    """Every route as served, with its routers' dependencies applied.

    Newer FastAPI keeps included routers lazy (``app.routes`` holds the routers), so flatten
    them through `iter_route_contexts` where it exists; each item has ``path``, ``methods``,
    ``dependencies`` and ``original_route``.
    """
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # older FastAPI: app.routes is already flat
        return [_Flat(r) for r in app.routes]
    return list(iter_route_contexts(app.routes))


@dataclass(frozen=True)
class _Flat:
    original_route: Any

    def __getattr__(self, name: str) -> Any:
        return getattr(self.original_route, name)


def route_roles(route: APIRoute | Any) -> frozenset[Role] | None:
    """The roles a route admits (None: public); `LookupError` when it declares neither or both."""
    declared = [d.dependency.roles for d in route.dependencies  # type: ignore[union-attr]
                if getattr(d.dependency, "roles", _UNDECLARED) is not _UNDECLARED]
    if len(declared) != 1:
        raise LookupError(f"route {route.path} declares {len(declared)} audiences; add exactly one of "
                          "Depends(public) or Depends(allow(...)) to its router")
    return declared[0]
