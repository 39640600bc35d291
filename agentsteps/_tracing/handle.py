"""`TracingHandle`: what `configure_tracing` set up, and the processor wrapper it shuts down."""

from __future__ import annotations

import atexit
from types import TracebackType

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider

from .._core.locks import new_lock
from .guard import GuardedExporter

__all__ = ["HandleProcessor", "TracingHandle"]


class HandleProcessor(SpanProcessor):
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
        processor: HandleProcessor | None,
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


# Public names report the package, so tracebacks and reprs show agentsteps.TracingHandle.
