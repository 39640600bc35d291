"""What the ``agentsteps`` command accepts: its options, defaults, help and exit codes."""

from __future__ import annotations

import argparse

from .._version import __version__
from .budgets_cli import add_parser as _add_budgets_parser

__all__ = ["DEFAULT_TRACE_PATH", "EXIT_USAGE", "EXPORTERS", "CommandFailed", "build_parser"]

DEFAULT_TRACE_PATH = "agentsteps-trace.jsonl"
"""Where ``agentsteps run`` appends spans unless ``--trace`` or the environment says else."""

EXIT_USAGE = 2
"""Exit code when agentsteps itself cannot do what was asked (the argparse convention)."""

EXPORTERS = ("jsonl", "otlp", "console", "none")
"""Where ``agentsteps run --exporter`` may send spans."""

_DESCRIPTION = """\
See what your agent did: which persona ran which step, with which model, how many tokens
and dollars each spent against its budget, and how it ended."""

_EPILOG = """\
examples:
  agentsteps run examples/code_review.py           run a script, print its report
  agentsteps run --html run.html my_agent.py -v    ... and draw its waterfall
  agentsteps report agentsteps-trace.jsonl         render a saved trace
  agentsteps report agentsteps-trace.jsonl --json  ... as JSON, for machines
  agentsteps report trace.jsonl --html run.html    ... as a standalone HTML waterfall
  agentsteps budgets --store redis://localhost:6379/0   shared budgets, fleet-wide

docs: docs/cli.md"""

_RUN_EPILOG = f"""\
tracing: spans are appended to a JSONL file ({DEFAULT_TRACE_PATH} unless --trace says
otherwise). When OTEL_TRACES_EXPORTER is set, or OTEL_EXPORTER_OTLP_ENDPOINT /
OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is, spans go where they say instead (OTLP needs
pip install 'agentsteps[otlp]'). OTEL_SDK_DISABLED=true turns tracing off; the report is
still printed, from the records of the run.

metrics: exported when OTEL_METRICS_EXPORTER (otlp, prometheus, console) or an OTLP endpoint
variable is set, with the spans, once more at exit (docs/metrics.md).

The report goes to stderr (or --output), so the script's stdout stays its own.

exit code: the script's own (1 for an uncaught exception, as with python); 2 when
agentsteps cannot start it (no such file, tracing cannot be set up)."""

_REPORT_EPILOG = """\
exit code: 0, or 2 for a missing file, a file that is not a JSONL trace, or a trace id
that matches nothing."""


class CommandFailed(Exception):
    """An error agentsteps reports itself, as ``agentsteps <command>: <message>``, exit 2."""


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``agentsteps run``, ``report`` and ``budgets``."""
    parser = argparse.ArgumentParser(
        prog="agentsteps",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"agentsteps {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    run_p = commands.add_parser(
        "run",
        help="run a Python script with tracing and print its report at exit",
        description="Run a Python script with tracing configured and print its run report.",
        epilog=_RUN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run_p.add_argument(
        "-m",
        dest="module",
        action="store_true",
        help="SCRIPT is a module name to run, as with python -m",
    )
    run_p.add_argument(
        "--trace",
        metavar="PATH",
        help=f"JSONL file to append the spans to (default: {DEFAULT_TRACE_PATH})",
    )
    run_p.add_argument(
        "--exporter",
        choices=EXPORTERS,
        help="where spans go (default: jsonl, or what the OTEL_* variables say)",
    )
    _output_options(run_p)
    run_p.add_argument("--no-report", action="store_true", help="do not print the report")
    run_p.add_argument("script", metavar="SCRIPT", help="the Python file (or, with -m, module)")
    run_p.add_argument(
        "args", metavar="ARGS", nargs=argparse.REMAINDER, help="arguments for the script"
    )

    report_p = commands.add_parser(
        "report",
        help="render a saved trace (JSONL) as text, JSON or HTML",
        description="Render the run report of a JSONL trace file.",
        epilog=_REPORT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    report_p.add_argument("trace_file", metavar="TRACE.jsonl", help="the JSONL trace file")
    report_p.add_argument(
        "--trace-id",
        metavar="ID",
        help="only the trace whose id starts with ID (a file may hold many runs)",
    )
    report_p.add_argument(
        "--last", action="store_true", help="only the most recent trace in the file"
    )
    _output_options(report_p)
    _add_budgets_parser(commands)
    return parser


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        msg = f"must be a whole number of steps, 1 or more (got {text!r})"
        raise argparse.ArgumentTypeError(msg)
    return value


def _output_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument(
        "--top",
        metavar="N",
        type=_positive,
        default=0,
        help="also list the N steps that spent the most themselves",
    )
    parser.add_argument(
        "--expand",
        action="store_true",
        help="one row per span: do not fold repeated siblings into one counted row",
    )
    parser.add_argument(
        "--html", metavar="OUT.html", help="also write a self-contained HTML waterfall"
    )
    parser.add_argument(
        "-o", "--output", metavar="PATH", help="write the report to PATH instead of the terminal"
    )
    parser.add_argument(
        "--color",
        choices=("auto", "always", "never"),
        default="auto",
        help="colour the report: auto (a terminal without NO_COLOR), always or never",
    )
