"""Options every command group shares, defined once."""

from __future__ import annotations

import argparse
from pathlib import Path


def db_option(p: argparse.ArgumentParser) -> None:
    """``--db PATH``: the DuckDB file (None: `Settings` takes $ASSETS_DB or ./assets.duckdb)."""
    p.add_argument("--db", type=Path, default=None, help="DuckDB file (default: $ASSETS_DB or ./assets.duckdb)")
