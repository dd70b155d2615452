"""The package installs anywhere: data paths from Settings, no top-level `flows`, entry points that start nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from assets import config
from assets.config import Settings, bundled_dir, settings

SRC = Path(__file__).resolve().parents[1] / "src" / "assets"


def _fake_install(root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An installed layout: site-packages/assets with its data under _data/, no checkout around it."""
    package = root / "site-packages" / "assets"
    for name in ("models", "sample_tiles", "mosquitto"):
        (package / "_data" / name).mkdir(parents=True)
    (package / "web" / "static").mkdir(parents=True)
    monkeypatch.setattr(config.resources, "files", lambda anchor: package)
    monkeypatch.setattr(config, "REPO_DIR", root / "nowhere")
    return package


def test_an_installed_package_finds_its_own_data_from_any_folder(tmp_path, monkeypatch) -> None:
    package = _fake_install(tmp_path, monkeypatch)
    for var in ("ASSETS_MODELS", "ASSETS_TILES"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)  # a folder with its own models/ must not be picked up
    (tmp_path / "models").mkdir()
    s = Settings()
    assert s.models_dir == package / "_data" / "models"
    assert s.tiles_dir == package / "_data" / "sample_tiles"
    assert s.mosquitto_dir == package / "_data" / "mosquitto"
    assert s.web_dir == package / "web"


def test_environment_and_options_override_the_bundled_data(tmp_path, monkeypatch) -> None:
    _fake_install(tmp_path, monkeypatch)
    monkeypatch.setenv("ASSETS_MODELS", str(tmp_path / "weights"))
    monkeypatch.setenv("ASSETS_TILES", str(tmp_path / "tiles"))
    s = Settings()
    assert (s.models_dir, s.tiles_dir) == (tmp_path / "weights", tmp_path / "tiles")
    assert settings(tiles_dir=str(tmp_path / "other")).tiles_dir == tmp_path / "other"


def test_a_checkout_reads_its_top_level_folders_in_place(monkeypatch) -> None:
    for var in ("ASSETS_MODELS", "ASSETS_TILES"):
        monkeypatch.delenv(var, raising=False)
    if (SRC / "_data").exists():
        pytest.skip("src/assets/_data exists (a copied build?): the checkout fallback is not in use")
    assert bundled_dir("models") == config.REPO_DIR / "models"
    assert Settings().tiles_dir == config.REPO_DIR / "sample_tiles"
    assert Settings().mosquitto_dir == config.REPO_DIR / "deploy" / "mosquitto"


def test_the_package_never_imports_a_top_level_flows_module() -> None:
    offenders = [str(p.relative_to(SRC)) for p in SRC.rglob("*.py")
                 if any(line.lstrip().startswith(("from flows", "import flows")) for line in p.read_text().splitlines())]
    assert offenders == []
    code = "import sys, assets.cli, assets.flows.nightly, assets.flows.demo, assets.flows.backfill; print('flows' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "False"


def test_the_wheel_ships_no_flows_package() -> None:
    import tomllib

    find = tomllib.loads((SRC.parents[1] / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    assert find["where"] == ["src"] and find["include"] == ["assets*"]


@pytest.mark.parametrize("entry", ["flows.nightly", "flows.backfill", "flows.demo", "flows.sensors"])
def test_flow_entry_points_print_help_and_start_nothing(entry: str) -> None:
    repo = SRC.parents[1]
    done = subprocess.run([sys.executable, "-m", entry, "--help"], cwd=repo, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith(f"usage: python -m {entry}")
    assert "prefect" not in done.stderr.lower()  # no flow run, no server started
