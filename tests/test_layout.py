"""The test suite keeps its layout (tests/README.md): folders by layer, helpers in tests.support."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
FOLDERS = {
    "core",
    "accounting",
    "hooks",
    "llm",
    "tracing",
    "distributed",
    "report",
    "integrations",
    "reliability",
    "docs",
}
"""The folders by layer; ``frameworks`` runs in its own venv and is listed apart."""
OTHER_FOLDERS = {"frameworks", "fakes", "support", "typing"}


def _python_files() -> list[Path]:
    """Every Python file of the suite but ``typing/`` (checked by mypy, never imported)."""
    return sorted(p for p in TESTS.rglob("*.py") if "typing" not in p.relative_to(TESTS).parts)


def _imported_modules(source: str, module: str) -> list[str]:
    """The absolute names ``source`` (the module named ``module``) imports, relative resolved."""
    found: list[str] = []
    package = module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            found.append(base)
            found += [f"{base}.{alias.name}" for alias in node.names]
    return found


def _module_name(path: Path) -> str:
    return ".".join(path.relative_to(TESTS.parent).with_suffix("").parts)


def conftest_imports(source: str, module: str) -> list[str]:
    """The conftest modules ``source`` imports from (there should be none)."""
    names = _imported_modules(source, module)
    return sorted({n for n in names if n.rsplit(".", 1)[-1] == "conftest"})


def imported_test_modules(source: str, module: str) -> list[str]:
    """The test modules ``source`` imports from (there should be none)."""
    names = _imported_modules(source, module)
    return sorted(
        {n for n in names if n.startswith("tests.") and n.rsplit(".", 1)[-1].startswith("test_")}
    )


def test_no_module_imports_a_conftest() -> None:
    """Shared helpers live in tests.support; conftest files hold only fixtures and hooks."""
    offenders = {
        str(p.relative_to(TESTS)): found
        for p in _python_files()
        if (found := conftest_imports(p.read_text(encoding="utf-8"), _module_name(p)))
    }
    assert offenders == {}


def test_no_module_imports_a_test_module() -> None:
    """What two test modules share belongs in tests.support, not in one of them."""
    offenders = {
        str(p.relative_to(TESTS)): found
        for p in _python_files()
        if (found := imported_test_modules(p.read_text(encoding="utf-8"), _module_name(p)))
    }
    assert offenders == {}


@pytest.mark.parametrize(
    ("source", "module", "expected"),
    [
        ("from tests.conftest import Spans", "tests.core.test_x", ["tests.conftest"]),
        ("from .conftest import Spans", "tests.test_x", ["tests.conftest"]),
        ("from ..conftest import Spans", "tests.hooks.test_x", ["tests.conftest"]),
        ("from . import conftest", "tests.hooks.test_x", ["tests.hooks.conftest"]),
        ("import tests.conftest", "tests.core.test_x", ["tests.conftest"]),
        ("from tests.support import Spans", "tests.core.test_x", []),
    ],
)
def test_the_conftest_check_finds_every_form(source: str, module: str, expected: list[str]) -> None:
    """The check above sees absolute, relative and plain imports of a conftest."""
    assert conftest_imports(source, module) == expected


@pytest.mark.parametrize(
    ("source", "module", "expected"),
    [
        ("from tests.report.test_report import GOLDEN", "tests.report.test_x", True),
        ("from .test_report import GOLDEN", "tests.report.test_x", True),
        ("from tests.support.trace_lines import GOLDEN", "tests.report.test_x", False),
    ],
)
def test_the_test_module_check_finds_every_form(source: str, module: str, expected: bool) -> None:
    """The check above sees absolute and relative imports of a test module."""
    assert bool(imported_test_modules(source, module)) is expected


def test_every_test_module_is_in_a_layer_folder() -> None:
    """No flat test files: each test module sits in the folder of the layer it tests."""
    misplaced = sorted(
        str(p.relative_to(TESTS))
        for p in TESTS.rglob("test_*.py")
        if p != Path(__file__).resolve()
        and p.relative_to(TESTS).parts[0] not in FOLDERS | {"frameworks"}
    )
    assert misplaced == []


def test_the_readme_maps_every_folder() -> None:
    """tests/README.md names each folder, and names no folder that is not there."""
    folders = {p.name for p in TESTS.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))}
    assert folders == FOLDERS | OTHER_FOLDERS
    readme = (TESTS / "README.md").read_text(encoding="utf-8")
    assert [f for f in sorted(folders) if f"`{f}/`" not in readme] == []


def test_a_fixture_is_defined_once() -> None:
    """Two fixtures with the same name and body are one copy too many: use a conftest.py."""
    places: dict[tuple[str, str], list[str]] = defaultdict(list)
    for path in _python_files():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            if not any("fixture" in ast.unparse(d) for d in node.decorator_list):
                continue
            body = [
                s
                for s in node.body
                if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))
            ]
            key = (node.name, ast.unparse(ast.Module(body=body, type_ignores=[])))
            places[key].append(f"{path.relative_to(TESTS)}:{node.lineno}")
    assert {name: where for (name, _), where in places.items() if len(where) > 1} == {}
