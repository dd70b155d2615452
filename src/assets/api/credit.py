"""The credit team's routes (#14), for officers only: point-in-time explanations, decision
history and the filtered portfolio. Each handler calls the same function as the CLI."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import duckdb
from fastapi import APIRouter, Depends, Query

from assets import access
from assets.access import Role
from assets.api.deps import allow, read_db
from assets.errors import NotFoundError

credit = APIRouter(prefix="/credit", tags=["credit"], dependencies=[Depends(allow(Role.OFFICER))])


@credit.get("/borrowers/{borrower_id}/explain")
def get_explain(borrower_id: str, as_of: date | None = Query(None, description="the date asked about (default: now)"),
                known_at: datetime | None = Query(None, description="only decisions recorded by then"),
                recompute: bool = Query(False, description="recompute each limit from the stored inputs"),
                con: duckdb.DuckDBPyConnection = Depends(read_db)) -> dict[str, Any]:
    """Why the borrower's limit was what it was on ``as_of``: each field's decision, steps and evidence."""
    from assets.explain import explain

    return explain(con, access.canonical_id(borrower_id, "borrower id"), as_of=as_of, known_at=known_at,
                   recompute=recompute)


@credit.get("/borrowers/{borrower_id}/history")
def get_history(borrower_id: str, con: duckdb.DuckDBPyConnection = Depends(read_db)) -> list[dict[str, Any]]:
    """Every decision on the borrower's fields in time order, with validity and limit changes."""
    from assets.store.history import borrower_exists, borrower_history

    borrower_id = access.canonical_id(borrower_id, "borrower id")
    if not borrower_exists(con, borrower_id):
        raise NotFoundError(f"no borrower {borrower_id!r}")
    return borrower_history(con, borrower_id)


@credit.get("/portfolio")
def get_portfolio(region: str | None = None, crop: str | None = None, status: str | None = None,
                  min_limit_cny: float | None = None, max_limit_cny: float | None = None,
                  as_of_from: date | None = None, as_of_to: date | None = None, sort: str = "borrower_id",
                  descending: bool = False, rows: int | None = None,
                  con: duckdb.DuckDBPyConnection = Depends(read_db)) -> dict[str, Any]:
    """Borrowers over the fields matching the filters, with totals (filters are bound parameters)."""
    from assets.models import legend
    from assets.store.credit import PortfolioFilter, portfolio

    crop = legend.to_crop(crop) if crop else None  # legend names and their synonyms; a typo is a 400 naming it
    found, totals = portfolio(con, PortfolioFilter(region, crop, status, min_limit_cny, max_limit_cny, as_of_from,
                                                   as_of_to, sort, descending, rows))
    return {"borrowers": found, "totals": totals}
