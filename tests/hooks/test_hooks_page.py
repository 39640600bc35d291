"""The examples in docs/hooks.md run as written."""

from __future__ import annotations

import re

import pytest

from tests.support import DOCS

DOC = DOCS / "hooks.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.DOTALL)


def test_doc_has_examples() -> None:
    """The page has its examples (the extraction below found them)."""
    assert len(BLOCKS) >= 6


@pytest.mark.parametrize("source", BLOCKS, ids=[f"example{i}" for i in range(len(BLOCKS))])
def test_example_runs(source: str) -> None:
    """Each example runs (their asserts hold); conftest's `no_leaked_hooks` checks what is left."""
    exec(compile(source, str(DOC), "exec"), {"__name__": "docs_hooks"})
