"""``agentsteps report``: render a saved trace, and write a report where the options say."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import IO

from .cli_args import CommandFailed
from .formats import safe_text
from .html import render_html
from .render import write_report
from .tree import InvalidTraceError, RunReport

__all__ = ["emit", "run_report"]


def run_report(args: argparse.Namespace) -> int:
    """Run ``agentsteps report``: read the trace file, print its report; the exit code."""
    path = args.trace_file
    if not Path(path).exists():
        msg = f"no such file: {path!r}"
        raise CommandFailed(msg)
    if Path(path).is_dir():
        msg = f"{path!r} is a directory, not a JSONL trace file"
        raise CommandFailed(msg)
    try:
        report = RunReport.from_jsonl(
            path,
            fold=not args.expand,
            top=args.top,
            trace_id=args.trace_id,
            last=args.last,
            attributes=args.html is not None,
        )
    except InvalidTraceError as exc:
        raise CommandFailed(str(exc)) from None
    except OSError as exc:
        msg = f"cannot read {path!r}: {exc.strerror or exc}"
        raise CommandFailed(msg) from None
    except (MemoryError, RecursionError):
        raise
    except Exception as exc:  # never a traceback for a damaged file: say what and where
        msg = f"cannot read {path!r}: {type(exc).__name__}: {exc} (please report this bug)"
        raise CommandFailed(msg) from None
    if args.trace_id is not None and not report.span_roots:
        msg = f"no trace in {path!r} has an id starting with {args.trace_id!r}"
        raise CommandFailed(msg)
    for warning in report.warnings:
        print(f"agentsteps report: warning: {safe_text(warning)}", file=sys.stderr)
    emit(report, args, title=f"agentsteps report {Path(path).name}")
    return 0


_MANY_ROWS = 50_000
"""Above this many rows an HTML page gets slow to open: say so."""


def emit(report: RunReport, args: argparse.Namespace, *, title: str) -> None:
    """Write ``report`` as the options ask: text or JSON, to a file or a stream; HTML too."""
    if args.html:
        rows = sum(1 for _ in report.spans)
        if rows > _MANY_ROWS:
            print(
                f"agentsteps {args.command}: warning: the page has {rows:,} rows and may be "
                "slow to open; without --expand, repeated steps fold into one row",
                file=sys.stderr,
            )
        try:
            Path(args.html).write_text(render_html(report, title=title), encoding="utf-8")
        except OSError as exc:
            msg = f"cannot write {args.html!r}: {exc.strerror or exc}"
            raise CommandFailed(msg) from None
    out: IO[str]
    if args.output:
        try:
            out = open(args.output, "w", encoding="utf-8")  # noqa: SIM115 - closed below
        except OSError as exc:
            msg = f"cannot write {args.output!r}: {exc.strerror or exc}"
            raise CommandFailed(msg) from None
    else:
        out = sys.stdout if args.command == "report" else sys.stderr
    color = {"always": True, "never": False}.get(args.color)
    try:
        write_report(report, out, as_json=args.json, color=color)
    finally:
        if args.output:
            out.close()
    if args.html:
        print(f"wrote {args.html}", file=sys.stderr)
