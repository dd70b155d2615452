"""ASGI middleware: security headers on every answer, and the officers' audit trail.

Pure ASGI (no BaseHTTPMiddleware) so the body-size cap and streaming responses are untouched.
"""

from __future__ import annotations

from typing import Any

import anyio

from assets.access import Identity, Role, utcnow
from assets.api.limits import ASGIApp, Receive, Scope, Send
from assets.store import users as store
from assets.store import writer

# The map page loads only its own scripts, styles and the imagery it is served; no framing anywhere.
MAP_CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
           "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'")
API_CSP = "frame-ancestors 'none'"
# What an audited request acted on, from its path: the claim an officer decided, the alert resolved.
AUDIT_TARGETS = ("claim_id", "alert_id", "borrower_id", "tile_id")


class SecurityHeadersMiddleware:
    """nosniff, no framing, no referrer; API JSON is never cached (it carries borrowers' data)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        on_map = scope.get("path", "").startswith(("/map", "/vendor"))

        async def send_with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                extra = {b"x-content-type-options": b"nosniff", b"x-frame-options": b"DENY",
                         b"referrer-policy": b"no-referrer",
                         b"content-security-policy": (MAP_CSP if on_map else API_CSP).encode()}
                content_type = next((v for k, v in headers if k.lower() == b"content-type"), b"")
                if content_type.startswith(b"application/json"):
                    extra[b"cache-control"] = b"no-store"
                headers += [(k, v) for k, v in extra.items() if k not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class AuditMiddleware:
    """After each request an officer made, one audit row: who, what (route and borrower), when, status.

    Reads as well as writes: which borrowers' data an officer opened is what a bank's auditors ask.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        status: list[int] = []

        async def send_recording(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_recording)
        finally:
            identity: Identity | None = state.get("identity")
            # Map tiles are imagery, not a borrower's data: a map view would write dozens of rows.
            if identity is not None and identity.role is Role.OFFICER and not scope.get("path", "").startswith(
                    "/map/tiles/"):
                route = scope.get("route")
                params = scope.get("path_params") or {}
                query = scope.get("query_string", b"").decode("latin-1")[:200]  # ?as_of=, ?known_at= change answers
                row = {"at": utcnow(), "user_name": identity.name, "role": identity.role.value,
                       "token_id": identity.token_id,
                       "action": f"{scope['method']} {getattr(route, 'path', scope.get('path', ''))}"
                                 + (f"?{query}" if query else ""),
                       "target": next((params[k] for k in AUDIT_TARGETS if params.get(k)), None),
                       "status": status[0] if status else 500}
                db_path = scope["app"].state.settings.db_path
                await anyio.to_thread.run_sync(_write_audit, db_path, row)


def _write_audit(db_path: Any, row: dict[str, Any]) -> None:
    writer.call(db_path, store.record_audit, rows=[row])  # the file's one writer; it republishes the snapshot
