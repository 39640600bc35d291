"""
The span of a step or persona: its attributes at start and at end.

A span starts with what a sampler may want to see (operation, agent, requested model)
and ends with the status, the usage of the step and of its subtree, and the error. The
attributes that depend only on the definition, persona, model and status are built once
and cached on the definition. Telemetry never breaks the program: a span processor that
raises is logged and the step goes on without (or with a half-finished) span.
"""

from __future__ import annotations

from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from .._accounting.ledger import LEDGER_LOCK, Ledger
from ..exceptions import StepBudgetExhausted
from . import attributes as A
from .config import SETTINGS
from .context import ActivePersona, ActiveStep
from .records import StepStatus
from .telemetry_log import log_telemetry_failure

__all__ = ["end_span", "start_attributes", "start_span"]

_INTERNAL = trace.SpanKind.INTERNAL
# Statuses whose span is marked as an error; a denied step's caller gets StepDenied.
_ERROR_STATUSES = (StepStatus.FAILED, StepStatus.ESCALATED, StepStatus.DENIED)
_END_CACHE_LIMIT = 64
_MAX_INT64 = 2**63 - 1  # the largest integer an OpenTelemetry attribute carries


def start_span(tracer: Any, frame: ActiveStep | ActivePersona) -> Any:
    """Start the frame's span; ``None`` (the step runs untraced) if tracing fails."""
    defn = frame._defn
    try:
        if SETTINGS.early_attributes:
            return tracer.start_span(
                defn.span_name, kind=_INTERNAL, attributes=start_attributes(frame)
            )
        return tracer.start_span(defn.span_name, kind=_INTERNAL)
    except Exception:
        # A span processor's on_start raised (the SDK does not guard them). Telemetry
        # must not break the program: the step runs, and is recorded, without a span.
        log_telemetry_failure("start", f"the span of {defn.name!r}", "it runs untraced")
        return None


def start_attributes(frame: ActiveStep | ActivePersona) -> dict[str, Any]:
    """What a sampler may want to see: operation, agent (persona) and requested model."""
    defn = frame._defn
    attributes: dict[str, Any] = defn.span_attributes
    persona = frame._persona
    if defn.is_step and (persona is not None or (defn.model is None and frame._model)):
        attributes = dict(attributes)
        if persona is not None:
            attributes[A.GEN_AI_AGENT_NAME] = persona._defn.name
        if defn.model is None and frame._model:
            attributes[A.GEN_AI_REQUEST_MODEL] = frame._model
    return attributes


def end_span(
    frame: ActiveStep | ActivePersona, span: Any, status: StepStatus, exc: BaseException | None
) -> None:
    """End the frame's span with its outcome; a span processor's error is only logged."""
    try:
        if span.is_recording():
            _finish_span(frame, span, status, exc)
        else:
            span.end()
    except Exception:
        # A span processor's on_end raised (the SDK does not guard them): the step's
        # outcome and its record must not depend on telemetry.
        log_telemetry_failure("end", f"the span of {frame._defn.name!r}")


def _finish_span(
    frame: ActiveStep | ActivePersona, span: Any, status: StepStatus, exc: BaseException | None
) -> None:
    ledger = frame._ledger
    # Unlocked first look: counters only grow, and a step that recorded nothing is the
    # common case. The figures themselves are read under the lock.
    has_usage = ledger.calls or ledger.input or ledger.output or ledger.nanos
    if has_usage:
        usage: dict[str, Any] = {}
        with LEDGER_LOCK:
            _usage_attributes(usage, ledger)
            last_model = ledger.last_model
    if not has_usage and exc is None:
        # The common case (a step that ended without error and spent nothing itself or
        # below): its attributes are the same every time, so they are built once.
        span.set_attributes(_static_end_attributes(frame, status))
        span.end()
        return
    attributes = _static_end_attributes(frame, status).copy()
    if has_usage:
        attributes.update(usage)
    if has_usage and last_model is not None:
        attributes[A.GEN_AI_RESPONSE_MODEL] = last_model
    if exc is not None and status is not StepStatus.COMPLETED:
        if status is StepStatus.SKIPPED:
            span.add_event(A.EVENT_BUDGET_EXHAUSTED, _exhaustion_event(exc))
        elif status in _ERROR_STATUSES:
            attributes[A.ERROR_TYPE] = type(exc).__qualname__
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
        else:
            attributes[A.ERROR_TYPE] = type(exc).__qualname__
        if isinstance(exc, StepBudgetExhausted) and exc._origin is ledger:
            attributes[A.BUDGET_EXHAUSTED_LIMIT] = exc.limit
    span.set_attributes(attributes)
    span.end()


def _static_end_attributes(frame: ActiveStep | ActivePersona, status: StepStatus) -> dict[str, Any]:
    """
    The attributes a span ends with that depend only on the definition, persona, model and
    status, cached on the definition (never mutate the result).
    """
    defn = frame._defn
    persona = frame._persona
    early = SETTINGS.early_attributes
    key = (status, None if persona is None else persona._defn.name, frame._model, early)
    cached = defn.end_cache.get(key)
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    attributes: dict[str, Any] = dict(defn.end_attributes)
    if not early:
        attributes.update(start_attributes(frame))
    attributes[A.STEP_STATUS if defn.is_step else A.PERSONA_STATUS] = status.value
    if len(defn.end_cache) < _END_CACHE_LIMIT:  # bounded: personas x models x statuses
        defn.end_cache[key] = attributes
    return attributes


def _usage_attributes(attributes: dict[str, Any], ledger: Ledger) -> None:
    sub = A.SUBTREE_USAGE
    own = A.SELF_USAGE
    attributes[sub["input_tokens"]] = ledger.input
    attributes[sub["output_tokens"]] = ledger.output
    attributes[sub["cache_read_tokens"]] = ledger.cache_read
    attributes[sub["cache_write_tokens"]] = ledger.cache_write
    attributes[sub["reasoning_tokens"]] = ledger.reasoning
    attributes[sub["cost_usd"]] = ledger.nanos / 1_000_000_000
    attributes[sub["llm_calls"]] = ledger.calls
    attributes[sub["unpriced_calls"]] = ledger.unpriced
    attributes[own["input_tokens"]] = ledger.self_input
    attributes[own["output_tokens"]] = ledger.self_output
    attributes[own["cache_read_tokens"]] = ledger.self_cache_read
    attributes[own["cache_write_tokens"]] = ledger.self_cache_write
    attributes[own["reasoning_tokens"]] = ledger.self_reasoning
    attributes[own["cost_usd"]] = ledger.self_nanos / 1_000_000_000
    attributes[own["llm_calls"]] = ledger.self_calls
    attributes[own["unpriced_calls"]] = ledger.self_unpriced
    if ledger.input > _MAX_INT64 or ledger.output > _MAX_INT64 or ledger.calls > _MAX_INT64:
        # Each record is within int64, but their sum need not be, and an OTLP exporter
        # drops an integer attribute it cannot encode: saturate instead. Every other count
        # is bounded by one of these three (cached by input, reasoning by output,
        # unpriced by calls, self by subtree).
        for key, value in attributes.items():
            if type(value) is int and value > _MAX_INT64:
                attributes[key] = _MAX_INT64


def _exhaustion_event(exc: BaseException) -> dict[str, Any]:
    if not isinstance(exc, StepBudgetExhausted):
        return {"exception.type": type(exc).__qualname__, "exception.message": str(exc)}
    return {
        "exception.type": type(exc).__qualname__,
        "exception.message": str(exc),
        "agentsteps.budget.limit": exc.limit,
        "agentsteps.budget.limit_value": exc.limit_value,
        "agentsteps.budget.consumed_tokens": exc.consumed_tokens,
        "agentsteps.budget.consumed_usd": exc.consumed_usd,
        "agentsteps.budget.llm_calls": exc.llm_calls,
    }
