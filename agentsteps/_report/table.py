"""The report as a table: one row of cells per node, the columns that fit, the headline,
the breakdowns by model and persona, the ``--top`` rows and the notes."""

from __future__ import annotations

import textwrap

from .._accounting.usage import Usage
from .formats import count, format_cost, format_duration, plural, safe_text
from .node import ReportNode
from .tree import KIND_PERSONA, KIND_RUN, KIND_STEP, Breakdown, RunReport

__all__ = [
    "ASCII_GUIDES",
    "COLUMNS",
    "DROP_ORDER",
    "NUMERIC",
    "TIMES",
    "UNICODE_GUIDES",
    "breakdown_rows",
    "breakdown_text",
    "cut",
    "fit_columns",
    "notes",
    "rows",
    "summary",
    "top_rows",
    "wrap",
]

COLUMNS = ("name", "status", "model", "in", "out", "cached", "cost", "calls", "budget", "time")
NUMERIC = frozenset({"in", "out", "cached", "cost", "calls", "budget", "time"})
_MAX_NAME = 48
_MIN_NAME = 16

DROP_ORDER = ("cached", "calls", "in", "out", "model", "name", "status", "time", "budget")
"""What goes first on a narrow terminal: these columns in turn ("name" means: shorten the
names to 16 characters). The name and cost are always shown."""

UNICODE_GUIDES = ("├─ ", "└─ ", "│  ", "   ")
ASCII_GUIDES = ("|- ", "`- ", "|  ", "   ")


def _label(node: ReportNode, ascii_only: bool = False) -> str:
    name = safe_text(node.name)
    if node.kind == KIND_PERSONA:
        name += " (persona)"
    if node.count > 1:
        name += f" {'x' if ascii_only else TIMES}{node.count:,}"
    return name


TIMES = "\u00d7"  # the multiplication sign of "leaf x100,000"
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
        "in": count(usage.input_tokens),
        "out": count(usage.output_tokens),
        "cached": count(usage.cache_read_tokens),
        "cost": format_cost(usage.cost_usd) if usage.llm_calls or usage.cost_nano_usd else "-",
        "calls": count(usage.llm_calls),
        "budget": budget,
        "time": format_duration(duration),
    }


def rows(report: RunReport, *, ascii_only: bool = False) -> list[tuple[dict[str, str], int]]:
    """One row per node (tree guides in the name) then a ``total`` row; with depths."""
    first, last, bar, gap = ASCII_GUIDES if ascii_only else UNICODE_GUIDES
    out: list[tuple[dict[str, str], int]] = []
    # (node, prefix of its children's guides, its own guide, depth): no recursion, any depth.
    stack = [(root, "", "", 0) for root in reversed(report.roots)]
    while stack:
        node, prefix, guide, depth = stack.pop()
        name = cut(prefix + guide + _label(node, ascii_only), _MAX_NAME, ascii_only)
        cells = {"name": name, **_cells(node, node.usage, node.duration)}
        out.append((cells, depth))
        child_prefix = prefix + ("" if not guide else (gap if guide == last else bar))
        n = len(node.children)
        for i in range(n - 1, -1, -1):
            stack.append((node.children[i], child_prefix, last if i == n - 1 else first, depth + 1))
    total = {"name": "total", **_cells(None, report.total, report.duration)}
    out.append((total, -1))
    return out


def cut(text: str, width: int, ascii_only: bool) -> str:
    """``text`` shortened to ``width`` with an ellipsis (``~`` in ASCII)."""
    if len(text) <= width:
        return text
    return text[: width - 1] + ("~" if ascii_only else "…")


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
        plural(report.count(KIND_PERSONA), "persona"),
        plural(report.count(KIND_STEP), "step"),
    ]
    statuses = report.statuses()
    if statuses:
        parts[-1] += " (" + ", ".join(f"{n:,} {s}" for s, n in sorted(statuses.items())) + ")"
    parts += [
        plural(total.llm_calls, "LLM call"),
        f"{total.total_tokens:,} tokens",
        format_cost(total.cost_usd),
        format_duration(report.duration),
    ]
    return "agentsteps report: " + ", ".join(parts)


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
        "calls": count(u.llm_calls),
        "tokens": count(u.total_tokens),
        "cached": count(u.cache_read_tokens),
        "cost": format_cost(u.cost_usd) if u.llm_calls or u.cost_nano_usd else "-",
    }


def breakdown_text(report: RunReport, width: int | None) -> list[str]:
    """The breakdowns by model and by persona as lines of text fitted to ``width``."""
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
            name = cut(row["name"], name_w, False).ljust(name_w)
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


def wrap(text: str, width: int | None, indent: str = "") -> list[str]:
    """``text`` as lines of at most ``width`` (``None``: one line), later ones indented."""
    if width is None or len(text) <= width:
        return [text]
    return textwrap.wrap(text, width, subsequent_indent=indent, break_on_hyphens=False)
