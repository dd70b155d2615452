"""Dependencies shared by the routers: settings, API-key auth, a read-only store connection."""

from __future__ import annotations

import hmac
from typing import Iterator

import duckdb
from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import APIKeyHeader

from assets.config import Settings
from assets.store import connect

_api_key = APIKeyHeader(name="X-API-Key", auto_error=False)


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def require_key(request: Request, key: str | None = Security(_api_key)) -> str:
    """Every route needs a key listed in ASSETS_API_KEYS (compared in constant time)."""
    keys: tuple[str, ...] = request.app.state.api_keys
    if not key or not any(hmac.compare_digest(key, k) for k in keys):
        raise HTTPException(status_code=401, detail="missing or unknown X-API-Key header; ask the platform team for a key")
    return key


def read_db(settings: Settings = Depends(get_settings)) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection for one request, closed when the response is sent.

    Not read-only on purpose: DuckDB refuses a read-write connection in a process that holds a
    read-only one to the same file, and claim submissions write while the map's image loads.
    Read-write connections within one process share one database instance.
    """
    with connect(settings.db_path) as con:
        yield con
