"""Valuation parameters: the versioned TOML file (`valuation_params.toml`) read and checked.

Each crop's yield and price with their low / high ranges and a source, regional bands, the
uncertainty settings, the limit policy (advance rate, haircuts, caps, no-limit reasons), sensor
factors and the crop-health curves. `parse_params` refuses a bad table by name (a crop outside the
legend, a negative yield or price, an unknown currency, low > high, a range without a source) and
keeps the text, whose sha256 every decision records.
"""

from __future__ import annotations

import hashlib
import math
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from assets.crop_health import CropHealthParams, parse_crop_health
from assets.errors import InputError
from assets.models import legend

CURRENCIES = ("CNY",)  # every value and limit column is *_cny; another currency needs a conversion first
NATIONAL = "national"  # the region name of a crop's own (not regional) economics


@dataclass(frozen=True)
class CropEconomics:
    yield_kg_per_mu: float
    price_cny_per_kg: float
    harvest_doy: int
    season_start_doy: int = 0
    yield_range: tuple[float, float] | None = None  # (low, high) kg/mu; None: no range (low = high = expected)
    price_range: tuple[float, float] | None = None  # (low, high) CNY/kg
    source: str = ""

    @property
    def value_cny_per_mu(self) -> float:
        return self.yield_kg_per_mu * self.price_cny_per_kg

    @property
    def low_cny_per_mu(self) -> float:
        return (self.yield_range or (self.yield_kg_per_mu,) * 2)[0] * (self.price_range or (self.price_cny_per_kg,) * 2)[0]

    @property
    def high_cny_per_mu(self) -> float:
        return (self.yield_range or (self.yield_kg_per_mu,) * 2)[1] * (self.price_range or (self.price_cny_per_kg,) * 2)[1]


@dataclass(frozen=True)
class Region:
    """A named area with its own yield and price ranges: a box in EPSG:4326, lower edges inclusive."""

    name: str
    bbox: tuple[float, float, float, float]  # lon_min, lat_min, lon_max, lat_max
    source: str

    def contains(self, lon: float, lat: float) -> bool:
        x0, y0, x1, y1 = self.bbox
        return x0 <= lon < x1 and y0 <= lat < y1


@dataclass(frozen=True)
class Uncertainty:
    area_margin: float = 0.05
    area_margin_per_missing_date: float = 0.04
    full_confidence_dates: int = 6
    likely_crop_mass: float = 0.9  # for an uncertain crop call
    likely_crop_min_probability: float = 0.1  # candidates less probable than this never set the floor
    reason_area_margin: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class ValuationParams:
    version: str
    advance_rate: float
    round_down_to_cny: float
    borrower_cap_cny: float
    crop_failure_factor: float
    sensor_factor: dict[str, float]
    crops: dict[str, CropEconomics]
    currency: str = "CNY"
    field_cap_cny: float = math.inf
    uncertainty: Uncertainty = Uncertainty()
    haircuts: dict[str, float] = field(default_factory=dict)
    no_limit_reasons: tuple[str, ...] = ()
    regions: dict[str, Region] = field(default_factory=dict)
    regional: dict[str, dict[str, CropEconomics]] = field(default_factory=dict)  # region -> crop -> merged economics
    crop_health: CropHealthParams | None = None  # None: the parameter file has no crop-health step
    text: str = ""  # the TOML the parameters were read from, stored with the decisions that used them

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()

    def region_of(self, lon: float | None, lat: float | None) -> str | None:
        """The parameter region holding a field's centre (None: outside every region, or no centre)."""
        if lon is None or lat is None:
            return None
        for name in sorted(self.regions):
            if self.regions[name].contains(lon, lat):
                return name
        return None

    def econ(self, crop: str, region: str | None) -> CropEconomics | None:
        """A crop's economics in a region, falling back to its national ones."""
        if region is not None:
            found = self.regional.get(region, {}).get(crop)
            if found is not None:
                return found
        return self.crops.get(crop)


@lru_cache(maxsize=8)
def load_params(path: str | None = None) -> ValuationParams:
    """The packaged parameters, or a TOML file given by path; checked against the crop legend."""
    name = path or "valuation_params.toml"
    try:
        text = Path(path).read_text() if path else resources.files("assets").joinpath("valuation_params.toml").read_text()
    except OSError as exc:
        raise InputError(f"valuation parameters {name} cannot be read ({exc}); check the path") from exc
    return parse_params(text, name)


def _pair(value: Any, what: str) -> tuple[float, float] | None:
    if value is None:
        return None
    if not isinstance(value, list) or len(value) != 2:
        raise ValueError(f"{what} must be [low, high]")
    return float(value[0]), float(value[1])


def _econ(crop: str, v: Any, name: str, base: CropEconomics | None = None) -> CropEconomics:
    """One crop's economics, checked; a regional table (``base`` given) falls back key by key to ``base``."""
    if not isinstance(v, dict):
        raise InputError(f"valuation parameters {name}: crop {crop!r} must be a table")
    if base is None:
        missing = [k for k in ("yield_kg_per_mu", "price_cny_per_kg", "harvest_doy") if k not in v]
        if missing:
            raise InputError(f"valuation parameters {name}: crop {crop!r} is missing {missing}; every priced crop "
                             "needs yield_kg_per_mu, price_cny_per_kg and harvest_doy")
    elif not ({"yield_kg_per_mu_range", "price_cny_per_kg_range", "yield_kg_per_mu", "price_cny_per_kg"} & set(v)):
        raise InputError(f"valuation parameters {name}: crop {crop!r} sets nothing; give yield_kg_per_mu_range "
                         "and/or price_cny_per_kg_range (and a source), or remove the table")
    try:
        e = CropEconomics(
            float(v["yield_kg_per_mu"]) if "yield_kg_per_mu" in v or base is None else base.yield_kg_per_mu,
            float(v["price_cny_per_kg"]) if "price_cny_per_kg" in v or base is None else base.price_cny_per_kg,
            base.harvest_doy if base else int(v["harvest_doy"]),
            base.season_start_doy if base else int(v.get("season_start_doy", 0)),
            _pair(v.get("yield_kg_per_mu_range"), "yield_kg_per_mu_range")
            if "yield_kg_per_mu_range" in v or base is None else base.yield_range,
            _pair(v.get("price_cny_per_kg_range"), "price_cny_per_kg_range")
            if "price_cny_per_kg_range" in v or base is None else base.price_range,
            str(v.get("source", "")))
    except (ValueError, TypeError) as exc:
        raise InputError(f"valuation parameters {name}: crop {crop!r} has an unusable number ({exc})") from exc
    if min(e.yield_kg_per_mu, e.price_cny_per_kg, *(e.yield_range or ()), *(e.price_range or ())) < 0:
        raise InputError(f"valuation parameters {name} have a negative yield or price for [{crop!r}]")
    for what, rng, mid in (("yield_kg_per_mu", e.yield_range, e.yield_kg_per_mu),
                           ("price_cny_per_kg", e.price_range, e.price_cny_per_kg)):
        if rng is not None and rng[0] > rng[1]:
            raise InputError(f"valuation parameters {name}: crop {crop!r} has {what}_range {list(rng)} with "
                             "low > high; write [low, high] with low <= expected <= high")
        if rng is not None and not rng[0] <= mid <= rng[1]:
            raise InputError(f"valuation parameters {name}: crop {crop!r} has {what}_range {list(rng)} around "
                             f"{mid:g}; it needs low <= expected <= high"
                             + ("" if base is None else " (a regional range keeps the national expected value "
                                "unless it sets its own: move the band or set it)"))
    if (e.yield_range or e.price_range) and not e.source.strip():
        raise InputError(f"valuation parameters {name}: crop {crop!r} has ranges without a source; "
                         "add source = \"where the yield and price ranges come from\"")
    return e


def _regions(raw: Any, name: str) -> dict[str, Region]:
    """``[regions.<name>]`` tables: bbox = [lon_min, lat_min, lon_max, lat_max] and a source; no two may overlap."""
    out: dict[str, Region] = {}
    for key, r in (raw or {}).items():
        if key == NATIONAL:
            raise InputError(f"valuation parameters {name}: {NATIONAL!r} is the crops' own range, not a region name")
        try:
            box = tuple(float(x) for x in r["bbox"])
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"valuation parameters {name}: region {key!r} needs bbox = [lon_min, lat_min, lon_max, "
                             f"lat_max] in degrees ({exc!r})") from exc
        if len(box) != 4 or not (-180 <= box[0] < box[2] <= 180 and -90 <= box[1] < box[3] <= 90):
            raise InputError(f"valuation parameters {name}: region {key!r} has bbox {list(box)}; it needs "
                             "lon_min < lon_max within -180..180 and lat_min < lat_max within -90..90")
        if not str(r.get("source", "")).strip():
            raise InputError(f"valuation parameters {name}: region {key!r} has no source; add source = \"...\"")
        out[key] = Region(key, (box[0], box[1], box[2], box[3]), str(r["source"]))
    names = sorted(out)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            (ax0, ay0, ax1, ay1), (bx0, by0, bx1, by1) = out[a].bbox, out[b].bbox
            if ax0 < bx1 and bx0 < ax1 and ay0 < by1 and by0 < ay1:
                raise InputError(f"valuation parameters {name}: regions {a!r} and {b!r} overlap; a field must fall "
                                 "in at most one region")
    return out


def parse_params(text: str, name: str = "valuation parameters") -> ValuationParams:
    """Parameters from TOML text (also the text stored with an old decision, for recomputing it).

    Checks, each naming the crop or key to fix: crops inside the legend, no negative yield or
    price, a known currency, low <= expected <= high, a source per priced crop, sensor factors
    that never reward weaker evidence."""
    try:
        raw = tomllib.loads(text)
        crops_raw = raw.get("crops")
    except (TypeError, tomllib.TOMLDecodeError) as exc:
        raise InputError(f"valuation parameters {name} are unusable ({exc!r})") from exc
    if not crops_raw or not isinstance(crops_raw, dict):
        raise InputError(f"valuation parameters {name}: no crop is priced; add [crops.<legend name>] tables")
    outside = sorted(set(crops_raw) - set(legend.CROPS))
    if outside:
        raise InputError(f"valuation parameters {name} price crops outside the crop legend: {outside}; "
                         "use legend names (assets/models/legend.py), e.g. maize, wheat, grasslands")
    crops = {crop: _econ(crop, v, name) for crop, v in crops_raw.items()}
    regions = _regions(raw.get("regions"), name)
    regional: dict[str, dict[str, CropEconomics]] = {}
    for crop, v in crops_raw.items():
        for region, rv in (v.get("regions") or {}).items():
            if region not in regions:
                raise InputError(f"valuation parameters {name}: crop {crop!r} has ranges for unknown region {region!r}; "
                                 f"declare it under [regions.{region}] (bbox and source) or use one of "
                                 f"{sorted(regions) or 'no region yet'}")
            regional.setdefault(region, {})[crop] = _econ(f"{crop} in {region}", rv, name, crops[crop])
    try:
        unc = raw.get("uncertainty", {})
        params = ValuationParams(
            version=str(raw["version"]), advance_rate=float(raw["advance_rate"]),
            round_down_to_cny=float(raw["round_down_to_cny"]), borrower_cap_cny=float(raw["borrower_cap_cny"]),
            crop_failure_factor=float(raw["crop_failure_factor"]),
            sensor_factor={k: float(x) for k, x in raw["sensor_factor"].items()}, crops=crops,
            currency=str(raw.get("currency", "CNY")), field_cap_cny=float(raw.get("field_cap_cny", math.inf)),
            uncertainty=Uncertainty(
                area_margin=float(unc.get("area_margin", 0.05)),
                area_margin_per_missing_date=float(unc.get("area_margin_per_missing_date", 0.04)),
                full_confidence_dates=int(unc.get("full_confidence_dates", 6)),
                likely_crop_mass=float(unc.get("likely_crop_mass", 0.9)),
                likely_crop_min_probability=float(unc.get("likely_crop_min_probability", 0.1)),
                reason_area_margin={k: float(x) for k, x in unc.get("reason_area_margin", {}).items()}),
            haircuts={k: float(x) for k, x in raw.get("haircuts", {}).items()},
            no_limit_reasons=tuple(str(x) for x in raw.get("no_limit_reasons", ())), regions=regions,
            regional=regional, crop_health=parse_crop_health(raw.get("crop_health"), name), text=text)
    except (KeyError, ValueError, TypeError, AttributeError) as exc:
        raise InputError(f"valuation parameters {name} are unusable ({exc!r})") from exc
    if params.currency not in CURRENCIES:
        raise InputError(f"valuation parameters {name} use currency {params.currency!r}; values and limits are "
                         f"computed in {', '.join(CURRENCIES)} only: convert the prices and set currency = \"CNY\"")
    if "no_devices" not in params.sensor_factor:
        raise InputError(f"valuation parameters {name}: [sensor_factor] needs no_devices (the default)")
    ladder = [params.sensor_factor.get(k) for k in ("corroborated", "no_devices", "silent", "implausible")]
    known = [f for f in ladder if f is not None]
    if known != sorted(known, reverse=True) or not all(0 <= f <= 1 for f in known):
        raise InputError(f"valuation parameters {name}: sensor factors must fall from corroborated to implausible "
                         "within 0..1; weaker sensor evidence may never raise a limit")
    bad = sorted(k for k, x in {**params.haircuts, **params.uncertainty.reason_area_margin}.items() if not 0 <= x < 1)
    if bad or not 0 < params.advance_rate <= 1:
        raise InputError(f"valuation parameters {name}: advance_rate must be in (0, 1] and haircuts/margins in [0, 1) "
                         f"(check {bad or 'advance_rate'})")
    return params
