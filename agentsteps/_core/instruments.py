"""
The metrics agentsteps emits, created lazily on the first use with a real `MeterProvider`.

Nothing here runs unless an application configured a meter provider (globally, or with
``agentsteps.configure(meter_provider=...)``): `get_instruments` returns ``None`` after a
module attribute read or two, the same fast path `get_tracer` takes, so a step pays one
cheap check at its end and nothing else.

Two families:

- the OpenTelemetry GenAI conventions' client metrics, one point per model call
  agentsteps sees (an `llm_call`, a `record_usage` made outside one):
  ``gen_ai.client.token.usage`` and ``gen_ai.client.operation.duration``;
- agentsteps' own spend metrics, added up when a step ends, by step, persona, model and
  the step's status: ``agentsteps.cost``, ``agentsteps.tokens``, ``agentsteps.llm_calls``,
  ``agentsteps.budget.exhausted`` (asynchronous counters over running totals kept here,
  read when the reader collects) and ``agentsteps.budget.utilization`` (a histogram).

Attribute values are names only (step, persona, model, provider, limit, boundary,
status), never arguments or ids, so the number of series stays bounded.

Cohesive: the instruments, the lazy lookup that finds them and the few functions that
record on them are one contract, what each metric means and how it is filled.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from typing import Any

from opentelemetry import metrics
from opentelemetry.metrics import (
    CallbackOptions,
    Meter,
    MeterProvider,
    NoOpMeterProvider,
    Observation,
)

from .._accounting.budget import NANOS_PER_USD
from .._accounting.ledger import LEDGER_LOCK
from .._version import __version__
from ..exceptions import StepBudgetExhausted
from . import attributes as A
from .llm_spans import infer_provider
from .locks import new_lock

logger = logging.getLogger("agentsteps")

__all__ = [
    "BUDGET_EXHAUSTED",
    "BUDGET_UTILIZATION",
    "COST",
    "DURATION_BUCKETS",
    "GEN_AI_OPERATION_DURATION",
    "GEN_AI_TOKEN_USAGE",
    "LLM_CALLS",
    "SHARED_SPENT",
    "TOKENS",
    "TOKEN_BUCKETS",
    "Instruments",
    "get_instruments",
    "note_shared_spent",
    "reset_metrics",
    "set_meter_provider",
]

_METER_NAME = "agentsteps"

GEN_AI_TOKEN_USAGE = "gen_ai.client.token.usage"
GEN_AI_OPERATION_DURATION = "gen_ai.client.operation.duration"
COST = "agentsteps.cost"
TOKENS = "agentsteps.tokens"
LLM_CALLS = "agentsteps.llm_calls"
BUDGET_EXHAUSTED = "agentsteps.budget.exhausted"
BUDGET_UTILIZATION = "agentsteps.budget.utilization"
SHARED_SPENT = "agentsteps.budget.shared.spent"

# The conventions' explicit bucket advice for the two GenAI histograms.
TOKEN_BUCKETS = (
    1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864,
)  # fmt: skip
DURATION_BUCKETS = (
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
)  # fmt: skip
# used/limit: fine-grained near 1, where alerts are set.
UTILIZATION_BUCKETS = (0.1, 0.25, 0.5, 0.75, 0.8, 0.9, 0.95, 1.0, 1.25, 1.5, 2.0, 5.0)

TOKEN_TYPE = "gen_ai.token.type"
BUDGET_KEY = "agentsteps.budget.key"
BUDGET_LIMIT = "agentsteps.budget.limit"
_LIMIT_NAMES = {"max_tokens": "max_tokens", "max_usd": "max_usd", "max_llm_calls": "max_llm_calls"}


class Instruments:
    """The instruments of one meter; see the module docstring for what each measures."""

    __slots__ = (
        "calls",
        "cost",
        "duration",
        "exhausted",
        "exhaustions",
        "lock",
        "shared",
        "spend",
        "token_usage",
        "tokens",
        "utilization",
    )

    def __init__(self, meter: Meter) -> None:
        # The spend counters are asynchronous: a step's end adds to these running totals
        # (a dict update), and the reader reads them when it collects. A synchronous
        # counter would cost a measurement (about half a span in the SDK) per figure.
        self.lock = new_lock()  # fork-safe: see _core/locks.py
        # (step, persona, model, status) -> [nano-dollars, input, output, calls]
        self.spend: dict[tuple[str, str | None, str | None, str], list[int]] = {}
        # (step, limit, boundary) -> exhaustions
        self.exhaustions: dict[tuple[str, str, str], int] = {}
        self.token_usage = meter.create_histogram(
            GEN_AI_TOKEN_USAGE,
            unit="{token}",
            description="Number of input and output tokens used.",
            explicit_bucket_boundaries_advisory=TOKEN_BUCKETS,
        )
        self.duration = meter.create_histogram(
            GEN_AI_OPERATION_DURATION,
            unit="s",
            description="GenAI operation duration.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self.cost = meter.create_observable_counter(
            COST,
            callbacks=[self._observe_cost],
            unit="USD",
            description="What model calls cost, in US dollars.",
        )
        self.tokens = meter.create_observable_counter(
            TOKENS,
            callbacks=[self._observe_tokens],
            unit="{token}",
            description="Input and output tokens of model calls.",
        )
        self.calls = meter.create_observable_counter(
            LLM_CALLS,
            callbacks=[self._observe_calls],
            unit="{call}",
            description="Model calls charged to steps.",
        )
        self.exhausted = meter.create_observable_counter(
            BUDGET_EXHAUSTED,
            callbacks=[self._observe_exhausted],
            unit="{exhaustion}",
            description="Steps whose own budget ran out, by step, limit and error boundary.",
        )
        self.utilization = meter.create_histogram(
            BUDGET_UTILIZATION,
            unit="1",
            description="Share of each budget limit a budgeted step had used when it ended.",
            explicit_bucket_boundaries_advisory=UTILIZATION_BUCKETS,
        )
        self.shared = meter.create_observable_gauge(
            SHARED_SPENT,
            callbacks=[_observe_shared],
            unit="USD",
            description="What each shared budget key has spent so far, across processes.",
        )

    def _spend_rows(self) -> list[tuple[dict[str, Any], list[int]]]:
        with self.lock:
            rows = [(key, list(values)) for key, values in self.spend.items()]
        observed = []
        for (step, persona, model, status), values in rows:
            attributes: dict[str, Any] = {A.STEP_NAME: step, A.STEP_STATUS: status}
            if persona is not None:
                attributes[A.PERSONA_NAME] = persona
            if model is not None:
                attributes[A.GEN_AI_RESPONSE_MODEL] = model
            observed.append((attributes, values))
        return observed

    def _observe_cost(self, options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(v[0] / 1_000_000_000, a) for a, v in self._spend_rows()]

    def _observe_tokens(self, options: CallbackOptions) -> Iterable[Observation]:
        observed = []
        for attributes, values in self._spend_rows():
            observed.append(Observation(values[1], {**attributes, TOKEN_TYPE: "input"}))
            observed.append(Observation(values[2], {**attributes, TOKEN_TYPE: "output"}))
        return observed

    def _observe_calls(self, options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(v[3], a) for a, v in self._spend_rows()]

    def _observe_exhausted(self, options: CallbackOptions) -> Iterable[Observation]:
        with self.lock:
            rows = list(self.exhaustions.items())
        return [
            Observation(
                count,
                {A.STEP_NAME: step, BUDGET_LIMIT: limit, A.STEP_ERROR_BOUNDARY: boundary},
            )
            for (step, limit, boundary), count in rows
        ]


class _State:
    __slots__ = (
        "env_provider",
        "global_instruments",
        "global_provider",
        "instruments",
        "lock",
        "maybe",
        "provider",
    )

    def __init__(self) -> None:
        # Set by configure(meter_provider=...): used instead of the global provider.
        self.provider: MeterProvider | None = None
        self.instruments: Instruments | None = None
        # Cache for the global provider case: the provider we last saw and its instruments.
        self.global_provider: object = None
        self.global_instruments: Instruments | None = None
        # OTEL_PYTHON_METER_PROVIDER names a provider the API loads on first use.
        self.env_provider = "OTEL_PYTHON_METER_PROVIDER" in os.environ
        # Whether metrics may be on without a global provider: configured, or named by the
        # environment. The hot path tests this and the API's global slot, and nothing else.
        self.maybe = self.env_provider
        self.lock = new_lock()  # fork-safe: see _core/locks.py


STATE = _State()


class _NoFastPath:
    """Stands in for the API's module when it has no ``_METER_PROVIDER``: always look."""

    _METER_PROVIDER = True


# The API keeps the global provider in this private attribute, None until one is set:
# reading it skips get_meter_provider()'s environment lookup. Should a release rename it,
# every lookup goes through get_meter_provider() instead (slower, still right).
_API: Any = getattr(metrics, "_internal", None)
if not hasattr(_API, "_METER_PROVIDER"):  # pragma: no cover - another API release
    _API = _NoFastPath


def get_instruments() -> Instruments | None:
    """
    The instruments to record with, or ``None`` when no meter provider would record them.

    Mirrors `get_tracer`: with no provider anywhere, one module attribute read says so
    (the API keeps the global provider there, ``None`` until one is set).
    """
    instruments = STATE.instruments
    if instruments is not None:
        return instruments
    if _API._METER_PROVIDER is None and not STATE.env_provider:
        return None
    provider = metrics.get_meter_provider()
    if provider is STATE.global_provider:
        return STATE.global_instruments
    with STATE.lock:
        if provider is not STATE.global_provider:
            STATE.global_instruments = _instruments_of(provider)
            STATE.global_provider = provider
    return STATE.global_instruments


def _instruments_of(provider: object) -> Instruments | None:
    if isinstance(provider, NoOpMeterProvider) or not isinstance(provider, MeterProvider):
        return None
    if type(provider).__name__ == "_ProxyMeterProvider":  # the API's "nothing set yet"
        return None
    return Instruments(provider.get_meter(_METER_NAME, __version__))


def set_meter_provider(provider: MeterProvider | None) -> None:
    """Use ``provider`` for agentsteps' metrics (``None``: the global one). See `configure`."""
    with STATE.lock:
        STATE.provider = provider
        STATE.instruments = None if provider is None else _instruments_of(provider)
        STATE.maybe = STATE.instruments is not None or STATE.env_provider
        STATE.global_provider = None
        STATE.global_instruments = None


def reset_metrics() -> None:
    """Back to the global meter provider, and no shared budget keys seen (`reset_defaults`)."""
    STATE.env_provider = "OTEL_PYTHON_METER_PROVIDER" in os.environ
    set_meter_provider(None)
    with _SHARED_LOCK:
        _SHARED_SPENT_SEEN.clear()


# -- shared budgets: what each key has spent ---------------------------------------------

_SHARED_LOCK = new_lock()  # fork-safe: see _core/locks.py
# Shared budget key -> nano-dollars spent fleet-wide, as this process last read it from the
# store (every shared charge and pre-flight returns the key's figures).
_SHARED_SPENT_SEEN: dict[str, int] = {}


def note_shared_spent(key: str, nanos: int) -> None:
    """Remember what ``key`` has spent fleet-wide, for the ``shared.spent`` gauge."""
    with _SHARED_LOCK:
        _SHARED_SPENT_SEEN[key] = nanos


def _observe_shared(options: CallbackOptions) -> Iterable[Observation]:
    with _SHARED_LOCK:
        seen = list(_SHARED_SPENT_SEEN.items())
    return [Observation(nanos / NANOS_PER_USD, {BUDGET_KEY: key}) for key, nanos in seen]


# -- what is recorded --------------------------------------------------------------------


def model_call_attributes(
    operation: str, provider: str | None, request_model: str | None, response_model: str | None
) -> dict[str, Any]:
    """The GenAI conventions' attributes of one model call's metric points."""
    attributes: dict[str, Any] = {A.GEN_AI_OPERATION_NAME: operation}
    if provider is not None:
        attributes[A.GEN_AI_PROVIDER_NAME] = provider
    if request_model is not None:
        attributes[A.GEN_AI_REQUEST_MODEL] = request_model
    if response_model is not None:
        attributes[A.GEN_AI_RESPONSE_MODEL] = response_model
    return attributes


def record_model_call(
    instruments: Instruments,
    attributes: dict[str, Any],
    tokens: tuple[int, int] | None,
    duration: float | None,
    error: BaseException | None = None,
) -> None:
    """
    One model call's GenAI points: its input and output ``tokens`` (when it reported
    usage) and, when it was timed, its ``duration`` (with ``error.type`` when it raised).
    """
    if tokens is not None:
        histogram = instruments.token_usage
        histogram.record(tokens[0], {**attributes, TOKEN_TYPE: "input"})
        histogram.record(tokens[1], {**attributes, TOKEN_TYPE: "output"})
    if duration is not None:
        if error is not None:
            attributes = {**attributes, A.ERROR_TYPE: type(error).__qualname__}
        instruments.duration.record(duration, attributes)


def note_spend(step: Any, model: str | None, inp: int, out: int, nanos: int, calls: int) -> None:
    """
    Add one charge to what ``step`` spent itself, by model, for `step_ended` to emit.
    Called by `charge` under the ledger lock, and only while metrics are on.
    """
    spend = step._spend
    if spend is None:
        spend = step._spend = {}
    old = spend.get(model)
    if old is None:
        spend[model] = [inp, out, nanos, calls]
    else:
        old[0] += inp
        old[1] += out
        old[2] += nanos
        old[3] += calls


def step_ended(
    instruments: Instruments, frame: Any, status: Any, exc: BaseException | None
) -> None:
    """
    Emit a step's spend (its own, by model), its exhaustion and its budget utilization.

    Each charge is a step's own in exactly one step, so summing ``agentsteps.cost`` over
    every step gives the run's cost once, as the run report does.
    """
    ledger = frame._ledger
    if frame._spend is None and exc is None and not ledger.has_limits:
        return  # spent nothing itself, no budget: nothing to say (the common case)
    defn = frame._defn
    with LEDGER_LOCK:
        spend = frame._spend
        frame._spend = None
        items = None if spend is None else [(m, tuple(v)) for m, v in spend.items()]
        tokens, nanos, calls = ledger.input + ledger.output, ledger.nanos, ledger.calls
    name = defn.name
    if items:
        persona = frame._persona
        persona_name = None if persona is None else persona._defn.name
        spend = instruments.spend
        with instruments.lock:
            for model, (inp, out, spent, n) in items:
                key = (name, persona_name, model, status.value)
                row = spend.get(key)
                if row is None:
                    spend[key] = [spent, inp, out, n]
                else:
                    row[0] += spent
                    row[1] += inp
                    row[2] += out
                    row[3] += n
    if isinstance(exc, StepBudgetExhausted) and exc._origin is ledger:
        key2 = (name, _LIMIT_NAMES.get(exc.limit, "other"), defn.boundary.value)
        with instruments.lock:
            instruments.exhaustions[key2] = instruments.exhaustions.get(key2, 0) + 1
    for limit, used, cap in (
        ("max_tokens", tokens, ledger.max_tokens),
        ("max_usd", nanos, ledger.max_nanos),
        ("max_llm_calls", calls, ledger.max_calls),
    ):
        if cap is not None:
            share = used / cap if cap else (0.0 if not used else float("inf"))
            instruments.utilization.record(share, {A.STEP_NAME: name, BUDGET_LIMIT: limit})


def record_recorded_call(
    instruments: Instruments, model: str | None, provider: str | None, inp: int, out: int
) -> None:
    """The GenAI token points of a call reported with `record_usage` (it was not timed)."""

    if provider is None:
        provider = infer_provider(model)
    attributes = model_call_attributes(A.OPERATION_CHAT, provider, model, model)
    try:
        record_model_call(instruments, attributes, (inp, out), None)
    except Exception:
        logger.warning("could not record the metrics of a recorded model call", exc_info=True)
