"""Keep a failing span exporter from affecting the traced program: count, warn once, exit fast."""

from __future__ import annotations

import contextvars
import logging
import threading
from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from .._core.locks import new_lock

__all__ = ["GuardedExporter", "quiet_exporter_loggers"]

logger = logging.getLogger("agentsteps.export")

# The guard whose export call is running in this thread, if any. The OpenTelemetry exporters
# log every retry and failure themselves; while a guard is exporting, their records are
# collected as the reason for the one warning the guard emits instead of being printed.
_exporting: contextvars.ContextVar[GuardedExporter | None] = contextvars.ContextVar(
    "agentsteps.export.exporting", default=None
)

# Loggers of the OTLP exporters (opentelemetry.exporter.otlp.proto.http.trace_exporter,
# opentelemetry.exporter.otlp.common.http, opentelemetry.exporter.otlp.proto.grpc.exporter, ...).
_EXPORTER_LOGGER_PREFIX = "opentelemetry.exporter.otlp"


class _CollectWhileGuarded(logging.Filter):
    """Divert records logged during a guarded export to the guard; let all others through."""

    def filter(self, record: logging.LogRecord) -> bool:
        guard = _exporting.get()
        if guard is None:
            return True
        guard.note_log(record)
        return False


_filter = _CollectWhileGuarded()


def quiet_exporter_loggers() -> None:
    """Attach the collecting filter to every OTLP exporter logger created so far.

    A logger's filters apply only to records logged on that very logger, so the filter goes
    on each one; call this after importing the exporter modules. Adding it twice is harmless.
    """
    manager = logging.Logger.manager
    for name, candidate in list(manager.loggerDict.items()):
        if name.startswith(_EXPORTER_LOGGER_PREFIX) and isinstance(candidate, logging.Logger):
            candidate.addFilter(_filter)


class GuardedExporter(SpanExporter):
    """Wrap a span exporter so that its failures never reach the program being traced.

    - An export that fails (a FAILURE result or an exception) drops its spans: they are
      counted in `dropped_spans`, and the first drop logs one WARNING on the
      ``agentsteps.export`` logger that names the destination and the reason. Later drops
      are logged at DEBUG only.
    - Once `begin_closing` was called (at shutdown, or at exit), the first failed export
      makes every later one fail at once without touching the network. A dead endpoint
      then costs at most one export timeout at exit, however many batches were queued.

    Args:
        inner: The exporter that does the work.
        destination: Where spans go, for messages (a URL, a file path, ``"stdout"``).

    .. versionadded:: 0.1.0
    """

    def __init__(self, inner: SpanExporter, destination: str) -> None:
        self.inner = inner
        """The wrapped exporter."""
        self.destination = destination
        """Where the wrapped exporter sends spans, as shown in messages."""
        self._lock = new_lock()  # re-entrant, fork-safe: see _core/locks.py
        self._dropped = 0
        self._handed = 0
        self._warned = False
        self._closing = False
        self._gave_up = False
        self._reason_by_thread: dict[int, str] = {}

    @property
    def dropped_spans(self) -> int:
        """How many spans could not be exported so far."""
        with self._lock:
            return self._dropped

    @property
    def handed_spans(self) -> int:
        """How many spans the processor handed to `export` so far, exported or not."""
        with self._lock:
            return self._handed

    def begin_closing(self) -> None:
        """Enter the closing phase: after the next failure, drop remaining batches at once."""
        with self._lock:
            self._closing = True

    def note_log(self, record: logging.LogRecord) -> None:
        """Keep the first warning or error the inner exporter logs during an export."""
        if record.levelno < logging.WARNING:
            return
        ident = threading.get_ident()
        with self._lock:
            self._reason_by_thread.setdefault(ident, record.getMessage())

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Export through the inner exporter, turning any failure into a counted drop.

        Args:
            spans: Finished spans.

        Returns:
            The inner exporter's result, or FAILURE if it raised or the guard gave up.
        """
        with self._lock:
            gave_up = self._gave_up
            self._handed += len(spans)
        if gave_up:
            self._drop(len(spans), "an earlier export failed while shutting down")
            return SpanExportResult.FAILURE
        ident = threading.get_ident()
        token = _exporting.set(self)
        reason = "the exporter reported a failure"
        try:
            result = self.inner.export(spans)
        except Exception as exc:
            # Never let an exporter bug reach the processor thread or the program.
            result = SpanExportResult.FAILURE
            reason = f"{type(exc).__name__}: {exc}"
        finally:
            _exporting.reset(token)
            with self._lock:
                reason = self._reason_by_thread.pop(ident, reason).rstrip(". ")
        if result is not SpanExportResult.SUCCESS:
            with self._lock:
                if self._closing:
                    self._gave_up = True
            self._drop(len(spans), reason)
        return result

    def _drop(self, count: int, reason: str) -> None:
        """Count dropped spans; warn about the first drop only."""
        with self._lock:
            self._dropped += count
            first, self._warned = not self._warned, True
        if first:
            logger.warning(
                "agentsteps dropped %d span(s): export to %s failed: %s. The program is not "
                "affected; later drops are counted in TracingHandle.dropped_spans and "
                "logged at DEBUG level only.",
                count,
                self.destination,
                reason,
            )
        else:
            logger.debug(
                "agentsteps dropped %d more span(s) for %s: %s", count, self.destination, reason
            )

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Flush the inner exporter.

        Args:
            timeout_millis: Passed on to the inner exporter.

        Returns:
            The inner exporter's answer, or False if it raised.
        """
        try:
            return self.inner.force_flush(timeout_millis)
        except Exception:
            logger.debug("force_flush of %s failed", self.destination, exc_info=True)
            return False

    def shutdown(self) -> None:
        """Shut the inner exporter down; an exception from it is logged at DEBUG and dropped."""
        self.begin_closing()
        token = _exporting.set(self)
        try:
            self.inner.shutdown()
        except Exception:
            logger.debug("shutdown of %s failed", self.destination, exc_info=True)
        finally:
            _exporting.reset(token)
            with self._lock:
                self._reason_by_thread.pop(threading.get_ident(), None)
