"""
What a call to another process carries, and reading it back: the keys, their bounds, and
`extract`, which validates every value.

Under the ``agentsteps.`` prefix of a W3C ``baggage`` header, beside the W3C
``traceparent``, a caller carries the active persona, the step path and the *remaining*
budget of the active steps (`inject`, in ``_distributed/outgoing.py``, writes them). The
receiving side (`remote_parent`, in ``_distributed/remote.py``) reads them back with
`extract`: they come from another process and are advice, never authority.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from decimal import Decimal

import attrs
from opentelemetry import baggage as otel_baggage
from opentelemetry import trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.context.context import Context
from opentelemetry.trace import SpanContext
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from .._accounting.budget import NANOS_PER_USD, Budget
from .._core.context import ActivePersona, ActiveStep

__all__ = ["Carried", "extract", "normalize_carrier", "step_path"]

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
_NEGATIVE_ZERO = re.compile(r"-0+(?:\.0+)?")

TRACE_PROPAGATOR = TraceContextTextMapPropagator()
BAGGAGE_PROPAGATOR = W3CBaggagePropagator()
_FIELDS = frozenset({"traceparent", "tracestate", "baggage"})


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
    headers = _text_only(headers, problems)
    span_context = None
    traceparent = headers.get("traceparent")
    if traceparent is not None:
        candidate = _guarded(lambda: TRACE_PROPAGATOR.extract(headers, context=Context()), problems)
        found = None if candidate is None else trace.get_current_span(candidate)
        if found is not None and found.get_span_context().is_valid:
            span_context = found.get_span_context()
        else:
            problems.append(f"traceparent={_clip(traceparent)} (not a valid W3C traceparent)")
    entries: dict[str, str] = {}
    ours: dict[str, list[str]] = {}
    header = headers.get("baggage")
    if header is not None:
        size = len(header.encode("utf-8"))
        if size > MAX_BAGGAGE_BYTES:
            problems.append(
                f"baggage header of {size} bytes (over the W3C limit of {MAX_BAGGAGE_BYTES})"
            )
        else:
            entries = _baggage(header, problems)
            ours = _our_entries(header, problems)
    for key in [k for k in entries if k.startswith(PREFIX)]:
        del entries[key]
    carried = Carried(
        span_context=span_context,
        baggage=entries,
        persona=_name(_last(ours, PERSONA_KEY), PERSONA_KEY, MAX_NAME_LENGTH, problems),
        step_path=_name(_last(ours, STEP_PATH_KEY), STEP_PATH_KEY, MAX_PATH_LENGTH, problems),
        tokens=_tightest(ours, TOKENS_KEY, _count, problems),
        nanos=_tightest(ours, USD_KEY, _usd, problems),
        calls=_tightest(ours, CALLS_KEY, _count, problems),
    )
    if problems:
        logger.warning(
            "agentsteps: ignored %d invalid propagated value(s); incoming values are "
            "advisory and never raise a limit: %s",
            len(problems),
            "; ".join(problems),
        )
    return carried


def _text_only(headers: Mapping[str, str], problems: list[str]) -> dict[str, str]:
    """
    ``headers`` without the values that are not text: a lone surrogate (``"\\ud800"``,
    from a JSON message or a ``surrogateescape`` decoding) cannot be encoded, and every
    use of the value further on would raise. Such a header is dropped with a note.
    """
    kept: dict[str, str] = {}
    for name, value in headers.items():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            problems.append(f"{name} header holding a lone surrogate (not text)")
            continue
        kept[name] = value
    return kept


def _guarded(extract: Callable[[], Context], problems: list[str]) -> Context | None:
    """An OpenTelemetry propagator's extraction; ``None``, noted, if it raises."""
    try:
        return extract()
    except Exception as exc:  # a propagator bug must not fail the request
        problems.append(f"the propagator could not read the headers ({type(exc).__name__})")
        return None


def _baggage(header: str, problems: list[str]) -> dict[str, str]:
    """Every entry of a baggage header, as OpenTelemetry reads it (the last of a repeated key)."""
    ctx = _guarded(
        lambda: BAGGAGE_PROPAGATOR.extract({"baggage": header}, context=Context()), problems
    )
    return {} if ctx is None else {k: str(v) for k, v in otel_baggage.get_all(ctx).items()}


def _our_entries(header: str, problems: list[str]) -> dict[str, list[str]]:
    """
    Every value of each ``agentsteps.`` key, in order, a repeated key's included.

    A key can come twice (sent twice in one header, or in two ``baggage`` headers that
    `normalize_carrier` joins): anything on the path may add an entry, so a remainder
    must not be loosened by whichever comes last. Each list member is read on its own by
    the same propagator, so its rules (percent-decoding, properties) apply unchanged.
    """
    found: dict[str, list[str]] = {}
    for member in header.split(","):
        if PREFIX not in member and "%" not in member:
            continue  # not ours (a key of ours may be percent-encoded)
        for key, value in _baggage(member, problems).items():
            if key.startswith(PREFIX):
                found.setdefault(key, []).append(value)
    return found


def _last(ours: Mapping[str, list[str]], key: str) -> str | None:
    values = ours.get(key)
    return None if not values else values[-1]


def _tightest(
    ours: Mapping[str, list[str]],
    key: str,
    read: Callable[[str, str, list[str]], int | None],
    problems: list[str],
) -> int | None:
    """The smallest valid value of a repeated remainder key: the tighter limit wins."""
    numbers = [read(key, value, problems) for value in ours.get(key, ())]
    valid = [n for n in numbers if n is not None]
    return min(valid) if valid else None


def _clip(value: str) -> str:
    return repr(value if len(value) <= 64 else value[:61] + "...")


def _name(value: str | None, key: str, limit: int, problems: list[str]) -> str | None:
    if value is None:
        return None
    if not value.strip() or not value.isprintable():
        problems.append(f"{key}={_clip(value)} (must be non-empty printable text)")
        return None
    if len(value) > limit:
        problems.append(f"{key} of {len(value)} characters (oversized: limit {limit})")
        return None
    return value


def _count(key: str, value: str, problems: list[str]) -> int | None:
    if _NEGATIVE_ZERO.fullmatch(value):
        return 0  # "-0" is zero, not a negative count
    if len(value) <= _MAX_NUMBER_LENGTH and _COUNT.fullmatch(value):
        number = int(value)
        if number <= MAX_COUNT:
            return number
    problems.append(f"{key}={_clip(value)} ({_why_bad(value, _COUNT, 'a whole number')})")
    return None


def _usd(key: str, value: str, problems: list[str]) -> int | None:
    if _NEGATIVE_ZERO.fullmatch(value):
        return 0  # "-0" (or "-0.00") dollars is zero, not a negative remainder
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
