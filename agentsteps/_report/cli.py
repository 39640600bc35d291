"""
The ``agentsteps`` command: run a script with tracing and print its report, or render a
saved trace.

    agentsteps run SCRIPT [ARGS...]     run a Python script traced; print the report at exit
    agentsteps report TRACE.jsonl       render a saved run (text, --json or --html)
    agentsteps budgets --store URL      list the shared budgets in a budget store

Exit codes: ``run`` passes the script's own exit code through; 2 means agentsteps itself
could not do what was asked (a missing file, a file that is not a trace, bad options).

Here: `main` and the ``run`` command. The options are in `_report/cli_args.py`, the
``report`` command in `_report/report_cli.py`, ``budgets`` in `_report/budgets_cli.py`.
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
from .budgets_cli import run_budgets as _run_budgets
from .cli_args import DEFAULT_TRACE_PATH, EXIT_USAGE, EXPORTERS, CommandFailed, build_parser
from .formats import safe_text
from .render import CLI_RUNNING
from .report_cli import emit, run_report
from .tree import KIND_PERSONA, KIND_RUN, KIND_STEP, RunReport, SpanSink

__all__ = ["main"]

RUN_SCRIPT = "agentsteps.run.script"
RUN_ARGS = "agentsteps.run.args"
RUN_EXIT_CODE = "agentsteps.run.exit_code"
RUN_STATUS = "agentsteps.run.status"


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


def main(argv: Sequence[str] | None = None) -> int:
    """
    Run the ``agentsteps`` command line (the console script and ``python -m agentsteps``).

    Args:
        argv: The arguments, without the program name (default: ``sys.argv[1:]``).

    Returns:
        The exit code: the script's for ``run``; 0 for a rendered report; 2 for an error of
        agentsteps' own (missing file, not a trace, bad options).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        if args.command == "run":
            return _run(args)
        if args.command == "budgets":
            return _run_budgets(args, sys.stdout, CommandFailed)
        return run_report(args)
    except CommandFailed as exc:
        print(f"agentsteps {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


def _exporter_from_env() -> str:
    """The exporter the standard OpenTelemetry variables ask for (jsonl when they don't)."""
    chosen = os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    for name in (n.strip() for n in chosen.split(",")):
        if name in EXPORTERS:
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
        raise CommandFailed(msg)
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
        raise CommandFailed(msg) from None
    try:
        metrics_handle = _configure_metrics(provider.resource)
    except (ValueError, OSError, ModuleNotFoundError) as exc:
        handle.shutdown()
        msg = f"cannot set up metrics: {exc}"
        raise CommandFailed(msg) from None
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
        emit(report, args, title=f"agentsteps run {target}")
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
