"""Entry point for the sensor drain flow (`assets.flows.sensors`).

    python -m flows.sensors mqtt://ingester:PASSWORD@broker:1883 --db assets.duckdb
"""

from __future__ import annotations

import argparse
from pathlib import Path


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m flows.sensors", description=__doc__.split("\n")[0])
    p.add_argument("broker", nargs="?", default="mqtt://127.0.0.1:1883", help="broker URL with the ingester's login")
    p.add_argument("--db", type=Path, default=None, help="DuckDB file (default: ASSETS_DB or assets.duckdb)")
    args = p.parse_args(argv)
    from assets.config import settings
    from assets.flows.sensors import sensors_drain

    print(sensors_drain(db_path=str(settings(db_path=args.db).db_path), broker_url=args.broker))


if __name__ == "__main__":
    main()
