"""`configure_tracing`: one call that sends an application's spans to OTLP, stdout or a file."""

from __future__ import annotations

import atexit
import logging
import os
import sys
from collections.abc import Mapping
from types import TracebackType
from typing import Literal

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.util.types import AttributeValue

from .._configure import configure
from .._core.locks import new_lock
from .guard import GuardedExporter, quiet_exporter_loggers
from .jsonl import JsonlSpanExporter
from .otlp_settings import PROTOCOLS, env, missing_exporter, resolve_endpoint, resolve_protocol

__all__ = ["DEFAULT_JSONL_PATH", "ExporterName", "Protocol", "TracingHandle", "configure_tracing"]

logger = logging.getLogger("agentsteps.export")

ExporterName = Literal["otlp", "console", "jsonl", "none"]
"""Where `configure_tracing` sends spans."""
Protocol = Literal["http/protobuf", "grpc"]
"""The OTLP transports `configure_tracing` supports."""

DEFAULT_JSONL_PATH = "agentsteps-spans.jsonl"
"""File that ``exporter="jsonl"`` appends to when no ``jsonl_path`` is given."""

_EXPORTERS: tuple[str, ...] = ("console", "jsonl", "none", "otlp")


def _sdk_disabled() -> bool:
    """Whether OTEL_SDK_DISABLED asks for no SDK at all (only "true", any case, counts)."""
    return (env("OTEL_SDK_DISABLED") or "").lower() == "true"


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


class _HandleProcessor(SpanProcessor):
    """Forward spans to the handle's processor until the handle shuts it down, then ignore them.

    A tracer provider cannot remove a processor, and the SDK processors log a warning for
    every span they get after shutdown; this wrapper keeps a shut-down handle silent.
    """

    def __init__(self, inner: SpanProcessor) -> None:
        self.inner = inner
        self.closed = False
        # Sampled spans handed to the processor: with what the exporter was handed, it
        # tells how many a batch processor dropped from its full queue (it only logs it).
        self.submitted = 0
        self._count_lock = new_lock()

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        if not self.closed:
            self.inner.on_start(span, parent_context=parent_context)

    def _on_ending(self, span: Span) -> None:
        if not self.closed:
            self.inner._on_ending(span)

    def on_end(self, span: ReadableSpan) -> None:
        if not self.closed:
            context = span.context
            if context is not None and context.trace_flags.sampled:
                with self._count_lock:  # spans end in many threads at once
                    self.submitted += 1
            self.inner.on_end(span)

    def shutdown(self) -> None:
        if not self.closed:
            self.closed = True
            self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.closed or self.inner.force_flush(timeout_millis)


class TracingHandle:
    """What `configure_tracing` set up; `shutdown` flushes and stops it.

    Use it as a context manager, or call `shutdown` before the program ends. If neither
    happens, `shutdown` runs at interpreter exit.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        *,
        exporter: str,
        destination: str | None,
        protocol: str | None,
        tracer_provider: TracerProvider | None,
        owns_provider: bool,
        installed_global: bool,
        guard: GuardedExporter | None,
        processor: _HandleProcessor | None,
    ) -> None:
        self.exporter = exporter
        """The exporter in use: ``"otlp"``, ``"console"``, ``"jsonl"`` or ``"none"``."""
        self.destination = destination
        """The OTLP URL, the JSONL file path, ``"stdout"``, or None."""
        self.protocol = protocol
        """``"http/protobuf"`` or ``"grpc"`` for OTLP, else None."""
        self.tracer_provider = tracer_provider
        """The SDK tracer provider spans go through; None when OTEL_SDK_DISABLED is true."""
        self.installed_global = installed_global
        """Whether this call installed `tracer_provider` as the global OpenTelemetry one."""
        self._owns_provider = owns_provider
        self._guard = guard
        self._processor = processor
        self._lock = new_lock()  # re-entrant, fork-safe: see _core/locks.py
        self._shut_down = False
        self._queue_dropped = 0
        if processor is not None:
            atexit.register(self.shutdown)

    @property
    def enabled(self) -> bool:
        """False when OTEL_SDK_DISABLED made `configure_tracing` set nothing up."""
        return self.tracer_provider is not None

    @property
    def dropped_spans(self) -> int:
        """
        How many spans were lost so far (0 for ``"none"``): those the exporter failed to
        deliver, and, once the handle is shut down, those the batch processor dropped
        because its queue was full (``OTEL_BSP_MAX_QUEUE_SIZE``).
        """
        if self._guard is None:
            return 0
        return self._guard.dropped_spans + self._queue_dropped

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Export the spans that have ended so far.

        Args:
            timeout_millis: Upper bound passed to the span processor.

        Returns:
            True if the processor reports success (also when there is nothing to flush).
        """
        if self._processor is None:
            return True
        return self._processor.force_flush(timeout_millis)

    def shutdown(self) -> None:
        """Flush the remaining spans and stop exporting. Calling it again does nothing.

        With the endpoint down this returns after at most about one export timeout. If
        `configure_tracing` created the tracer provider, the provider is shut down too;
        a provider it only added to is left running with its other processors.
        """
        with self._lock:
            if self._shut_down:
                return
            self._shut_down = True
        atexit.unregister(self.shutdown)
        if self._guard is not None:
            self._guard.begin_closing()
        if self._owns_provider and self.tracer_provider is not None:
            self.tracer_provider.shutdown()
        elif self._processor is not None:
            self._processor.shutdown()
        if self._processor is not None and self._guard is not None:
            # Quiet now: every span handed to the processor was exported, failed (counted
            # by the guard) or dropped by the processor itself: the difference.
            lost = self._processor.submitted - self._guard.handed_spans
            self._queue_dropped = max(0, lost)

    def __enter__(self) -> TracingHandle:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.shutdown()

    def __repr__(self) -> str:
        return (
            f"<TracingHandle exporter={self.exporter!r} destination={self.destination!r} "
            f"protocol={self.protocol!r} enabled={self.enabled}>"
        )


def _build_processor(
    exporter: str,
    *,
    endpoint: str | None,
    protocol: str | None,
    jsonl_path: str | os.PathLike[str] | None,
    export_timeout: float | None,
) -> tuple[_HandleProcessor | None, GuardedExporter | None, str | None, str | None]:
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
    return _HandleProcessor(processor), guard, destination, protocol


def _check_choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    """Raise ValueError naming the argument, the valid values and the value received."""
    if value not in choices:
        listed = ", ".join(repr(choice) for choice in choices)
        msg = f"{name} must be one of {listed} (got {value!r})"
        raise ValueError(msg)


def _check_arguments(
    service_name: object,
    endpoint: object,
    resource_attributes: object,
    jsonl_path: object,
    export_timeout: object,
) -> None:
    """Refuse arguments of the wrong kind up front, naming them (nothing is ignored)."""
    what = "configure_tracing()"
    for name, value in (("service_name", service_name), ("endpoint", endpoint)):
        if value is not None and not isinstance(value, str):
            got = f"{value!r} of type {type(value).__name__}"
            msg = f"{what}: {name!r} must be a str or None (got {got})"
            raise TypeError(msg)
        if isinstance(value, str) and not value.strip():
            msg = f"{what}: {name!r} must be a non-empty str or None (got {value!r})"
            raise ValueError(msg)
    if resource_attributes is not None and not isinstance(resource_attributes, Mapping):
        msg = (
            f"{what}: 'resource_attributes' must be a mapping of attribute names to values "
            f"or None (got {resource_attributes!r} of type {type(resource_attributes).__name__})"
        )
        raise TypeError(msg)
    if jsonl_path is not None and not isinstance(jsonl_path, (str, os.PathLike)):
        msg = (
            f"{what}: 'jsonl_path' must be a str or os.PathLike or None "
            f"(got {jsonl_path!r} of type {type(jsonl_path).__name__})"
        )
        raise TypeError(msg)
    if export_timeout is not None:
        if isinstance(export_timeout, bool) or not isinstance(export_timeout, (int, float)):
            msg = (
                f"{what}: 'export_timeout' must be a number of seconds or None "
                f"(got {export_timeout!r} of type {type(export_timeout).__name__})"
            )
            raise TypeError(msg)
        if not 0 < export_timeout < float("inf"):  # also refuses NaN
            msg = (
                f"{what}: 'export_timeout' must be > 0 seconds and finite (got {export_timeout!r})"
            )
            raise ValueError(msg)


def _existing_global_provider() -> trace.TracerProvider | None:
    """Return the global tracer provider if someone installed one, else None."""
    provider = trace.get_tracer_provider()
    return None if isinstance(provider, trace.ProxyTracerProvider) else provider


def configure_tracing(
    service_name: str | None = None,
    *,
    exporter: ExporterName = "otlp",
    endpoint: str | None = None,
    protocol: Protocol | None = None,
    tracer_provider: TracerProvider | None = None,
    resource_attributes: Mapping[str, AttributeValue] | None = None,
    jsonl_path: str | os.PathLike[str] | None = None,
    export_timeout: float | None = None,
) -> TracingHandle:
    """Set up the OpenTelemetry SDK so an application's spans reach a backend, stdout or a file.

    This is for applications, examples and scripts; the library itself never calls it and
    never configures the SDK on import. Explicit arguments win; the standard environment
    variables fill in whatever is left as None:

    - ``OTEL_SDK_DISABLED=true``: nothing is set up; the handle is inert (``enabled`` False).
    - ``OTEL_SERVICE_NAME`` and ``OTEL_RESOURCE_ATTRIBUTES``: the resource, under
      ``service_name`` and ``resource_attributes``.
    - ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` (used as is), then ``OTEL_EXPORTER_OTLP_ENDPOINT``
      (OTLP/HTTP appends ``/v1/traces``); default ``http://localhost:4318/v1/traces``, or
      ``http://localhost:4317`` for gRPC.
    - ``OTEL_EXPORTER_OTLP_TRACES_PROTOCOL``, then ``OTEL_EXPORTER_OTLP_PROTOCOL``; default
      ``http/protobuf``.
    - The OTLP exporters read headers, TLS settings, compression and
      ``OTEL_EXPORTER_OTLP[_TRACES]_TIMEOUT`` (seconds in Python) themselves.

    agentsteps creates its spans with the global provider unless
    ``agentsteps.configure(tracer_provider=...)`` chose another one.
    A global tracer provider installed earlier (by the application, another library or
    auto-instrumentation) is never replaced: the exporter is added to it as one more span
    processor, and its resource is kept, so ``service_name`` and ``resource_attributes`` are
    ignored with a warning. Otherwise a new SDK provider is created and installed globally.

    An export that fails never reaches the program: its spans are dropped and counted in
    `TracingHandle.dropped_spans`, and the first drop logs one warning on the
    ``agentsteps.export`` logger. At exit, a dead endpoint costs at most about one export
    timeout.

    Args:
        service_name: ``service.name`` of the resource.
        exporter: ``"otlp"`` (needs ``pip install 'agentsteps[otlp]'``), ``"console"``
            (stdout), ``"jsonl"`` (see docs/jsonl-format.md) or ``"none"`` (spans are made
            but not exported).
        endpoint: OTLP endpoint. For ``http/protobuf`` a URL without a path is a base URL and
            gets ``/v1/traces`` appended. For ``grpc`` use ``http://host:4317`` for plaintext.
        protocol: ``"http/protobuf"`` or ``"grpc"``.
        tracer_provider: Add the exporter to this SDK provider instead of the global one. It
            is not installed globally; agentsteps is told to use it (`configure`).
        resource_attributes: Extra resource attributes, e.g. ``{"deployment.environment":
            "dev"}`` or ``{"openinference.project.name": "demo"}`` for Phoenix.
        jsonl_path: File for ``exporter="jsonl"``, default `DEFAULT_JSONL_PATH` in the current
            directory.
        export_timeout: Seconds one OTLP export may take, retries included.

    Returns:
        A handle; its `TracingHandle.shutdown` flushes and stops the export.

    Raises:
        ValueError: For an unknown ``exporter`` or ``protocol`` (also when it comes from the
            environment), or ``service_name``/``resource_attributes`` together with
            ``tracer_provider``.
        ModuleNotFoundError: ``exporter="otlp"`` without the ``otlp`` extra installed.
        RuntimeError: The global tracer provider installed earlier cannot take a span
            processor (it is not an SDK provider).
        OSError: The JSONL file cannot be opened.

    .. versionadded:: 0.1.0
    """
    _check_choice("exporter", exporter, _EXPORTERS)
    if protocol is not None:
        _check_choice("protocol", protocol, PROTOCOLS)
    _check_arguments(service_name, endpoint, resource_attributes, jsonl_path, export_timeout)
    if tracer_provider is not None and (service_name is not None or resource_attributes):
        msg = (
            "service_name and resource_attributes apply only to a tracer provider that "
            "configure_tracing() creates; with tracer_provider=..., set them on the Resource "
            "you give that provider"
        )
        raise ValueError(msg)
    if _sdk_disabled():
        logger.debug("OTEL_SDK_DISABLED is true: configure_tracing() sets nothing up")
        return TracingHandle(
            exporter=exporter,
            destination=None,
            protocol=None,
            tracer_provider=None,
            owns_provider=False,
            installed_global=False,
            guard=None,
            processor=None,
        )

    target: TracerProvider
    owns_provider = installed_global = False
    if tracer_provider is not None:
        target = tracer_provider
        # A provider outside the global slot is invisible to agentsteps unless it is told.
        configure(tracer_provider=tracer_provider)
    else:
        existing = _existing_global_provider()
        if existing is None:
            attributes: dict[str, AttributeValue] = dict(resource_attributes or {})
            if service_name is not None:
                attributes[SERVICE_NAME] = service_name
            # Resource.create adds OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME under ours.
            target = TracerProvider(resource=Resource.create(attributes), shutdown_on_exit=False)
            owns_provider = True
        elif isinstance(existing, TracerProvider):
            target = existing
            if service_name is not None or resource_attributes:
                logger.warning(
                    "configure_tracing(): a global tracer provider was installed earlier; the "
                    "exporter is added to it and its resource (service.name=%r) is kept, so "
                    "service_name and resource_attributes are ignored",
                    existing.resource.attributes.get(SERVICE_NAME),
                )
        else:
            msg = (
                "configure_tracing() cannot add an exporter to the global tracer provider "
                f"installed earlier ({type(existing).__module__}.{type(existing).__qualname__}): "
                "it is not an OpenTelemetry SDK TracerProvider. Pass tracer_provider=... or "
                "add the exporter to that provider yourself."
            )
            raise RuntimeError(msg)

    processor, guard, destination, resolved_protocol = _build_processor(
        exporter,
        endpoint=endpoint,
        protocol=protocol,
        jsonl_path=jsonl_path,
        export_timeout=export_timeout,
    )
    if processor is not None:
        target.add_span_processor(processor)
    if owns_provider:
        trace.set_tracer_provider(target)
        installed_global = trace.get_tracer_provider() is target
    return TracingHandle(
        exporter=exporter,
        destination=destination,
        protocol=resolved_protocol,
        tracer_provider=target,
        owns_provider=owns_provider,
        installed_global=installed_global,
        guard=guard,
        processor=processor,
    )


# Public names report the package, so tracebacks and reprs show agentsteps.configure_tracing.
TracingHandle.__module__ = "agentsteps"
configure_tracing.__module__ = "agentsteps"
