"""`assets fields detect TILE.tif --out fields.gpkg`: field polygons from a satellite tile."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

#: Rasters up to this many pixels are segmented in memory; larger ones stream through a file.
IN_MEMORY_MAX_PX = 16_000_000
_FORMATS = (".gpkg", ".geojson", ".json", ".parquet", ".geoparquet")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `fields` command group to the parser."""
    fields = sub.add_parser("fields", help="detect farm fields in satellite imagery")
    fsub = fields.add_subparsers(dest="fields_command", metavar="SUBCOMMAND", required=True)
    det = fsub.add_parser(
        "detect",
        help="segment a GeoTIFF/COG into field polygons",
        description="Segment a GeoTIFF/COG (reflectance, at least red/green/blue; default band order "
        "red,green,blue,nir as in Sentinel-2 L2A exports) into field polygons in EPSG:4326 with areas "
        "in hectares measured in the local UTM zone. Nodata and cloudy pixels never become fields.",
    )
    det.add_argument("tile", type=Path, help="input GeoTIFF/COG")
    det.add_argument("--out", type=Path, action="append", required=True,
                     help="output polygons: .gpkg, .geojson or .parquet (GeoParquet); repeat for several")
    det.add_argument("--model", type=Path, default=None, help="segmentation weights (default models/segment.pt)")
    det.add_argument("--probabilities", type=Path, default=None,
                     help="also write the class probabilities (uint8 x255, bands background/field/boundary)")
    det.add_argument("--band-order", default=None,
                     help="band names of the file, a preset (s2, rgb, bgrn, s2_2dates) or a comma list "
                     "like blue,green,red,nir; default: band descriptions, else s2")
    det.add_argument("--min-area-m2", type=float, default=None, help="drop fields smaller than this (default 1000)")
    det.add_argument("--window", type=int, default=1024, help="inference window in pixels (default 1024)")
    det.add_argument("--no-cloud-mask", action="store_true", help="trust every non-nodata pixel")
    det.add_argument("--quiet", action="store_true", help="no progress bar")
    det.set_defaults(handler=detect)


def detect(args: argparse.Namespace) -> int:
    """Run segmentation + polygonisation and print a one-line summary."""
    from assets.errors import InputError
    from assets.fields.polygonize import MIN_AREA_M2, polygonize, polygonize_file, write_fields
    from assets.imagery.tiles import open_tile
    from assets.imagery.windows import predict_raster, predict_raster_to_file
    from assets.models.segment import load

    for out in args.out:
        if out.suffix.lower() not in _FORMATS:
            raise InputError(f"--out {out}: unknown format; use one of {', '.join(_FORMATS)}")
    min_area = args.min_area_m2 if args.min_area_m2 is not None else MIN_AREA_M2
    model = load(args.model)
    with open_tile(args.tile, args.band_order) as handle:  # validate before any work
        n_px = handle.info.width * handle.info.height
    opts = dict(band_order=args.band_order, window_px=args.window, progress=not args.quiet,
                clouds=not args.no_cloud_mask)
    if args.probabilities is None and n_px <= IN_MEMORY_MAX_PX:
        result = predict_raster(args.tile, model, **opts)
        frame = polygonize(result, min_area_m2=min_area)
        reason = result.reason
    else:
        with tempfile.TemporaryDirectory(prefix="assets-fields-") as tmp:
            probs_path = args.probabilities or Path(tmp) / "probs.tif"
            summary = predict_raster_to_file(args.tile, model, probs_path, **opts)
            frame = polygonize_file(probs_path, min_area_m2=min_area)
            reason = summary.reason
    for out in args.out:
        write_fields(frame, out)
    total = float(frame["area_ha"].sum()) if len(frame) else 0.0
    msg = f"{len(frame)} fields, {total:.1f} ha total -> {', '.join(map(str, args.out))}"
    if reason:
        msg += f" ({reason})"
    elif not len(frame):
        msg += " (no field larger than the minimum area was found)"
    print(msg, file=sys.stdout)
    return 0
