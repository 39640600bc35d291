"""How other backends classify agentsteps spans: Langfuse's filter and types, Phoenix's span kind.

The predicates below restate, in a few lines each, what those projects' sources key on
(checked 2026-11); the tests run them on spans the core really emits.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from opentelemetry.sdk.trace import ReadableSpan

from agentsteps import Budget, persona, record_usage, step
from agentsteps._core import attributes as A

if TYPE_CHECKING:
    from tests.support import Spans


def langfuse_exports_by_default(span: ReadableSpan) -> bool:
    """Langfuse's default span filter (langfuse-python, langfuse/_client/span_filter.py).

    ``is_default_export_span`` keeps a span made by the Langfuse SDK, a span from a known LLM
    instrumentation scope, or (the rule agentsteps relies on) a span with any attribute whose
    key starts with ``gen_ai``.
    """
    scope = span.instrumentation_scope.name if span.instrumentation_scope else ""
    return scope == "langfuse-sdk" or any(key.startswith("gen_ai") for key in span.attributes or {})


def langfuse_observation_type(attributes: Mapping[str, Any]) -> str:
    """Langfuse's OTel ingestion type mapping, first match wins (langfuse/langfuse,
    packages/shared/src/server/otel/ObservationTypeMapper.ts), for the rules that can match
    agentsteps spans: langfuse.observation.type, then openinference.span.kind, then
    gen_ai.operation.name, then gen_ai tool attributes, then any model attribute ->
    GENERATION; otherwise SPAN.
    """
    direct = attributes.get("langfuse.observation.type")
    if direct:
        return str(direct).upper()
    openinference = {
        "CHAIN": "CHAIN",
        "RETRIEVER": "RETRIEVER",
        "LLM": "GENERATION",
        "EMBEDDING": "EMBEDDING",
        "AGENT": "AGENT",
        "TOOL": "TOOL",
    }
    if attributes.get(A.OPENINFERENCE_SPAN_KIND) in openinference:
        return openinference[attributes[A.OPENINFERENCE_SPAN_KIND]]
    operations = {
        "chat": "GENERATION",
        "text_completion": "GENERATION",
        "generate_content": "GENERATION",
        "embeddings": "EMBEDDING",
        "invoke_agent": "AGENT",
        "create_agent": "AGENT",
        "execute_tool": "TOOL",
    }
    if attributes.get(A.GEN_AI_OPERATION_NAME) in operations:
        return operations[attributes[A.GEN_AI_OPERATION_NAME]]
    if attributes.get("gen_ai.tool.name") or attributes.get("gen_ai.tool.call.id"):
        return "TOOL"
    model_keys = (
        "langfuse.observation.model.name",
        A.GEN_AI_REQUEST_MODEL,
        A.GEN_AI_RESPONSE_MODEL,
    )
    if any(attributes.get(key) for key in model_keys):
        return "GENERATION"
    return "SPAN"


def phoenix_span_kind(attributes: Mapping[str, Any]) -> str:
    """Phoenix's span kind at ingestion (arize-phoenix, phoenix/trace/otel.py and
    phoenix/trace/gen_ai/conversion.py): an explicit openinference.span.kind wins; else it is
    inferred from gen_ai.operation.name (invoke_agent/create_agent -> AGENT, chat and friends
    -> LLM, execute_tool -> TOOL, ...; any other operation -> none); with no operation, model
    or message attributes mean LLM. No kind at all is UNKNOWN.
    """
    if A.OPENINFERENCE_SPAN_KIND in attributes:
        return str(attributes[A.OPENINFERENCE_SPAN_KIND])
    if not any(key.startswith("gen_ai.") for key in attributes):
        return "UNKNOWN"
    operation = attributes.get(A.GEN_AI_OPERATION_NAME)
    if operation is None:
        if attributes.get("gen_ai.tool.name") or attributes.get("gen_ai.tool.call.id"):
            return "TOOL"
        return "LLM" if attributes.get(A.GEN_AI_REQUEST_MODEL) else "UNKNOWN"
    return {
        "chat": "LLM",
        "text_completion": "LLM",
        "generate_content": "LLM",
        "embeddings": "EMBEDDING",
        "execute_tool": "TOOL",
        "retrieval": "RETRIEVER",
        "invoke_agent": "AGENT",
        "create_agent": "AGENT",
    }.get(str(operation), "UNKNOWN")


class TestPredicates:
    """The restated rules give the answers the upstream code gives on known inputs."""

    def test_langfuse_rules(self) -> None:
        """invoke_agent is AGENT; a bare model attribute makes a GENERATION; OpenInference wins."""
        assert langfuse_observation_type({A.GEN_AI_OPERATION_NAME: "invoke_agent"}) == "AGENT"
        assert (
            langfuse_observation_type(
                {A.GEN_AI_OPERATION_NAME: "invoke_workflow", A.GEN_AI_REQUEST_MODEL: "m"}
            )
            == "GENERATION"
        )
        assert langfuse_observation_type({A.GEN_AI_OPERATION_NAME: "invoke_workflow"}) == "SPAN"
        assert (
            langfuse_observation_type(
                {A.OPENINFERENCE_SPAN_KIND: "AGENT", A.GEN_AI_REQUEST_MODEL: "m"}
            )
            == "AGENT"
        )

    def test_phoenix_rules(self) -> None:
        """Phoenix knows invoke_agent but not invoke_workflow; an explicit kind wins."""
        assert phoenix_span_kind({A.GEN_AI_OPERATION_NAME: "invoke_agent"}) == "AGENT"
        assert phoenix_span_kind({A.GEN_AI_OPERATION_NAME: "invoke_workflow"}) == "UNKNOWN"
        assert (
            phoenix_span_kind({A.GEN_AI_OPERATION_NAME: "chat", A.OPENINFERENCE_SPAN_KIND: "AGENT"})
            == "AGENT"
        )


def _run(spans: Spans) -> tuple[ReadableSpan, ReadableSpan, ReadableSpan]:
    """A persona calling a step with a model and usage, and a step with neither."""

    @step(name="plan", model="claude-haiku-4-5", budget=Budget(max_tokens=1_000))
    def plan() -> None:
        record_usage(input_tokens=10, output_tokens=5, cost_usd=0.001)

    @step(name="tidy")
    def tidy() -> None:
        pass

    @persona(name="agent")
    def agent() -> None:
        plan()
        tidy()

    agent()
    return spans.named("invoke_agent agent"), spans.step("plan"), spans.step("tidy")


def test_langfuse_exports_every_agentsteps_span(spans: Spans) -> None:
    """Langfuse's default filter keeps persona and step spans: each has gen_ai.* attributes."""
    for span in _run(spans):
        assert langfuse_exports_by_default(span), span.name


def test_personas_are_agents_everywhere(spans: Spans) -> None:
    """A persona span is an AGENT for Langfuse and for Phoenix."""
    persona_span, _, _ = _run(spans)
    assert persona_span.attributes is not None
    assert langfuse_observation_type(persona_span.attributes) == "AGENT"
    assert phoenix_span_kind(persona_span.attributes) == "AGENT"


def test_steps_are_agents_everywhere(spans: Spans) -> None:
    """Step spans, with or without a model, are AGENT for Langfuse and Phoenix, never LLM."""
    _, with_model, bare = _run(spans)
    for span in (with_model, bare):
        assert span.attributes is not None
        assert langfuse_observation_type(span.attributes) == "AGENT", span.name
        assert phoenix_span_kind(span.attributes) == "AGENT", span.name
