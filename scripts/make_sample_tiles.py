"""Build the bundled demo season in sample_tiles/ from the real data in ../shared/data.

What is real: the Sentinel-2 red/green/blue texture of the Danish scene (2016), the parcel
boundaries and declared crops (Danish land-parcel register), and every parcel's season: each
parcel gets the real Sentinel-2 B02/B03/B04/B08 curves of one WorldCereal field of the same
legend crop (France 2023 / Flanders 2021 first, Corsica 2022 and East Africa 2017 only where those
lack the crop), read on the tile dates by their day of the season year. What is generated: the
pairing of series with parcels, within-parcel texture taken from the real RGB image, pixel noise,
a cloud on one date, a crop failure, and the farmer claims drawn from the parcels (jittered, plus
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

from assets.models import legend
from assets.models.seasons import season_days

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
if not SHARED.exists():
    SHARED = Path("/work/shared/data")
OUT = Path(__file__).resolve().parents[1] / "sample_tiles"
SEED = 2016

# Seven dates of the 2016 season: winter cereals are green from February, spring barley and
# maize green up in May-June, and the September date sees summer crops before harvest.
DATES = [date(2016, 2, 10), date(2016, 3, 13), date(2016, 4, 14), date(2016, 5, 16),
         date(2016, 6, 25), date(2016, 8, 12), date(2016, 9, 21)]
CLOUDY_DATE = date(2016, 6, 25)
# File order of the tiles: the four 10 m bands, then red edge and SWIR (20 m in Sentinel-2 L2A,
# here on the 10 m grid as resampled products deliver them).
BANDS = ("B04", "B03", "B02", "B08", "B05", "B06", "B07", "B11", "B12")
PREFERRED = ("fra2023_westfrance_dekad.npz", "bel2021_flanders_monthly.npz")
OTHERS = ("fra2022_corsica_monthly.npz", "eastafrica2017_monthly.npz")
# Legend crops with no real series of their own borrow the nearest phenology.
FALLBACK = {"spring_wheat": "spring_barley", "spring_cereals": "spring_barley", "spring_oats": "spring_barley",
            "rye": "wheat", "beet": "potatoes", "other_permanent_crops": "trees_unspecified",
            "non_cropland_mixed": "grasslands"}  # fmt: skip


def real_series() -> dict[str, list[np.ndarray]]:
    """Legend crop -> real (len(DATES), len(BANDS)) reflectance curves in tile band order, on the tile dates."""
    target = season_days(np.array([d.isoformat() for d in DATES]), 2016)[0]
    pools: dict[str, list[np.ndarray]] = {}
    for files, tag in ((PREFERRED, "preferred"), (OTHERS, "other")):
        for name in files:
            z = np.load(SHARED / "s2-crops" / name)
            days = season_days(z["dates"])[0]
            cols = [list(z["bands"]).index(b) for b in BANDS]
            for x, label in zip(z["X"], z["labels"]):
                crop = legend.to_crop(str(label))
                if tag == "other" and crop in pools:
                    continue
                ok = np.isfinite(x[:, cols]).all(axis=1)
                if ok.sum() < 6 or days[ok].min() > target[0] + 30 or days[ok].max() < target[-1] - 30:
                    continue
                curve = np.stack([np.interp(target, days[ok], x[ok, c]) for c in cols], axis=1)
                pools.setdefault(crop, []).append(curve.astype(np.float32))
    return pools


def pool_for(crop: str, pools: dict[str, list[np.ndarray]]) -> list[np.ndarray]:
    for name in (crop, FALLBACK.get(crop, ""), legend.generic(crop) if crop in legend.CROPS else "", "grasslands"):
        if pools.get(name):
            return pools[name]
    raise SystemExit(f"no real series for {crop}")


def ndvi_of(curve: np.ndarray) -> np.ndarray:
    red, nir = curve[..., 0], curve[..., 3]
    return (nir - red) / np.maximum(nir + red, 1e-6)


def main() -> None:
    rng = np.random.default_rng(SEED)
    pools = real_series()
    parcels = gpd.read_file(SHARED / "denmark" / "parcels_2016.gpkg")
    parcels = parcels[parcels.geometry.notna() & parcels.is_valid].reset_index(drop=True)
    with rasterio.open(SHARED / "denmark" / "s2_rgb_2016.tif") as src:
        rgb = src.read().astype(np.float32) / 10000.0
        profile = src.profile
        transform, crs = src.transform, src.crs
    h, w = rgb.shape[1:]
    parcels["crop"] = [legend.to_crop(a) if isinstance(a, str) else "grasslands" for a in parcels["Afgroede"]]
    label = rasterize(((g, i + 1) for i, g in enumerate(parcels.geometry)), out_shape=(h, w),
                      transform=transform, fill=0, dtype="int32")
    curves = np.stack([pool_for(c, pools)[rng.integers(len(pool_for(c, pools)))] for c in parcels["crop"]])
    # Crop failure on purpose: a maize parcel in full canopy by late June has lost it by mid-August
    # (drought), weeks before maize normally senesces (harvest_doy in the valuation parameters).
    # It lies outside the 25 June cloud, so the collapse is seen.
    cx, cy, radius = 0.75 * w, 0.25 * h, 0.22 * min(h, w) + 40
    col_row = [~transform * (g.centroid.x, g.centroid.y) for g in parcels.geometry]
    silage = (parcels["Afgroede"] == "Silomajs").to_numpy()
    by_area = np.flatnonzero(silage)[np.argsort(-parcels.area.values[silage])]
    maize = [i for i in by_area if (col_row[i][0] - cx) ** 2 + (col_row[i][1] - cy) ** 2 > radius**2]
    failed = int(maize[3])
    green = max(pool_for("maize", pools), key=lambda c: ndvi_of(c)[4])
    curves[failed] = green
    curves[failed, 5:] = green[int(np.argmin(ndvi_of(green)))]  # its own bare-soil reflectance from August on

    # Background: buildings where bright, woodland where greener than red, else grass.
    brightness = rgb.mean(axis=0)
    bg = np.where(brightness > np.percentile(brightness, 93), 0, np.where(rgb[1] > rgb[0] * 1.05, 1, 2))
    bg_curves = {1: pool_for("trees_unspecified", pools)[0], 2: pool_for("grasslands", pools)[1]}

    # Texture: each pixel keeps its real brightness relative to its parcel (or background class).
    region = np.where(label > 0, label, -1 - bg)
    tex = np.ones((len(BANDS), h, w), np.float32)
    for b in range(3):
        band = rgb[b]  # the scene's order B04, B03, B02 is the tiles' order
        ids, inverse = np.unique(region, return_inverse=True)
        means = np.bincount(inverse.ravel(), weights=band.ravel()) / np.bincount(inverse.ravel())
        tex[b] = np.clip(band / np.maximum(means[inverse].reshape(h, w), 1e-4), 0.8, 1.2)
    tex[3:] = tex[:3].mean(axis=0)

    OUT.mkdir(exist_ok=True)
    yy, xx = np.mgrid[0:h, 0:w]
    inside = label > 0
    for t, d in enumerate(DATES):
        refl = np.empty((len(BANDS), h, w), np.float32)
        refl[:, inside] = curves[label[inside] - 1, t].T
        for k, curve in bg_curves.items():
            refl[:, (bg == k) & ~inside] = curve[t][:, None]
        town = (bg == 0) & ~inside
        refl[:3, town] = rgb[:, town] * rng.uniform(0.95, 1.05)
        refl[3, town] = rgb[0, town] * 1.2  # NDVI about 0.1: roofs and roads
        for b, factor in zip(range(4, len(BANDS)), (1.05, 1.1, 1.15, 1.3, 1.2)):
            refl[b, town] = rgb[0, town] * factor  # flat red-edge, bright SWIR: no canopy
        refl = refl * tex * (1 + rng.normal(0, 0.02, refl.shape)).astype(np.float32)
        dn = np.clip(np.round(refl * 10000), 1, 65535).astype(np.uint16)
        cloud = np.zeros((h, w), bool)
        if d == CLOUDY_DATE:  # an opaque cloud over the north-east, masked as nodata
            cloud = (xx - 0.75 * w) ** 2 + (yy - 0.25 * h) ** 2 < (0.22 * min(h, w)) ** 2
            dn[:, cloud] = 0
        prof = {**profile, "count": len(BANDS), "dtype": "uint16", "nodata": 0, "compress": "deflate",
                "predictor": 2, "tiled": True, "blockxsize": 256, "blockysize": 256}
        path = OUT / f"S2_DK_{d:%Y%m%d}.tif"
        with rasterio.open(path, "w", **prof) as dst:
            dst.write(dn)
            dst.descriptions = BANDS
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
        "farmer-003": [("Grain maize", pick("Majs til modenhed", 0)), ("Maize after drought", failed)],
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
        {"name": "Bow-tie drawing", "geom": None,
         "coords": [(513000, 6246000), (513300, 6246300), (513300, 6246000), (513000, 6246300), (513000, 6246000)]},
        {"name": "Field outside the imagery",
         "geom": Polygon([(530000, 6250000), (530400, 6250000), (530400, 6250300), (530000, 6250300)])},
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
