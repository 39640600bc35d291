"""Budgets for clients that are already instrumented: usage read from their GenAI spans."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from .._accounting.pricing import price
from .._accounting.usage import Usage
from .._core import attributes as A
from .._core.context import CURRENT, ActivePersona, ActiveStep
from .._core.recording import charge
from .call import CALL, LLMCall

__all__ = ["UsageCaptureProcessor"]

logger = logging.getLogger("agentsteps")

_Owner = ActiveStep | ActivePersona | LLMCall
# The owner of a span whose start this processor did not see.
_UNSEEN: Any = object()


class UsageCaptureProcessor(SpanProcessor):
    """
    Charge the usage on other instrumentations' GenAI spans to the step that made the call.

    Add it to your tracer provider and every span that an OpenTelemetry GenAI
    instrumentation (for example ``opentelemetry-instrumentation-openai-v2``) ends with
    ``gen_ai.usage.*`` attributes is charged to the step that was active where the span
    *started*, as one model call, priced like `record_usage`. Users who already instrument
    their clients get budgets without reporting anything::

        provider.add_span_processor(UsageCaptureProcessor())
        OpenAIInstrumentor().instrument(tracer_provider=provider)

    It never raises into the instrumented library: when captured usage takes a step over
    budget, the exhaustion is latched and raised at the step's next checkpoint, which is
    its next `record_usage`, its next `llm_call`, or its exit, whichever comes first.

    What is not counted twice:

    - agentsteps' own spans (steps, personas, `llm_call`), which carry ``gen_ai.usage.*``
      for usage already charged;
    - a GenAI span started inside an `llm_call` block: its usage becomes the call's usage
      (replacing streamed estimates), unless `LLMCall.record` already gave the call's
      figures, which then stand; recording them after the capture replaces it;
    - a GenAI span that wraps another one whose usage was captured (a framework's span
      around a client's span): the innermost report wins;
    - a GenAI span with an agentsteps model-call span directly beneath it (a framework's
      chat span around an `llm_call`, or around ``record_openai``): the request is
      charged by the model call, once; spans around that one count as wrapping it.

    Spans started outside any step are ignored, even if they end inside one (a stream
    opened before a step and read in it was not the step's call); a span that started
    before the processor was added is charged to the step it ends in. Older and other
    attribute names (``gen_ai.usage.prompt_tokens``, ``gen_ai.usage.completion_tokens``,
    ``gen_ai.system``; cache writes as ``gen_ai.usage.cache_creation.input_tokens``,
    ``gen_ai.usage.cache_write.input_tokens`` or OpenLLMetry's
    ``gen_ai.usage.cache_creation_input_tokens``) are read too. Counts are taken in the
    OpenTelemetry sense (input includes cached tokens, output includes reasoning); a span
    whose cached tokens exceed its input tokens is read as reporting them separately,
    Anthropic style, and added.

    .. versionadded:: 0.1.0
    """

    def __init__(self) -> None:
        # Span id -> the step (or open model call) active where the span started, or
        # _OUTSIDE for a span started outside any step. Entries live from a span's start to
        # its end.
        self._owners: dict[int, _Owner | None] = {}
        # Spans one of whose children already had its usage captured.
        self._reported_parents: set[int] = set()
        # Spans with one of agentsteps' model-call spans directly beneath them.
        self._covered: set[int] = set()

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        """Remember which step the span starts in (called by the SDK)."""
        attributes = span.attributes
        if attributes is not None and A.KIND in attributes:
            # One of ours: its usage is charged already. A model call of ours inside
            # another instrumentation's span means that span describes the same request
            # (a framework's chat span around llm_call): its usage must not count again.
            parent = span.parent
            if (
                parent is not None
                and attributes.get(A.KIND) == A.KIND_LLM_CALL
                and self._owners.get(parent.span_id) is not None
            ):
                self._covered.add(parent.span_id)
            return
        frame = CURRENT.get()
        span_id = span.get_span_context().span_id
        if frame is None or frame._step is None:
            # Remembered as outside, so that it is not charged to a step it ends in (a
            # stream opened before a step and read inside it was not the step's call).
            self._owners[span_id] = None
            return
        call = CALL.get()
        owner: _Owner = call if call is not None and call._frame is frame else frame
        self._owners[span_id] = owner

    def on_end(self, span: ReadableSpan) -> None:
        """Charge the span's usage, if it has any, to its step (called by the SDK)."""
        try:
            self._capture(span)
        except Exception:  # telemetry must never break the instrumented client
            logger.exception("agentsteps could not charge the usage of span %r", span.name)

    def _capture(self, span: ReadableSpan) -> None:
        context = span.context
        span_id = 0 if context is None else context.span_id
        owner = self._owners.pop(span_id, _UNSEEN)
        wraps_reported = span_id in self._reported_parents
        if wraps_reported:
            self._reported_parents.discard(span_id)
        if span_id in self._covered:
            self._covered.discard(span_id)
            wraps_reported = True  # its request is charged by the model call inside it
        attributes = span.attributes
        if not attributes or A.KIND in attributes:
            return
        usage = _read_usage(attributes)
        if usage is None:
            return
        parent = span.parent
        if parent is not None and parent.span_id in self._owners:
            self._reported_parents.add(parent.span_id)
        if wraps_reported:
            return
        if owner is None:
            return  # started outside any step
        if owner is _UNSEEN:
            # Started before the processor was added: the context the span ends in is the
            # best guess left.
            frame = CURRENT.get()
            if frame is None or frame._step is None:
                return
            call = CALL.get()
            owner = call if call is not None and call._frame is frame else frame
        request_model = _str(attributes.get(A.GEN_AI_REQUEST_MODEL))
        response_model = _str(attributes.get(A.GEN_AI_RESPONSE_MODEL))
        if isinstance(owner, LLMCall):
            owner._report(
                usage,
                "UsageCaptureProcessor",
                replace=True,
                response_model=response_model,
                raise_now=False,
                observed=True,
            )
            return
        provider = _str(attributes.get(A.GEN_AI_PROVIDER_NAME)) or _str(
            attributes.get(A.GEN_AI_SYSTEM)
        )
        inp, out, cread, cwrite, reason = usage
        tokens = Usage._unchecked(inp, out, cread, cwrite, reason, 1, 0, 0)
        nanos, source = price(tokens, request_model, provider, response_model)
        unpriced = 1 if source == "unknown" else 0
        model = response_model or request_model
        charged = Usage._unchecked(inp, out, cread, cwrite, reason, 1, unpriced, nanos)
        charge(owner, charged, model, raise_now=False)

    def shutdown(self) -> None:
        """Forget the spans still open."""
        self._owners.clear()
        self._reported_parents.clear()
        self._covered.clear()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Nothing is buffered: always done."""
        return True


def _count(value: object) -> int:
    # Only plain non-negative ints: a malformed attribute counts as absent, never raises.
    if type(value) is int and value >= 0:
        return value
    return 0


def _first_count(attributes: Mapping[str, Any], names: tuple[str, ...]) -> int:
    """The count under the first of ``names`` the span has (conventions differ by source)."""
    for name in names:
        value = attributes.get(name)
        if value is not None:
            return _count(value)
    return 0


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _read_usage(attributes: Mapping[str, Any]) -> tuple[int, int, int, int, int] | None:
    """The span's token counts, in the OpenTelemetry sense, or None when it has none."""
    raw_in = attributes.get(A.GEN_AI_USAGE_INPUT_TOKENS)
    if raw_in is None:
        raw_in = attributes.get(A.GEN_AI_USAGE_PROMPT_TOKENS)
    raw_out = attributes.get(A.GEN_AI_USAGE_OUTPUT_TOKENS)
    if raw_out is None:
        raw_out = attributes.get(A.GEN_AI_USAGE_COMPLETION_TOKENS)
    if raw_in is None and raw_out is None:
        return None
    inp, out = _count(raw_in), _count(raw_out)
    cread = _first_count(attributes, A.CACHE_READ_NAMES)
    cwrite = _first_count(attributes, A.CACHE_WRITE_NAMES)
    reason = _count(attributes.get(A.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS))
    if cread + cwrite > inp:
        inp += cread + cwrite  # reported apart from the input, Anthropic style
    if reason > out:
        out += reason
    return inp, out, cread, cwrite, reason
