"""Named reads and writes of the imagery catalogue: STAC items, the collection, deliveries."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Mapping, Sequence

import duckdb

from assets.store.db import append, records
from assets.store.writer import write_op

_CATALOG_COLUMNS = ("tile_id, scene_id, acquired_on, cloud_fraction, status, deliveries, source, cog_path, "
                    "quarantine_code, quarantine_reason")


def record_catalogue(
    con: duckdb.DuckDBPyConnection,
    *,
    tiles: Sequence[Mapping[str, object]],
    items: Sequence[Mapping[str, object]],
    deliveries: Sequence[Mapping[str, object]],
    quarantined: Sequence[Mapping[str, object]],
) -> None:
    """Store one batch of deliveries. Tiles and items are keyed by the bytes' checksum, deliveries by
    (source, checksum): the same file seen again, or the same bytes under another name, add no item.
    A tile first recorded without the catalogue (its raw path) is pointed at its COG."""
    append(con, "tiles", tiles, on_conflict="ignore")
    for row in tiles:
        con.execute("UPDATE tiles SET path = ? WHERE tile_id = ?", [row["path"], row["tile_id"]])
    append(con, "stac_items", items, on_conflict="ignore")
    append(con, "tile_deliveries", deliveries, on_conflict="ignore")
    append(con, "tile_quarantine", quarantined, on_conflict="ignore")


def catalogued_sources(con: duckdb.DuckDBPyConnection, tile_ids: Sequence[str]) -> dict[str, str]:
    """tile_id -> the source it was first delivered from, for the given tiles that have an item."""
    if not tile_ids:
        return {}
    return dict(con.execute("SELECT tile_id, source FROM stac_items WHERE tile_id IN (SELECT unnest(?))",
                            [list(tile_ids)]).fetchall())


def quarantined_ids(con: duckdb.DuckDBPyConnection) -> set[str]:
    return {r[0] for r in con.execute("SELECT tile_id FROM tile_quarantine").fetchall()}


def item_documents(con: duckdb.DuckDBPyConnection, collection_id: str) -> list[dict[str, Any]]:
    """Every STAC item of the collection (parsed JSON), oldest acquisition first."""
    rows = con.execute("SELECT item FROM stac_items WHERE collection_id = ? ORDER BY acquired_on, tile_id",
                       [collection_id]).fetchall()
    return [json.loads(r[0]) for r in rows]


def save_collection(con: duckdb.DuckDBPyConnection, collection_id: str, document: Mapping[str, object],
                    now: datetime) -> None:
    append(con, "stac_collections", [{"collection_id": collection_id, "collection": json.dumps(document),
                                      "updated_at": now}], on_conflict="replace")


def collection_document(con: duckdb.DuckDBPyConnection, collection_id: str) -> dict[str, Any] | None:
    row = con.execute("SELECT collection FROM stac_collections WHERE collection_id = ?", [collection_id]).fetchone()
    return json.loads(row[0]) if row else None


def catalogue_rows(con: duckdb.DuckDBPyConnection, *, status: str | None = None) -> list[dict[str, Any]]:
    """The `tile_catalog` view: usable and quarantined tiles, oldest acquisition first."""
    sql = f"SELECT {_CATALOG_COLUMNS} FROM tile_catalog"
    params: list[object] = []
    if status is not None:
        sql += " WHERE status = ?"
        params.append(status)
    return records(con.execute(sql + " ORDER BY acquired_on NULLS LAST, tile_id", params))


def catalogue_entry(con: duckdb.DuckDBPyConnection, tile_id: str) -> dict[str, Any] | None:
    """One tile: its catalogue row, STAC item and every delivery of its bytes; None if unknown."""
    rows = records(con.execute("SELECT * FROM tile_catalog WHERE tile_id = ?", [tile_id]))
    if not rows:
        return None
    entry = rows[0]
    item = con.execute("SELECT item FROM stac_items WHERE tile_id = ?", [tile_id]).fetchone()
    entry["item"] = json.loads(item[0]) if item else None
    entry["deliveries"] = records(con.execute(
        "SELECT source, outcome, duplicate_of, reason, delivered_at FROM tile_deliveries WHERE tile_id = ? "
        "ORDER BY delivered_at, source", [tile_id]))
    return entry


@write_op
def quarantine_catalogued(con: duckdb.DuckDBPyConnection, tile_id: str, reason: str, now: datetime) -> dict[str, Any] | None:
    """An operator's quarantine of a catalogued tile (code `manual`): the tile's entry afterwards,
    None when the tile is unknown. A later decision replaces an earlier one, so the reason shown is
    the newest."""
    row = con.execute("SELECT path FROM tiles WHERE tile_id = ?", [tile_id]).fetchone()
    if row is None:
        return None
    append(con, "tile_quarantine", [{"tile_id": tile_id, "path": row[0], "code": "manual", "reason": reason,
                                     "quarantined_at": now}], on_conflict="replace")
    return catalogue_entry(con, tile_id)
