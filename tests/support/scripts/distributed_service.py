"""
A tool service for ``tests/distributed/test_two_processes.py``, run in its own process.

``python tests/support/scripts/distributed_service.py SPANS.jsonl [--otlp]`` serves
``POST /summarize`` on 127.0.0.1 (a free port, printed on the first line of stdout) and writes
every span it finishes to ``SPANS.jsonl``; with ``--otlp`` it also sends them over OTLP where
the standard ``OTEL_EXPORTER_OTLP_*`` variables say (``tests/tracing/test_jaeger.py``), flushed
before each response so the caller finds them in the backend once it has its answer. Each
request runs inside `agentsteps.remote_parent`, spends what the JSON body asks for in a step
``tool.summarize`` and reports its usage back in the ``agentsteps-usage`` response header.
A request whose carried budget is spent, or runs out, gets HTTP 402.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import format_span_id, format_trace_id

import agentsteps

# Set by --otlp: the OTLP export, flushed after each request.
OTLP: agentsteps.TracingHandle | None = None


class JsonLinesExporter(SpanExporter):
    """Append one JSON object per finished span to a file, flushed at once.

    Test-local stand-in for the library's JSONL exporter (branch ``export``): both
    processes of the test write spans with it and the test reads them back.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = [json.dumps(span_line(span)) + "\n" for span in spans]
        with self._lock, self._path.open("a", encoding="utf-8") as out:
            out.writelines(lines)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        """Nothing is buffered."""


def span_line(span: ReadableSpan) -> dict[str, Any]:
    """The fields of a finished span the test looks at."""
    assert span.context is not None
    return {
        "name": span.name,
        "trace_id": format_trace_id(span.context.trace_id),
        "span_id": format_span_id(span.context.span_id),
        "parent_span_id": None if span.parent is None else format_span_id(span.parent.span_id),
        "status": span.status.status_code.name,
        "attributes": dict(span.attributes or {}),
        "resource": dict(span.resource.attributes),
    }


def tracer_provider(service: str, spans_path: Path) -> TracerProvider:
    """A provider exporting every span of this process to ``spans_path`` at once."""
    resource = Resource.create({"service.name": service, "process.pid": os.getpid()})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(SimpleSpanProcessor(JsonLinesExporter(spans_path)))
    return provider


@agentsteps.step(name="tool.summarize", model="tool-model")
def summarize(request: dict[str, Any]) -> str:
    """The tool's work: spend what the request asks for, as one model call."""
    agentsteps.record_usage(
        input_tokens=request["input_tokens"],
        output_tokens=request["output_tokens"],
        cost_usd=request["cost_usd"],
    )
    return f"summary of {request['text']}"


class ToolHandler(BaseHTTPRequestHandler):
    """``POST /summarize``: the request runs within the caller's trace and budget."""

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        request = json.loads(self.rfile.read(length))
        scope = agentsteps.remote_parent(self.headers)
        try:
            with scope:
                status, payload = 200, {"summary": summarize(request)}
        except agentsteps.StepBudgetExhausted as exc:
            status, payload = 402, {"error": "budget_exhausted", "limit": exc.limit}
        if OTLP is not None:
            OTLP.force_flush()
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        # scope.usage: what the request spent, including before a budget ran out.
        for name, value in agentsteps.usage_headers(scope.usage).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Keep request logs out of the test output."""


def main(argv: list[str]) -> None:
    provider = tracer_provider("tool-service", Path(argv[1]))
    agentsteps.configure(tracer_provider=provider)
    if "--otlp" in argv[2:]:
        global OTLP
        OTLP = agentsteps.configure_tracing(tracer_provider=provider)
    server = HTTPServer(("127.0.0.1", 0), ToolHandler)
    print(server.server_address[1], flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
        provider.shutdown()


if __name__ == "__main__":
    main(sys.argv)
