"""
A model call's telemetry: its CLIENT span (started when the block opens, given its usage
when it ends) and its GenAI metric points. Never raises: a broken span processor or metric
reader costs the telemetry, never the call (see `_core/telemetry_log.py`).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from .._accounting.usage import Usage
from .._core import attributes as A
from .._core.config import get_tracer
from .._core.instruments import Instruments, model_call_attributes, record_model_call
from .._core.llm_spans import describes_a_request, elsewhere_attributes, usage_attributes
from .._core.telemetry_log import log_telemetry_failure

if TYPE_CHECKING:
    from .call import LLMCall

__all__ = ["close_span", "open_span", "record_metrics", "span_attributes"]

_CLIENT = trace.SpanKind.CLIENT
logger = logging.getLogger("agentsteps")


def open_span(call: LLMCall) -> None:
    """Start the call's span, with what a sampler may want to see, and make it current."""
    tracer = get_tracer()
    if tracer is not None:
        attributes: dict[str, Any] = {
            A.GEN_AI_OPERATION_NAME: call._operation,
            A.KIND: A.KIND_LLM_CALL,
        }
        if call._provider is not None:
            attributes[A.GEN_AI_PROVIDER_NAME] = call._provider
        if call._model is not None:
            attributes[A.GEN_AI_REQUEST_MODEL] = call._model
        if call._input_estimate is not None:
            attributes[A.LLM_CALL_INPUT_ESTIMATE] = call._input_estimate
        limit = call.max_output_tokens
        if limit is not None:
            attributes[A.LLM_CALL_MAX_OUTPUT_TOKENS] = limit
        name = call._operation if call._model is None else f"{call._operation} {call._model}"
        call._elsewhere = describes_a_request(trace.get_current_span())
        try:
            span = tracer.start_span(name, kind=_CLIENT, attributes=attributes)
        except Exception:
            # A span processor's on_start raised: the call goes on untraced.
            log_telemetry_failure(
                "start", f"the span of model call {name!r}", "the call runs untraced"
            )
        else:
            call._span = span
            call._otel_context = trace.set_span_in_context(span)
            call._otel_token = otel_context.attach(call._otel_context)


def close_span(call: LLMCall, error: BaseException | None) -> None:
    """End the call's span with its usage and, if it failed, its error."""
    span = call._span
    if span is None:
        return
    try:
        if span.is_recording():
            span.set_attributes(span_attributes(call))
            if error is not None:
                span.set_attribute(A.ERROR_TYPE, type(error).__qualname__)
                if isinstance(error, Exception):
                    span.record_exception(error)
                    span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
        span.end()
    except Exception:
        # A span processor's on_end raised: the call's outcome must not depend on it.
        log_telemetry_failure("end", "the span of a model call")


def record_metrics(call: LLMCall, meter: Instruments, error: BaseException | None) -> None:
    """This call's GenAI metric points: its tokens (if it reported usage), its duration."""
    duration = time.perf_counter() - call._started
    with call._lock:
        inp, out = call._charged.input_tokens, call._charged.output_tokens
        reported = call._source is not None
        attached = call._attached
        response_model = call._response_model
        elsewhere = call._elsewhere
    if elsewhere:
        # Another instrumentation's span describes this request, and that
        # instrumentation records its metrics: counting them here too would double them.
        return
    if attached is not None:
        inp += attached[0].input_tokens
        out += attached[0].output_tokens
        reported = True
    attributes = model_call_attributes(
        call._operation, call._provider, call._model, response_model or call._model
    )
    try:
        tokens = (inp, out) if reported else None
        record_model_call(meter, attributes, tokens, duration, error)
    except Exception:
        logger.warning("could not record the metrics of a model call", exc_info=True)


def span_attributes(call: LLMCall) -> dict[str, Any]:
    """The usage attributes of the call's span, at its end (empty if nothing was reported)."""
    with call._lock:
        usage = call._charged
        source = call._source
        response_model = call._response_model or call._model
        attached = call._attached
        elsewhere = call._elsewhere
    if attached is not None:
        more, more_source = attached
        # The records' tokens and cost join the call's; the call stays one call.
        usage = Usage._unchecked(
            usage.input_tokens + more.input_tokens,
            usage.output_tokens + more.output_tokens,
            usage.cache_read_tokens + more.cache_read_tokens,
            usage.cache_write_tokens + more.cache_write_tokens,
            usage.reasoning_tokens + more.reasoning_tokens,
            usage.llm_calls,
            usage.unpriced_calls,
            usage.cost_nano_usd + more.cost_nano_usd,
        )
        source = source or more_source
    if source is None:
        return {}
    if elsewhere:
        # Another span reports this request's usage to backends: summing model-call
        # spans must count it once. The figures stay readable in our own namespace.
        return elsewhere_attributes(response_model, usage, source)
    return usage_attributes(call._operation, response_model, call._provider, usage, source)
