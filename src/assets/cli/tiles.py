"""`assets tiles list | show ID | quarantine ID --reason ...` — the imagery catalogue (COGs + STAC items)."""

from __future__ import annotations

import argparse

from assets.cli.options import db_option
from assets.cli.render import table, to_json
from assets.config import settings as make_settings

LIST_COLUMNS = ["tile_id", "acquired_on", "scene_id", "cloud_fraction", "status", "deliveries", "source",
                "quarantine_reason"]
LIST_HEADERS = ["tile", "acquired", "scene", "cloud", "status", "deliveries", "first delivered as", "reason"]



def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    tiles = sub.add_parser("tiles", help="the imagery catalogue: COG tiles, their STAC items and quarantine")
    actions = tiles.add_subparsers(dest="tiles_cmd", metavar="ACTION", required=True)

    p = actions.add_parser("list", help="every catalogued or quarantined tile, oldest acquisition first")
    p.add_argument("--status", choices=("usable", "quarantined"), default=None)
    p.add_argument("--format", choices=("table", "json"), default="table")
    db_option(p)
    p.set_defaults(handler=cmd_list)

    p = actions.add_parser("show", help="one tile: catalogue row, STAC item and every delivery of its bytes")
    p.add_argument("tile_id", help="t-... as `assets tiles list` shows it")
    p.add_argument("--format", choices=("table", "json"), default="table")
    db_option(p)
    p.set_defaults(handler=cmd_show)

    p = actions.add_parser("quarantine", help="keep a catalogued tile out of every later assessment")
    p.add_argument("tile_id")
    p.add_argument("--reason", required=True, help="what is wrong with it, shown to operators")
    db_option(p)
    p.set_defaults(handler=cmd_quarantine)


def cmd_list(args: argparse.Namespace) -> int:
    from assets.imagery.catalog import catalogue_listing

    rows = catalogue_listing(make_settings(db_path=args.db), status=args.status)
    print(to_json(rows) if args.format == "json" else table(rows, LIST_COLUMNS, LIST_HEADERS))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from assets.imagery.catalog import catalogue_tile

    entry = catalogue_tile(make_settings(db_path=args.db), args.tile_id)
    if args.format == "json":
        print(to_json(entry))
        return 0
    for key in ("tile_id", "scene_id", "acquired_on", "status", "cloud_fraction", "crs", "width", "height",
                "cog_path", "item_path", "source", "quarantine_code", "quarantine_reason"):
        if entry.get(key) is not None:
            print(f"{key}: {entry[key]}")
    print("deliveries:")
    print(table(entry["deliveries"], ["delivered_at", "source", "outcome", "duplicate_of"],
                ["delivered", "source", "outcome", "same bytes as"]))
    return 0


def cmd_quarantine(args: argparse.Namespace) -> int:
    from assets.imagery.catalog import quarantine_tile

    entry = quarantine_tile(make_settings(db_path=args.db), args.tile_id, args.reason)
    print(f"quarantined {entry['tile_id']} ({entry.get('scene_id') or entry.get('source')}): "
          f"{entry['quarantine_reason']}; later nights leave it out")
    return 0
