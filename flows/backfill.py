"""Entry point for the backfill flow (`assets.flows.backfill`); the same as `assets backfill`.

    python -m flows.backfill --from 2016-04-01 --to 2016-09-30
"""

from __future__ import annotations

import argparse
from datetime import date
from pathlib import Path


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m flows.backfill", description=__doc__.split("\n")[0])
    p.add_argument("--from", dest="start", type=date.fromisoformat, required=True, help="first as-of date")
    p.add_argument("--to", dest="end", type=date.fromisoformat, required=True, help="last as-of date")
    p.add_argument("--db", type=Path, default=None, help="DuckDB file (default: ASSETS_DB or assets.duckdb)")
    p.add_argument("--tiles", type=Path, default=None, help="folder of GeoTIFF tiles (default: ASSETS_TILES)")
    args = p.parse_args(argv)
    from assets.config import settings
    from assets.flows.backfill import BackfillConfig, backfill

    s = settings(db_path=args.db, tiles_dir=args.tiles)
    print(backfill(BackfillConfig(start=args.start, end=args.end, db_path=str(s.db_path), tiles_dir=str(s.tiles_dir),
                                  models_dir=str(s.models_dir))))


if __name__ == "__main__":
    main()
