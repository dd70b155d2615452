#!/usr/bin/env bash
# CI (`make wheel-check`): build the wheel, install it in a fresh venv and run `assets demo` from an
# empty folder, so a missing weight, tile, migration or map file fails here rather than on a user.
# The venv sees the system site-packages (torch and friends are not downloaded again) but gets its
# own copy of `assets` from the wheel; the checks below make sure that copy is the one running.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
rm -rf build  # setuptools reuses build/lib: a stale file there would ship in the wheel
"$PYTHON" -m pip wheel --quiet --disable-pip-version-check --no-deps --no-build-isolation -w "$work/dist" .
rm -rf build
"$PYTHON" -m venv --system-site-packages "$work/venv"
"$work/venv/bin/python" -m pip install --quiet --disable-pip-version-check "$work"/dist/assets-*.whl
mkdir "$work/empty"
cd "$work/empty"
# Nothing from the checkout may leak in: no ASSETS_* paths, no top-level `flows`, the wheel's `assets`.
env -u ASSETS_DB -u ASSETS_TILES -u ASSETS_MODELS -u ASSETS_BROKER "$work/venv/bin/python" - "$work/venv" <<'PY'
import importlib.util, sys
from pathlib import Path
import assets
from assets.config import Settings
venv = Path(sys.argv[1]).resolve()
where = Path(assets.__file__).resolve()
assert venv in where.parents, f"assets imported from {where}, not from the wheel in {venv}"
s = Settings()
for name in ("models_dir", "tiles_dir", "web_dir", "mosquitto_dir"):
    path = getattr(s, name).resolve()
    assert venv in path.parents and path.is_dir(), f"{name} = {path}: not the wheel's own data"
assert (s.models_dir / "crop.pt").is_file() and (s.models_dir / "segment.pt").is_file()
assert (s.web_dir / "node_modules/leaflet/dist/leaflet.js").is_file(), "the map's Leaflet is not in the wheel"
assert (s.web_dir / "node_modules/@geoman-io/leaflet-geoman-free/dist/leaflet-geoman.min.js").is_file(), \
    "the map's Leaflet-Geoman is not in the wheel"
import assets.cli, assets.flows.nightly  # noqa: E401  (the CLI and flows import without the checkout)
assert "flows" not in sys.modules, "the installed package imported a top-level `flows` module"
from fastapi.testclient import TestClient
from assets.api.app import create_app
with TestClient(create_app(Settings(db_path=Path("map.duckdb")))) as client:
    page = client.get("/map/")
    assert page.status_code == 200 and "leaflet" in page.text, f"/map answered {page.status_code}"
    assert client.get("/vendor/leaflet/leaflet.js").status_code == 200
    assert client.get("/vendor/leaflet-geoman/leaflet-geoman.min.js").status_code == 200
    assert client.get("/map/i18n.json").status_code == 200
    assert client.get("/vendor/swagger-ui/swagger-ui-bundle.js").status_code == 200, "the API docs' Swagger UI"
print(f"wheel: assets from {where.parent}, data and map found")
PY
rm -f map.duckdb
env -u ASSETS_DB -u ASSETS_TILES -u ASSETS_MODELS -u ASSETS_BROKER \
  PREFECT_SERVER_ANALYTICS_ENABLED=false "$work/venv/bin/assets" demo --db demo.duckdb | tee "$work/demo.txt"
grep -q "verified" "$work/demo.txt" || { echo "wheel: assets demo printed no verdicts" >&2; exit 1; }
echo "wheel: assets demo ran from an empty folder"
