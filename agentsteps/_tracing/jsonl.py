"""A span exporter that appends one JSON object per finished span to a file (JSON Lines)."""

from __future__ import annotations

import errno
import json
import math
import os
import stat
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import format_span_id, format_trace_id

from .._core.locks import new_lock

if sys.platform != "win32":
    import fcntl

    def _lock_file(fd: int) -> bool:
        """Take the advisory lock; False where the file system does not support it."""
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:
            return False
        return True

    def _unlock_file(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)

else:  # pragma: no cover - exercised only on Windows
    # Without flock, appends stay whole (O_APPEND); only the partial-line repair can then
    # mistake another process's line in progress for a crashed one and add a blank line.
    def _lock_file(fd: int) -> bool:
        return False

    def _unlock_file(fd: int) -> None:
        pass


__all__ = ["FORMAT_VERSION", "JsonlSpanExporter", "span_to_dict"]

FORMAT_VERSION = 1
"""Version of the line format written by `JsonlSpanExporter`, stored in each line as ``"v"``.

It changes only when a field is removed or changes meaning; new fields may appear at any time,
so readers must ignore keys they do not know. See docs/jsonl-format.md.
"""

# JSON has no NaN or infinities; these spellings keep such a float readable instead of
# writing the invalid tokens Python's json module would emit by default.
_NON_FINITE = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}


def _json_value(value: Any) -> Any:
    """Return an attribute value as a JSON-ready value (bool, int, float, str or a list of them)."""
    if isinstance(value, float) and not math.isfinite(value):
        return _NON_FINITE[repr(value)]
    if isinstance(value, (list, tuple)):
        return [_json_value(item) for item in value]
    return value


def _json_attributes(attributes: Mapping[str, Any] | None) -> dict[str, Any]:
    """Return span, event or resource attributes as a plain dict of JSON-ready values."""
    if not attributes:
        return {}
    return {key: _json_value(value) for key, value in attributes.items()}


def span_to_dict(span: ReadableSpan) -> dict[str, Any]:
    """Convert a finished span to the dict that `JsonlSpanExporter` writes as one line.

    The layout is described field by field in docs/jsonl-format.md.

    Args:
        span: A finished span, as handed to a span exporter.

    Returns:
        A dict of JSON-ready values: ids are lowercase hex strings, times are integer
        nanoseconds since the Unix epoch, attribute values keep their JSON types.

    .. versionadded:: 0.1.0
    """
    context = span.get_span_context()
    parent = span.parent
    scope = span.instrumentation_scope
    return {
        "v": FORMAT_VERSION,
        "name": span.name,
        "kind": span.kind.name,
        "trace_id": format_trace_id(context.trace_id) if context else None,
        "span_id": format_span_id(context.span_id) if context else None,
        "parent_span_id": format_span_id(parent.span_id) if parent else None,
        "start_time_unix_nano": span.start_time,
        "end_time_unix_nano": span.end_time,
        "status": {
            "code": span.status.status_code.name,
            "description": span.status.description,
        },
        "attributes": _json_attributes(span.attributes),
        "events": [
            {
                "name": event.name,
                "time_unix_nano": event.timestamp,
                "attributes": _json_attributes(event.attributes),
            }
            for event in span.events
        ],
        "links": [
            {
                "trace_id": format_trace_id(link.context.trace_id),
                "span_id": format_span_id(link.context.span_id),
                "attributes": _json_attributes(link.attributes),
            }
            for link in span.links
        ],
        "resource": _json_attributes(span.resource.attributes),
        "scope": {"name": scope.name, "version": scope.version} if scope else None,
    }


_FILE_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
)


_REGULAR = "JsonlSpanExporter: 'path' must be a regular file"


def _open_trace_file(path: Path) -> int:
    """
    Open ``path`` for appending, refusing symbolic links and anything but a regular file.

    The default trace file is in the current directory, which may be shared: a link
    planted there would make agentsteps append to any file the user can write, so the
    last component is never followed (``O_NOFOLLOW``). A device, FIFO or socket is
    refused too: writes there fail or block (``/dev/full``), or go nowhere, while the
    run would report the trace as saved. ``O_NONBLOCK`` keeps a FIFO from blocking the
    open itself; it changes nothing for a regular file.
    """
    flags = os.O_RDWR | os.O_APPEND | os.O_CREAT
    for name in ("O_NOFOLLOW", "O_NONBLOCK", "O_CLOEXEC"):
        flags |= getattr(os, name, 0)
    fix = "give the path of a regular file (it is created if missing)"
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as exc:
        if path.is_symlink():
            msg = (
                f"JsonlSpanExporter: 'path' must not be a symbolic link, so that a link "
                f"planted where the trace goes cannot redirect it (got {str(path)!r}, a link "
                f"to {os.readlink(path)!r}); {fix}"
            )
            raise OSError(msg) from None
        if exc.errno == getattr(errno, "ENXIO", None):  # a FIFO that no process reads
            msg = f"{_REGULAR} (got {str(path)!r}, a FIFO); {fix}"
            raise OSError(msg) from None
        raise
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = next((k for test, k in _FILE_KINDS if test(mode)), "not a regular file")
            msg = f"{_REGULAR} (got {str(path)!r}, {kind}); {fix}"
            raise OSError(msg)
    except BaseException:
        os.close(fd)
        raise
    return fd


class JsonlSpanExporter(SpanExporter):
    """Append finished spans to a JSON Lines file, one JSON object per span and per line.

    The file is opened in append mode and never truncated, so several runs, or several
    processes, can share one file: each line is written with a single ``write()`` on a file
    opened with ``O_APPEND``, which the operating system appends whole. If the file ends with
    a partial line (a writer that crashed mid-line), a newline is added first so the next
    line stays readable; readers should skip a line that is not valid JSON. On POSIX systems
    writers hold an advisory ``flock`` while they write, so that check never mistakes another
    writer's line in progress for a crashed one.

    A write that fails part-way (a full disk) leaves a partial line; it is ended with a
    newline before the next line is written, so only the span being written is lost.

    Writes are unbuffered, so a line is in the file as soon as `export` returns;
    `force_flush` and `shutdown` also ask the OS to put it on disk.

    Args:
        path: The file to append to. Missing parent directories are created. It must be
            a regular file, and not a symbolic link (a link planted where the trace goes
            could otherwise redirect it).

    Raises:
        OSError: If the file cannot be opened for appending, is a symbolic link, or is
            not a regular file (a directory, device, FIFO or socket).

    .. versionadded:: 0.1.0
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        """The file spans are appended to."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = new_lock()  # re-entrant, fork-safe: see _core/locks.py
        self._fd: int | None = _open_trace_file(self.path)
        self._needs_newline_check = True

    def _write(self, fd: int, data: bytes) -> None:
        """Write all of data; a regular file normally takes it in one call."""
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]

    def _repair_partial_line(self, fd: int) -> None:
        """Start on a fresh line if the file ends in the middle of one."""
        size = os.fstat(fd).st_size
        # Read through our own descriptor, not the path: the path may have been replaced.
        if size and os.pread(fd, 1, size - 1) != b"\n":
            self._write(fd, b"\n")
        self._needs_newline_check = False  # only once the repair is written

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Append one line per span.

        Args:
            spans: Finished spans.

        Returns:
            ``SUCCESS``, or ``FAILURE`` after `shutdown` or when the file cannot be written.
        """
        try:
            lines = [
                json.dumps(span_to_dict(span), ensure_ascii=False, separators=(",", ":")) + "\n"
                for span in spans
            ]
        except (TypeError, ValueError):
            # Only a span built outside the SDK's attribute rules can get here; dropping the
            # batch is reported by the caller, raising would reach the traced program.
            return SpanExportResult.FAILURE
        with self._lock:
            if self._fd is None:
                return SpanExportResult.FAILURE
            try:
                # The advisory lock is held by every agentsteps writer while it writes, so
                # the partial-line check below never sees another process's line half
                # written (a large write grows the file in steps) and "repairs" it.
                # Some network and FUSE file systems refuse flock: write unlocked there,
                # as on Windows, rather than fail every export.
                locked = _lock_file(self._fd)
                try:
                    if self._needs_newline_check:
                        self._repair_partial_line(self._fd)
                    for line in lines:
                        # One write per line: O_APPEND makes each write land whole at the
                        # end, even when a writer that does not lock appends too.
                        self._write(self._fd, line.encode("utf-8"))
                finally:
                    if locked:
                        _unlock_file(self._fd)
            except OSError:
                # A write that failed part-way (a full disk) left a partial line: repair
                # it before the next line, or that line is glued onto it and lost too.
                self._needs_newline_check = True
                return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Ask the OS to put the written lines on disk.

        Args:
            timeout_millis: Ignored: the lines are already written.

        Returns:
            True unless the exporter is shut down or the sync failed.
        """
        with self._lock:
            if self._fd is None:
                return False
            try:
                os.fsync(self._fd)
            except OSError:
                return False
        return True

    def shutdown(self) -> None:
        """Sync and close the file; later exports fail. Calling it again does nothing."""
        with self._lock:
            fd, self._fd = self._fd, None
            if fd is None:
                return
            try:
                os.fsync(fd)
            except OSError:
                pass  # Nothing left to save; closing still releases the descriptor.
            finally:
                os.close(fd)


# Public names report the package, so tracebacks and reprs show agentsteps.JsonlSpanExporter.
