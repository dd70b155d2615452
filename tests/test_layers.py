"""Dependencies point one way (ARCHITECTURE): faces (CLI, API, flows) call the domain, the domain
calls the store and the models, never back. Checked on every import statement, local imports in
functions included, so a shortcut taken inside a function body is caught too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "assets"
FACES = ("assets.api", "assets.cli", "assets.flows", "assets.web")
# What each lower layer may import from the package: the models are torch and numpy only (no
# files but weights, no domain), the store is SQL and knows nothing of the domain above it.
ALLOWED = {
    "assets.models": ("assets.models", "assets.errors", "assets.config"),
    "assets.store": ("assets.store", "assets.errors", "assets.config"),
}


def _module(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found += [(node.lineno, node.module)] + [(node.lineno, f"{node.module}.{a.name}") for a in node.names]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
    return [(line, name) for line, name in found if name == "assets" or name.startswith("assets.")]


def _under(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


MODULES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_lower_layers_import_nothing_above_them(layer: str) -> None:
    wrong = []
    for path in MODULES:
        if not _under(_module(path), (layer,)):
            continue
        for line, name in _imports(path):
            if name != "assets" and not _under(name, ALLOWED[layer]):  # `from assets import x` is judged by x
                wrong.append(f"{path.relative_to(PACKAGE)}:{line} imports {name}")
    assert not wrong, f"{layer} must import only {ALLOWED[layer]}:\n" + "\n".join(wrong)


def test_the_domain_never_imports_a_face() -> None:
    wrong = [f"{path.relative_to(PACKAGE)}:{line} imports {name}"
             for path in MODULES if not _under(_module(path), FACES)
             for line, name in _imports(path) if _under(name, FACES)]
    assert not wrong, "the domain calls no face (CLI, API, flows, web):\n" + "\n".join(wrong)


def test_the_checker_sees_imports_inside_functions(tmp_path: Path) -> None:
    src = tmp_path / "m.py"
    src.write_text("def f():\n    from assets.imagery.masks import usable_mask\n    import assets.cli\n")
    assert [n for _, n in _imports(src)] == ["assets.imagery.masks", "assets.imagery.masks.usable_mask", "assets.cli"]
