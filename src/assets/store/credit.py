"""The credit team's portfolio reads over the point-in-time views (`field_valuations`, `current_limits`) and
the current-state table they stand on (`current_decisions`).

Every filter is a bound parameter and sorting is chosen from a fixed list of column names, so a
filter value that looks like SQL is only ever compared as text.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import date
from typing import Any

import duckdb

from assets.errors import InputError
from assets.store.db import records

SORTABLE = ("borrower_id", "claims", "verified_area_ha", "value_low_cny", "value_cny", "value_high_cny", "limit_cny",
            "as_of")
STATUSES = ("verified", "partial", "review", "rejected", "submitted")
REGION = re.compile(r"[NS]\d{2}[EW]\d{3}")  # the 1-degree cell of a field's centre, as the views name it
FIELD_COLUMNS = ("claim_id", "borrower_id", "name", "status", "reason", "region", "crop", "claimed_area_ha",
                 "claimed_area_mu", "verified_area_ha", "verified_area_mu", "value_low_cny", "value_cny",
                 "value_high_cny", "limit_cny", "as_of", "params_version", "crop_model_version", "seg_model_version",
                 "decision_id")
_DERIVED = {"claimed_area_mu": "claimed_area_ha * 15 AS claimed_area_mu",  # 1 ha = 15 mu, as in the views
            "verified_area_mu": "verified_area_ha * 15 AS verified_area_mu"}


@dataclass(frozen=True)
class PortfolioFilter:
    """Which fields count (region, crop, status, as-of dates) and which borrowers show (limit range)."""

    region: str | None = None
    crop: str | None = None
    status: str | None = None
    min_limit_cny: float | None = None
    max_limit_cny: float | None = None
    as_of_from: date | None = None
    as_of_to: date | None = None
    sort: str = "borrower_id"
    descending: bool = False
    rows: int | None = None

    def check(self) -> "PortfolioFilter":
        if self.sort not in SORTABLE:
            raise InputError(f"cannot sort by {self.sort!r}; choose one of {', '.join(SORTABLE)}")
        if self.status is not None and self.status not in STATUSES:
            raise InputError(f"unknown status {self.status!r}; choose one of {', '.join(STATUSES)}")
        for name, value in (("minimum limit (--min-limit, min_limit_cny)", self.min_limit_cny),
                            ("maximum limit (--max-limit, max_limit_cny)", self.max_limit_cny)):
            if value is not None and not math.isfinite(value):
                raise InputError(f"the {name} {value} is not a number of CNY; give an amount such as 100000")
        if (self.min_limit_cny is not None and self.max_limit_cny is not None
                and self.min_limit_cny > self.max_limit_cny):
            raise InputError(f"the minimum limit {self.min_limit_cny:,.0f} is above the maximum {self.max_limit_cny:,.0f} "
                             "(--min-limit / --max-limit, min_limit_cny / max_limit_cny); swap them")
        if self.rows is not None and self.rows < 1:
            raise InputError("the number of rows (--rows, rows) must be at least 1")
        if self.region is not None and not REGION.fullmatch(self.region):
            raise InputError(f"region {self.region!r} is not a 1-degree cell name such as N56E009 (N or S, two digits of "
                             "latitude, E or W, three digits of longitude, upper case)")
        if self.as_of_from is not None and self.as_of_to is not None and self.as_of_from > self.as_of_to:
            raise InputError(f"the first as-of day {self.as_of_from} is after the last {self.as_of_to} "
                             "(--from / --to, as_of_from / as_of_to); swap them")
        return self


_FIELD_WHERE = ("(CAST(? AS VARCHAR) IS NULL OR region = ?) AND (CAST(? AS VARCHAR) IS NULL OR crop = ?) "
                "AND (CAST(? AS VARCHAR) IS NULL OR status = ?) AND (CAST(? AS DATE) IS NULL OR as_of >= ?) "
                "AND (CAST(? AS DATE) IS NULL OR as_of <= ?)")


# A field's area counts once it is accepted: a claim under review carries its measured area, not a verified one.
_ACCEPTED = "WHERE status IN ('verified', 'partial')"


def _field_params(f: PortfolioFilter) -> list[Any]:
    return [f.region, f.region, f.crop, f.crop, f.status, f.status, f.as_of_from, f.as_of_from, f.as_of_to, f.as_of_to]


def portfolio(con: duckdb.DuckDBPyConnection, f: PortfolioFilter = PortfolioFilter()) -> tuple[list[dict[str, Any]],
                                                                                            dict[str, Any]]:
    """(one row per borrower over the matching fields, totals over those rows)."""
    f.check()
    sql = (
        "WITH b AS (SELECT borrower_id, count(*) AS claims, "
        f"count(*) FILTER ({_ACCEPTED}) AS claims_accepted, "
        "count(*) FILTER (WHERE status = 'rejected') AS claims_rejected, "
        "count(*) FILTER (WHERE status = 'review') AS claims_in_review, "
        f"coalesce(sum(verified_area_ha) FILTER ({_ACCEPTED}), 0) AS verified_area_ha, "
        f"coalesce(sum(verified_area_ha) FILTER ({_ACCEPTED}), 0) * 15 AS verified_area_mu, "
        "coalesce(sum(value_low_cny), 0) AS value_low_cny, coalesce(sum(value_cny), 0) AS value_cny, "
        "coalesce(sum(value_high_cny), 0) AS value_high_cny, coalesce(sum(limit_cny), 0) AS limit_cny, "
        f"max(as_of) AS as_of FROM field_valuations WHERE {_FIELD_WHERE} GROUP BY borrower_id) "
        "SELECT * FROM b WHERE (CAST(? AS DOUBLE) IS NULL OR limit_cny >= ?) "
        "AND (CAST(? AS DOUBLE) IS NULL OR limit_cny <= ?) "
        f"ORDER BY {f.sort} {'DESC' if f.descending else 'ASC'} NULLS LAST, borrower_id")
    params = _field_params(f) + [f.min_limit_cny, f.min_limit_cny, f.max_limit_cny, f.max_limit_cny]
    rows = records(con.execute(sql, params))
    totals = {"borrowers": len(rows), **{k: sum(r[k] or 0 for r in rows) for k in (
        "claims", "claims_accepted", "claims_rejected", "claims_in_review", "verified_area_ha", "verified_area_mu",
        "value_low_cny",
        "value_cny", "value_high_cny", "limit_cny")}}
    return (rows[: f.rows] if f.rows else rows), totals


def portfolio_summary(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """One row: the bank's exposure today (what the report and the benchmark time), over the
    current-state rows (`current_decisions`: one per field, kept with every decision append), the
    same decisions `current_limits` lists with every column. ``rejected`` also counts the drawings
    refused at submission (never assessed, so without a decision), as `claim_status` does."""
    return records(con.execute(
        "SELECT count(DISTINCT borrower_id) AS borrowers, count(*) AS decisions, sum(limit_cny) AS limit_cny, "
        "sum(value_low_cny) AS value_low_cny, sum(value_cny) AS value_cny, sum(value_high_cny) AS value_high_cny, "
        "count(*) FILTER (WHERE status = 'rejected') + (SELECT count(*) FROM claims c WHERE c.status = 'rejected' "
        "AND c.geom_wkb IS NULL) AS rejected FROM current_decisions"))[0]


def exposure_by(con: duckdb.DuckDBPyConnection, column: str) -> list[dict[str, Any]]:
    """Fields, area, value and limit grouped by crop, region or status."""
    if column not in ("crop", "region", "status"):
        raise InputError(f"cannot group exposure by {column!r}; use crop, region or status")
    return records(con.execute(
        f"SELECT coalesce({column}, '-') AS {column}, count(*) AS fields, "
        f"coalesce(sum(verified_area_ha) FILTER ({_ACCEPTED}), 0) AS area_ha, "
        "coalesce(sum(value_cny), 0) AS value_cny, coalesce(sum(limit_cny), 0) AS limit_cny FROM field_valuations "
        f"GROUP BY 1 ORDER BY limit_cny DESC, 1"))


def field_rows(con: duckdb.DuckDBPyConnection, f: PortfolioFilter = PortfolioFilter(),
               with_geometry: bool = True) -> list[dict[str, Any]]:
    """Every matching field with its current verdict and values (geometry as GeoJSON text and WKB).

    The borrower options act as in `portfolio`, so an export holds the fields of exactly the
    borrowers that query lists: those whose limit is in ``min_limit_cny`` .. ``max_limit_cny``, in
    its ``sort`` order, the first ``rows`` of them; each borrower's fields by claim id."""
    f.check()
    cols = ", ".join(_DERIVED.get(c, c) for c in FIELD_COLUMNS + (("geojson", "geom_wkb") if with_geometry else ()))
    rows = records(con.execute(f"SELECT {cols} FROM field_valuations WHERE {_FIELD_WHERE} ORDER BY claim_id",
                                _field_params(f)))
    if f == PortfolioFilter(region=f.region, crop=f.crop, status=f.status, as_of_from=f.as_of_from,
                            as_of_to=f.as_of_to):
        return rows  # no borrower option: every matching field, by claim id
    rank = {b["borrower_id"]: i for i, b in enumerate(portfolio(con, f)[0])}
    return sorted((r for r in rows if r["borrower_id"] in rank), key=lambda r: (rank[r["borrower_id"]], r["claim_id"]))

