"""
The ``agentsteps`` command: run a script with tracing and print its report, or render a
saved trace.

    agentsteps run SCRIPT [ARGS...]     run a Python script traced; print the report at exit
    agentsteps report TRACE.jsonl       render a saved run (text, --json or --html)
    agentsteps budgets --store URL      list the shared budgets in a budget store

Exit codes: ``run`` passes the script's own exit code through; 2 means agentsteps itself
could not do what was asked (a missing file, a file that is not a trace, bad options).
"""

from __future__ import annotations

import argparse
import importlib
import os
import runpy
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.trace import Status, StatusCode

from .._core import attributes as A
from .._core.locks import new_lock
from .._core.records import Run, run
from .._metrics.setup import MetricsHandle, configure_metrics, metrics_exporter_from_env
from .._tracing.jsonl import span_to_dict
from .._tracing.setup import configure_tracing
from .._version import __version__
from . import render as _render
from .budgets_cli import add_parser as _add_budgets_parser
from .budgets_cli import run_budgets as _run_budgets
from .formats import safe_text
from .html import render_html
from .render import CLI_RUNNING
from .tree import (
    KIND_PERSONA,
    KIND_RUN,
    KIND_STEP,
    InvalidTraceError,
    RunReport,
    SpanSink,
)

__all__ = ["main"]

DEFAULT_TRACE_PATH = "agentsteps-trace.jsonl"
"""Where ``agentsteps run`` appends spans unless ``--trace`` or the environment says else."""

EXIT_USAGE = 2
"""Exit code when agentsteps itself cannot do what was asked (the argparse convention)."""

RUN_SCRIPT = "agentsteps.run.script"
RUN_ARGS = "agentsteps.run.args"
RUN_EXIT_CODE = "agentsteps.run.exit_code"
RUN_STATUS = "agentsteps.run.status"

_EXPORTERS = ("jsonl", "otlp", "console", "none")

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


class _CollectSpans(SpanProcessor):
    """
    Feed every finished span to the report as it ends: folded at once, so a loop of any
    length costs the report the memory of one iteration, not of every span.
    """

    def __init__(self, *, fold: bool, top: int, attributes: bool) -> None:
        self._lock = new_lock()  # re-entrant, fork-safe: see _core/locks.py
        self.sink = SpanSink(fold=fold, top=top, attributes=attributes)
        self.count = 0
        self.last_trace_id: str | None = None

    def on_end(self, span: ReadableSpan) -> None:
        with self._lock:
            try:
                data = span_to_dict(span)
                self.sink.add(data)
            except Exception as exc:  # the report must never break the traced script
                self.sink.warnings.add(None, f"span {span.name!r} left out: {exc!r}")
                return
            self.count += 1
            self.last_trace_id = data.get("trace_id")


class _Fail(Exception):
    """An error agentsteps reports itself, as ``agentsteps <command>: <message>``, exit 2."""


def _parser() -> argparse.ArgumentParser:
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
        choices=_EXPORTERS,
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


def main(argv: Sequence[str] | None = None) -> int:
    """
    Run the ``agentsteps`` command line (the console script and ``python -m agentsteps``).

    Args:
        argv: The arguments, without the program name (default: ``sys.argv[1:]``).

    Returns:
        The exit code: the script's for ``run``; 0 for a rendered report; 2 for an error of
        agentsteps' own (missing file, not a trace, bad options).
    """
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        if args.command == "run":
            return _run(args)
        if args.command == "budgets":
            return _run_budgets(args, sys.stdout, _Fail)
        return _report(args)
    except _Fail as exc:
        print(f"agentsteps {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


def _exporter_from_env() -> str:
    """The exporter the standard OpenTelemetry variables ask for (jsonl when they don't)."""
    chosen = os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    for name in (n.strip() for n in chosen.split(",")):
        if name in _EXPORTERS:
            return name
    if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get(
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
    ):
        return "otlp"
    return "jsonl"


def _configure_metrics(resource: Resource) -> MetricsHandle | None:
    """Metrics where the standard variables ask for them (none unless they do)."""
    exporter = metrics_exporter_from_env()
    if exporter is None:
        return None
    return configure_metrics(exporter, resource=resource)  # type: ignore[arg-type]


def _install_global(provider: TracerProvider) -> None:
    """Make ``provider`` the global one if nothing was, so instrumented libraries use it."""
    if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        trace.set_tracer_provider(provider)


def _resource(default_service: str) -> Resource:
    """The run's resource: the standard variables, with the script's name as a fallback.

    ``OTEL_SERVICE_NAME`` (or ``service.name`` in ``OTEL_RESOURCE_ATTRIBUTES``) must win
    over the script's name, which is only a better default than the SDK's own
    ``unknown_service``: passing it to ``Resource.create`` would override the variables.
    """
    resource = Resource.create()
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: default_service}))
    return resource


def _run(args: argparse.Namespace) -> int:
    target = args.script
    if not args.module and not Path(target).is_file():
        what = "a directory, not a Python file" if Path(target).is_dir() else "no such file"
        msg = f"cannot run {target!r}: {what}"
        raise _Fail(msg)
    exporter = args.exporter or _exporter_from_env()
    trace_path = args.trace or DEFAULT_TRACE_PATH
    name = target if args.module else Path(target).name
    service = target if args.module else Path(target).stem
    provider = TracerProvider(resource=_resource(service))
    try:
        handle = configure_tracing(
            exporter=exporter,  # type: ignore[arg-type]
            tracer_provider=provider,
            jsonl_path=trace_path,
        )
    except (ValueError, OSError, ModuleNotFoundError, RuntimeError) as exc:
        msg = f"cannot set up tracing: {exc}"
        raise _Fail(msg) from None
    try:
        metrics_handle = _configure_metrics(provider.resource)
    except (ValueError, OSError, ModuleNotFoundError) as exc:
        handle.shutdown()
        msg = f"cannot set up metrics: {exc}"
        raise _Fail(msg) from None
    collector = _CollectSpans(fold=not args.expand, top=args.top, attributes=args.html is not None)
    if handle.enabled:
        provider.add_span_processor(collector)
        _install_global(provider)
    # The root span makes the whole script one trace: one tree, one waterfall.
    # OpenInference's CHAIN kind: without one, Phoenix shows "unknown" atop every trace.
    span = provider.get_tracer("agentsteps.cli", __version__).start_span(
        f"agentsteps run {name}",
        kind=trace.SpanKind.INTERNAL,
        attributes={
            A.KIND: KIND_RUN,
            A.OPENINFERENCE_SPAN_KIND: A.OPENINFERENCE_KIND_CHAIN,
            RUN_SCRIPT: target,
            RUN_ARGS: list(args.args),
        },
    )
    CLI_RUNNING.set()
    code = 1
    try:
        with trace.use_span(span, end_on_exit=False), run() as records:
            code = _exec(target, list(args.args), module=args.module)
    finally:
        CLI_RUNNING.clear()
        span.set_attribute(RUN_EXIT_CODE, code)
        span.set_attribute(RUN_STATUS, "completed" if code == 0 else "failed")
        if code != 0:
            span.set_status(Status(StatusCode.ERROR, f"exit code {code}"))
        span.end()
        handle.shutdown()
        provider.shutdown()
        if metrics_handle is not None:
            metrics_handle.shutdown()  # the last figures, exported with the spans
    dropped = handle.dropped_spans
    if dropped:
        # The exporter's guard logged the cause; say plainly that the trace is incomplete
        # rather than report it saved.
        print(
            f"agentsteps run: error: {dropped} span(s) could not be written to "
            f"{handle.destination}; the trace there is incomplete",
            file=sys.stderr,
        )
    if not args.no_report:
        report = _report_of(collector, records, args)
        for warning in report.warnings:
            print(f"agentsteps run: warning: {safe_text(warning)}", file=sys.stderr)
        _emit(report, args, title=f"agentsteps run {target}")
        trace_id = collector.last_trace_id
        if not dropped and handle.destination and exporter == "jsonl" and collector.count:
            print(
                f"trace {trace_id} appended to {handle.destination}; draw it with "
                f"`agentsteps report {handle.destination} --last --html run.html`",
                file=sys.stderr,
            )
        elif not dropped and exporter == "otlp" and collector.count:
            print(f"trace {trace_id} sent over OTLP to {handle.destination}", file=sys.stderr)
    return code


def _report_of(collector: _CollectSpans, records: Run, args: argparse.Namespace) -> RunReport:
    report = collector.sink.report() if collector.count else None
    if report is None or (
        not report.count(KIND_STEP) and not report.count(KIND_PERSONA) and records.steps
    ):
        # No spans of the script's steps reached us: tracing is off (OTEL_SDK_DISABLED),
        # or the script sent them elsewhere (agentsteps.configure). The records collected
        # in-process carry the same figures.
        return RunReport.from_run(records, fold=not args.expand, top=args.top)
    return report


def _exec(target: str, argv: list[str], *, module: bool) -> int:
    """Run the script as ``__main__``; return its exit code, printing its traceback."""
    saved_argv, saved_path = sys.argv[:], sys.path[:]
    sys.argv = [target, *argv]
    sys.path.insert(0, os.getcwd() if module else str(Path(target).resolve().parent))
    try:
        if module:
            importlib.invalidate_caches()  # a module written since the last import scan
            runpy.run_module(target, run_name="__main__", alter_sys=True)
        else:
            runpy.run_path(target, run_name="__main__")
    except SystemExit as exc:
        return _exit_code(exc.code)
    except KeyboardInterrupt:
        print("KeyboardInterrupt", file=sys.stderr)
        return 130
    except BaseException as exc:
        _print_script_traceback(exc)
        return 1
    finally:
        sys.argv, sys.path[:] = saved_argv, saved_path
    return 0


def _exit_code(code: object) -> int:
    """What the interpreter would exit with for ``sys.exit(code)``."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF if code >= 0 else code % 256
    print(code, file=sys.stderr)
    return 1


def _print_script_traceback(exc: BaseException) -> None:
    # Show the traceback from the script's own frames on, as `python script.py` would,
    # without the runpy and agentsteps frames that ran it.
    tb = exc.__traceback__
    ours = {str(Path(__file__).resolve()), str(Path(runpy.__file__).resolve())}
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if filename not in ours and not filename.startswith("<frozen runpy"):
            break
        tb = tb.tb_next
    traceback.print_exception(type(exc), exc, tb, file=sys.stderr)


def _report(args: argparse.Namespace) -> int:
    path = args.trace_file
    if not Path(path).exists():
        msg = f"no such file: {path!r}"
        raise _Fail(msg)
    if Path(path).is_dir():
        msg = f"{path!r} is a directory, not a JSONL trace file"
        raise _Fail(msg)
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
        raise _Fail(str(exc)) from None
    except OSError as exc:
        msg = f"cannot read {path!r}: {exc.strerror or exc}"
        raise _Fail(msg) from None
    except (MemoryError, RecursionError):
        raise
    except Exception as exc:  # never a traceback for a damaged file: say what and where
        msg = f"cannot read {path!r}: {type(exc).__name__}: {exc} (please report this bug)"
        raise _Fail(msg) from None
    if args.trace_id is not None and not report.span_roots:
        msg = f"no trace in {path!r} has an id starting with {args.trace_id!r}"
        raise _Fail(msg)
    for warning in report.warnings:
        print(f"agentsteps report: warning: {safe_text(warning)}", file=sys.stderr)
    _emit(report, args, title=f"agentsteps report {Path(path).name}")
    return 0


_MANY_ROWS = 50_000
"""Above this many rows an HTML page gets slow to open: say so."""


def _emit(report: RunReport, args: argparse.Namespace, *, title: str) -> None:
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
            raise _Fail(msg) from None
    out: IO[str]
    if args.output:
        try:
            out = open(args.output, "w", encoding="utf-8")  # noqa: SIM115 - closed below
        except OSError as exc:
            msg = f"cannot write {args.output!r}: {exc.strerror or exc}"
            raise _Fail(msg) from None
    else:
        out = sys.stdout if args.command == "report" else sys.stderr
    color = {"always": True, "never": False}.get(args.color)
    try:
        _render.write_report(report, out, as_json=args.json, color=color)
    finally:
        if args.output:
            out.close()
    if args.html:
        print(f"wrote {args.html}", file=sys.stderr)
