"""Build hook: the wheel carries the checkout's weights, demo season and Mosquitto config.

They stay at the top of the checkout (models/, sample_tiles/, deploy/mosquitto/), where their
owners edit them; a built wheel gets a copy under assets/_data/<name>, which
`assets.config.bundled_dir` finds with importlib.resources from any working directory. Editable
installs copy nothing and read the checkout in place. Everything else is in pyproject.toml.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
# assets/_data/<name>: (checkout folder, file patterns); the model plots stay out (cards only).
BUNDLED = {
    "models": ("models", ("*.pt", "*_card.md")),
    "sample_tiles": ("sample_tiles", ("**/*.tif", "**/*.geojson", "**/*.json", "**/*.csv", "**/*.md")),
    "mosquitto": ("deploy/mosquitto", ("*",)),
}


class BuildWithData(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        for name, (folder, patterns) in BUNDLED.items():
            source = ROOT / folder
            target = Path(self.build_lib) / "assets" / "_data" / name
            if target.exists():
                shutil.rmtree(target)  # a stale copy from an earlier build must not ship
            for pattern in patterns:
                for path in sorted(source.glob(pattern)):
                    if path.is_file():
                        dest = target / path.relative_to(source)
                        dest.parent.mkdir(parents=True, exist_ok=True)
                        shutil.copy2(path, dest)
            if not target.is_dir():
                raise SystemExit(f"setup.py: nothing to bundle from {source}; is this a full checkout?")


setup(cmdclass={"build_py": BuildWithData})
