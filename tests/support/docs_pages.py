"""
How the docs tests find and run a page's ```python blocks (`tests/docs/test_docs.py`).

The rules, for whoever writes a page (docs/*.md or README.md):

- Blocks tagged ``python`` run, in page order, in one namespace per page, in a fresh
  interpreter (`tests/support/scripts/docs_runner.py`) with warnings as errors and the page's
  directory layout irrelevant (the working directory is a temporary one).
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


def runnable(path: Path, *, frameworks: bool = False) -> list[Block]:
    """The blocks to run: in the frameworks venv (``frameworks``) those marked for it too."""
    return [
        b
        for b in parse(path)
        if b.lang == "python" and b.skip is None and (frameworks or not b.frameworks)
    ]


def needs_frameworks(path: Path) -> bool:
    """Every visible python block of the page is marked ``docs-test: frameworks``."""
    visible = [b for b in parse(path) if b.lang == "python" and not b.hidden and b.skip is None]
    return bool(visible) and all(b.frameworks for b in visible)


def subprocess_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["PYTHONHASHSEED"] = "0"
    env["PYTHONIOENCODING"] = "utf-8"
    return env


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
        env=subprocess_env(),
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
