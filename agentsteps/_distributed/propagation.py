"""
Propagation out: what a call to another process carries (trace context and budget).

`inject` writes the W3C ``traceparent`` of the active span and a W3C ``baggage`` header
holding, under the ``agentsteps.`` prefix, the active persona, the step path and the
*remaining* budget of the active steps. The receiving side (`remote_parent`, in
``_distributed/remote.py``) reads them back with `extract`, which validates every value: they come
from another process and are advice, never authority.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, MutableMapping
from decimal import Decimal

import attrs
from opentelemetry import baggage as otel_baggage
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.context.context import Context
from opentelemetry.trace import SpanContext
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from .._accounting.budget import NANOS_PER_USD, Budget
from .._accounting.usage import LEDGER_LOCK
from .._core.context import CURRENT, ActivePersona, ActiveStep

__all__ = ["inject", "remaining_budget"]

logger = logging.getLogger("agentsteps")

PREFIX = "agentsteps."
PERSONA_KEY = "agentsteps.persona"
STEP_PATH_KEY = "agentsteps.step_path"
TOKENS_KEY = "agentsteps.remaining_tokens"
USD_KEY = "agentsteps.remaining_usd"
CALLS_KEY = "agentsteps.remaining_calls"

# Bounds on what we accept from a carrier. Counts must fit the int64 that OpenTelemetry
# attributes and OTLP carry (the carried budget becomes span attributes of the callee).
MAX_COUNT = 2**63 - 1
MAX_NAME_LENGTH = 256
MAX_PATH_LENGTH = 2048
MAX_BAGGAGE_BYTES = 8192  # the W3C Baggage limit for a whole header
_MAX_NUMBER_LENGTH = 32
_COUNT = re.compile(r"[0-9]+")
_DECIMAL = re.compile(r"[0-9]+(?:\.[0-9]+)?")
_NEGATIVE = re.compile(r"-[0-9]+(?:\.[0-9]+)?")

_TRACE = TraceContextTextMapPropagator()
_BAGGAGE = W3CBaggagePropagator()
_FIELDS = frozenset({"traceparent", "tracestate", "baggage"})


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


def step_path(frame: ActiveStep | ActivePersona | None) -> str:
    """Step names from the outermost to ``frame``, joined by ``/`` (remote scopes expand)."""
    names: list[str] = []
    while frame is not None:
        if isinstance(frame, ActiveStep):
            caller_path = getattr(frame._defn, "caller_path", None)
            if caller_path is None:
                names.append(frame._defn.name)
            elif caller_path:
                names.append(caller_path)
        frame = frame._parent
    path = "/".join(reversed(names))
    if len(path) > MAX_PATH_LENGTH:
        # Keep the innermost end: it says where the call came from.
        path = "..." + path[-(MAX_PATH_LENGTH - 3) :]
    return path


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
            others.update(otel_baggage.get_all(_BAGGAGE.extract({"baggage": header}, Context())))
    # Ours first: if the header overflows the W3C limits, the propagator drops from the end.
    entries = {**ours, **{k: v for k, v in others.items() if not k.startswith(PREFIX)}}
    ctx = otel_baggage.clear(ctx)
    for key, value in entries.items():
        ctx = otel_baggage.set_baggage(key, value, ctx)
    _TRACE.inject(carrier, context=ctx)
    _BAGGAGE.inject(carrier, context=ctx)


def _check_carrier(carrier: object) -> None:
    # A parameter typed `object`: mypy would call the check unreachable on the real one.
    if not isinstance(carrier, MutableMapping):
        msg = (
            "inject(): 'carrier' must be a mutable mapping of header names to values, such "
            f"as a dict (got {carrier!r} of type {type(carrier).__name__})"
        )
        raise TypeError(msg)


@attrs.frozen
class Carried:
    """What `extract` found in a carrier, every value validated."""

    span_context: SpanContext | None = None
    """The caller's span, if a valid ``traceparent`` came in."""
    baggage: Mapping[str, str] = attrs.Factory(dict)
    """Baggage entries not ours, to keep in the context for other instrumentation."""
    persona: str | None = None
    step_path: str | None = None
    tokens: int | None = None
    nanos: int | None = None
    calls: int | None = None

    @property
    def budget(self) -> Budget | None:
        """The carried remainder as a `Budget`, or ``None`` when nothing was carried."""
        if self.tokens is None and self.nanos is None and self.calls is None:
            return None
        usd = None if self.nanos is None else self.nanos / NANOS_PER_USD
        return Budget(max_tokens=self.tokens, max_usd=usd, max_llm_calls=self.calls)

    @property
    def spent(self) -> str | None:
        """The first carried limit with nothing left (``"max_tokens"``, ...), if any."""
        if self.tokens == 0:
            return "max_tokens"
        if self.nanos == 0:
            return "max_usd"
        if self.calls == 0:
            return "max_llm_calls"
        return None


def normalize_carrier(carrier: object, owner: str) -> dict[str, str]:
    """
    The propagation headers of ``carrier`` with lower-case names and string values.

    Accepts a mapping or anything with ``items()`` (``email.message.Message``, as
    `http.server` gives). Repeated or list-valued headers are joined with ``,``.
    """
    items = getattr(carrier, "items", None)
    if not callable(items):
        msg = (
            f"{owner}: 'carrier' must be a mapping of header names to values, such as a "
            f"dict or the request's headers (got {carrier!r} of type {type(carrier).__name__})"
        )
        raise TypeError(msg)
    found: dict[str, str] = {}
    for key, value in items():
        name = key.decode("latin-1") if isinstance(key, bytes) else key
        if not isinstance(name, str) or name.lower() not in _FIELDS:
            continue
        text = _header_text(value)
        if text is None:
            continue
        name = name.lower()
        found[name] = f"{found[name]},{text}" if name in found else text
    return found


def _header_text(value: object) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("latin-1")
    if isinstance(value, (list, tuple)):
        parts = [_header_text(v) for v in value]
        return ",".join(p for p in parts if p is not None)
    return None


def extract(headers: Mapping[str, str]) -> Carried:
    """
    Read trace context and agentsteps baggage from normalized ``headers``.

    Invalid values are dropped, each noted; all notes go out as one warning on the
    ``agentsteps`` logger. A dropped limit counts as not carried: local budgets still
    apply, and nothing that comes in can raise a limit (the remote scope encloses the
    local steps, and hierarchical budgets take the minimum).
    """
    problems: list[str] = []
    span_context = None
    traceparent = headers.get("traceparent")
    if traceparent is not None:
        ctx = _TRACE.extract(headers, context=Context())
        candidate = trace.get_current_span(ctx).get_span_context()
        if candidate.is_valid:
            span_context = candidate
        else:
            problems.append(f"traceparent={_clip(traceparent)} (not a valid W3C traceparent)")
    entries: dict[str, str] = {}
    header = headers.get("baggage")
    if header is not None:
        size = len(header.encode("utf-8", "surrogateescape"))
        if size > MAX_BAGGAGE_BYTES:
            problems.append(
                f"baggage header of {size} bytes (over the W3C limit of {MAX_BAGGAGE_BYTES})"
            )
        else:
            ctx = _BAGGAGE.extract({"baggage": header}, context=Context())
            entries = {k: str(v) for k, v in otel_baggage.get_all(ctx).items()}
    ours = {k: entries.pop(k) for k in list(entries) if k.startswith(PREFIX)}
    carried = Carried(
        span_context=span_context,
        baggage=entries,
        persona=_name(ours, PERSONA_KEY, MAX_NAME_LENGTH, problems),
        step_path=_name(ours, STEP_PATH_KEY, MAX_PATH_LENGTH, problems),
        tokens=_count(ours, TOKENS_KEY, problems),
        nanos=_usd(ours, USD_KEY, problems),
        calls=_count(ours, CALLS_KEY, problems),
    )
    if problems:
        logger.warning(
            "agentsteps: ignored %d invalid propagated value(s); incoming values are "
            "advisory and never raise a limit: %s",
            len(problems),
            "; ".join(problems),
        )
    return carried


def _clip(value: str) -> str:
    return repr(value if len(value) <= 64 else value[:61] + "...")


def _name(ours: Mapping[str, str], key: str, limit: int, problems: list[str]) -> str | None:
    value = ours.get(key)
    if value is None:
        return None
    if not value.strip() or not value.isprintable():
        problems.append(f"{key}={_clip(value)} (must be non-empty printable text)")
        return None
    if len(value) > limit:
        problems.append(f"{key} of {len(value)} characters (oversized: limit {limit})")
        return None
    return value


def _count(ours: Mapping[str, str], key: str, problems: list[str]) -> int | None:
    value = ours.get(key)
    if value is None:
        return None
    if len(value) <= _MAX_NUMBER_LENGTH and _COUNT.fullmatch(value):
        number = int(value)
        if number <= MAX_COUNT:
            return number
    problems.append(f"{key}={_clip(value)} ({_why_bad(value, _COUNT, 'a whole number')})")
    return None


def _usd(ours: Mapping[str, str], key: str, problems: list[str]) -> int | None:
    value = ours.get(key)
    if value is None:
        return None
    if len(value) <= _MAX_NUMBER_LENGTH and _DECIMAL.fullmatch(value):
        # Truncated to whole nano-dollars: rounding a remainder down never raises it.
        nanos = int(Decimal(value).scaleb(9))
        if nanos <= MAX_COUNT:
            return nanos
    problems.append(
        f"{key}={_clip(value)} ({_why_bad(value, _DECIMAL, 'a decimal number of dollars')})"
    )
    return None


def _why_bad(value: str, valid: re.Pattern[str], kind: str) -> str:
    if _NEGATIVE.fullmatch(value):
        return "negative: must be >= 0"
    if len(value) > _MAX_NUMBER_LENGTH or valid.fullmatch(value):
        return "oversized"
    return f"malformed: must be {kind}"


for _fn in (inject, remaining_budget):
    _fn.__module__ = "agentsteps"
