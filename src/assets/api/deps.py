"""Dependencies shared by the routers: settings, a store connection, who is calling, what they may do.

Every route declares its audience with exactly one of `public` or `allow(...)` as a router
dependency; `route_roles` reads that declaration back, and the route x role tests fail for a
route that declares neither.
"""

from __future__ import annotations

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
from assets.errors import AuthenticationError, NotFoundError, PermissionDeniedError
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
    limits: Limits = request.app.state.limits
    address = client_address(request)
    limits.check_signin(address)
    presented = bearer.credentials if bearer is not None else api_key
    if not presented:
        raise AuthenticationError("sign in first: send `Authorization: Bearer <token>` (from your sign-in link "
                                  "or `assets users token`)")
    try:
        identity = access.verify(con, presented, static_keys=request.app.state.static_keys)
    except AuthenticationError:
        limits.signin_failed(address)
        raise
    limits.check_token(identity.token_id or identity.name)
    request.state.identity = identity  # read by the audit middleware
    return identity


def public() -> None:
    """Declares a route open to anyone (health, public imagery, sign-in itself)."""


public.roles = None  # type: ignore[attr-defined]


def allow(*roles: Role) -> Callable[..., Identity]:
    """A router dependency admitting only ``roles``; others get 403, callers without a token 401."""
    names = ", ".join(r.value for r in roles)

    def dependency(identity: Identity = Depends(current_identity)) -> Identity:
        if identity.role not in roles:
            raise PermissionDeniedError(f"this resource is for {names}; you are signed in as a {identity.role.value}")
        return identity

    dependency.roles = frozenset(roles)  # type: ignore[attr-defined]
    return dependency


ANY_ROLE = allow(*Role)


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
