"""
Every module of the package stays small enough to read as one job (issue 18, item 2).

A module over `MAX_LINES` lines must say in its docstring why its size is one cohesive
thing, in a sentence starting ``Cohesive:``; otherwise it is split by job into small
private modules.
"""

from __future__ import annotations

import ast

import pytest

from tests.support import ROOT

MAX_LINES = 450

PACKAGE = ROOT / "agentsteps"

MODULES = sorted(p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("module", MODULES)
def test_module_is_small_or_says_why(module: str) -> None:
    path = PACKAGE / module
    source = path.read_text(encoding="utf-8")
    lines = len(source.splitlines())
    if lines <= MAX_LINES:
        return
    docstring = ast.get_docstring(ast.parse(source)) or ""
    assert "Cohesive:" in docstring, (
        f"agentsteps/{module} has {lines} lines, over the {MAX_LINES}-line limit: split it "
        "by job into small private modules, or, if its size is one cohesive thing, say "
        "which in its module docstring in a sentence starting 'Cohesive:'"
    )


def test_the_modules_are_found() -> None:
    assert "testing.py" in MODULES
    assert "_core/lifecycle.py" in MODULES
