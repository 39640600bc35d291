"""
Run one documentation page's code blocks as a script would, and report how each went.

`tests/docs/test_docs.py` starts this in a fresh interpreter per page (so a page that installs
a global tracer provider or registers prices cannot leak into the test suite) and sends
the page's blocks as JSON on stdin::

    {"page": "docs/budgets.md", "blocks": [{"line": 12, "code": "...", "expected": "..."}]}

The blocks share one namespace and run in order, stopping at the first failure. Each
block's stdout is captured; ``expected`` (the ``text`` block that follows it, or None) is
compared with doctest's ellipsis rule, after trailing whitespace is dropped. The report, one
JSON object per block, goes to the real stdout on the last line.
"""

from __future__ import annotations

import contextlib
import doctest
import io
import json
import sys
import traceback
from typing import Any

_CHECKER = doctest.OutputChecker()


def normalize(text: str) -> str:
    """Drop trailing whitespace on each line and at the end; end with one newline."""
    lines = [line.rstrip() for line in text.strip("\n").splitlines()]
    return "\n".join(lines) + "\n" if lines else ""


def output_matches(expected: str, got: str) -> bool:
    """Whether ``got`` is ``expected``, where ``...`` in ``expected`` matches anything."""
    want, have = normalize(expected), normalize(got)
    return want == have or _CHECKER.check_output(want, have, doctest.ELLIPSIS)


def run_blocks(page: str, blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Execute ``blocks`` of ``page`` in one namespace; one result dict per block run."""
    namespace: dict[str, Any] = {"__name__": "__main__", "__file__": page}
    results: list[dict[str, Any]] = []
    for block in blocks:
        # Pad with newlines so tracebacks name the Markdown file and its line numbers.
        source = "\n" * block["line"] + block["code"]
        out = io.StringIO()
        result: dict[str, Any] = {"line": block["line"], "ok": True, "stdout": ""}
        try:
            code = compile(source, page, "exec")
            with contextlib.redirect_stdout(out):
                exec(code, namespace)
        except BaseException as exc:  # report everything, SystemExit included
            result["ok"] = False
            frames = traceback.extract_tb(exc.__traceback__)
            result["error"] = "".join(
                traceback.format_list([f for f in frames if f.filename != __file__])
                + traceback.format_exception_only(type(exc), exc)
            )
        result["stdout"] = out.getvalue()
        expected = block.get("expected")
        if result["ok"] and expected is not None and not output_matches(expected, out.getvalue()):
            result["ok"] = False
            result["error"] = "output differs from the text block that follows"
        results.append(result)
        if not result["ok"]:
            break
    return results


def main() -> None:
    """Read the page from stdin, run it, print the report as the last line."""
    request = json.load(sys.stdin)
    results = run_blocks(request["page"], request["blocks"])
    sys.stdout.flush()
    print(json.dumps(results))


if __name__ == "__main__":
    main()
