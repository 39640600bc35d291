"""
Rendering a `RunReport` for the terminal: plain text always, `rich` when installed.

The plain renderer is complete on its own (every figure, readable without colour, ASCII
tree guides when the output cannot encode box-drawing characters). `rich`, an optional
extra, only draws the same rows as a coloured table.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import textwrap
import threading
from collections.abc import Iterator
from typing import IO, Any, cast

from .._accounting.usage import Usage
from .._core.records import Run
from .tree import KIND_PERSONA, KIND_RUN, KIND_STEP, Breakdown, ReportNode, RunReport

__all__ = [
    "DROP_ORDER",
    "fit_columns",
    "format_cost",
    "format_duration",
    "notes",
    "print_report",
    "render_json",
    "render_text",
    "rows",
    "safe_text",
    "summary",
    "terminal_width",
    "use_color",
    "write_report",
]

COLUMNS = ("name", "status", "model", "in", "out", "cached", "cost", "calls", "budget", "time")
_NUMERIC = frozenset({"in", "out", "cached", "cost", "calls", "budget", "time"})
_MAX_NAME = 48
_MIN_NAME = 16

DROP_ORDER = ("cached", "calls", "in", "out", "model", "name", "status", "time", "budget")
"""What goes first on a narrow terminal: these columns in turn ("name" means: shorten the
names to 16 characters). The name and cost are always shown."""

# Control characters (C0, DEL, C1) and the bidi controls that can reorder what a terminal
# shows: a step name or error from a run must not move the cursor, retitle the window
# (OSC), hide text or make a line read backwards. They are printed escaped instead.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}

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


def safe_text(text: str) -> str:
    """
    ``text`` with control characters and bidi overrides escaped, safe to print.

    >>> safe_text("ok\\x1b]0;owned\\x07 \\u202edesrever")
    'ok\\\\x1b]0;owned\\\\x07 \\\\u202edesrever'
    """
    return _UNSAFE.sub(_escape, text)


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def _count(n: int) -> str:
    return f"{n:,}" if n else "-"


def _label(node: ReportNode, ascii_only: bool = False) -> str:
    name = safe_text(node.name)
    if node.kind == KIND_PERSONA:
        name += " (persona)"
    if node.count > 1:
        name += f" {'x' if ascii_only else _TIMES}{node.count:,}"
    return name


_TIMES = "\u00d7"  # the multiplication sign of "leaf x100,000"
_MARKED_STATUSES = frozenset({"failed", "denied"})


def _cells(node: ReportNode | None, usage: Usage, duration: float) -> dict[str, str]:
    pct = None if node is None else node.budget_pct
    status = "" if node is None or node.status is None else safe_text(node.status)
    if status in _MARKED_STATUSES:
        status += "!"
    budget = "" if pct is None else ("inf%" if pct == float("inf") else f"{pct:.0f}%")
    if pct is not None and pct > 100:
        budget += "!"
    return {
        "status": status,
        "model": "" if node is None or node.model is None else safe_text(node.model),
        "in": _count(usage.input_tokens),
        "out": _count(usage.output_tokens),
        "cached": _count(usage.cache_read_tokens),
        "cost": format_cost(usage.cost_usd) if usage.llm_calls or usage.cost_nano_usd else "-",
        "calls": _count(usage.llm_calls),
        "budget": budget,
        "time": format_duration(duration),
    }


def rows(report: RunReport, *, ascii_only: bool = False) -> list[tuple[dict[str, str], int]]:
    """One row per node (tree guides in the name) then a ``total`` row; with depths."""
    first, last, bar, gap = _ASCII_GUIDES if ascii_only else _UNICODE_GUIDES
    out: list[tuple[dict[str, str], int]] = []
    # (node, prefix of its children's guides, its own guide, depth): no recursion, any depth.
    stack = [(root, "", "", 0) for root in reversed(report.roots)]
    while stack:
        node, prefix, guide, depth = stack.pop()
        name = _cut(prefix + guide + _label(node, ascii_only), _MAX_NAME, ascii_only)
        cells = {"name": name, **_cells(node, node.usage, node.duration)}
        out.append((cells, depth))
        child_prefix = prefix + ("" if not guide else (gap if guide == last else bar))
        n = len(node.children)
        for i in range(n - 1, -1, -1):
            stack.append((node.children[i], child_prefix, last if i == n - 1 else first, depth + 1))
    total = {"name": "total", **_cells(None, report.total, report.duration)}
    out.append((total, -1))
    return out


def _cut(text: str, width: int, ascii_only: bool) -> str:
    if len(text) <= width:
        return text
    return text[: width - 1] + ("~" if ascii_only else "…")


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


def fit_columns(
    table: list[tuple[dict[str, str], int]], width: int | None
) -> tuple[list[str], dict[str, int]]:
    """
    The columns that fit in ``width`` (dropped in `DROP_ORDER`) and each one's width.
    """
    widths = {c: max(len(c), *(len(cells[c]) for cells, _ in table)) for c in COLUMNS}
    columns = list(COLUMNS)

    def total() -> int:
        return sum(widths[c] for c in columns) + 2 * (len(columns) - 1)

    for drop in DROP_ORDER:
        if width is None or total() <= width:
            break
        if drop == "name":
            widths["name"] = max(_MIN_NAME, widths["name"] - (total() - width))
        else:
            columns.remove(drop)
    return columns, widths


def summary(report: RunReport) -> str:
    """The headline: how many personas and steps, how they ended, calls, cost, time."""
    total = report.total
    parts = [
        _plural(report.count(KIND_PERSONA), "persona"),
        _plural(report.count(KIND_STEP), "step"),
    ]
    statuses = report.statuses()
    if statuses:
        parts[-1] += " (" + ", ".join(f"{n:,} {s}" for s, n in sorted(statuses.items())) + ")"
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
    """One line per step or persona that did not complete: what stopped it (escaped)."""
    lines = []
    for _, node in report.nodes:
        if node.kind in (KIND_STEP, KIND_PERSONA, KIND_RUN) and node.status not in (
            None,
            "completed",
        ):
            why = "no error recorded" if node.error is None else _short_error(node.error)
            lines.append(safe_text(f"{node.name} {node.status}: {why}"))
    return lines


_BREAKDOWN_COLUMNS = ("steps", "calls", "tokens", "cached", "cost")


def breakdown_rows(report: RunReport) -> list[tuple[str, list[dict[str, str]]]]:
    """The summary tables by model and by persona, as cells (names escaped)."""
    out = []
    for title, entries in (("model", report.by_model()), ("persona", report.by_persona())):
        out.append((title, [_breakdown_cells(b) for b in entries]))
    return out


def _breakdown_cells(entry: Breakdown) -> dict[str, str]:
    u = entry.usage
    return {
        "name": safe_text(entry.name),
        "steps": f"{entry.steps:,}",
        "calls": _count(u.llm_calls),
        "tokens": _count(u.total_tokens),
        "cached": _count(u.cache_read_tokens),
        "cost": format_cost(u.cost_usd) if u.llm_calls or u.cost_nano_usd else "-",
    }


def _breakdown_text(report: RunReport, width: int | None) -> list[str]:
    if not report.count(KIND_STEP):
        return []
    tables = breakdown_rows(report)
    name_w = max(len(f"by {t}") for t, _ in tables)
    name_w = max([name_w, *(len(c["name"]) for _, cells in tables for c in cells)])
    widths = {c: max([len(c), *(len(x[c]) for _, cells in tables for x in cells)])
              for c in _BREAKDOWN_COLUMNS}  # fmt: skip
    columns = list(_BREAKDOWN_COLUMNS)
    for drop in ("cached", "steps", "calls", "tokens"):
        if width is None or name_w + sum(widths[c] + 2 for c in columns) <= width:
            break
        columns.remove(drop)
    if width is not None:
        name_w = max(_MIN_NAME, min(name_w, width - sum(widths[c] + 2 for c in columns)))
    out = []
    for title, cells in tables:
        head = f"by {title}".ljust(name_w) + "".join("  " + c.rjust(widths[c]) for c in columns)
        out.append(head.rstrip())
        for row in cells:
            name = _cut(row["name"], name_w, False).ljust(name_w)
            out.append(name + "".join("  " + row[c].rjust(widths[c]) for c in columns))
    return out


def top_rows(report: RunReport) -> list[dict[str, str]]:
    """The ``--top`` steps as cells: their own figures (children excluded)."""
    out = []
    for node in report.top:
        cells = _cells(node, node.self_usage, node.duration)
        cells["name"] = safe_text(node.name)
        out.append(cells)
    return out


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
            text = _cut(cells[c], widths[c], ascii_only) if c == "name" else cells[c]
            text = text.rjust(widths[c]) if c in _NUMERIC else text.ljust(widths[c])
            code = _ANSI.get(cells[c].rstrip("!")) if c == "status" else None
            if c == "budget" and cells[c].endswith("!"):
                code = _ANSI["failed"]
            if colour and code:
                text = f"\x1b[{code}m{text}\x1b[0m"
            parts.append(text)
        return "  ".join(parts).rstrip()

    out = [*_wrap(summary(report), width), ""]
    breakdown = _breakdown_text(report, width)
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
            out += _wrap("  " + n, width, indent="    ")
    return "\n".join(out) + "\n"


def _wrap(text: str, width: int | None, indent: str = "") -> list[str]:
    if width is None or len(text) <= width:
        return [text]
    return textwrap.wrap(text, width, subsequent_indent=indent, break_on_hyphens=False)


def render_json(report: RunReport) -> str:
    """The report as a JSON document (see `RunReport.to_dict`)."""
    return "".join(iter_json(report.to_dict())) + "\n"


_END = object()
_MAX_INDENT = 40  # levels: a deeper tree would make the output grow with depth squared


def _indent(depth: int) -> str:
    return "  " * min(depth, _MAX_INDENT)


def iter_json(value: Any) -> Iterator[str]:
    """
    ``value`` as indented JSON, in pieces, without recursion (``json.dumps`` recurses,
    and fails on a tree more than about 1,000 levels deep).
    """
    stack: list[tuple[Iterator[Any], bool, int, list[bool]]] = []

    def begin(item: Any, depth: int) -> str:
        if isinstance(item, dict) and item:
            stack.append((iter(item.items()), True, depth + 1, [True]))
            return "{"
        if isinstance(item, list) and item:
            stack.append((iter(item), False, depth + 1, [True]))
            return "["
        return json.dumps(item, allow_nan=False)

    yield begin(value, 0)
    while stack:
        items, is_dict, depth, first = stack[-1]
        item = next(items, _END)
        if item is _END:
            stack.pop()
            yield "\n" + _indent(depth - 1) + ("}" if is_dict else "]")
            continue
        lead = ("\n" if first[0] else ",\n") + _indent(depth)
        first[0] = False
        if is_dict:
            pair = cast(tuple[object, object], item)
            lead += json.dumps(str(pair[0])) + ": "
            item = pair[1]
        yield lead + begin(item, depth)


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
    ascii_only = not _can_encode(stream, "".join(_UNICODE_GUIDES) + "…" + _TIMES)
    if color and report.roots and _write_rich(report, stream, ascii_only, width):
        return
    stream.write(render_text(report, color=color, ascii_only=ascii_only, width=width))


def _write_rich(report: RunReport, stream: IO[str], ascii_only: bool, width: int | None) -> bool:
    try:
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text
    except ImportError:
        return False
    table_rows = rows(report, ascii_only=ascii_only)
    columns, widths = fit_columns(table_rows, width)
    needed = sum(widths[c] for c in columns) + 2 * (len(columns) - 1)
    console = Console(file=stream, force_terminal=True, highlight=False, soft_wrap=False)
    # Fit the terminal; the columns were chosen to fit, so nothing is squeezed further.
    console.width = max(width or needed, needed)

    def table_of(cells_list: list[tuple[dict[str, str], int]], title: str | None) -> Any:
        table = Table(box=None, pad_edge=False, title=title, title_justify="left")
        for c in columns:
            table.add_column(
                c,
                justify="right" if c in _NUMERIC else "left",
                no_wrap=True,
                min_width=widths[c],
                max_width=widths[c],
            )
        for cells, depth in cells_list:
            if depth == -1:
                table.add_section()
            styled = []
            for c in columns:
                text = _cut(cells[c], widths[c], ascii_only) if c == "name" else cells[c]
                style = _RICH.get(cells[c].rstrip("!"), "") if c == "status" else ""
                if c == "budget" and cells[c].endswith("!"):
                    style = "bold red"
                styled.append(Text(text, style=style))
            if depth == -1:
                styled[0].stylize("bold")
            table.add_row(*styled)
        return table

    for text in _wrap(summary(report), width):
        console.print(Text(text, style="bold"))
    console.print()
    for text in _breakdown_text(report, width):
        console.print(Text(text))
    console.print()
    console.print(table_of(table_rows, None))
    if report.top:
        console.print()
        top = [(c, 0) for c in top_rows(report)]
        console.print(table_of(top, f"top {len(report.top)} steps by their own cost"))
    extra = notes(report)
    if extra:
        console.print()
        console.print("notes:", style="bold")
        for n in extra:
            for text in _wrap("  " + n, width, indent="    "):
                console.print(Text(text))
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
