"""The report as a `rich` table: the same rows as the plain text, coloured by status."""

from __future__ import annotations

from typing import IO, Any

from .table import NUMERIC, breakdown_text, cut, fit_columns, notes, rows, summary, top_rows, wrap
from .tree import RunReport

__all__ = ["write_rich"]

_RICH = {
    "completed": "green",
    "skipped": "yellow",
    "escalated": "magenta",
    "failed": "bold red",
    "denied": "red",
    "cancelled": "dim",
    "abandoned": "dim",
}


def write_rich(report: RunReport, stream: IO[str], ascii_only: bool, width: int | None) -> bool:
    """Write the report with `rich`; ``False`` (nothing written) when it is not installed."""
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
                justify="right" if c in NUMERIC else "left",
                no_wrap=True,
                min_width=widths[c],
                max_width=widths[c],
            )
        for cells, depth in cells_list:
            if depth == -1:
                table.add_section()
            styled = []
            for c in columns:
                text = cut(cells[c], widths[c], ascii_only) if c == "name" else cells[c]
                style = _RICH.get(cells[c].rstrip("!"), "") if c == "status" else ""
                if c == "budget" and cells[c].endswith("!"):
                    style = "bold red"
                styled.append(Text(text, style=style))
            if depth == -1:
                styled[0].stylize("bold")
            table.add_row(*styled)
        return table

    for text in wrap(summary(report), width):
        console.print(Text(text, style="bold"))
    console.print()
    for text in breakdown_text(report, width):
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
            for text in wrap("  " + n, width, indent="    "):
                console.print(Text(text))
    return True
