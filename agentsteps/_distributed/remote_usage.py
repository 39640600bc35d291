"""
Usage back: what a remote callee spent, sent with its response and charged to the caller.

The callee sends `usage_headers` (one ``agentsteps-usage`` header) or a plain dict; the
caller passes either to `record_remote_usage`, which validates it and charges it through
the same path as `record_usage`, so the caller's budgets and exhaustion rules apply.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Mapping
from typing import Any

from .._accounting.budget import NANOS_PER_USD
from .._accounting.ledger import LEDGER_LOCK
from .._accounting.usage import ZERO_USAGE, Usage
from .._core import attributes as A
from .._core.context import CURRENT, ActiveStep
from .._core.context import _next_id as next_id
from .._core.recording import charge
from .._core.records import CompletedStep, StepStatus
from .propagation import MAX_COUNT, step_path
from .remote import RemoteDefinition

__all__ = ["USAGE_HEADER", "record_remote_usage", "usage_headers"]

logger = logging.getLogger("agentsteps")

USAGE_HEADER = "agentsteps-usage"
"""Name of the response header `usage_headers` writes."""

_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "llm_calls",
    "unpriced_calls",
    "cost_nano_usd",
)
_DICT_KEYS = frozenset({*_FIELDS, "cost_usd"})
_MAX_HEADER_LENGTH = 1024
_INTEGER = re.compile(r"-?[0-9]{1,19}")


def scope_usage() -> Usage:
    """Usage of the innermost `remote_parent` scope, else of the current step, else zero."""
    frame = CURRENT.get()
    f = frame
    while f is not None:
        if isinstance(f._defn, RemoteDefinition):
            break
        f = f._parent
    target = f if f is not None else (None if frame is None else frame._step)
    if target is None:
        return ZERO_USAGE
    with LEDGER_LOCK:
        return target._ledger.usage()


def usage_headers(usage: Usage | None = None) -> dict[str, str]:
    """
    The response header that reports what this request spent back to its caller.

    Without an argument: the usage of the innermost active `remote_parent` scope so far
    (outside one, of the current step; outside any step, zero). Call it inside the scope,
    after the work, or pass ``scope.usage`` (of a `remote_parent` that has ended) or any
    `Usage`. Usage recorded after the call is not included.

    The header is ``agentsteps-usage`` with ``;``-separated ``field=integer`` pairs
    (cost in whole nano-dollars, exact). `record_remote_usage` on the caller reads it.

    Args:
        usage: What to report, instead of the active scope's usage.

    Raises:
        TypeError: ``usage`` is not a `Usage`.

    Example:
        >>> from agentsteps import Usage, usage_headers
        >>> usage_headers(Usage(input_tokens=300, output_tokens=100, llm_calls=1,
        ...                     cost_nano_usd=1_500_000))["agentsteps-usage"]
        'input_tokens=300;output_tokens=100;cache_read_tokens=0;cache_write_tokens=0;reasoning_tokens=0;llm_calls=1;unpriced_calls=0;cost_nano_usd=1500000'

    .. versionadded:: 0.1.0
    """
    report = scope_usage() if usage is None else _check_usage(usage)
    return {USAGE_HEADER: ";".join(f"{f}={getattr(report, f)}" for f in _FIELDS)}


def _check_usage(usage: object) -> Usage:
    # Takes `object`: on the annotated parameter mypy would call the check unreachable.
    if not isinstance(usage, Usage):
        msg = (
            "usage_headers(): 'usage' must be a Usage or None "
            f"(got {usage!r} of type {type(usage).__name__})"
        )
        raise TypeError(msg)
    return usage


def record_remote_usage(usage: Mapping[str, Any] | Usage) -> Usage | None:
    """
    Charge what a remote callee reported spending to the active step and every step
    around it, so that their budgets see it.

    Accepts the callee's response headers (any mapping or ``items()`` object holding an
    ``agentsteps-usage`` header, name case-insensitive, as `usage_headers` writes), a
    dict with `Usage` field names (``input_tokens``, ``output_tokens``, ...,
    ``llm_calls``, and ``cost_nano_usd`` or ``cost_usd``; what ``Usage.to_dict()``
    gives), or a `Usage`.

    The report comes from another process, so it is validated: counts must be whole
    numbers >= 0 and consistent (cached tokens within input tokens, reasoning tokens
    within output tokens). An invalid report is not charged at all and logs one warning
    on the ``agentsteps`` logger. Headers without a usage report (the callee does not use
    agentsteps) are ignored silently.

    The usage counts like that of a nested step, because that is what the callee's
    `remote_parent` scope is (its span is a child of the calling step's): it is in the
    subtree figures of the calling step and of every step around it, so their budgets see
    it, but not in the calling step's own ("self") figures, since the callee's spans carry
    it as theirs and a sum over the distributed trace counts it once. A `run` collecting
    the caller receives a `CompletedStep` named ``remote:{step path}`` (the name of the
    callee's scope) holding the report, so `Run.total` includes it. An
    ``agentsteps.remote_usage`` event on the calling step's span records the report.
    Outside any step nothing is charged.

    Args:
        usage: The callee's response headers, a usage dict, or a `Usage`.

    Returns:
        The usage read (charged, when a step is active), or ``None`` when there was no
        valid report.

    Raises:
        StepBudgetExhausted: The remote usage took an active step over its budget (the
            usage is charged all the same), as `record_usage` does.
        TypeError: ``usage`` is neither a mapping nor a `Usage`.

    Example:
        >>> from agentsteps import Budget, current_step, record_remote_usage, step
        >>> @step(budget=Budget(max_tokens=1_000))
        ... def plan():
        ...     record_remote_usage({"agentsteps-usage": "input_tokens=300;output_tokens=100"})
        ...     return current_step().subtree_usage.total_tokens
        >>> plan()
        400

    .. versionadded:: 0.1.0
    """
    problems: list[str] = []
    if isinstance(usage, Usage):
        fields = {f: _check_count(f, getattr(usage, f), problems) for f in _FIELDS}
    else:
        items = getattr(usage, "items", None)
        if not callable(items):
            msg = (
                "record_remote_usage(): 'usage' must be the callee's response headers, a "
                f"usage dict or a Usage (got {usage!r} of type {type(usage).__name__})"
            )
            raise TypeError(msg)
        read = _read(list(items()), problems)
        if read is None:
            return None
        fields = read
    if not problems:
        _check_consistent(fields, problems)
    if problems:
        logger.warning(
            "agentsteps: ignored an invalid remote usage report (nothing charged): %s",
            "; ".join(problems),
        )
        return None
    report = Usage(**{f: fields.get(f, 0) for f in _FIELDS})
    frame = CURRENT.get()
    if frame is None or frame._step is None:
        return report
    caller = frame._step
    span = caller._span
    if span is not None and span.is_recording():
        event: dict[str, int | float] = {
            f"{A.EVENT_REMOTE_USAGE}.{f}": getattr(report, f) for f in _FIELDS[:-1]
        }
        event[f"{A.EVENT_REMOTE_USAGE}.cost_usd"] = report.cost_usd
        span.add_event(A.EVENT_REMOTE_USAGE, event)
    if caller._run is not None:
        # Delivered before charging: an exhaustion raised by the charge must not lose it.
        caller._run._add_step(_remote_record(caller, step_path(frame), report))
    charge(frame, report, None, remote=True)
    return report


def _remote_record(caller: ActiveStep, path: str, report: Usage) -> CompletedStep:
    """The callee's scope as the caller's run sees it: a finished child of ``caller``."""
    now = time.time()
    return CompletedStep(
        name=f"remote:{path}",
        function="record_remote_usage",
        persona=caller.persona,
        model=None,
        status=StepStatus.COMPLETED,
        error=None,
        start_time=now,
        end_time=now,
        usage=report,
        subtree_usage=report,
        budget=None,
        error_boundary="fail",
        step_id=next_id(),
        parent_id=caller._id,
        parent=caller.name,
        trace_id=caller.trace_id,
        # Its spans are the callee's, in the other process.
        span_id=None,
        parent_span_id=caller.span_id,
    )


def _read(items: list[tuple[Any, Any]], problems: list[str]) -> dict[str, int] | None:
    """The usage fields of a header mapping or usage dict; ``None`` if there is no report."""
    header: list[Any] = []
    fields: dict[str, Any] = {}
    for key, value in items:
        if not isinstance(key, str):
            continue
        if key.lower() == USAGE_HEADER:
            header.append(value)
        elif key in _DICT_KEYS:
            fields[key] = value
    if header:
        if len(header) > 1:
            problems.append(f"{len(header)} {USAGE_HEADER} headers (expected one)")
            return {}
        return _parse_header(header[0], problems)
    if not fields:
        return None
    counts: dict[str, int] = {}
    for name in _FIELDS:
        if name in fields:
            counts[name] = _check_count(name, _as_int(fields[name]), problems)
    if "cost_nano_usd" not in fields and "cost_usd" in fields:
        counts["cost_nano_usd"] = _cost(fields["cost_usd"], problems)
    return counts


def _parse_header(value: object, problems: list[str]) -> dict[str, int]:
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    if not isinstance(value, str):
        problems.append(f"{USAGE_HEADER} is {type(value).__name__}, not text")
        return {}
    if len(value) > _MAX_HEADER_LENGTH:
        problems.append(f"{USAGE_HEADER} of {len(value)} characters (oversized)")
        return {}
    counts: dict[str, int] = {}
    for part in value.split(";"):
        if not part.strip():
            continue
        name, sep, raw = (s.strip() for s in part.partition("="))
        if not sep:
            problems.append(f"{part.strip()!r} is not field=value")
        elif name in counts:
            problems.append(f"{name} given twice")
        elif name in _FIELDS:  # Unknown fields (a newer callee) are skipped.
            number = int(raw) if _INTEGER.fullmatch(raw) else raw
            counts[name] = _check_count(name, number, problems)
    return counts


def _as_int(value: object) -> object:
    if isinstance(value, str) and _INTEGER.fullmatch(value):
        return int(value)
    return value


def _check_count(name: str, value: object, problems: list[str]) -> int:
    # type() is, not isinstance: True is not a count.
    if type(value) is int and 0 <= value <= MAX_COUNT:
        return value
    shown = _shown(value)
    if type(value) is int and value < 0:
        problems.append(f"{name}={shown} (negative: must be >= 0)")
    elif type(value) is int:
        problems.append(f"{name}={shown} (oversized)")
    else:
        problems.append(f"{name}={shown} (must be a whole number >= 0)")
    return 0


def _shown(value: object) -> str:
    """``repr(value)``, cut to 40 characters, for a value that may be huge or hostile."""
    if type(value) is int and not -(10**36) < value < 10**36:
        # repr() of an int over 4,300 digits raises ValueError; its length says enough.
        return f"<int of {value.bit_length()} bits>"
    try:
        text = repr(value)
    except Exception:  # a foreign object whose __repr__ raises
        return f"<{type(value).__name__}>"
    return text if len(text) <= 40 else f"{text[:37]}..."


def _cost(value: object, problems: list[str]) -> int:
    # Ints are compared before math.isfinite: it converts them to float, and raises
    # OverflowError on an int beyond the float range (10**400).
    if type(value) is int and 0 <= value <= MAX_COUNT // NANOS_PER_USD:
        return value * NANOS_PER_USD
    finite = type(value) is float and math.isfinite(value)
    if finite and 0 <= value <= MAX_COUNT / NANOS_PER_USD:  # type: ignore[operator]
        nanos = round(value * NANOS_PER_USD)  # type: ignore[operator]
        if nanos <= MAX_COUNT:
            return nanos
    if (finite or type(value) is int) and value > 0:  # type: ignore[operator]
        problems.append(f"cost_usd={_shown(value)} (oversized)")
    else:
        problems.append(f"cost_usd={_shown(value)} (must be a finite number of dollars >= 0)")
    return 0


def _check_consistent(fields: Mapping[str, int], problems: list[str]) -> None:
    get = fields.get
    if get("cache_read_tokens", 0) + get("cache_write_tokens", 0) > get("input_tokens", 0):
        problems.append("cached tokens exceed input_tokens (input includes cached tokens)")
    if get("reasoning_tokens", 0) > get("output_tokens", 0):
        problems.append("reasoning_tokens exceed output_tokens (output includes reasoning)")
    if get("unpriced_calls", 0) > get("llm_calls", 0):
        problems.append("unpriced_calls exceed llm_calls")
