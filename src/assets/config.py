"""Settings in one place: paths, broker URL and thresholds, from the environment with defaults.

Every face (CLI, API, flows) builds a `Settings` once and passes it down; nothing reads
environment variables elsewhere.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_DIR = PACKAGE_DIR.parent.parent


def _default_dir(name: str) -> Path:
    """Repo-relative folder for a checkout; CWD-relative when installed elsewhere."""
    candidate = REPO_DIR / name
    return candidate if candidate.exists() else Path.cwd() / name


@dataclass(frozen=True)
class Settings:
    db_path: Path = field(default_factory=lambda: Path(os.environ.get("ASSETS_DB", "assets.duckdb")))
    tiles_dir: Path = field(
        default_factory=lambda: Path(os.environ.get("ASSETS_TILES", str(_default_dir("sample_tiles"))))
    )
    models_dir: Path = field(
        default_factory=lambda: Path(os.environ.get("ASSETS_MODELS", str(_default_dir("models"))))
    )
    broker_url: str | None = field(default_factory=lambda: os.environ.get("ASSETS_BROKER") or None)
    # Verification thresholds (fractions of the claimed area).
    min_farmland_fraction: float = 0.5
    max_overlap_fraction: float = 0.05
    # Crop call: under this top-class probability the crop is "unknown" and valued conservatively
    # (the same default as the crop model's own `unknown_below`, models/crop_card.md).
    crop_unknown_below: float = 0.45
    min_farmland_probability: float = 0.5  # P(crops, fallow or managed grass) under which a claim is rejected
    min_area_ha: float = 0.01  # one 10 m Sentinel-2 pixel: anything smaller cannot be seen
    max_area_ha: float = 2000.0
    # Drawings. A 2,000 ha field is ~5 km across, so a drawing spanning more than this many
    # degrees is not one field (the whole Earth would otherwise be measured as 0 ha).
    max_drawing_extent_deg: float = 0.5
    max_features_per_file: int = 500  # larger files are refused before anything is stored
    # One pledge per piece of land: a borrower's new drawing whose intersection-over-union with
    # one of their stored claims reaches this is the same field again (the stored claim is kept).
    same_field_min_iou: float = 0.9
    # Tile quality gate (`imagery/quality.py`), reflectance 0..1 after scaling.
    tile_min_valid_fraction: float = 0.05  # less clear pixels than this: nothing to judge by
    tile_max_reflectance: float = 1.5  # 99th percentile above this: raw digital numbers / wrong scale
    tile_min_bright_reflectance: float = 0.03  # 99th percentile below this: 8-bit DNs or scaled twice
    tile_min_reflectance: float = -0.05  # 1st percentile below this: not reflectance
    tile_min_band_std: float = 1e-4  # a band this flat over all clear pixels is a fill, not an image
    tile_cloud_tag_tolerance: float = 0.25  # visible cloud may exceed the CLOUD_FRACTION tag by this much
    tile_sample_pixels: int = 200_000  # pixels sampled (evenly, by block) for the band statistics
    # HTTP API access (assets.access, assets.api): token lifetimes and abuse limits.
    public_url: str = field(default_factory=lambda: os.environ.get("ASSETS_PUBLIC_URL", "http://127.0.0.1:8000"))
    token_days: int = 90  # default lifetime of `assets users token` and of a token bought with a sign-in link
    signin_link_minutes: int = 24 * 60  # a one-time SMS sign-in code is good for a day
    signin_failures_max: int = 10  # failed sign-ins per client address per window before 429
    signin_failure_window_s: int = 300
    requests_per_token_per_min: int = 120
    max_body_bytes: int = 1_048_576  # a 2,000-vertex field is ~60 kB of GeoJSON
    max_claim_features: int = 50  # fields per submission
    max_claim_vertices: int = 20_000  # corners over all fields of one submission
    max_field_name_chars: int = 120


def settings(**overrides: object) -> Settings:
    """Defaults from the environment, with explicit overrides (CLI options) winning."""
    clean = {k: v for k, v in overrides.items() if v is not None}
    for key in ("db_path", "tiles_dir", "models_dir"):
        if key in clean:
            clean[key] = Path(clean[key])  # type: ignore[arg-type]
    return Settings(**clean)  # type: ignore[arg-type]
