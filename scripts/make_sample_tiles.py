"""Build the bundled demo season in sample_tiles/ from the real data in ../shared/data.

What is real: the Sentinel-2 red/green/blue reflectance (Danish scene, 2016), the parcel
boundaries and declared crops (Danish land-parcel register), and every NDVI trajectory (each
parcel gets one real UCR "Crop" series of the closest class). What is generated: the NIR band
(solved so that NDVI follows that series on each date), small per-date brightness jitter and pixel
noise, a cloud patch on one date, and the farmer claims drawn from the parcels (jittered, plus
deliberately bad ones). Run from the repo root:  python scripts/make_sample_tiles.py
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
from rasterio.features import rasterize
from shapely.geometry import Polygon

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
if not SHARED.exists():
    SHARED = Path("/work/shared/data")
OUT = Path(__file__).resolve().parents[1] / "sample_tiles"
SEED = 2016

# Acquisition dates spread over the season so winter cereals (peaking in late winter/spring on
# the crop model's calendar, GRID_DOY = 1 + 8 i) and summer crops (peaking in August) both show.
DATES = [date(2016, 2, 10), date(2016, 3, 13), date(2016, 4, 14), date(2016, 5, 16),
         date(2016, 6, 25), date(2016, 8, 12), date(2016, 9, 21)]
CLOUDY_DATE = date(2016, 6, 25)

UCR = {"corn": 1, "wheat": 2, "dense building": 3, "diffuse building": 5, "temporary meadow": 6,
       "hardwood": 7, "fallow": 9, "soy": 10, "meadow": 12, "softwood": 13, "rapeseed": 17,
       "silage maize": 18, "barley": 19}
# Danish register crop -> UCR class with the closest phenology (potatoes have no UCR class:
# soy is the nearest summer-crop curve). Anything unlisted is treated as fallow.
DANISH_TO_UCR = {
    "Vårbyg": "barley", "Vinterbyg": "barley", "VårHavre": "barley", "Vårhvede": "wheat",
    "Vinterhvede": "wheat", "Vinterhybridrug": "wheat", "Vinterrug": "wheat",
    "Silomajs": "silage maize", "Majs til modenhed": "corn",
    "Græs med kløver/lucerne": "temporary meadow", "Græs uden kløvergræs (": "temporary meadow",
    "Permanent græs, lavt udb": "meadow", "Permanent græs, normalt": "meadow",
    "Permanent græs, under 50": "meadow", "Kartofler, stivelses-": "soy",
    "Juletræer og pyntegrønt": "softwood", "Vinterraps": "rapeseed",
}


def ucr_series() -> dict[int, np.ndarray]:
    rows = np.concatenate([np.load(SHARED / "crop-series" / f"Crop_{s}.npy") for s in ("TRAIN", "VALIDATION")])
    return {int(c): rows[rows[:, 0] == c, 1:] for c in np.unique(rows[:, 0])}


def grid_index(d: date) -> int:
    """UCR Crop has 46 dates a year: slot i covers day-of-year 1 + 8 i."""
    return min(45, round((d.timetuple().tm_yday - 1) / 8))


def main() -> None:
    rng = np.random.default_rng(SEED)
    series = ucr_series()
    parcels = gpd.read_file(SHARED / "denmark" / "parcels_2016.gpkg")
    parcels = parcels[parcels.geometry.notna() & parcels.is_valid].reset_index(drop=True)
    with rasterio.open(SHARED / "denmark" / "s2_rgb_2016.tif") as src:
        rgb = src.read().astype(np.float32) / 10000.0
        profile = src.profile
        transform, crs = src.transform, src.crs
    h, w = rgb.shape[1:]
    parcels["ucr"] = parcels["Afgroede"].map(DANISH_TO_UCR).fillna("fallow")
    idx = [grid_index(d) for d in DATES]

    # One real NDVI series per parcel; background: buildings where bright, else hardwood/meadow.
    label = rasterize(((g, i + 1) for i, g in enumerate(parcels.geometry)), out_shape=(h, w),
                      transform=transform, fill=0, dtype="int32")
    brightness = rgb.mean(axis=0)
    bg_kind = np.where(brightness > np.percentile(brightness, 93), UCR["diffuse building"],
                       np.where(rgb[1] > rgb[0] * 1.05, UCR["hardwood"], UCR["meadow"]))
    bg_series = {k: series[k][rng.integers(len(series[k]))][idx] for k in np.unique(bg_kind)}
    parcel_series = np.stack([series[UCR[c]][rng.integers(len(series[UCR[c]]))][idx] for c in parcels["ucr"]])
    # Crop failure on purpose: one barley parcel, well established in February, loses its canopy
    # by mid-March (drought), weeks before barley normally senesces.
    failed = int(parcels.index[parcels["ucr"] == "barley"][np.argsort(-parcels[parcels["ucr"] == "barley"].area.values)[3]])
    barley = series[UCR["barley"]][:, idx]
    parcel_series[failed] = barley[np.flatnonzero(barley[:, 0] >= 0.7)[0]]
    parcel_series[failed, 1:] = np.minimum(parcel_series[failed, 1:], 0.28 + 0.02 * np.arange(len(DATES) - 1))

    ndvi = np.empty((len(DATES), h, w), np.float32)
    for k, s in bg_series.items():
        ndvi[:, bg_kind == k] = s[:, None]
    inside = label > 0
    ndvi[:, inside] = parcel_series[label[inside] - 1].T
    ndvi += rng.normal(0, 0.02, ndvi.shape).astype(np.float32)
    ndvi = np.clip(ndvi, -0.3, 0.92)

    OUT.mkdir(exist_ok=True)
    yy, xx = np.mgrid[0:h, 0:w]
    for t, d in enumerate(DATES):
        red = np.clip(rgb[0] * rng.uniform(0.95, 1.05), 0.005, 1)
        nir = np.clip(red * (1 + ndvi[t]) / (1 - ndvi[t]), 0, 1)
        bands = np.stack([red, rgb[1] * rng.uniform(0.95, 1.05), rgb[2] * rng.uniform(0.95, 1.05), nir])
        dn = np.clip(np.round(bands * 10000), 1, 65535).astype(np.uint16)
        cloud = np.zeros((h, w), bool)
        if d == CLOUDY_DATE:  # an opaque cloud over the north-east, masked as nodata
            cloud = (xx - 0.75 * w) ** 2 + (yy - 0.25 * h) ** 2 < (0.22 * min(h, w)) ** 2
            dn[:, cloud] = 0
        prof = {**profile, "count": 4, "dtype": "uint16", "nodata": 0, "compress": "deflate",
                "predictor": 2, "tiled": True, "blockxsize": 256, "blockysize": 256}
        path = OUT / f"S2_DK_{d:%Y%m%d}.tif"
        with rasterio.open(path, "w", **prof) as dst:
            dst.write(dn)
            dst.descriptions = ("B04", "B03", "B02", "B08")
            dst.update_tags(ACQUISITION_DATE=d.isoformat(), SCENE_ID=f"S2_DK_SAMPLE_{d:%Y%m%d}",
                            CLOUD_FRACTION=f"{cloud.mean():.4f}", SOURCE="see sample_tiles/README.md")
        print(path, f"cloud={cloud.mean():.3f}")

    write_claims(parcels, crs, failed, rng)


def _jitter(poly: Polygon, rng: np.random.Generator, metres: float) -> Polygon:
    """A farmer's drawing: fewer vertices than the register, each off by a few metres."""
    simple = poly.simplify(4.0)
    coords = np.asarray(simple.exterior.coords)[:-1]
    coords = coords + rng.normal(0, metres, coords.shape)
    return Polygon(coords).buffer(0)


def write_claims(parcels: gpd.GeoDataFrame, crs, failed: int, rng: np.random.Generator) -> None:
    by_crop = {c: parcels[parcels["Afgroede"] == c].sort_values("GB", ascending=False) for c in parcels["Afgroede"].unique()}
    pick = lambda crop, n=0: by_crop[crop].index[n]  # noqa: E731
    plan = {
        "farmer-001": [("North barley", pick("Vårbyg", 0)), ("Maize by the road", pick("Silomajs", 0))],
        "farmer-002": [("Winter wheat", pick("Vinterhvede", 0)), ("Clover grass", pick("Græs med kløver/lucerne", 0))],
        "farmer-003": [("Grain maize", pick("Majs til modenhed", 0)), ("Barley after drought", failed)],
    }
    claims: dict[str, list[dict]] = {}
    for borrower, items in plan.items():
        claims[borrower] = [{"name": name, "geom": _jitter(parcels.geometry[i], rng, 3.0)} for name, i in items]
    # Bad claims, each rejected for a different reason.
    town = Polygon([(515600, 6243700), (516100, 6243700), (516100, 6244200), (515600, 6244200)])
    claims["farmer-003"].append({"name": "Plot in town", "geom": town})
    overlap_src = claims["farmer-001"][0]["geom"]
    claims["farmer-004"] = [
        {"name": "Copy of a neighbour's field", "geom": overlap_src.buffer(-15).simplify(5)},
        {"name": "Bow-tie drawing", "geom": None, "coords": [(513000, 6246000), (513300, 6246300), (513300, 6246000), (513000, 6246300), (513000, 6246000)]},
        {"name": "Field outside the imagery", "geom": Polygon([(530000, 6250000), (530400, 6250000), (530400, 6250300), (530000, 6250300)])},
    ]
    out = OUT / "claims"
    out.mkdir(exist_ok=True)
    from pyproj import Transformer

    to_wgs = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    devices = []
    for borrower, items in claims.items():
        feats = []
        for item in items:
            ring = item["coords"] if item["geom"] is None else list(item["geom"].exterior.coords)
            lonlat = [[round(v, 7) for v in to_wgs.transform(x, y)] for x, y in ring]
            feats.append({"type": "Feature", "properties": {"name": item["name"]},
                          "geometry": {"type": "Polygon", "coordinates": [lonlat]}})
        (out / f"{borrower}.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": feats}, indent=1))
        if borrower in ("farmer-001", "farmer-002", "farmer-003"):
            p = items[0]["geom"].representative_point()
            lon, lat = to_wgs.transform(p.x, p.y)
            n = len(devices) + 1
            devices.append({"device_id": f"probe-{n:03d}", "borrower_id": borrower, "kind": "soil_probe",
                            "lon": round(lon, 7), "lat": round(lat, 7), "secret": f"demo-secret-{n:03d}"})
    (OUT / "sensors").mkdir(exist_ok=True)
    (OUT / "sensors" / "devices.json").write_text(json.dumps(devices, indent=1) + "\n")
    print("claims:", {b: len(v) for b, v in claims.items()}, "devices:", len(devices))


if __name__ == "__main__":
    main()
