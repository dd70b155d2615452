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
                                epilog="Defaults come from ASSETS_DB, ASSETS_TILES, ASSETS_MODELS, ASSETS_BROKER, "
                                "ASSETS_CATALOG and ASSETS_DASK (local:N or tcp://scheduler:8786).")
    p.add_argument("--serve", action="store_true", help="register the nightly deployment and serve it (needs a server)")
    p.add_argument("--cron", default="0 2 * * *", help="schedule for --serve (default: 02:00 every night)")
    p.add_argument("--db", type=Path, default=None, help="DuckDB file (default: ASSETS_DB or assets.duckdb)")
    p.add_argument("--tiles", default=None, help="inbox of GeoTIFF tiles, a folder or an fsspec URL (default: ASSETS_TILES)")
    p.add_argument("--date", type=date.fromisoformat, default=None, help="as-of date YYYY-MM-DD (default: today)")
    p.add_argument("--broker", default=None, help="drain MQTT sensor messages from this broker first")
    return p


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)  # before importing Prefect: --help stays instant and starts nothing
    from assets.config import settings
    from assets.flows.nightly import NightlyConfig, deployment, run_nightly

    if args.serve:
        from prefect import serve

        serve(deployment(cron=args.cron))
        return
    url = args.tiles if args.tiles and "://" in args.tiles else None
    s = settings(db_path=args.db, tiles_dir=None if url else args.tiles, broker_url=args.broker)
    print(run_nightly(NightlyConfig(db_path=str(s.db_path), tiles_dir=url or s.tiles_source, as_of=args.date,
                                    broker_url=s.broker_url, models_dir=str(s.models_dir),
                                    catalog_dir=str(s.catalog_dir) if s.catalog_dir else None,
                                    dask_cluster=s.dask_cluster, dask_processes=s.dask_processes)))


if __name__ == "__main__":
    main()
