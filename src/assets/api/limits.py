"""Abuse limits of the HTTP API: sign-in and request throttles, body size, claim size caps.

Every number comes from `Settings`; counters live in the app (``app.state.limits``), so each
`create_app` starts clean and two apps never share state. They are per process: behind several
workers each counts alone, which still bounds a guesser to workers x the limit.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict, deque
from typing import Any, Awaitable, Callable

import orjson
from fastapi import Request

from assets.claims import check_drawing_sizes, check_request_fields
from assets.config import Settings
from assets.errors import InputError, RateLimitError
from assets.fields.geometry import read_drawings

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class SlidingWindow:
    """At most ``limit`` events per ``window_s`` seconds per key (a log of event times per key).

    Memory is bounded: at most ``max_keys`` keys, the least recently seen dropped first.
    """

    def __init__(self, limit: int, window_s: float, *, clock: Callable[[], float] = time.monotonic,
                 max_keys: int = 100_000) -> None:
        self.limit, self.window_s, self.clock, self.max_keys = limit, window_s, clock, max_keys
        self._events: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        events = self._events.setdefault(key, deque())
        self._events.move_to_end(key)
        while events and events[0] <= now - self.window_s:
            events.popleft()
        while len(self._events) > self.max_keys:
            self._events.popitem(last=False)
        return events

    def retry_after_s(self, key: str) -> int:
        """0 when another event is allowed now, else whole seconds until one is."""
        with self._lock:
            now = self.clock()
            events = self._recent(key, now)
            if len(events) < self.limit:
                return 0
            return max(1, math.ceil(events[0] + self.window_s - now))

    def add(self, key: str) -> None:
        with self._lock:
            self._recent(key, self.clock()).append(self.clock())

    def take(self, key: str) -> int:
        """Record an event if allowed (returns 0); otherwise record nothing and return the wait."""
        with self._lock:
            now = self.clock()
            events = self._recent(key, now)
            if len(events) >= self.limit:
                return max(1, math.ceil(events[0] + self.window_s - now))
            events.append(now)
            return 0


class Limits:
    """The app's throttles: failed sign-ins per client address, requests and map tiles per token."""

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.monotonic) -> None:
        self.failures = SlidingWindow(settings.signin_failures_max, settings.signin_failure_window_s, clock=clock)
        self.requests = SlidingWindow(settings.requests_per_token_per_min, 60.0, clock=clock)
        self.tiles = SlidingWindow(settings.map_tiles_per_token_per_min, 60.0, clock=clock)  # the map's own budget
        self.settings = settings

    def check_signin(self, address: str) -> None:
        """Refuse every sign-in from an address with too many recent failures, right or wrong:
        answering a right guess differently would let the guessing go on."""
        wait = self.failures.retry_after_s(address)
        if wait:
            s = self.settings
            raise RateLimitError(f"too many failed sign-ins from your address ({s.signin_failures_max} per "
                                 f"{s.signin_failure_window_s} s, signin_failures_max); try again in {wait} s", wait)

    def signin_failed(self, address: str) -> None:
        self.failures.add(address)

    def check_token(self, key: str) -> None:
        wait = self.requests.take(key)
        if wait:
            raise RateLimitError(f"too many requests with this token ({self.settings.requests_per_token_per_min} "
                                 f"per minute, requests_per_token_per_min); try again in {wait} s", wait)

    def check_tiles(self, key: str) -> None:
        wait = self.tiles.take(key)
        if wait:
            raise RateLimitError(f"too many map tiles with this token ({self.settings.map_tiles_per_token_per_min} "
                                 f"per minute, map_tiles_per_token_per_min); try again in {wait} s", wait)


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def parse_json(body: bytes, expected: str = "a GeoJSON FeatureCollection") -> Any:
    """A request body as JSON; orjson caps nesting depth, so no body can exhaust the stack.
    ``expected`` says what the route wants, for the error."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InputError(f"the request body is not valid JSON ({exc}); send {expected}") from None


def check_claim_size(doc: Any, settings: Settings) -> None:
    """Refuse a claim submission with too many fields, corners or too long a field name (413),
    before the route does any work (`claims.check_drawing_sizes`, which the CLI applies too)."""
    if not isinstance(doc, dict):
        raise InputError("the request body is not a GeoJSON object; send a FeatureCollection of field polygons")
    features = doc.get("features")
    if doc.get("type") == "FeatureCollection" and isinstance(features, list):  # the API's cap, not a file's
        check_request_fields(len(features), settings)
    check_drawing_sizes(read_drawings(doc), settings, one_request=True)


async def _reply(send: Send, status: int, message: str) -> None:
    body = orjson.dumps({"error": message})
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class BodyLimitMiddleware:
    """Reads at most `max_body_bytes` of a request body, and answers 413 naming the limit beyond it.

    The body is buffered here (it is small by construction), so a chunked upload without a
    Content-Length is cut off just the same.
    """

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app, self.max_body_bytes = app, max_body_bytes

    def _too_large(self, size: str) -> str:
        return (f"the request body is {size}, above the limit of {self.max_body_bytes:,} bytes (max_body_bytes); "
                "send fewer or simpler field boundaries")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None:
            if not length.isdigit():
                await _reply(send, 400, "Content-Length is not a number of bytes")
                return
            if int(length) > self.max_body_bytes:
                await _reply(send, 413, self._too_large(f"{int(length):,} bytes"))
                return
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, _replay([message]), send)  # client went away
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                await _reply(send, 413, self._too_large(f"more than {self.max_body_bytes:,} bytes"))
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        await self.app(scope, _replay([{"type": "http.request", "body": b"".join(chunks), "more_body": False}],
                                      then=receive), send)


def _replay(messages: list[dict[str, Any]], then: Receive | None = None) -> Receive:
    """A receive() that hands out ``messages`` first, then defers to the real one (disconnects)."""
    pending = list(messages)

    async def receive() -> dict[str, Any]:
        if pending:
            return pending.pop(0)
        if then is not None:
            return await then()
        return {"type": "http.disconnect"}

    return receive
