"""The span exporter `configure_tracing` builds for an exporter name, behind its processor."""

from __future__ import annotations

import os
import sys

from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)

from .guard import GuardedExporter, quiet_exporter_loggers
from .handle import HandleProcessor
from .jsonl import JsonlSpanExporter
from .otlp_settings import missing_exporter, resolve_endpoint, resolve_protocol

__all__ = ["DEFAULT_JSONL_PATH", "build_processor"]

DEFAULT_JSONL_PATH = "agentsteps-spans.jsonl"
"""File that ``exporter="jsonl"`` appends to when no ``jsonl_path`` is given."""


def _otlp_exporter(endpoint: str, protocol: str, timeout: float | None) -> SpanExporter:
    """Build the OTLP exporter, or say which extra to install if it is missing."""
    try:
        if protocol == "grpc":
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
                OTLPSpanExporter as GrpcExporter,
            )
        else:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
                OTLPSpanExporter as HttpExporter,
            )
    except ImportError as exc:
        raise missing_exporter(exc, protocol) from exc
    quiet_exporter_loggers()
    if protocol == "grpc":
        return GrpcExporter(endpoint=endpoint, timeout=timeout)
    return HttpExporter(endpoint=endpoint, timeout=timeout)


def build_processor(
    exporter: str,
    *,
    endpoint: str | None,
    protocol: str | None,
    jsonl_path: str | os.PathLike[str] | None,
    export_timeout: float | None,
) -> tuple[HandleProcessor | None, GuardedExporter | None, str | None, str | None]:
    """Return (processor, guard, destination, protocol) for the chosen exporter."""
    if exporter == "none":
        return None, None, None, None
    inner: SpanExporter
    if exporter == "otlp":
        protocol = resolve_protocol(protocol, "traces")
        destination = resolve_endpoint(endpoint, protocol, "traces")
        inner = _otlp_exporter(destination, protocol, export_timeout)
    elif exporter == "jsonl":
        protocol = None
        jsonl = JsonlSpanExporter(DEFAULT_JSONL_PATH if jsonl_path is None else jsonl_path)
        destination, inner = str(jsonl.path), jsonl
    else:
        protocol, destination = None, "stdout"
        # Bound now, not at import, so a redirected sys.stdout is honoured.
        inner = ConsoleSpanExporter(out=sys.stdout)
    guard = GuardedExporter(inner, destination)
    # Network export runs on a background thread so a slow backend never slows the program;
    # local writes are cheap and, done at once, survive a crash.
    batch = exporter == "otlp"
    processor = BatchSpanProcessor(guard) if batch else SimpleSpanProcessor(guard)
    return HandleProcessor(processor), guard, destination, protocol
