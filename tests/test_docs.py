"""
Every ```python block of the documentation runs, and prints what the page says it prints.

The rules, for whoever writes a page (docs/*.md or README.md):

- Blocks tagged ``python`` run, in page order, in one namespace per page, in a fresh
  interpreter (`tests/docs_runner.py`) with warnings as errors and the page's directory
  layout irrelevant (the working directory is a temporary one).
- A ``text`` block right after a ``python`` block is that block's expected stdout;
  ``...`` in it matches anything (doctest's ellipsis), trailing whitespace is ignored.
- ``<!-- docs-test: skip REASON -->`` on the line above a block (blank lines allowed)
  leaves it out; the reason is required. Use it only for code that cannot run here:
  another library's API that is not installed, a server that is not there.
- ``<!-- docs-test: frameworks -->`` on the line above a block: it needs an agent framework
  that only the frameworks venv installs (``.ci/frameworks.sh``), so it runs there, from
  ``tests/frameworks/test_docs_pages.py``, with the page's other blocks; a page whose every
  visible block needs it is left out here rather than skipped.
- ``<!-- docs-test: setup`` ... ``-->`` is hidden code, run in order with the blocks: for
  a stand-in the reader does not need to see (a fake SDK client, say).
- Other fence tags are not run; ``py``/``python3``/``pycon`` are refused so that nothing
  meant to run is silently skipped.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import attrs
import pytest

from tests.support import ROOT, SCRIPTS

PAGES = [*sorted((ROOT / "docs").rglob("*.md")), ROOT / "README.md"]
RUNNER = SCRIPTS / "docs_runner.py"

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
_DIRECTIVE = re.compile(r"^\s*<!--\s*docs-test:\s*(?P<what>\w[\w-]*)(?P<rest>.*)$")
_REFUSED_TAGS = {"py", "python3", "pycon", "py3"}


@attrs.frozen
class Block:
    """One fenced block of a page."""

    line: int
    """Line number of the first code line (1-based)."""
    lang: str
    code: str
    skip: str | None = None
    """The skip reason, when the block is marked to be skipped."""
    hidden: bool = False
    """A ``docs-test: setup`` comment rather than a visible block."""
    frameworks: bool = False
    """Marked ``docs-test: frameworks``: runs in the frameworks venv only."""
    expected: str | None = None


def parse(path: Path) -> list[Block]:
    """The fenced blocks and hidden setup code of a Markdown page, in order."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    pending_skip: str | None = None
    pending_frameworks = False
    last_python: int | None = None  # index in blocks of a python block just closed
    i = 0
    while i < len(lines):
        line = lines[i]
        directive = _DIRECTIVE.match(line)
        if directive:
            what, rest = directive["what"], directive["rest"]
            if what == "skip":
                reason = rest.strip().removesuffix("-->").strip()
                if not reason:
                    pytest.fail(f"{path.name}:{i + 1}: 'docs-test: skip' needs a reason")
                pending_skip = reason
                i += 1
            elif what == "frameworks":
                pending_frameworks = True
                i += 1
            elif what == "setup":
                end = next((k for k in range(i, len(lines)) if "-->" in lines[k]), None)
                if end is None or end == i:
                    pytest.fail(f"{path.name}:{i + 1}: 'docs-test: setup' must be followed by code")
                code = "\n".join(lines[i + 1 : end]) + "\n"
                blocks.append(Block(i + 2, "python", code, hidden=True))
                i = end + 1
            else:
                pytest.fail(f"{path.name}:{i + 1}: unknown directive 'docs-test: {what}'")
            last_python = None
            continue
        fence = _FENCE.match(line)
        if not fence:
            if line.strip():
                pending_skip = None if not line.lstrip().startswith("<!--") else pending_skip
                last_python = None
            i += 1
            continue
        indent, marker = fence["indent"], fence["fence"]
        lang = fence["info"].strip().split(" ", 1)[0].strip("{}.").lower()
        end = i + 1
        while end < len(lines) and not (
            lines[end].startswith(indent)
            and lines[end][len(indent) :].rstrip() in (marker, marker[0] * len(marker))
        ):
            end += 1
        body = [
            b[len(indent) :] if b.startswith(indent) else b.lstrip() for b in lines[i + 1 : end]
        ]
        code = "\n".join(body) + "\n"
        if lang in _REFUSED_TAGS:
            pytest.fail(
                f"{path.name}:{i + 1}: tag the block 'python' (got {lang!r}): it would not run"
            )
        if lang == "text" and last_python is not None:
            blocks[last_python] = attrs.evolve(blocks[last_python], expected=code)
            last_python = None
        else:
            blocks.append(
                Block(i + 2, lang, code, skip=pending_skip, frameworks=pending_frameworks)
            )
            last_python = len(blocks) - 1 if lang == "python" and pending_skip is None else None
        pending_skip = None
        pending_frameworks = False
        i = end + 1
    return blocks


def _runnable(path: Path, *, frameworks: bool = False) -> list[Block]:
    """The blocks to run: in the frameworks venv (``frameworks``) those marked for it too."""
    return [
        b
        for b in parse(path)
        if b.lang == "python" and b.skip is None and (frameworks or not b.frameworks)
    ]


def _needs_frameworks(path: Path) -> bool:
    """Every visible python block of the page is marked ``docs-test: frameworks``."""
    visible = [b for b in parse(path) if b.lang == "python" and not b.hidden and b.skip is None]
    return bool(visible) and all(b.frameworks for b in visible)


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["PYTHONHASHSEED"] = "0"
    env["PYTHONIOENCODING"] = "utf-8"
    return env


@pytest.mark.parametrize(
    "page",
    [p for p in PAGES if any(b.lang == "python" for b in parse(p)) and not _needs_frameworks(p)],
    ids=lambda p: p.relative_to(ROOT).as_posix(),
)
def test_page_examples_run(page: Path, tmp_path: Path) -> None:
    """Each runnable block of the page runs without error and prints its text block."""
    blocks = _runnable(page)
    if not blocks:
        pytest.skip("every python block of this page is marked skip")
    run_page(page, blocks, tmp_path)


def run_page(page: Path, blocks: list[Block], tmp_path: Path) -> None:
    """Run ``blocks`` of ``page`` in a fresh interpreter (this one's) and check each."""
    request = {
        "page": str(page),
        "blocks": [{"line": b.line - 1, "code": b.code, "expected": b.expected} for b in blocks],
    }
    proc = subprocess.run(
        [sys.executable, "-W", "error", str(RUNNER)],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=_env(),
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, f"runner crashed:\n{proc.stdout}\n{proc.stderr}"
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    name = page.relative_to(ROOT).as_posix()
    assert len(results) <= len(blocks)
    for block, result in zip(blocks, results, strict=False):
        where = f"{name}:{block.line} ({'hidden setup' if block.hidden else 'python block'})"
        if not result["ok"]:
            detail = result["error"]
            if block.expected is not None and "output differs" in detail:
                detail += f"\n--- expected\n{block.expected}--- got\n{result['stdout']}"
            pytest.fail(f"{where} failed:\n{detail}\nstderr:\n{proc.stderr}")
    assert len(results) == len(blocks)


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
