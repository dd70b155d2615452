"""Settings in one place: paths, broker URL and thresholds, from the environment with defaults.

Every face (CLI, API, flows) builds a `Settings` once and passes it down; nothing reads
environment variables elsewhere.
"""

from __future__ import annotations

from datetime import date, datetime
from importlib import resources
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_DIR = PACKAGE_DIR.parent.parent  # the checkout, when running from one (editable install, tests)
# Data the wheel carries under assets/_data/<name> (setup.py copies them in), and where a checkout keeps them.
BUNDLED = {"models": "models", "sample_tiles": "sample_tiles", "mosquitto": "deploy/mosquitto"}


def bundled_dir(name: str) -> Path:
    """The package's own copy of a bundled folder: inside the installed wheel (found with
    importlib.resources, so any working directory does), else the checkout's top-level folder
    (editable installs read it in place). Never the current directory: that was a guess."""
    packaged = Path(str(resources.files("assets").joinpath("_data", name)))
    if packaged.is_dir():
        return packaged
    checkout = REPO_DIR / BUNDLED[name]
    return checkout if checkout.is_dir() else packaged  # missing: errors then name the packaged path


def _env(variable: str) -> AliasChoices:
    """A field read from the environment as ``variable`` only (with an alias, pydantic-settings reads no
    ASSETS_<FIELD> for it); its keyword still works (`validate_by_name`)."""
    return AliasChoices(variable)


class Settings(BaseSettings):
    """Every path, threshold and default of the platform (pydantic-settings).

    Built once per face (CLI, API, flows) and passed down. Any field can be set by keyword, or
    from the environment as ``ASSETS_<FIELD>`` (``ASSETS_MAX_AREA_HA=500``); the long-standing short
    names stay (``ASSETS_DB``, ``ASSETS_TILES``, ``ASSETS_MODELS``, ``ASSETS_BROKER``,
    ``ASSETS_CATALOG``, ``ASSETS_DASK``, ``ASSETS_SNAPSHOT``). Values are validated on construction,
    so ``ASSETS_MAX_AREA_HA=lots`` fails at start-up naming the variable; instances are frozen.
    """

    def today(self) -> date:
        """The assessment date when none is given: `as_of` when the service replays a past season,
        else today's date in the bank's `timezone`."""
        return self.as_of or datetime.now(ZoneInfo(self.timezone)).date()

    model_config = SettingsConfigDict(env_prefix="ASSETS_", frozen=True, extra="forbid", validate_by_name=True,
                                      validate_by_alias=True)

    db_path: Path = Field(Path("assets.duckdb"), validation_alias=_env("ASSETS_DB"))
    tiles_dir: Path = Field(default_factory=lambda: bundled_dir("sample_tiles"),
                            validation_alias=_env("ASSETS_TILES"))
    models_dir: Path = Field(default_factory=lambda: bundled_dir("models"),
                             validation_alias=_env("ASSETS_MODELS"))
    # The map page (static/) and the npm-installed Leaflet it loads (node_modules/leaflet/dist).
    web_dir: Path = Field(default_factory=lambda: Path(str(resources.files("assets").joinpath("web"))))
    mosquitto_dir: Path = Field(default_factory=lambda: bundled_dir("mosquitto"))  # mosquitto.conf, acl
    broker_url: str | None = Field(None, validation_alias=_env("ASSETS_BROKER"))
    # Verification thresholds (fractions of the claimed area).
    min_imagery_coverage: float = 0.95  # share of a drawing inside one grid's tiles; less: `no_imagery`
    min_usable_dates: int = 3  # clear dates of a field needed to recognise its crop; fewer: `insufficient_imagery`
    partial_below: float = 0.8  # verified area under this share of the claimed area: `partial`
    date_min_valid_fraction: float = 0.5  # a date counts for a field when this share of its pixels is clear
    # A field's crop season is the year of its newest clear image less this many days: assessed in
    # January or February, the season just harvested, not the next one barely sown (`observe.season_year_of`).
    season_turn_days: int = 60
    planted_ndvi: float = 0.5  # season-peak NDVI above which a farmland pixel counts as planted
    field_pixel_probability: float = 0.5  # segmentation P(field interior + boundary) of a farmland pixel
    min_farmland_fraction: float = 0.5
    max_overlap_fraction: float = 0.05
    # Crop call: under this top-class probability the crop is "unknown" and valued conservatively
    # (the same default as the crop model's own `unknown_below`, models/crop_card.md).
    crop_unknown_below: float = 0.45
    min_farmland_probability: float = 0.5  # P(crops, fallow or managed grass) under which a claim is rejected
    min_area_ha: float = 0.01  # one 10 m Sentinel-2 pixel: anything smaller cannot be seen
    max_area_ha: float = 2000.0
    # Imagery older than this before the as-of date shows an earlier season, not this one: such a
    # claim waits for a credit officer (`review`) instead of being lent on. None: no limit.
    max_imagery_age_days: int | None = 365
    # The date the service assesses at (`assets serve --as-of`, ASSETS_AS_OF): None is today. Set it to
    # replay a past season, such as the bundled 2016 demo season, as if it were now.
    as_of: date | None = None
    # The bank's calendar: "today" (the default assessment date, the latest date one may assess at) is
    # the date in this IANA time zone (ASSETS_TIMEZONE, e.g. Asia/Shanghai), not the server's clock zone.
    timezone: str = "UTC"
    # No assessment date before the first Sentinel-2 images (2A launched 2015-06-23): an earlier one
    # can only be a typo, and dates near year 1 or 9999 overflow the sensor windows.
    earliest_as_of: date = date(2015, 6, 23)
    # Drawings. A 2,000 ha field is ~5 km across, so a drawing spanning more than this many
    # degrees is not one field (the whole Earth would otherwise be measured as 0 ha).
    max_drawing_extent_deg: float = 0.5
    max_features_per_file: int = 500  # larger files are refused before anything is stored
    # One pledge per piece of land: a borrower's new drawing whose intersection-over-union with
    # one of their stored claims reaches this is the same field again (the stored claim is kept).
    same_field_min_iou: float = 0.9
    device_max_km_from_fields: float = 50.0  # a device this far from all its borrower's fields: a typo or swapped lon/lat
    # Boundary agreement (`boundary.py`): the drawing against the fields the imagery detects.
    boundary_window_pad_m: float = 300.0  # fields are labelled this far around a drawing (whole neighbours)
    boundary_season_edge: float = 0.05  # RMS NDVI step between neighbour pixels that splits two fields
    boundary_min_seed_px: int = 3  # smaller field seeds are noise
    boundary_whole_field_min: float = 0.8  # a detected field this much inside the drawing is wholly drawn
    boundary_match_min: float = 0.8  # share of the drawing on one field (or whole fields) that matches
    boundary_inflated_min: float = 0.4  # whole fields filling less than this: the boundary follows no field
    boundary_cut_field_min: float = 0.1  # a partly covered field holding this share of the drawing is cut
    boundary_season_rms: float = 0.1  # RMS NDVI from the main field's season beyond which a pixel is another crop
    boundary_max_season_spread: float = 0.25  # share of such pixels above which a drawing spans several crops
    # A matching drawing whose rim follows detected field edges less than this (rim minus interior
    # share within a pixel of an edge, `boundary.edge_contrast`) goes to review: moved drawings
    # score about 0-0.3, honest whole and half fields 0.5-1 (bench/claim_fraud.py, seed 12).
    boundary_min_edge_contrast: float = 0.4
    # Weight of a detected field's outer-rim pixel in the area an inflated drawing is valued at.
    # Detected fields sit about a quarter pixel outside the register's parcels: counting rim pixels
    # 0.75 makes the median detected / parcel area 1.00 over the 126 well-detected (IoU >= 0.7)
    # parcels of the segmentation's training columns (1.018 counted whole); on the held-out strip,
    # scored only, the best weight is 0.80 and 0.75 gives 0.996 (`scripts/calibrate_rim.py`).
    boundary_rim_weight: float = 0.75
    # A matching drawing holding whole detected fields is valued at most at their (rim-weighted) area
    # plus this share: a ring of verge drawn around a field is not paid for. At 0.05 the fraud bench's
    # genuine area error moves 0.027 -> 0.028 (as registered) and 0.044 -> 0.046 (as drawn), seed 12.
    boundary_match_slack: float = 0.05
    # A later claim sharing more of itself than this with a field that bit into (or ringed) its
    # neighbours takes that field: refused for overlap; less, it is the neighbour's bite: contested.
    pledge_edge_max_share: float = 0.5
    # Tile quality gate (`imagery/quality.py`), reflectance 0..1 after scaling.
    tile_min_valid_fraction: float = 0.05  # less clear pixels than this: nothing to judge by
    tile_max_reflectance: float = 1.5  # 99th percentile above this: raw digital numbers / wrong scale
    tile_min_bright_reflectance: float = 0.03  # 99th percentile below this: 8-bit DNs or scaled twice
    tile_min_reflectance: float = -0.05  # 1st percentile below this: not reflectance
    # 1st percentile of each clear pixel's darkest band above this in an integer tile: the +1,000 offset of
    # Sentinel-2 L2A baseline 04.00+ (or a tile under cloud). Real scenes measure 0.01-0.05 (bundled season,
    # Danish and FTW tiles); offset ones start at 0.10. The crop reader's test is `seasons.OFFSET_DARKEST_P1`.
    tile_max_darkest_reflectance: float = 0.09
    tile_min_band_std: float = 1e-4  # a band this flat over all clear pixels is a fill, not an image
    tile_cloud_tag_tolerance: float = 0.25  # visible cloud may exceed the CLOUD_FRACTION tag by this much
    tile_sample_pixels: int = 200_000  # pixels sampled (evenly, by block) for the band statistics
    # HTTP API access (assets.access, assets.api): token lifetimes and abuse limits.
    public_url: str = "http://127.0.0.1:8000"
    # ASSETS_API_KEYS: comma-separated officer keys without expiry, for scripts (`officer_api_keys`).
    api_keys: SecretStr = SecretStr("")
    api_key_min_chars: int = 24  # an ASSETS_API_KEYS entry never expires: refuse one a person could guess
    # Proxies whose X-Forwarded-For names the client (comma-separated addresses, "*" for any): none by
    # default, so a client cannot pick the address its failed sign-ins are counted against.
    trusted_proxies: str = ""
    token_max_days: int = 365  # the longest lifetime `assets users token --expires-days` may ask for
    note_max_chars: int = 500  # an officer's review note or alert resolution note (shown to the borrower)
    token_days: int = 90  # default lifetime of `assets users token` and of a token bought with a sign-in link
    signin_link_minutes: int = 24 * 60  # a one-time SMS sign-in code is good for a day
    signin_failures_max: int = 10  # failed sign-ins per client address per window before 429
    signin_failure_window_s: int = 300
    requests_per_token_per_min: int = 120
    max_body_bytes: int = 1_048_576  # a 2,000-vertex field is ~60 kB of GeoJSON
    max_claim_features: int = 50  # fields per submission
    max_claim_vertices: int = 20_000  # corners over all fields of one submission
    max_field_name_chars: int = 120
    # The map (#13): XYZ tiles rendered from the catalogue (`imagery/maptiles.py`), field proposals (`propose.py`).
    serve_torch_threads: int = 1  # torch intra-op threads in `assets serve` (requests are the parallelism); 0 = torch's default
    map_max_zoom: int = 19  # 0.3 m map pixels: beyond this a 10 m Sentinel-2 pixel is only blown up
    map_cloud_free_max: float = 0.1  # a tile with at most this cloud (or nodata) fraction is clean / cloud-free
    map_gain: float = 3.5  # reflectance x gain = true colour (Sentinel-2 fields are dark)
    map_tile_cache_tiles: int = 2048  # rendered PNGs kept per server process (~40-80 kB each)
    preview_cache_images: int = 16  # whole-tile previews (public /imagery/{id}.png, ~0.3 MB, 0.5 s to render) kept
    # Scenes warped once to Web Mercator and sampled per tile (4 bytes a pixel): 64 Mpx = 256 MB per server.
    map_picture_max_pixels: int = 64_000_000
    # Decoded tile pixels kept per process for claim windows (`imagery/blockcache.py`); 0 turns it off.
    tile_cache_bytes: int = 512 * 1024 * 1024
    map_tiles_per_token_per_min: int = 1200  # a map view loads 20-40 tiles; its own budget, not the API's
    map_token_cache_s: float = 30.0  # a token verified for tiles is trusted this long without the database
    map_catalogue_cache_s: float = 30.0  # the tiles the map draws are re-read from the catalogue this often
    proposal_search_m: float = 1500.0  # a tapped field is looked for this far around the point (a 2,000 ha field is ~5 km)
    proposal_snap_px: int = 2  # a tap this close to a detected field (on its edge) still finds it
    proposal_simplify_px: float = 1.0  # the pixel staircase of a detected field simplified to this, in pixels
    # Imagery catalogue (`imagery/catalog.py`): COGs + STAC items; None = `<db>.catalog/` beside the database.
    catalog_dir: Path | None = Field(None, validation_alias=_env("ASSETS_CATALOG"))
    stac_collection_id: str = "assets-sentinel-2-l2a"
    cog_compress: str = "DEFLATE"  # lossless: the COG holds exactly the delivered pixels
    cog_blocksize: int = 512
    # Scale-out (`flows/runners.py`): None = Prefect's default runner; "local:N" = a local N-worker Dask
    # cluster; "tcp://scheduler:8786" = an existing Dask cluster (prefect-dask's DaskTaskRunner).
    dask_cluster: str | None = Field(None, validation_alias=_env("ASSETS_DASK"))
    dask_processes: bool = True  # ASSETS_DASK_PROCESSES=0: local workers as threads

    # One writer (`store/writer.py`): the owner's Unix socket lives here (None: the temp folder), the read
    # snapshot `<db>.snapshot.duckdb` is republished at most this often after commits (ASSETS_SNAPSHOT=0: never).
    writer_socket_dir: Path | None = None
    snapshot_enabled: bool = Field(True, validation_alias=_env("ASSETS_SNAPSHOT"))
    snapshot_debounce_s: float = 1.0
    # At most this share of a writer's time goes to snapshot copies: after a copy of c seconds the
    # next waits at least c x (1 / share - 1) (a busy ingester on a big file is not slowed to a crawl).
    snapshot_max_share: float = Field(0.1, gt=0, le=1)
    writer_lock_retry_s: float = 5.0  # a file held by a direct writer (no owner running) is retried this long
    writer_remote_timeout_s: float = 120.0  # a write handed to the owning process must be answered within this

    tiles_url: str | None = None  # an fsspec URL the tiles are delivered at (ASSETS_TILES=s3://... sets it)

    @model_validator(mode="before")
    @classmethod
    def _tiles_url(cls, data: Any) -> Any:
        """``tiles_dir`` given as a URL (ASSETS_TILES=s3://bucket/inbox) is where tiles come from, not a folder."""
        if isinstance(data, dict):
            for key in ("tiles_dir", "ASSETS_TILES", "assets_tiles"):
                value = data.get(key)
                if isinstance(value, str) and "://" in value:
                    data = {k: v for k, v in data.items() if k != key}
                    data.setdefault("tiles_url", value)
        return data

    @field_validator("broker_url", "dask_cluster", "catalog_dir", "writer_socket_dir", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not an IANA time zone; use a name such as UTC or Asia/Shanghai") from None
        return value

    @property
    def tiles_source(self) -> str:
        """Where tiles are delivered: an fsspec URL (ASSETS_TILES=s3://...) or the tile folder."""
        return self.tiles_url or str(self.tiles_dir)

    @property
    def catalogue_dir(self) -> Path:
        """Where the COGs, their STAC items and the collection are written."""
        if self.catalog_dir is not None:
            return self.catalog_dir
        return self.db_path.parent / f"{self.db_path.stem}.catalog"

    @property
    def officer_api_keys(self) -> tuple[str, ...]:
        """The ASSETS_API_KEYS entries (blank ones dropped); a secret, so never in a repr or a log."""
        return tuple(k.strip() for k in self.api_keys.get_secret_value().split(",") if k.strip())


def describe_invalid(exc: Any) -> str:
    """A pydantic ``ValidationError`` about `Settings` as one line naming each setting, the
    environment variable that sets it and what was wrong."""
    parts = []
    for err in exc.errors():
        name = str(err["loc"][0]) if err.get("loc") else "?"
        field_ = Settings.model_fields.get(name)
        alias = field_.validation_alias if field_ is not None else None
        if name.upper().startswith("ASSETS_"):  # reported under its environment variable
            variable = name.upper()
        else:
            variable = str(alias.choices[0]) if isinstance(alias, AliasChoices) else f"ASSETS_{name.upper()}"
        parts.append(f"setting {name} ({variable}) = {err.get('input')!r}: {err['msg']}")
    return "; ".join(parts) + "; fix or unset it"


def settings(**overrides: object) -> Settings:
    """Defaults from the environment, with explicit overrides (CLI options) winning."""
    clean = {k: v for k, v in overrides.items() if v is not None}
    for key in ("db_path", "tiles_dir", "models_dir", "web_dir", "mosquitto_dir", "catalog_dir"):
        if key in clean:
            clean[key] = Path(clean[key])  # type: ignore[arg-type]
    return Settings(**clean)  # type: ignore[arg-type]
