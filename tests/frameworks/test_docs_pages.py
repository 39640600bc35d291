"""The framework pages of the docs run, here in the frameworks venv, against the fake providers.

`tests/docs/test_docs.py` runs every other page in the main venv; blocks marked
``docs-test: frameworks`` need a framework only this venv installs, so their pages run here.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import ROOT
from tests.support.docs_pages import PAGES, parse, run_page, runnable

FRAMEWORK_PAGES = [p for p in PAGES if any(b.frameworks for b in parse(p))]


def test_the_framework_pages_are_found() -> None:
    names = sorted(p.relative_to(ROOT).as_posix() for p in FRAMEWORK_PAGES)
    assert names == [
        "docs/frameworks/langchain.md",
        "docs/frameworks/openai-agents.md",
        "docs/frameworks/pydantic-ai.md",
    ]


@pytest.mark.parametrize("page", FRAMEWORK_PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_framework_page_runs(page: Path, tmp_path: Path) -> None:
    """Every block of the page, framework ones included, runs and prints what it shows."""
    run_page(page, runnable(page, frameworks=True), tmp_path)
