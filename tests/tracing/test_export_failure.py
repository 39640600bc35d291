"""Tests that a failing exporter never changes the traced program: results, exit, one warning."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import Sequence

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from agentsteps._tracing.guard import GuardedExporter
from tests.support import ROOT


class _FailingExporter(SpanExporter):
    """Fails every export (or raises), counting the calls it got."""

    def __init__(self, *, raise_error: bool = False) -> None:
        self.calls = 0
        self.raise_error = raise_error

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.calls += 1
        if self.raise_error:
            raise ConnectionError("backend went away")
        logging.getLogger("opentelemetry.exporter.otlp.fake").error("Failed: 503 from backend.")
        return SpanExportResult.FAILURE


def _spans(count: int) -> list[ReadableSpan]:
    """Make `count` finished spans."""
    provider = TracerProvider()
    tracer = provider.get_tracer("tests")
    spans = []
    for index in range(count):
        span = tracer.start_span(f"s{index}")
        span.end()
        spans.append(span)
    return spans  # type: ignore[return-value]


class TestGuardedExporter:
    def test_exception_becomes_a_counted_drop(self, caplog: pytest.LogCaptureFixture) -> None:
        """An exporter that raises is reported once with the exception as the reason."""
        guard = GuardedExporter(_FailingExporter(raise_error=True), "http://backend")
        with caplog.at_level(logging.DEBUG, logger="agentsteps.export"):
            assert guard.export(_spans(2)) is SpanExportResult.FAILURE
            assert guard.export(_spans(3)) is SpanExportResult.FAILURE
        assert guard.dropped_spans == 5
        assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
            (
                "WARNING",
                "agentsteps dropped 2 span(s): export to http://backend failed: ConnectionError: "
                "backend went away. The program is not affected; later drops are counted in "
                "TracingHandle.dropped_spans and logged at DEBUG level only.",
            ),
            (
                "DEBUG",
                "agentsteps dropped 3 more span(s) for http://backend: ConnectionError: "
                "backend went away",
            ),
        ]

    def test_exporter_log_is_the_reason(self, caplog: pytest.LogCaptureFixture) -> None:
        """The exporter's own error log becomes the reason instead of being printed."""
        from agentsteps._tracing.guard import quiet_exporter_loggers

        logging.getLogger("opentelemetry.exporter.otlp.fake")
        quiet_exporter_loggers()
        guard = GuardedExporter(_FailingExporter(), "http://backend")
        with caplog.at_level(logging.DEBUG):
            guard.export(_spans(1))
        assert [r.getMessage() for r in caplog.records] == [
            "agentsteps dropped 1 span(s): export to http://backend failed: Failed: 503 from "
            "backend. The program is not affected; later drops are counted in "
            "TracingHandle.dropped_spans and logged at DEBUG level only."
        ]

    def test_keeps_trying_while_running(self) -> None:
        """Before closing, every batch is tried: the backend may come back."""
        inner = _FailingExporter()
        guard = GuardedExporter(inner, "x")
        for _ in range(3):
            guard.export(_spans(1))
        assert inner.calls == 3

    def test_gives_up_after_one_failure_while_closing(self) -> None:
        """While closing, one failed export makes the rest drop at once: exit stays fast."""
        inner = _FailingExporter()
        guard = GuardedExporter(inner, "x")
        guard.begin_closing()
        for _ in range(4):
            assert guard.export(_spans(2)) is SpanExportResult.FAILURE
        assert inner.calls == 1
        assert guard.dropped_spans == 8


def _closed_port() -> int:
    """Return a loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


_PROGRAM = textwrap.dedent(
    """
    import sys
    from opentelemetry import trace
    from agentsteps._tracing.setup import configure_tracing

    handle = configure_tracing("down", protocol=sys.argv[2], export_timeout=1.0,
                               endpoint=f"http://127.0.0.1:{sys.argv[1]}")
    tracer = trace.get_tracer("program")
    total = 0
    # 2000 spans fill four batches: without the guard, exit would wait once per batch.
    for number in range(2000):
        with tracer.start_as_current_span("work"):
            total += number
    print("result", total)
    # No shutdown(): the handle flushes at interpreter exit.
    """
)


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_program_with_dead_endpoint_exits_normally(protocol: str) -> None:
    """A whole program against a dead endpoint: same output, exit 0, one warning line, no hang."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["PYTHONPATH"] = str(ROOT)
    # The timeout only catches a hang (several export timeouts); it is not a timing assertion.
    done = subprocess.run(
        [sys.executable, "-c", _PROGRAM, str(_closed_port()), protocol],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"result {sum(range(2000))}\n"
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("agentsteps dropped ")
    assert "The program is not affected" in lines[0]
