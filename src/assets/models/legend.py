"""The one crop legend of the platform: land class -> crop group -> crop, and the tables that
map every label source we meet onto it.

Crop names are WorldCereal's coarse legend (the ``labels`` of the shared s2-crops files:
``maize``, ``wheat``, ``grasslands``, ``sunflower``, ``sorghum`` ...), so a model's predictions
compare with those files directly. Three land classes matter to a lender:

* ``cropland``: arable and permanent crops (fallow included: it is farmland with no harvest),
* ``grassland``: temporary and permanent grass, clover grass, fodder: farmland with a value,
* ``non_cropland``: forest, shrub, natural vegetation, water, buildings: never collateral.

Sources mapped here: WorldCereal fine labels (``legend_worldcereal.csv``, rebuilt by
``scripts/make_legend_table.py``), the Danish parcel register's ``Afgroede`` names, the UCR Crop
classes, and free text a farmer may declare (English, Chinese, French, Danish).
"""

from __future__ import annotations

import csv
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from assets.errors import InputError

UNKNOWN = "unknown"
LAND_CLASSES = ("cropland", "grassland", "non_cropland")


@dataclass(frozen=True)
class Crop:
    name: str  # WorldCereal coarse name
    group: str
    land: str  # one of LAND_CLASSES

    @property
    def farmland(self) -> bool:
        """Land a farmer can pledge: crops, fallow and managed grass."""
        return self.land != "non_cropland"


# group -> (land class, generic member that rare crops of the group fall back to, members)
_GROUPS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "cereals": ("cropland", "cereals", (
        "wheat", "spring_wheat", "barley", "spring_barley", "rye", "spring_rye", "oats", "spring_oats",
        "cereals", "spring_cereals", "millet", "pseudocereal", "rice", "sorghum", "maize")),
    "oilseeds": ("cropland", "other_oilseeds", (
        "rapeseed_rape", "spring_rapeseed_rape", "sunflower", "soy_soybeans", "other_oilseeds")),
    "pulses": ("cropland", "dry_pulses_legumes", ("dry_pulses_legumes",)),
    "root_tuber": ("cropland", "root_tuber_crops", ("potatoes", "root_tuber_crops", "beet")),
    "vegetables": ("cropland", "vegetables_fruits", (
        "vegetables_fruits", "herb_spice_medicinal_crops", "flower_crops", "mushrooms_truffles",
        "greenhouse_foil_film_indoor")),
    "fibre": ("cropland", "fibre_crops", ("fibre_crops",)),
    "mixed_arable": ("cropland", "temporary_crops", (
        "temporary_crops", "mixed_arable_crops", "mixed_cropland", "cropland_unspecified")),
    "fallow": ("cropland", "not_cultivated_fallow", ("not_cultivated_fallow",)),
    "permanent_crops": ("cropland", "permanent_crops", (
        "permanent_crops", "grapes", "fruits", "nuts", "olive", "other_permanent_crops")),
    "grass_fodder": ("grassland", "grasslands", ("grasslands", "grass_fodder_crops")),
    "trees": ("non_cropland", "trees_unspecified", (
        "trees_unspecified", "trees_broadleaved", "trees_coniferous", "trees_mixed")),
    "natural_vegetation": ("non_cropland", "non_cropland_mixed", (
        "non_cropland_mixed", "herbaceous_vegetation", "shrubland", "wetlands", "bare_sparsely_vegetated",
        "non_cropland_incl_perennial", "non_cropland_excl_perennial")),
    "built_up": ("non_cropland", "built_up", ("built_up",)),
    "water": ("non_cropland", "open_water", ("open_water",)),
}  # fmt: skip

CROPS: dict[str, Crop] = {
    name: Crop(name, group, land) for group, (land, _, members) in _GROUPS.items() for name in members
}
GROUP_GENERIC: dict[str, str] = {group: generic for group, (_, generic, _) in _GROUPS.items()}

# The UCR "Crop" classes (FORMOSAT-2, south-west France), by English name.
UCR: dict[str, str] = {
    "corn": "maize", "wheat": "wheat", "dense building": "built_up", "industrial building": "built_up",
    "diffuse building": "built_up", "temporary meadow": "grasslands", "hardwood": "trees_broadleaved",
    "wasteland": "non_cropland_mixed", "fallow": "not_cultivated_fallow", "soy": "soy_soybeans",
    "water": "open_water", "meadow": "grasslands", "softwood": "trees_coniferous", "sunflower": "sunflower",
    "sorghum": "sorghum", "eucalyptus": "trees_broadleaved", "rapeseed": "rapeseed_rape",
    "silage maize": "maize", "barley": "barley", "peas": "dry_pulses_legumes", "poplars": "trees_broadleaved",
    "mineral surface": "bare_sparsely_vegetated", "gravel pit": "bare_sparsely_vegetated", "lake": "open_water",
}  # fmt: skip

# Danish land-parcel register `Afgroede` names (prefix match: the register truncates them).
DANISH: tuple[tuple[str, str], ...] = (
    ("vårbyg", "spring_barley"), ("grønkorn af vårbyg", "spring_barley"), ("vinterbyg", "barley"),
    ("vinterhvede", "wheat"), ("vårhvede", "spring_wheat"), ("vinterhybridrug", "rye"), ("vinterrug", "rye"),
    ("vintertriticale", "cereals"), ("vårhavre", "spring_oats"), ("blanding af vårsåede", "spring_cereals"),
    ("silomajs", "maize"), ("majs", "maize"), ("kartofler", "potatoes"), ("fodersukkerroer", "beet"),
    ("sukkerroer", "beet"), ("gulerod", "vegetables_fruits"), ("ærter", "dry_pulses_legumes"),
    ("vinterraps", "rapeseed_rape"), ("vårraps", "spring_rapeseed_rape"), ("græs", "grasslands"),
    ("permanent græs", "grasslands"), ("rajgræs", "grass_fodder_crops"), ("kløver", "grass_fodder_crops"),
    ("mfo-slåningsbrak", "not_cultivated_fallow"), ("slåningsbrak", "not_cultivated_fallow"),
    ("brak", "not_cultivated_fallow"), ("juletræer", "other_permanent_crops"),
    ("skovrejsning", "trees_unspecified"), ("udyrket areal", "non_cropland_mixed"),
)  # fmt: skip

# Free text a farmer or officer may type: English, Chinese, French, plain synonyms.
FREE_TEXT: dict[str, str] = {
    "corn": "maize", "grain maize": "maize", "silage maize": "maize", "玉米": "maize", "maïs": "maize",
    "winter wheat": "wheat", "soft wheat": "wheat", "durum wheat": "wheat", "小麦": "wheat", "blé": "wheat",
    "spring wheat": "spring_wheat", "winter barley": "barley", "大麦": "barley", "orge": "barley",
    "spring barley": "spring_barley", "rice": "rice", "paddy": "rice", "水稻": "rice", "稻谷": "rice", "大米": "rice",
    "sorghum": "sorghum", "高粱": "sorghum", "millet": "millet", "谷子": "millet", "小米": "millet",
    "oats": "oats", "燕麦": "oats", "rye": "rye", "黑麦": "rye", "triticale": "cereals",
    "soy": "soy_soybeans", "soybean": "soy_soybeans", "soybeans": "soy_soybeans", "大豆": "soy_soybeans", "soja": "soy_soybeans",
    "rapeseed": "rapeseed_rape", "canola": "rapeseed_rape", "oilseed rape": "rapeseed_rape", "油菜": "rapeseed_rape",
    "colza": "rapeseed_rape", "sunflower": "sunflower", "向日葵": "sunflower", "tournesol": "sunflower",
    "groundnut": "other_oilseeds", "groundnuts": "other_oilseeds", "peanut": "other_oilseeds", "花生": "other_oilseeds",
    "beans": "dry_pulses_legumes", "bean": "dry_pulses_legumes",
    "peas": "dry_pulses_legumes", "pulses": "dry_pulses_legumes", "豆类": "dry_pulses_legumes",
    "potato": "potatoes", "potatoes": "potatoes", "马铃薯": "potatoes", "土豆": "potatoes",
    "cassava": "root_tuber_crops", "木薯": "root_tuber_crops", "sweetpotato": "potatoes", "sweet potato": "potatoes",
    "红薯": "potatoes", "sugarcane": "grass_fodder_crops", "sugar cane": "grass_fodder_crops", "甘蔗": "grass_fodder_crops",
    "banana": "fruits", "bananas": "fruits", "香蕉": "fruits", "fallowland": "not_cultivated_fallow",
    "fallow land": "not_cultivated_fallow", "sugar beet": "beet", "甜菜": "beet",
    "cotton": "fibre_crops", "棉花": "fibre_crops", "vegetables": "vegetables_fruits", "蔬菜": "vegetables_fruits",
    "grass": "grasslands", "grassland": "grasslands", "pasture": "grasslands", "meadow": "grasslands",
    "temporary meadow": "grasslands", "clover grass": "grass_fodder_crops", "fodder": "grass_fodder_crops",
    "alfalfa": "grass_fodder_crops", "lucerne": "grass_fodder_crops", "苜蓿": "grass_fodder_crops",
    "牧草": "grasslands", "草地": "grasslands", "prairie": "grasslands", "fallow": "not_cultivated_fallow",
    "休耕": "not_cultivated_fallow", "jachère": "not_cultivated_fallow", "vines": "grapes", "vineyard": "grapes",
    "葡萄": "grapes", "orchard": "fruits", "果园": "fruits", "olive": "olive", "tea": "other_permanent_crops",
    "茶": "other_permanent_crops", "forest": "trees_unspecified", "woodland": "trees_unspecified", "森林": "trees_unspecified",
    "water": "open_water", "水体": "open_water", "buildings": "built_up", "village": "built_up", "建筑": "built_up",
    # Digital Earth Africa's crop mask labels: cropland vs not, no crop type.
    "crop": "cropland_unspecified", "noncrop": "non_cropland_mixed", "non crop": "non_cropland_mixed",
}  # fmt: skip


def _key(text: str) -> str:
    """Case-, width- and separator-insensitive form of a label (NFKC, lower case, spaces)."""
    text = unicodedata.normalize("NFKC", str(text)).strip().lower()
    return " ".join(text.replace("_", " ").replace("-", " ").split())


@lru_cache(maxsize=1)
def _worldcereal_fine() -> dict[str, str]:
    table = resources.files("assets.models").joinpath("legend_worldcereal.csv").read_text(encoding="utf-8")
    out: dict[str, str] = {}
    for row in csv.DictReader(table.splitlines()):
        out[_key(row["label_full"])] = row["coarse"]
        out[_key(row["ewoc_code"])] = row["coarse"]
    return out


@lru_cache(maxsize=1)
def _lookup() -> dict[str, str]:
    table: dict[str, str] = dict(_worldcereal_fine())
    table.update({_key(k): v for k, v in UCR.items()})
    table.update({_key(k): v for k, v in FREE_TEXT.items()})
    table.update({_key(name): name for name in CROPS})
    return table


def to_crop(label: str) -> str:
    """The legend crop for any label we know (WorldCereal coarse or fine, UCR, Danish, free text).

    Raises `InputError` naming the label when it is not in the legend, never a silent guess.
    """
    key = _key(label)
    hit = _lookup().get(key)
    if hit is None:
        for prefix, crop in sorted(DANISH, key=lambda p: -len(p[0])):  # the longest prefix wins
            if key.startswith(_key(prefix)):
                return crop
        raise InputError(
            f"label {label!r} is not in the crop legend; use a WorldCereal crop name (e.g. maize, wheat, "
            f"grasslands) or add a mapping to assets/models/legend.py"
        )
    if hit == UNKNOWN:
        return UNKNOWN
    return hit


def to_crops(labels: list[str] | tuple[str, ...]) -> list[str]:
    """`to_crop` over many labels, reporting every unknown label at once."""
    out, bad = [], []
    for label in labels:
        try:
            out.append(to_crop(label))
        except InputError:
            bad.append(str(label))
    if bad:
        uniq = sorted(set(bad))
        raise InputError(f"{len(bad)} labels are not in the crop legend ({', '.join(map(repr, uniq[:8]))}"
                         f"{' ...' if len(uniq) > 8 else ''}); relabel them with legend names (WorldCereal's "
                         "coarse names such as maize, wheat, grasslands) or a synonym the legend knows")
    return out


def crop(name: str) -> Crop:
    """The legend entry of a crop name (an `InputError` for names outside the legend)."""
    try:
        return CROPS[name]
    except KeyError:
        raise InputError(f"{name!r} is not a crop of the legend") from None


def group_of(name: str) -> str:
    return crop(name).group


def is_farmland(name: str) -> bool:
    """True for crops, fallow and managed grass; False for forest, water, buildings, unknown."""
    return name in CROPS and CROPS[name].farmland


def generic(name: str) -> str:
    """The group-level crop that a rare crop is trained as (``oats`` -> ``cereals``)."""
    return GROUP_GENERIC[crop(name).group]
