"""Entry point for the demo flow (`assets.flows.demo`); the same as `assets demo`.

    python -m flows.demo --db assets.duckdb
"""

from __future__ import annotations

import argparse
from pathlib import Path


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m flows.demo", description=__doc__.split("\n")[0])
    p.add_argument("--db", type=Path, default=None, help="DuckDB file (default: ASSETS_DB or assets.duckdb)")
    p.add_argument("--broker", default=None, help="replay sensors through this broker (default: an in-process one)")
    args = p.parse_args(argv)
    from assets.config import settings
    from assets.flows.demo import demo

    s = settings(db_path=args.db, broker_url=args.broker)
    print(demo(str(s.db_path), str(s.tiles_dir), s.broker_url).summary)


if __name__ == "__main__":
    main()
