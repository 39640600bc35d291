"""
Every module of the package sits in a layer of the import-linter contract (issue 18, item 1).

`lint-imports` (run by .ci/run) checks only the modules the contract names: a new module
that no layer lists would escape it. This keeps the list complete.
"""

from __future__ import annotations

import ast
import tomllib

from tests.support import ROOT

PACKAGE = ROOT / "agentsteps"
# Public packages whose __init__ only re-exports what the layers define: they sit above
# every layer (users import from them; nothing in the package does).
FACADES = {"agentsteps", "agentsteps.stores"}


def _layers() -> list[list[str]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    (contract,) = [c for c in config["tool"]["importlinter"]["contracts"] if c["type"] == "layers"]
    return [[m.strip() for m in layer.split(":")] for layer in contract["layers"]]


def _modules() -> list[str]:
    """Every module of the package with code in it, by dotted name."""
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = ("agentsteps", *path.relative_to(PACKAGE).with_suffix("").parts)
        if parts[-1] == "__init__":
            body = ast.parse(path.read_text(encoding="utf-8")).body
            if all(isinstance(n, ast.Expr) for n in body):
                continue  # a package __init__ with no code (a docstring at most)
            parts = parts[:-1]
        names.append(".".join(parts))
    return names


def test_every_module_is_in_a_layer() -> None:
    listed = [m for layer in _layers() for m in layer]
    unlisted = [
        name
        for name in _modules()
        if name not in FACADES and not any(name == m or name.startswith(m + ".") for m in listed)
    ]
    assert unlisted == [], (
        f"modules in no layer of the import-linter contract (pyproject.toml): {unlisted}; "
        "add each to the layer it belongs to (the README's Layout table says which is which)"
    )


def test_the_check_sees_the_modules() -> None:
    modules = _modules()
    assert "agentsteps._core.lifecycle" in modules
    assert "agentsteps.stores._redis" in modules
    assert set(modules) >= FACADES
