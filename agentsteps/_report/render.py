"""
Rendering a `RunReport` for the terminal: plain text always, `rich` when installed.

The plain renderer is complete on its own (every figure, readable without colour, ASCII
tree guides when the output cannot encode box-drawing characters). `rich`, an optional
extra, only draws the same rows as a coloured table.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from typing import IO, Any

from .._accounting.usage import Usage
from .._core.records import Run
from .tree import KIND_PERSONA, KIND_RUN, KIND_STEP, ReportNode, RunReport

__all__ = [
    "format_cost",
    "format_duration",
    "notes",
    "print_report",
    "render_json",
    "render_text",
    "rows",
    "summary",
    "use_color",
    "write_report",
]

COLUMNS = ("name", "status", "model", "in", "out", "cached", "cost", "calls", "budget", "time")
_NUMERIC = frozenset({"in", "out", "cached", "cost", "calls", "budget", "time"})
_MAX_NAME = 48

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
_RICH = {
    "completed": "green",
    "skipped": "yellow",
    "escalated": "magenta",
    "failed": "bold red",
    "denied": "red",
    "cancelled": "dim",
    "abandoned": "dim",
}
# Set while `agentsteps run` executes a script: `print_report` then leaves the report to
# the command, which prints the whole run's when the script ends.
CLI_RUNNING = threading.Event()

_UNICODE_GUIDES = ("├─ ", "└─ ", "│  ", "   ")
_ASCII_GUIDES = ("|- ", "`- ", "|  ", "   ")


def format_cost(usd: float) -> str:
    """Dollars with enough decimals to tell small LLM costs apart."""
    if usd == 0:
        return "$0"
    if usd < 0.0001:
        return "<$0.0001"
    if usd < 1:
        return f"${usd:.4f}"
    return f"${usd:,.2f}"


def format_duration(seconds: float) -> str:
    """A short human duration: ``0.4ms``, ``12ms``, ``1.24s``, ``3m05s``."""
    if seconds < 0.0001:
        return "<0.1ms"
    if seconds < 0.001:
        return f"{seconds * 1000:.1f}ms"
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.2f}s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}m{rest:02d}s"


def _count(n: int) -> str:
    return f"{n:,}" if n else "-"


def _label(node: ReportNode) -> str:
    if node.kind == KIND_PERSONA:
        return f"{node.name} (persona)"
    return node.name


def _cells(node: ReportNode | None, usage: Usage, duration: float) -> dict[str, str]:
    pct = None if node is None else node.budget_pct
    return {
        "status": "" if node is None or node.status is None else node.status,
        "model": "" if node is None or node.model is None else node.model,
        "in": _count(usage.input_tokens),
        "out": _count(usage.output_tokens),
        "cached": _count(usage.cache_read_tokens),
        "cost": format_cost(usage.cost_usd) if usage.llm_calls or usage.cost_nano_usd else "-",
        "calls": _count(usage.llm_calls),
        "budget": "" if pct is None else ("inf%" if pct == float("inf") else f"{pct:.0f}%"),
        "time": format_duration(duration),
    }


def rows(report: RunReport, *, ascii_only: bool = False) -> list[tuple[dict[str, str], int]]:
    """One row per node (tree guides in the name) then a ``total`` row; with depths."""
    first, last, bar, gap = _ASCII_GUIDES if ascii_only else _UNICODE_GUIDES
    out: list[tuple[dict[str, str], int]] = []

    def visit(node: ReportNode, prefix: str, guide: str, depth: int) -> None:
        name = prefix + guide + _label(node)
        if len(name) > _MAX_NAME:
            name = name[: _MAX_NAME - 1] + ("~" if ascii_only else "…")
        cells = {"name": name, **_cells(node, node.usage, node.duration)}
        out.append((cells, depth))
        child_prefix = prefix + ("" if not guide else (gap if guide == last else bar))
        for i, child in enumerate(node.children):
            visit(child, child_prefix, last if i == len(node.children) - 1 else first, depth + 1)

    for root in report.roots:
        visit(root, "", "", 0)
    total = {"name": "total", **_cells(None, report.total, report.duration)}
    out.append((total, -1))
    return out


def summary(report: RunReport) -> str:
    """The headline: how many personas and steps, how they ended, calls, cost, time."""
    total = report.total
    parts = [
        _plural(report.count(KIND_PERSONA), "persona"),
        _plural(report.count(KIND_STEP), "step"),
    ]
    statuses = report.statuses()
    if statuses:
        parts[-1] += " (" + ", ".join(f"{n} {s}" for s, n in sorted(statuses.items())) + ")"
    parts += [
        _plural(total.llm_calls, "LLM call"),
        f"{total.total_tokens:,} tokens",
        format_cost(total.cost_usd),
        format_duration(report.duration),
    ]
    return "agentsteps report: " + ", ".join(parts)


def _plural(n: int, noun: str) -> str:
    return f"{n:,} {noun}" + ("" if n == 1 else "s")


def _short_error(error: str) -> str:
    # Span events carry the qualified type ("agentsteps.StepEscalated: ..."); the last
    # component reads as well and matches what a Run records.
    kind, sep, message = error.partition(": ")
    return kind.rsplit(".", 1)[-1] + sep + message


def notes(report: RunReport) -> list[str]:
    """One line per step or persona that did not complete: what stopped it."""
    lines = []
    for _, node in report.nodes:
        if node.kind in (KIND_STEP, KIND_PERSONA, KIND_RUN) and node.status not in (
            None,
            "completed",
        ):
            why = "no error recorded" if node.error is None else _short_error(node.error)
            lines.append(f"{node.name} {node.status}: {why}")
    return lines


def render_text(report: RunReport, *, color: bool = False, ascii_only: bool = False) -> str:
    """
    The report as plain text: a headline, a table with a tree in its first column,
    totals, and a note for every step that did not complete.
    """
    if not report.roots:
        return summary(report) + "\n(no persona or step ran)\n"
    table = rows(report, ascii_only=ascii_only)
    widths = {c: len(c) for c in COLUMNS}
    for cells, _ in table:
        for c in COLUMNS:
            widths[c] = max(widths[c], len(cells[c]))
    rule = "-" * (sum(widths.values()) + 2 * (len(COLUMNS) - 1))

    def line(cells: dict[str, str], colour_status: bool) -> str:
        parts = []
        for c in COLUMNS:
            text = cells[c].rjust(widths[c]) if c in _NUMERIC else cells[c].ljust(widths[c])
            if c == "status" and colour_status and cells[c] in _ANSI:
                text = f"\x1b[{_ANSI[cells[c]]}m{text}\x1b[0m"
            parts.append(text)
        return "  ".join(parts).rstrip()

    out = [summary(report), "", line({c: c for c in COLUMNS}, False), rule]
    for cells, depth in table:
        if depth == -1:
            out.append(rule)
        out.append(line(cells, color))
    extra = notes(report)
    if extra:
        out += ["", "notes:"] + [f"  {n}" for n in extra]
    return "\n".join(out) + "\n"


def render_json(report: RunReport) -> str:
    """The report as a JSON document (see `RunReport.to_dict`)."""
    return json.dumps(report.to_dict(), indent=2, allow_nan=False, default=_json_default) + "\n"


def _json_default(value: Any) -> Any:  # pragma: no cover - to_dict is JSON-ready
    return str(value)


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
    report: RunReport, stream: IO[str], *, as_json: bool = False, color: bool | None = None
) -> None:
    """
    Write the report to ``stream``: JSON, or a table coloured with `rich` when it is
    installed and ``stream`` is a terminal, else plain text.
    """
    if as_json:
        stream.write(render_json(report))
        return
    if color is None:
        color = use_color(stream)
    ascii_only = not _can_encode(stream, "".join(_UNICODE_GUIDES) + "…")
    if color and report.roots and _write_rich(report, stream, ascii_only):
        return
    stream.write(render_text(report, color=color, ascii_only=ascii_only))


def _write_rich(report: RunReport, stream: IO[str], ascii_only: bool) -> bool:
    try:
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text
    except ImportError:
        return False
    table_rows = rows(report, ascii_only=ascii_only)
    # The table's natural width: never squeeze a figure into an ellipsis. On a narrower
    # terminal the lines wrap, as the plain text's do.
    needed = sum(max(len(c), *(len(r[c]) for r, _ in table_rows)) for c in COLUMNS)
    needed += 2 * (len(COLUMNS) - 1)
    console = Console(file=stream, force_terminal=True, highlight=False, soft_wrap=True)
    console.width = max(console.width if use_color_tty(stream) else 0, needed)
    console.print(summary(report), style="bold")
    console.print()
    table = Table(box=None, pad_edge=False)
    for c in COLUMNS:
        table.add_column(c, justify="right" if c in _NUMERIC else "left", no_wrap=True)
    for cells, depth in table_rows:
        if depth == -1:
            table.add_section()
        styled = [
            Text(cells[c], style=_RICH.get(cells[c], "") if c == "status" else "") for c in COLUMNS
        ]
        if depth == -1:
            styled[0].stylize("bold")
        table.add_row(*styled)
    console.print(table)
    extra = notes(report)
    if extra:
        console.print()
        console.print("notes:", style="bold")
        for n in extra:
            console.print(Text("  " + n))
    return True


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


print_report.__module__ = "agentsteps"
