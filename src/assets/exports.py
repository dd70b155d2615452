"""Fields with their verdicts and values, as files GIS tools and spreadsheets open (EPSG:4326).

GeoParquet and GeoJSON through geopandas (QGIS and geopandas read both); CSV with the geometry
as WKT. The rows come from the same `field_valuations` view the credit team queries in SQL.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import duckdb

from assets.errors import InputError
from assets.store.credit import FIELD_COLUMNS, PortfolioFilter, field_rows

FORMATS = ("geoparquet", "geojson", "csv")


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: Any) -> Any:
    """A text cell a spreadsheet would run as a formula (``=HYPERLINK(...)`` in a farmer's field name)
    prefixed with ``'`` so Excel and WPS show it as text; numbers and other values as they are."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def export_fields(con: duckdb.DuckDBPyConnection, fmt: str, out: Path, f: PortfolioFilter = PortfolioFilter()) -> int:
    """Write every matching field to ``out`` in ``fmt``; returns the number of fields written."""
    import shapely

    if fmt not in FORMATS:
        raise InputError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    rows = field_rows(con, f)
    geoms = [shapely.from_wkb(bytes(r["geom_wkb"])) if r["geom_wkb"] is not None else None for r in rows]
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "csv":
        with out.open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(list(FIELD_COLUMNS) + ["geometry_wkt"])
            for r, g in zip(rows, geoms):
                w.writerow([spreadsheet_safe(r[c]) for c in FIELD_COLUMNS] + [g.wkt if g is not None else ""])
        return len(rows)
    import geopandas as gpd

    table = {c: [r[c] for r in rows] for c in FIELD_COLUMNS}
    table["as_of"] = [str(d) if d is not None else None for d in table["as_of"]]
    gdf = gpd.GeoDataFrame(table, geometry=geoms, crs="EPSG:4326")
    if fmt == "geoparquet":
        gdf.to_parquet(out)
    else:
        out.unlink(missing_ok=True)  # the GeoJSON driver will not overwrite
        gdf.to_file(out, driver="GeoJSON")
    return len(rows)
