"""
Rendering a `RunReport` for the terminal: plain text always, `rich` when installed.

The plain renderer is complete on its own (every figure, readable without colour, ASCII
tree guides when the output cannot encode box-drawing characters). `rich`, an optional
extra, only draws the same rows as a coloured table. The rows and columns come from
`_report/table.py`, the figures' formats from `_report/formats.py`.
"""

from __future__ import annotations

import os
import shutil
import sys
import threading
from typing import IO

from .._core.records import Run
from .json_stream import iter_json
from .rich_table import write_rich
from .table import (
    COLUMNS,
    NUMERIC,
    TIMES,
    UNICODE_GUIDES,
    breakdown_text,
    cut,
    fit_columns,
    notes,
    rows,
    summary,
    top_rows,
    wrap,
)
from .tree import RunReport

__all__ = [
    "CLI_RUNNING",
    "print_report",
    "render_json",
    "render_text",
    "terminal_width",
    "use_color",
    "use_color_tty",
    "write_report",
]

# ANSI SGR codes for the plain renderer's status words (used only when colour is on).
_ANSI = {
    "completed": "32",
    "skipped": "33",
    "escalated": "35",
    "failed": "31",
    "denied": "31",
    "cancelled": "2",
    "abandoned": "2",
}
# Set while `agentsteps run` executes a script: `print_report` then leaves the report to
# the command, which prints the whole run's when the script ends.
CLI_RUNNING = threading.Event()


def terminal_width(stream: IO[str]) -> int | None:
    """
    The width to fit the report in: ``COLUMNS`` when set, else the terminal's when
    ``stream`` is one; ``None`` (no limit) for a file or a pipe.
    """
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    if use_color_tty(stream):
        return shutil.get_terminal_size().columns
    return None


def render_text(
    report: RunReport,
    *,
    color: bool = False,
    ascii_only: bool = False,
    width: int | None = None,
) -> str:
    """
    The report as plain text: a headline, spending by model and by persona, a table with
    a tree in its first column, totals, and a note for every step that did not complete.

    ``width`` (``None``: no limit) drops columns in `DROP_ORDER` until the table fits.
    """
    if not report.roots:
        return summary(report) + "\n(no persona or step ran)\n"
    table = rows(report, ascii_only=ascii_only)
    columns, widths = fit_columns(table, width)
    rule = "-" * (sum(widths[c] for c in columns) + 2 * (len(columns) - 1))

    def line(cells: dict[str, str], colour: bool) -> str:
        parts = []
        for c in columns:
            text = cut(cells[c], widths[c], ascii_only) if c == "name" else cells[c]
            text = text.rjust(widths[c]) if c in NUMERIC else text.ljust(widths[c])
            code = _ANSI.get(cells[c].rstrip("!")) if c == "status" else None
            if c == "budget" and cells[c].endswith("!"):
                code = _ANSI["failed"]
            if colour and code:
                text = f"\x1b[{code}m{text}\x1b[0m"
            parts.append(text)
        return "  ".join(parts).rstrip()

    out = [*wrap(summary(report), width), ""]
    breakdown = breakdown_text(report, width)
    if breakdown:
        out += [*breakdown, ""]
    out += [line({c: c for c in COLUMNS}, False), rule]
    for cells, depth in table:
        if depth == -1:
            out.append(rule)
        out.append(line(cells, color))
    if report.top:
        out += ["", f"top {len(report.top)} steps by their own cost:"]
        top_table = [(c, 0) for c in top_rows(report)]
        columns, widths = fit_columns(top_table, width)
        out.append(line({c: c for c in COLUMNS}, False))
        for cells, _ in top_table:
            out.append(line(cells, color))
    extra = notes(report)
    if extra:
        out += ["", "notes:"]
        for n in extra:
            out += wrap("  " + n, width, indent="    ")
    return "\n".join(out) + "\n"


def render_json(report: RunReport) -> str:
    """The report as a JSON document (see `RunReport.to_dict`)."""
    return "".join(iter_json(report.to_dict())) + "\n"


def use_color(stream: IO[str]) -> bool:
    """Colour only on a terminal, and never when ``NO_COLOR`` is set (no-color.org)."""
    if os.environ.get("NO_COLOR"):
        return False
    return use_color_tty(stream)


def use_color_tty(stream: IO[str]) -> bool:
    """Whether ``stream`` is a terminal."""
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def _can_encode(stream: IO[str], text: str) -> bool:
    encoding = getattr(stream, "encoding", None) or "utf-8"
    try:
        text.encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return False
    return True


def write_report(
    report: RunReport,
    stream: IO[str],
    *,
    as_json: bool = False,
    color: bool | None = None,
    width: int | None = None,
) -> None:
    """
    Write the report to ``stream``: JSON, or a table coloured with `rich` when it is
    installed and ``stream`` is a terminal, else plain text; fitted to ``width``
    (default: `terminal_width`).
    """
    if as_json:
        for piece in iter_json(report.to_dict()):
            stream.write(piece)
        stream.write("\n")
        return
    if color is None:
        color = use_color(stream)
    if width is None:
        width = terminal_width(stream)
    ascii_only = not _can_encode(stream, "".join(UNICODE_GUIDES) + "…" + TIMES)
    if color and report.roots and write_rich(report, stream, ascii_only, width):
        return
    stream.write(render_text(report, color=color, ascii_only=ascii_only, width=width))


def print_report(
    source: Run | str | os.PathLike[str], *, file: IO[str] | None = None, json: bool = False
) -> None:
    """
    Print the run report: a tree of personas and steps with status, model, tokens,
    cost, LLM calls, budget used and duration, and the run's totals.

    Under ``agentsteps run``, which prints the report of the whole run when the script
    ends, this prints nothing, so a script shows its report once however it is started.

    Args:
        source: A `Run` collected with ``with agentsteps.run() as r:``, or the path of a
            JSONL trace file.
        file: Where to print (default: ``sys.stdout``). Coloured when it is a terminal
            (with `rich` if installed) unless ``NO_COLOR`` is set.
        json: Print the report as JSON instead.

    Raises:
        FileNotFoundError: ``source`` is a path that does not exist.
        ValueError: ``source`` is a file that holds no span.
        TypeError: ``source`` is neither a `Run` nor a path.

    Example:
        >>> import agentsteps
        >>> @agentsteps.step(model="m")
        ... def hello():
        ...     agentsteps.record_usage(input_tokens=3, output_tokens=4, cost_usd=0.01)
        >>> with agentsteps.run() as r:
        ...     hello()
        >>> agentsteps.print_report(r)  # doctest: +ELLIPSIS
        agentsteps report: 0 personas, 1 step (1 completed), 1 LLM call, 7 tokens, $0.0100, ...

    .. versionadded:: 0.1.0
    """
    checked: object = source  # typed as the API says; checked because callers may not be
    if not isinstance(checked, (Run, str, os.PathLike)):
        # An int would be taken for a file descriptor by open(): refuse it by name.
        msg = (
            "print_report(): 'source' must be a Run (from 'with agentsteps.run() as r:') or "
            f"the path of a JSONL trace (got {source!r} of type {type(source).__name__})"
        )
        raise TypeError(msg)
    as_json: object = json  # checked: callers may not follow the annotation
    if not isinstance(as_json, bool):  # json="no" is truthy: refuse it rather than obey it
        got = f"{as_json!r} of type {type(as_json).__name__}"
        msg = f"print_report(): 'json' must be True or False (got {got})"
        raise TypeError(msg)
    if CLI_RUNNING.is_set():
        return
    report = RunReport.from_run(source) if isinstance(source, Run) else RunReport.from_jsonl(source)
    write_report(report, sys.stdout if file is None else file, as_json=json)
