"""Value a verified field with its uncertainty and set its credit limit, every number explained.

The expected value is the harvest under the crop model's calibrated probabilities:
``area_mu x sum_c P(c) x yield_c x price_c``; a doubtful crop call lowers the value instead of
betting on the top class. Around it sit a low and a high estimate: the verified area +- a margin
that grows as the evidence weakens (fewer cloud-free dates, partial planting), the least (most)
valuable likely crop, and the low (high) yield and price of each crop. The limit lends against
the LOW estimate only (policy in `valuation_params.toml`), so weaker evidence never raises it.
Parameters live in a versioned TOML file; each row records the version and its sha256.
"""

from __future__ import annotations

import hashlib
import math
import tomllib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from assets.crop_health import CropHealthParams, parse_crop_health
from assets.crop_health import health as crop_health
from assets.errors import InputError
from assets.fields.geometry import ha_to_mu
from assets.models import legend
from assets.verify import Verification

CURRENCIES = ("CNY",)  # every value and limit column is *_cny; another currency needs a conversion first
# Explanation steps stored with the valuation; every other step belongs to the limit.
VALUE_STEPS = ("area", "crop", "crop_health", "value_per_mu", "value", "area_range", "value_per_mu_range",
               "value_range")
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


def likely_crops(crop_probs: dict[str, float], params: ValuationParams) -> list[str]:
    """The plausible crops of an uncertain call: the most probable ones that together hold
    ``likely_crop_mass`` of the probability, less the long tail under ``likely_crop_min_probability``
    (with a diffuse call a 3 % fallow would otherwise value every uncertain field at 0; the tail
    already lowers the probability-weighted value by its share). The top crop always counts."""
    u = params.uncertainty
    likely: list[str] = []
    mass = 0.0
    for c, p in sorted(crop_probs.items(), key=lambda kv: -kv[1]):
        if likely and p < u.likely_crop_min_probability:
            break
        likely.append(c)
        mass += p
        if mass >= u.likely_crop_mass - 1e-9:  # 0.7 + 0.2 is 0.8999...
            break
    return likely


def _floor_for_uncertain(crop_probs: dict[str, float], params: ValuationParams, per_mu: Callable[[str], float]) -> float:
    """Per-mu value of the least valuable *priced* likely crop (0 when none is priced).

    Unpriced or non-crop classes already pull the probability-weighted value down by their
    share; counting them again as a 0 floor would zero every uncertain call that has any
    unpriced candidate.
    """
    priced = [per_mu(c) for c in likely_crops(crop_probs, params) if c in params.crops]
    return min(priced, default=0.0)


def per_mu_value(crop_probs: dict[str, float], params: ValuationParams, uncertain: bool,
                 region: str | None = None) -> tuple[float, list[str]]:
    """Expected CNY per mu over the crop probabilities, and the likely crops that have no price.

    Crops the legend knows but the parameters do not price count as 0 and are named, so the
    explanation shows why they add nothing. For an uncertain (``unknown``) crop call the value is
    at most that of the least valuable priced crop among those holding 90 % of the probability:
    a doubtful call never borrows the value of the most valuable candidate.
    """
    def value(c: str) -> float:
        econ = params.econ(c, region)
        return econ.value_cny_per_mu if econ else 0.0

    expected = sum(p * value(c) for c, p in crop_probs.items())
    unpriced = sorted(c for c, p in crop_probs.items() if p >= 0.05 and c not in params.crops)
    if uncertain and crop_probs:
        expected = min(expected, _floor_for_uncertain(crop_probs, params, value))
    return expected, unpriced


def per_mu_range(crop_probs: dict[str, float], params: ValuationParams, uncertain: bool,
                 region: str | None = None) -> tuple[float, float]:
    """(low, high) CNY per mu over the crop probabilities.

    Low: the probability-weighted low yield x low price (mass on unpriced or non-crop classes
    counts as 0, so a less certain call lowers it); for an uncertain (``unknown``) call, at most
    the least valuable priced likely crop at its low yield and price, as the expected value does.
    High: the probability-weighted high yield x high price.
    """
    def low(c: str) -> float:
        econ = params.econ(c, region)
        return econ.low_cny_per_mu if econ else 0.0

    def high(c: str) -> float:
        econ = params.econ(c, region)
        return econ.high_cny_per_mu if econ else 0.0

    if not crop_probs:
        return 0.0, 0.0
    weighted_low = sum(p * low(c) for c, p in crop_probs.items())
    if uncertain:
        weighted_low = min(weighted_low, _floor_for_uncertain(crop_probs, params, low))
    return weighted_low, sum(p * high(c) for c, p in crop_probs.items())


def area_margin(inp: "ValuationInput", params: ValuationParams) -> tuple[float, list[str]]:
    """Relative uncertainty of the verified area and the evidence that widened it."""
    u = params.uncertainty
    why = [f"{u.area_margin:.0%} for the boundary and pixel edges"]
    margin = u.area_margin
    if inp.usable_dates is not None and inp.usable_dates < u.full_confidence_dates:
        short = u.full_confidence_dates - inp.usable_dates
        margin += short * u.area_margin_per_missing_date
        why.append(f"{short * u.area_margin_per_missing_date:.0%} for {inp.usable_dates} cloud-free dates "
                   f"(of {u.full_confidence_dates} for full confidence)")
    for code in sorted(set(inp.reason_codes) & set(u.reason_area_margin)):
        margin += u.reason_area_margin[code]
        why.append(f"{u.reason_area_margin[code]:.0%} for {code.replace('_', ' ')}")
    return min(margin, 0.95), why


@dataclass(frozen=True)
class ValuationInput:
    """Everything a valuation is computed from, stored with it so it can be recomputed exactly."""

    status: str
    verified_area_ha: float
    claimed_area_ha: float
    crop: str | None
    crop_probability: float
    crop_probs: dict[str, float]
    sensor_status: str
    reason_codes: tuple[str, ...]
    usable_dates: int | None = None
    centre_lon: float | None = None  # the field's bounding-box centre (EPSG:4326): picks the parameter region
    centre_lat: float | None = None
    ndvi_season: tuple[tuple[str, float], ...] | None = None  # (ISO date, mean NDVI) per cloud-free date this season

    @classmethod
    def from_verification(cls, v: Verification, usable_dates: int | None = None,
                          centre: tuple[float, float] | None = None,
                          ndvi_season: Any = None) -> "ValuationInput":
        return cls(status=v.status, verified_area_ha=float(v.verified_area_ha), claimed_area_ha=float(v.claimed_area_ha),
                   crop=v.crop, crop_probability=round(float(v.crop_probability), 6),
                   crop_probs={k: round(float(p), 6) for k, p in v.crop_probs.items()},
                   sensor_status=str((v.sensor_evidence or {}).get("status") or "no_devices"),
                   reason_codes=tuple(r.code for r in v.reasons), usable_dates=usable_dates,
                   centre_lon=round(float(centre[0]), 6) if centre else None,
                   centre_lat=round(float(centre[1]), 6) if centre else None,
                   ndvi_season=None if ndvi_season is None else tuple((str(on), round(float(x), 4))
                                                                      for on, x in ndvi_season))

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> "ValuationInput":
        """Inputs as stored; those recorded before a field existed read it as None (the step is a no-op)."""
        ndvi = doc.get("ndvi_season")
        return cls(**{**doc, "reason_codes": tuple(doc["reason_codes"]),
                      "ndvi_season": None if ndvi is None else tuple((str(a), float(b)) for a, b in ndvi)})

    def to_json(self) -> dict[str, Any]:
        doc = {**asdict(self), "reason_codes": list(self.reason_codes)}
        for key in ("centre_lon", "centre_lat", "ndvi_season"):  # absent, as in inputs stored before they existed
            if doc[key] is None:
                del doc[key]
        if self.ndvi_season is not None:
            doc["ndvi_season"] = [[on, x] for on, x in self.ndvi_season]
        return doc


@dataclass
class Valuation:
    area_ha: float
    area_mu: float
    crop: str | None
    crop_probability: float
    value_cny: float
    yield_kg_per_mu: float | None
    price_cny_per_kg: float | None
    limit_cny: float
    advance_rate: float
    params_version: str
    explanation: list[dict[str, Any]] = field(default_factory=list)
    value_low_cny: float = 0.0
    value_high_cny: float = 0.0
    inputs: ValuationInput | None = None

    def steps(self, names: tuple[str, ...] = VALUE_STEPS) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(valuation steps, limit steps) of the explanation, by step name."""
        return ([s for s in self.explanation if s["step"] in names], [s for s in self.explanation if s["step"] not in names])


def value_claim(v: Verification, params: ValuationParams, usable_dates: int | None = None,
                centre: tuple[float, float] | None = None, ndvi_season: Any = None) -> Valuation | None:
    """Value and limit for a verified or partial claim; None for a rejected one."""
    if v.rejected:
        return None
    return value_inputs(ValuationInput.from_verification(v, usable_dates, centre, ndvi_season), params)


def bbox_centre(geometry: Any) -> tuple[float, float] | None:
    """The centre of a field's bounding box (EPSG:4326): what picks its parameter region."""
    if geometry is None or geometry.is_empty:
        return None
    x0, y0, x1, y1 = geometry.bounds
    return (x0 + x1) / 2, (y0 + y1) / 2


def season_ndvi(observation: Any) -> list[tuple[str, float]]:
    """(ISO date, mean NDVI) of each cloud-free date of a claim's observation: the crop-health evidence."""
    return [(d.observed_on.isoformat(), float(d.ndvi_mean)) for d in observation.usable_dates]


def health_crop(inp: ValuationInput) -> str | None:
    """The crop whose NDVI curve a field is judged against: the called crop, else the most probable one."""
    if inp.crop in legend.CROPS:
        return inp.crop
    return max(inp.crop_probs, key=lambda c: inp.crop_probs[c]) if inp.crop_probs else None


def _round_down(x: float, params: ValuationParams) -> float:
    return math.floor(x / params.round_down_to_cny) * params.round_down_to_cny


def value_inputs(inp: ValuationInput, params: ValuationParams) -> Valuation:
    """The valuation of stored inputs: the pipeline and `--recompute` both call this."""
    area_mu = ha_to_mu(inp.verified_area_ha)
    region = params.region_of(inp.centre_lon, inp.centre_lat)
    uncertain = inp.crop == legend.UNKNOWN
    expected_per_mu, unpriced = per_mu_value(inp.crop_probs, params, uncertain, region)
    low_per_mu, high_per_mu = per_mu_range(inp.crop_probs, params, uncertain, region)
    low_per_mu, high_per_mu = min(low_per_mu, expected_per_mu), max(high_per_mu, expected_per_mu)
    top = params.econ(inp.crop or "", region)
    regional_top = region is not None and inp.crop in params.regional.get(region, {})
    failed = "crop_failure" in inp.reason_codes
    health = params.crop_failure_factor if failed else 1.0
    health_steps: list[dict[str, Any]] = []
    if params.crop_health is not None:  # a lagging crop lowers the value; the step never raises it
        h = crop_health(health_crop(inp), inp.ndvi_season, params.crop_health)
        health = min(health, h.factor)
        health_steps.append({
            "step": "crop_health", "value": h.factor, "ratio": None if h.ratio is None else round(h.ratio, 4),
            "curve": h.curve, "dates": h.dates,
            "text": (f"NDVI at {h.ratio:.0%} of the expected {h.curve} curve over {h.dates} recent date(s)"
                     + (f": x {h.factor:.2f}" if h.factor < 1 else ": on track, no change")
                     + f" (curve: {h.why})" if h.ratio is not None
                     else f"crop health not judged ({h.why}): x {h.factor:.2f}")
                    + (f"; crop failure this season: x {params.crop_failure_factor:.2f}, the lower one applies"
                       if failed else "")})
    value = area_mu * expected_per_mu * health
    margin, margin_why = area_margin(inp, params)
    area_low_mu = area_mu * (1 - margin)
    area_high_mu = min(area_mu * (1 + margin), max(ha_to_mu(inp.claimed_area_ha), area_mu))
    value_low, value_high = area_low_mu * low_per_mu * health, area_high_mu * high_per_mu * health
    factor = params.sensor_factor.get(inp.sensor_status, params.sensor_factor["no_devices"])
    rate = params.advance_rate * factor
    explanation: list[dict[str, Any]] = [
        {"step": "area", "value": round(area_mu, 2), "unit": "mu",
         "text": f"{inp.verified_area_ha:.2f} ha verified = {area_mu:.1f} mu (of {inp.claimed_area_ha:.2f} ha claimed)"},
        {"step": "crop", "value": inp.crop, "probability": round(inp.crop_probability, 4),
         "text": f"crop recognised as {inp.crop} with probability {inp.crop_probability:.0%}"},
        *health_steps,
        {"step": "value_per_mu", "value": round(expected_per_mu, 2), "unit": "CNY/mu",
         "text": ("lowest value per mu among the likely crops (the crop call is uncertain)" if inp.crop == legend.UNKNOWN
                  else "expected harvest value per mu over the crop probabilities")
                 + (f" ({inp.crop}: {top.yield_kg_per_mu:.0f} kg/mu x {top.price_cny_per_kg:.2f} CNY/kg)" if top else "")
                 + (f"; no price set for {', '.join(unpriced)}, counted as 0" if unpriced else "")},
        {"step": "value", "value": round(value, 2), "unit": "CNY",
         "text": f"{area_mu:.1f} mu x {expected_per_mu:.0f} CNY/mu"
                 + (f" x {health:.0%} (" + ("crop failure this season" if failed and health == params.crop_failure_factor
                                             else "crop health below its curve") + ")" if health != 1.0 else "")
                 + f" = {value:,.0f} CNY"},
        {"step": "area_range", "value": [round(area_low_mu, 2), round(area_high_mu, 2)], "unit": "mu",
         "margin": round(margin, 4), "text": f"area {area_low_mu:.1f}-{area_high_mu:.1f} mu (+-{margin:.0%}: "
                                              + ", ".join(margin_why) + ")"},
        {"step": "value_per_mu_range", "value": [round(low_per_mu, 2), round(high_per_mu, 2)], "unit": "CNY/mu",
         "text": f"{low_per_mu:.0f}-{high_per_mu:.0f} CNY/mu: low and high yield x price over the crop "
                 "probabilities" + (" (low: the least valuable likely crop)" if inp.crop == legend.UNKNOWN else "")
                 + (f" ({inp.crop} in region {region}: {top.source})" if top and top.source and regional_top
                    else f" ({inp.crop}, national range: {top.source})" if top and top.source else "")},
        {"step": "value_range", "value": [round(value_low, 2), round(value, 2), round(value_high, 2)], "unit": "CNY",
         "text": f"value low {value_low:,.0f} / expected {value:,.0f} / high {value_high:,.0f} CNY"},
        {"step": "advance_rate", "value": round(rate, 4),
         "text": f"advance rate {params.advance_rate:.0%} of the LOW value x sensor factor {factor:.2f} "
                 f"({inp.sensor_status})"},
    ]
    limit = value_low * rate
    for code in sorted(set(inp.reason_codes) & set(params.haircuts)):
        cut = params.haircuts[code]
        limit *= 1 - cut
        explanation.append({"step": f"haircut_{code}", "value": cut,
                            "text": f"-{cut:.0%} haircut: {code.replace('_', ' ')}"})
    if limit > params.field_cap_cny:
        explanation.append({"step": "field_cap", "value": params.field_cap_cny, "unit": "CNY",
                            "text": f"{limit:,.0f} CNY capped at the {params.field_cap_cny:,.0f} CNY per-field cap"})
        limit = params.field_cap_cny
    held = sorted(set(inp.reason_codes) & set(params.no_limit_reasons))
    if held or inp.status not in ("verified", "partial"):
        explanation.append({"step": "no_limit", "value": 0, "text": f"no limit while {', '.join(held) or inp.status}"})
        limit = 0.0
    limit = _round_down(limit, params)
    explanation.append({"step": "limit", "value": limit, "unit": "CNY",
                        "text": f"{value_low:,.0f} CNY (low) x {rate:.0%}"
                                + "".join(f" x {1 - params.haircuts[c]:.0%}"
                                          for c in sorted(set(inp.reason_codes) & set(params.haircuts)))
                                + f", capped and rounded down to {params.round_down_to_cny:.0f} = {limit:,.0f} CNY"})
    return Valuation(
        area_ha=inp.verified_area_ha, area_mu=area_mu, crop=inp.crop, crop_probability=inp.crop_probability,
        value_cny=value, yield_kg_per_mu=top.yield_kg_per_mu if top else None,
        price_cny_per_kg=top.price_cny_per_kg if top else None, limit_cny=limit, advance_rate=rate,
        params_version=params.version, explanation=explanation, value_low_cny=value_low, value_high_cny=value_high,
        inputs=inp,
    )


def cap_borrower_limits(limits_cny: list[float], params: ValuationParams) -> list[float]:
    """Scale one borrower's claim limits down proportionally so their sum respects the cap."""
    total = sum(limits_cny)
    if total <= params.borrower_cap_cny or total == 0:
        return limits_cny
    scale = params.borrower_cap_cny / total
    return [_round_down(x * scale, params) for x in limits_cny]
