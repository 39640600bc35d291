"""
A model call's usage as span attributes, in every convention a backend reads, and the
zero-duration span that makes a recorded call (`record_usage`) visible to backends.

Backends count tokens and cost on model-call spans only (Phoenix on OpenInference LLM
spans, Langfuse on generations, both reading the GenAI conventions too), so every model
call agentsteps charges is on exactly one such span: an `llm_call`'s, or, for usage
reported with `record_usage` / ``record_openai`` / ``record_anthropic``, one of these.
"""

from __future__ import annotations

import re
import time
from typing import Any

from opentelemetry import trace

from .._accounting.usage import Usage
from . import attributes as A
from .config import get_tracer
from .telemetry_log import log_telemetry_failure

__all__ = [
    "ELSEWHERE_ATTRIBUTES",
    "describes_a_request",
    "elsewhere_attributes",
    "emit_record_span",
    "usage_attributes",
]

_CLIENT = trace.SpanKind.CLIENT

# OpenInference's provider names, where they differ from the GenAI conventions' values.
_OPENINFERENCE_PROVIDER = {
    "gcp.gemini": "google",
    "gcp.vertex_ai": "google",
    "gcp.gen_ai": "google",
    "azure.ai.openai": "azure",
    "azure.ai.inference": "azure",
    "aws.bedrock": "aws",
    "mistral_ai": "mistralai",
    "x_ai": "xai",
}

# What a model-call span whose request another instrumentation's span describes gets
# instead of its usage: a kind Phoenix and Langfuse do not count as a model call.
ELSEWHERE_ATTRIBUTES: dict[str, Any] = {
    A.OPENINFERENCE_SPAN_KIND: A.OPENINFERENCE_KIND_CHAIN,
    A.LLM_CALL_USAGE_ELSEWHERE: True,
}


def describes_a_request(span: Any) -> bool:
    """Whether ``span`` is another instrumentation's span of one model request."""
    attributes = getattr(span, "attributes", None)
    if not attributes or A.KIND in attributes:
        return False
    return attributes.get(A.GEN_AI_OPERATION_NAME) in A.MODEL_OPERATIONS


def elsewhere_attributes(model: str | None, usage: Usage, source: str) -> dict[str, Any]:
    """
    What a model-call span whose request another instrumentation's span describes carries:
    that span reports the usage to backends (summing model-call spans must count it once),
    so this one keeps the figures in agentsteps' own namespace only, and is a CHAIN.
    """
    cost = usage.cost_usd
    attributes = dict(ELSEWHERE_ATTRIBUTES)
    sub = A.SUBTREE_USAGE
    for field in A.USAGE_FIELDS:
        attributes[sub[field]] = getattr(usage, field)
    attributes[A.LLM_CALL_COST_USD] = cost
    attributes[A.LLM_CALL_COST_SOURCE] = source
    if model is not None:
        attributes[A.GEN_AI_RESPONSE_MODEL] = model
    return attributes


def usage_attributes(
    operation: str,
    model: str | None,
    provider: str | None,
    usage: Usage,
    source: str,
) -> dict[str, Any]:
    """
    The attributes that carry one model call's usage and cost: the GenAI conventions',
    OpenInference's (Phoenix), Langfuse's cost, and agentsteps' own.

    ``model`` is the one that answered (else the one asked for); token counts are in the
    OpenTelemetry sense (input includes cached input, output includes reasoning).
    """
    inp = usage.input_tokens
    out = usage.output_tokens
    cread = usage.cache_read_tokens
    cwrite = usage.cache_write_tokens
    reason = usage.reasoning_tokens
    cost = usage.cost_usd
    embedding = operation == A.OPERATION_EMBEDDINGS
    attributes: dict[str, Any] = {
        A.GEN_AI_USAGE_INPUT_TOKENS: inp,
        A.GEN_AI_USAGE_OUTPUT_TOKENS: out,
        A.GEN_AI_USAGE_COST: cost,
        A.LLM_CALL_COST_USD: cost,
        A.LLM_CALL_COST_SOURCE: source,
        A.OPENINFERENCE_SPAN_KIND: (
            A.OPENINFERENCE_KIND_EMBEDDING if embedding else A.OPENINFERENCE_KIND_LLM
        ),
        A.LLM_TOKEN_COUNT_PROMPT: inp,
        A.LLM_TOKEN_COUNT_COMPLETION: out,
        A.LLM_TOKEN_COUNT_TOTAL: inp + out,
        A.LLM_COST_TOTAL: cost,
    }
    if cread:
        attributes[A.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] = cread
        attributes[A.LLM_TOKEN_COUNT_CACHE_READ] = cread
    if cwrite:
        attributes[A.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS] = cwrite
        attributes[A.LLM_TOKEN_COUNT_CACHE_WRITE] = cwrite
    if reason:
        attributes[A.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] = reason
        attributes[A.LLM_TOKEN_COUNT_REASONING] = reason
    if model is not None:
        attributes[A.GEN_AI_RESPONSE_MODEL] = model
        if not embedding:
            attributes[A.LLM_MODEL_NAME] = model
    if provider is not None:
        attributes[A.LLM_PROVIDER] = _OPENINFERENCE_PROVIDER.get(provider, provider)
    return attributes


def emit_record_span(
    model: str | None,
    provider: str | None,
    usage: Usage,
    source: str,
) -> None:
    """
    Make the zero-duration CLIENT span ``chat {model}`` of a model call reported with
    `record_usage`, in the current context (under the step's span), carrying its usage.
    Does nothing when tracing is off. Never raises: the record must not depend on it.
    """
    tracer = get_tracer()
    if tracer is None:
        return

    if provider is None:
        provider = infer_provider(model)
    start: dict[str, Any] = {A.GEN_AI_OPERATION_NAME: A.OPERATION_CHAT, A.KIND: A.KIND_LLM_CALL}
    if provider is not None:
        start[A.GEN_AI_PROVIDER_NAME] = provider
    if model is not None:
        start[A.GEN_AI_REQUEST_MODEL] = model
    name = A.OPERATION_CHAT if model is None else f"{A.OPERATION_CHAT} {model}"
    # Reported inside another instrumentation's span of the same request (a framework's
    # chat span around record_openai): that span carries the usage for backends.
    elsewhere = describes_a_request(trace.get_current_span())
    now = time.time_ns()
    # A span processor that raises costs the span, never the charge. Logged as the step
    # spans' failures are (same actions), so one broken processor is one cause, counted.
    try:
        span = tracer.start_span(name, kind=_CLIENT, attributes=start, start_time=now)
    except Exception:
        log_telemetry_failure("start", "the span of a recorded model call")
        return
    ended = False
    try:
        if span.is_recording():
            if elsewhere:
                attributes = elsewhere_attributes(model, usage, source)
            else:
                attributes = usage_attributes(A.OPERATION_CHAT, model, provider, usage, source)
            span.set_attributes(attributes)
        span.end(end_time=now)
        ended = True
    except Exception:
        log_telemetry_failure("end", "the span of a recorded model call")
    except BaseException:
        # An interruption (a signal's KeyboardInterrupt) landed between start and end:
        # the span still ends, once, as a step's does (see ending.end).
        if not ended:
            try:
                span.end(end_time=now)
            except Exception:
                pass  # telemetry must not replace the interruption being handled
        raise


_OPENAI_MODEL = re.compile(r"gpt-.+|o[1-9][0-9]*(?:-.+)?")


def infer_provider(model: str | None) -> str | None:
    """
    The provider of a well-known model name, or ``None``.

    ``gpt-*`` and ``o1``/``o3``/``o4-mini``-style names are OpenAI's, ``claude-*``
    Anthropic's, ``gemini-*`` Google's (``gcp.gemini``). Anything else (open-weight models
    served by many providers, private names) gets no provider rather than a guess.

    >>> infer_provider("gpt-4o-mini"), infer_provider("o3"), infer_provider("claude-haiku-4-5")
    ('openai', 'openai', 'anthropic')
    >>> infer_provider("gemini-2.5-pro"), infer_provider("llama-3.1-70b"), infer_provider("omni")
    ('gcp.gemini', None, None)
    """
    if model is None:
        return None
    if model.startswith("claude-"):
        return "anthropic"
    if model.startswith("gemini-"):
        return "gcp.gemini"
    if _OPENAI_MODEL.fullmatch(model):
        return "openai"
    return None
