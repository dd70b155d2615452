"""Named reads and writes of the tile catalogue and the tile quarantine."""

from __future__ import annotations

from datetime import date
from typing import Any, Mapping, Sequence

import duckdb

from assets.store.db import append, records
from assets.store.writer import write_op


def usable_tile_rows(con: duckdb.DuckDBPyConnection, as_of: date) -> list[dict[str, Any]]:
    """Catalogued tiles acquired up to ``as_of`` that are not quarantined, oldest first."""
    return records(con.execute(
        "SELECT * FROM tiles WHERE acquired_on <= ? AND tile_id NOT IN (SELECT tile_id FROM tile_quarantine) "
        "ORDER BY acquired_on, scene_id", [as_of]))


@write_op
def record_quarantine(con: duckdb.DuckDBPyConnection, rows: Sequence[Mapping[str, object]]) -> int:
    """Store quarantined tiles; the first verdict on the same bytes is kept (re-runs add nothing)."""
    return append(con, "tile_quarantine", rows, on_conflict="ignore")


def quarantined_tiles(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """Every quarantined tile with its reason, newest first."""
    return records(con.execute(
        "SELECT tile_id, path, code, reason, quarantined_at FROM tile_quarantine ORDER BY quarantined_at DESC, path"))


def tile_footprints(con: duckdb.DuckDBPyConnection) -> list[tuple[float, float, float, float]]:
    """(min_lon, min_lat, max_lon, max_lat) of every usable catalogued tile: where we hold imagery."""
    return [tuple(r) for r in con.execute(
        "SELECT DISTINCT min_lon, min_lat, max_lon, max_lat FROM tiles "
        "WHERE tile_id NOT IN (SELECT tile_id FROM tile_quarantine)").fetchall()]


def has_tiles_up_to(con: duckdb.DuckDBPyConnection, as_of: date) -> bool:
    """Whether any tile acquired on or before ``as_of`` is catalogued (quarantined ones included)."""
    return bool(con.execute("SELECT count(*) FROM tiles WHERE acquired_on <= ?", [as_of]).fetchall()[0][0] > 0)


def map_tile_rows(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """Every catalogued, not quarantined tile with its footprint and clouds: what the map can draw."""
    return records(con.execute(
        "SELECT tile_id, path, acquired_on, cloud_fraction, nodata_fraction, crs, width, height, minx, miny, "
        "min_lon, min_lat, max_lon, max_lat FROM tiles WHERE tile_id NOT IN (SELECT tile_id FROM tile_quarantine) "
        "ORDER BY acquired_on, tile_id"))
