"""Entry point for the nightly flow (`assets.flows.nightly`): run it once, or serve it on a cron.

    prefect server start &            # cron schedules need a server
    python -m flows.nightly --serve   # registers `nightly` to run at 02:00 every night
    python -m flows.nightly --date 2016-09-30   # one run now, configured like `assets nightly`
"""

from __future__ import annotations

import argparse
from datetime import date
from pathlib import Path


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m flows.nightly", description=__doc__.split("\n")[0],
                                epilog="Defaults come from ASSETS_DB, ASSETS_TILES, ASSETS_MODELS and ASSETS_BROKER.")
    p.add_argument("--serve", action="store_true", help="register the nightly deployment and serve it (needs a server)")
    p.add_argument("--cron", default="0 2 * * *", help="schedule for --serve (default: 02:00 every night)")
    p.add_argument("--db", type=Path, default=None, help="DuckDB file (default: ASSETS_DB or assets.duckdb)")
    p.add_argument("--tiles", type=Path, default=None, help="folder of GeoTIFF tiles (default: ASSETS_TILES)")
    p.add_argument("--date", type=date.fromisoformat, default=None, help="as-of date YYYY-MM-DD (default: today)")
    p.add_argument("--broker", default=None, help="drain MQTT sensor messages from this broker first")
    return p


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)  # before importing Prefect: --help stays instant and starts nothing
    from assets.config import settings
    from assets.flows.nightly import NightlyConfig, deployment, nightly

    if args.serve:
        from prefect import serve

        serve(deployment(cron=args.cron))
        return
    s = settings(db_path=args.db, tiles_dir=args.tiles, broker_url=args.broker)
    print(nightly(NightlyConfig(db_path=str(s.db_path), tiles_dir=str(s.tiles_dir), as_of=args.date,
                                broker_url=s.broker_url, models_dir=str(s.models_dir))))


if __name__ == "__main__":
    main()
