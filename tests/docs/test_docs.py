"""
Every ```python block of the documentation runs, and prints what the page says it prints.

The rules for whoever writes a page are in `tests/support/docs_pages.py`, which finds the blocks.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import ROOT
from tests.support.docs_pages import PAGES, Block, needs_frameworks, parse, run_page, runnable


@pytest.mark.parametrize(
    "page",
    [p for p in PAGES if any(b.lang == "python" for b in parse(p)) and not needs_frameworks(p)],
    ids=lambda p: p.relative_to(ROOT).as_posix(),
)
def test_page_examples_run(page: Path, tmp_path: Path) -> None:
    """Each runnable block of the page runs without error and prints its text block."""
    blocks = runnable(page)
    if not blocks:
        pytest.skip("every python block of this page is marked skip")
    run_page(page, blocks, tmp_path)


class TestParser:
    """The block extraction that decides what runs."""

    def _parse(self, tmp_path: Path, text: str) -> list[Block]:
        page = tmp_path / "page.md"
        page.write_text(text, encoding="utf-8")
        return parse(page)

    def test_output_block_attaches_to_the_python_block_before_it(self, tmp_path: Path) -> None:
        """A text fence right after a python fence becomes its expected output."""
        blocks = self._parse(tmp_path, "```python\nprint(1)\n```\n\n```text\n1\n```\n")
        assert [(b.lang, b.code, b.expected) for b in blocks] == [("python", "print(1)\n", "1\n")]

    def test_text_block_after_prose_is_not_output(self, tmp_path: Path) -> None:
        """Prose between the two fences means the text block is just text."""
        blocks = self._parse(tmp_path, "```python\nx = 1\n```\nSome prose.\n```text\nx\n```\n")
        assert [(b.lang, b.expected) for b in blocks] == [("python", None), ("text", None)]

    def test_skip_marker_needs_a_reason(self, tmp_path: Path) -> None:
        """A skip without a reason fails the parse."""
        with pytest.raises(pytest.fail.Exception, match="needs a reason"):
            self._parse(tmp_path, "<!-- docs-test: skip -->\n```python\nx\n```\n")

    def test_skip_marker_applies_to_the_next_block_only(self, tmp_path: Path) -> None:
        """The marker skips the block right below it, not the ones after."""
        text = "<!-- docs-test: skip needs langfuse -->\n\n```python\nimport langfuse\n```\n"
        text += "```python\nx = 1\n```\n"
        blocks = self._parse(tmp_path, text)
        assert [b.skip for b in blocks] == ["needs langfuse", None]

    def test_setup_comment_is_hidden_code(self, tmp_path: Path) -> None:
        """A setup comment's lines run as code, in order with the visible blocks."""
        text = "<!-- docs-test: setup\nclient = object()\n-->\n```python\nclient\n```\n"
        blocks = self._parse(tmp_path, text)
        assert [(b.hidden, b.code) for b in blocks] == [
            (True, "client = object()\n"),
            (False, "client\n"),
        ]

    def test_indented_fence_is_dedented(self, tmp_path: Path) -> None:
        """A block inside an admonition or list runs with its indentation removed."""
        blocks = self._parse(
            tmp_path, "!!! note\n    ```python\n    if True:\n        x = 1\n    ```\n"
        )
        assert blocks[0].code == "if True:\n    x = 1\n"

    def test_other_python_tags_are_refused(self, tmp_path: Path) -> None:
        """A ``py`` fence would silently not run, so it fails instead."""
        with pytest.raises(pytest.fail.Exception, match="tag the block 'python'"):
            self._parse(tmp_path, "```py\nx = 1\n```\n")

    def test_unknown_directive_is_refused(self, tmp_path: Path) -> None:
        """A misspelt directive fails rather than being ignored."""
        with pytest.raises(pytest.fail.Exception, match="unknown directive"):
            self._parse(tmp_path, "<!-- docs-test: skpi reason -->\n")


class TestOutputComparison:
    """How printed output is compared with a page's text block."""

    def test_trailing_whitespace_and_blank_edges_are_ignored(self) -> None:
        """Editors strip trailing spaces; that must not fail a page."""
        from tests.support.scripts.docs_runner import output_matches

        assert output_matches("a\nb\n", "a  \nb\n\n")

    def test_ellipsis_matches_anything(self) -> None:
        """``...`` stands for varying text such as ids and durations."""
        from tests.support.scripts.docs_runner import output_matches

        assert output_matches("trace ...\n", "trace 4bf92f3577b34da6\n")
        assert not output_matches("trace 1\n", "trace 2\n")
