"""
Propagation out: `inject` writes what a call to another process carries, and
`remaining_budget` says what the active steps may still spend.

`inject` writes the W3C ``traceparent`` of the active span and a W3C ``baggage`` header
holding, under the ``agentsteps.`` prefix, the active persona, the step path and the
*remaining* budget of the active steps. The keys, and reading them back, are in
``_distributed/propagation.py``.
"""

from __future__ import annotations

from collections.abc import MutableMapping

from opentelemetry import baggage as otel_baggage
from opentelemetry import context as otel_context
from opentelemetry.context.context import Context

from .._accounting.budget import NANOS_PER_USD, Budget
from .._accounting.ledger import LEDGER_LOCK
from .._core.context import CURRENT, ActivePersona, ActiveStep
from .propagation import (
    BAGGAGE_PROPAGATOR,
    CALLS_KEY,
    PERSONA_KEY,
    PREFIX,
    STEP_PATH_KEY,
    TOKENS_KEY,
    TRACE_PROPAGATOR,
    USD_KEY,
    step_path,
)

__all__ = ["format_usd", "inject", "persona_name", "remaining_budget", "stack_remaining"]


def stack_remaining(
    frame: ActiveStep | ActivePersona | None,
) -> tuple[int | None, int | None, int | None]:
    """Tightest tokens, nano-dollars and calls left over ``frame`` and its ancestors."""
    tokens = nanos = calls = None
    with LEDGER_LOCK:
        while frame is not None:
            ledger = frame._ledger
            if ledger.has_limits:
                t, n, c = ledger.remaining()
                tokens = _tighter(tokens, t)
                nanos = _tighter(nanos, n)
                calls = _tighter(calls, c)
            frame = frame._parent
    return tokens, nanos, calls


def _tighter(a: int | None, b: int | None) -> int | None:
    if a is None:
        return b
    return a if b is None else min(a, b)


def remaining_budget() -> Budget:
    """
    What the active steps may still spend: the tightest remainder across the stack.

    Each limit is the smallest remainder any active step (or `remote_parent` scope) has
    for it; ``None`` means no active step limits it. Outside any step every limit is
    ``None``. This is what `inject` carries to another process, and what a request
    handler can check before starting expensive work.

    Example:
        >>> from agentsteps import Budget, record_usage, remaining_budget, step
        >>> @step(budget=Budget(max_tokens=1_000, max_llm_calls=3))
        ... def plan():
        ...     record_usage(model="m", input_tokens=300, output_tokens=100, cost_usd=0)
        ...     return remaining_budget()
        >>> plan()
        Budget(max_tokens=600, max_usd=None, max_llm_calls=2)

    .. versionadded:: 0.1.0
    """
    tokens, nanos, calls = stack_remaining(CURRENT.get())
    usd = None if nanos is None else nanos / NANOS_PER_USD
    return Budget(max_tokens=tokens, max_usd=usd, max_llm_calls=calls)


def persona_name(frame: ActiveStep | ActivePersona | None) -> str | None:
    """The innermost persona, else the persona a remote caller carried in."""
    if frame is None:
        return None
    if frame._persona is not None:
        return frame._persona.name
    while frame is not None:
        carried = getattr(frame._defn, "caller_persona", None)
        if carried is not None:
            return carried  # type: ignore[no-any-return]
        frame = frame._parent
    return None


def format_usd(nanos: int) -> str:
    """Nano-dollars as an exact decimal string of dollars: ``50_000_000`` -> ``"0.05"``."""
    whole, frac = divmod(nanos, NANOS_PER_USD)
    return f"{whole}.{frac:09d}".rstrip("0").rstrip(".")


def inject(carrier: MutableMapping[str, str]) -> None:
    """
    Write the active trace context and budget into ``carrier`` for a call to another
    process.

    Writes the W3C ``traceparent`` (and ``tracestate``) of the active span and a W3C
    ``baggage`` header with these entries:

    - ``agentsteps.persona``: the active persona's name;
    - ``agentsteps.step_path``: the active step names, outermost first, joined by ``/``;
    - ``agentsteps.remaining_tokens``, ``agentsteps.remaining_usd``,
      ``agentsteps.remaining_calls``: the tightest remainder of each limit across the
      active steps (see `remaining_budget`); a limit no active step sets is left out.

    Other baggage entries, from the active OpenTelemetry context or already in
    ``carrier`` (any capitalisation of the ``baggage`` key), are kept. The receiving
    process opens `remote_parent` with the same headers.

    Args:
        carrier: The outgoing headers, e.g. a ``dict`` passed to your HTTP client.

    Raises:
        TypeError: ``carrier`` is not a mutable mapping.

    Example:
        >>> import agentsteps
        >>> from agentsteps import Budget, step
        >>> @step(budget=Budget(max_llm_calls=5))
        ... def plan():
        ...     headers = {}
        ...     agentsteps.inject(headers)
        ...     return headers["baggage"]
        >>> plan()
        'agentsteps.step_path=plan,agentsteps.remaining_calls=5'

    .. versionadded:: 0.1.0
    """
    _check_carrier(carrier)
    frame = CURRENT.get()
    ours: dict[str, str] = {}
    persona = persona_name(frame)
    if persona is not None:
        ours[PERSONA_KEY] = persona
    path = step_path(frame)
    if path:
        ours[STEP_PATH_KEY] = path
    tokens, nanos, calls = stack_remaining(frame)
    if tokens is not None:
        ours[TOKENS_KEY] = str(tokens)
    if nanos is not None:
        ours[USD_KEY] = format_usd(nanos)
    if calls is not None:
        ours[CALLS_KEY] = str(calls)

    ctx = otel_context.get_current()
    others = dict(otel_baggage.get_all(ctx))
    existing = [k for k in list(carrier) if isinstance(k, str) and k.lower() == "baggage"]
    for key in existing:
        header = carrier.pop(key)
        if isinstance(header, str):
            others.update(
                otel_baggage.get_all(BAGGAGE_PROPAGATOR.extract({"baggage": header}, Context()))
            )
    # Ours first: if the header overflows the W3C limits, the propagator drops from the end.
    entries = {**ours, **{k: v for k, v in others.items() if not k.startswith(PREFIX)}}
    ctx = otel_baggage.clear(ctx)
    for key, value in entries.items():
        ctx = otel_baggage.set_baggage(key, value, ctx)
    TRACE_PROPAGATOR.inject(carrier, context=ctx)
    BAGGAGE_PROPAGATOR.inject(carrier, context=ctx)


def _check_carrier(carrier: object) -> None:
    # A parameter typed `object`: mypy would call the check unreachable on the real one.
    if not isinstance(carrier, MutableMapping):
        msg = (
            "inject(): 'carrier' must be a mutable mapping of header names to values, such "
            f"as a dict (got {carrier!r} of type {type(carrier).__name__})"
        )
        raise TypeError(msg)
