"""
Logging telemetry failures without flooding: once per cause, then a running count.

A span processor that raises fails for every span: a warning with a traceback each time
turned 6,000 steps into 126,000 lines of stderr and made the program several times
slower. A failure is logged with its traceback the first time its cause is seen (the
exception type and the line that raised it), then only as a count, at the 10th, 100th,
1,000th ... occurrence.
"""

from __future__ import annotations

import logging
import sys

from .locks import new_lock

__all__ = ["log_telemetry_failure", "reset_telemetry_log"]

logger = logging.getLogger("agentsteps")

_MAX_CAUSES = 1024  # beyond this many distinct causes, the rest share one count
_lock = new_lock()
_counts: dict[tuple[str, str, str, int], int] = {}


def log_telemetry_failure(action: str, subject: str, consequence: str = "") -> None:
    """
    Log the exception being handled (call it in the ``except`` block).

    ``action`` is what failed (``"start"``/``"end"``), ``subject`` what it failed for
    (``"the span of 'plan'"``), ``consequence`` what happens instead.
    """
    exc = sys.exc_info()[1]
    key = _cause(action, exc)
    with _lock:
        if key not in _counts and len(_counts) >= _MAX_CAUSES:
            key = (action, "other causes", "", 0)
        count = _counts[key] = _counts.get(key, 0) + 1
    if count == 1:
        logger.warning(
            "could not %s %s%s; later failures with the same cause (%s) are counted, not "
            "logged each time",
            action,
            subject,
            f"; {consequence}" if consequence else "",
            _describe(exc),
            exc_info=True,
        )
    elif _is_power_of_ten(count):
        logger.warning(
            "could not %s a span: %d failures so far with the same cause (%s)",
            action,
            count,
            _describe(exc),
        )


def reset_telemetry_log() -> None:
    """Forget the causes seen (`reset_defaults` calls it), so each is logged afresh."""
    with _lock:
        _counts.clear()


def _cause(action: str, exc: BaseException | None) -> tuple[str, str, str, int]:
    """The exception's type and the innermost line of its traceback: what raised it."""
    tb = None if exc is None else exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None:
        return (action, type(exc).__qualname__, "", 0)
    return (action, type(exc).__qualname__, tb.tb_frame.f_code.co_filename, tb.tb_lineno)


def _describe(exc: BaseException | None) -> str:
    try:
        text = str(exc)
    except Exception:  # an exception whose __str__ raises
        text = "?"
    name = type(exc).__name__
    return f"{name}: {text[:200]}" if text else name


def _is_power_of_ten(count: int) -> bool:
    while count % 10 == 0:
        count //= 10
    return count == 1
