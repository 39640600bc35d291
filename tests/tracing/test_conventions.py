"""The GenAI names agentsteps writes are the released conventions' names, so drift fails CI."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as semconv
from opentelemetry.trace import SpanKind

import agentsteps
from agentsteps import Budget, llm_call, persona, record_usage, step
from agentsteps._core import attributes as A
from agentsteps._llm.call import infer_provider
from tests.support import Spans

# Every gen_ai.* name of the released opentelemetry-semantic-conventions package.
RELEASED = {
    value
    for name, value in vars(semconv).items()
    if name.isupper() and isinstance(value, str) and value.startswith("gen_ai.")
}
OPERATIONS = {member.value for member in semconv.GenAiOperationNameValues}
PROVIDERS = {member.value for member in semconv.GenAiProviderNameValues}

# gen_ai.* names agentsteps knows that the released package does not define, and why.
# Only READ_ONLY names may appear here unless listed in EMITTED_EXTRA with a reason.
READ_ONLY = {
    # The draft on the conventions' main branch renames cache_creation to cache_write;
    # spans from instrumentations that follow the draft are read, never written.
    "gen_ai.usage.cache_write.input_tokens",
    # OpenLLMetry's names (Anthropic and others), read by UsageCaptureProcessor.
    "gen_ai.usage.cache_creation_input_tokens",
    "gen_ai.usage.cache_read_input_tokens",
}
EMITTED_EXTRA = {
    # Langfuse reads a generation's cost from it; the conventions have no cost attribute yet.
    "gen_ai.usage.cost",
}


def _constants() -> dict[str, str]:
    return {
        name: value
        for name, value in vars(A).items()
        if name.isupper() and isinstance(value, str) and value.startswith("gen_ai.")
    }


def test_every_gen_ai_constant_is_released_or_listed() -> None:
    """A gen_ai.* name outside the released package must be on a documented list."""
    unknown = {
        name: value
        for name, value in _constants().items()
        if value not in RELEASED and value not in READ_ONLY | EMITTED_EXTRA
    }
    assert unknown == {}
    # The lists hold no stale entry: each is a name agentsteps still knows.
    assert set(_constants().values()) >= (READ_ONLY | EMITTED_EXTRA)
    assert not (READ_ONLY | EMITTED_EXTRA) & RELEASED


def test_operation_values_are_released() -> None:
    operations = {A.OPERATION_INVOKE_AGENT, A.OPERATION_INVOKE_WORKFLOW, A.OPERATION_CHAT}
    assert operations <= OPERATIONS


def test_inferred_providers_are_released_values() -> None:
    models = ("gpt-4o", "o1", "o3-mini", "o4-mini", "claude-sonnet-4-5", "gemini-2.5-pro")
    found = {infer_provider(m) for m in models}
    assert found == {"openai", "anthropic", "gcp.gemini"}
    assert found <= PROVIDERS
    assert infer_provider("llama-3.1-70b") is None
    assert infer_provider("omni-moderation") is None
    assert infer_provider(None) is None


def test_spans_emit_only_released_or_listed_names(spans: Spans) -> None:
    """Run every kind of agentsteps span and check each gen_ai.* key it carries."""

    @step(model="claude-haiku-4-5", budget=Budget(max_tokens=10_000))
    def work() -> None:
        with llm_call(input_tokens=10) as call:
            call.record(
                input_tokens=100,
                output_tokens=20,
                cache_read_tokens=30,
                cache_write_tokens=40,
                reasoning_tokens=5,
                cost_usd=0.001,
            )
        record_usage(model="gpt-4o", input_tokens=10, output_tokens=2, cost_usd=0.0001)

    @persona(name="writer")
    def run() -> None:
        work()

    run()
    emitted = {key for span in spans.all for key in (span.attributes or {}) if key[:7] == "gen_ai."}
    assert emitted - RELEASED <= EMITTED_EXTRA, emitted - RELEASED
    assert "gen_ai.usage.cache_creation.input_tokens" in emitted
    assert "gen_ai.usage.cache_write.input_tokens" not in emitted


def test_cache_writes_are_emitted_under_the_released_name(spans: Spans) -> None:
    @step
    def embed() -> None:
        with llm_call("emb-model", operation="embeddings") as call:
            call.record(input_tokens=50, cache_write_tokens=40, cost_usd=0)

    embed()
    attributes = spans.named("embeddings emb-model").attributes or {}
    assert attributes["gen_ai.usage.cache_creation.input_tokens"] == 40
    assert "gen_ai.usage.cache_write.input_tokens" not in attributes


def test_persona_spans_claim_no_provider(spans: Spans) -> None:
    @persona(name="critic")
    def critic() -> None:
        pass

    critic()
    attributes = spans.named("invoke_agent critic").attributes or {}
    assert "gen_ai.provider.name" not in attributes
    assert "llm.system" not in attributes
    assert attributes["gen_ai.operation.name"] == "invoke_agent"


@pytest.mark.parametrize(
    ("model", "provider"),
    [
        ("gpt-4o-mini", "openai"),
        ("o3", "openai"),
        ("claude-haiku-4-5", "anthropic"),
        ("gemini-2.5-flash", "gcp.gemini"),
        ("my-finetune", None),
    ],
)
def test_llm_call_infers_the_provider(spans: Spans, model: str, provider: str | None) -> None:
    @step(model=model)
    def ask() -> str | None:
        with llm_call() as call:
            call.record(input_tokens=1, output_tokens=1, cost_usd=0)
        return call.provider

    assert ask() == provider
    span = spans.named(f"chat {model}")
    assert span.kind is SpanKind.CLIENT
    assert (span.attributes or {}).get("gen_ai.provider.name") == provider


def test_an_explicit_provider_wins(spans: Spans) -> None:
    with llm_call("gpt-4o", provider="azure.ai.openai") as call:
        pass
    assert call.provider == "azure.ai.openai"
    assert (spans.named("chat gpt-4o").attributes or {})["gen_ai.provider.name"] == (
        "azure.ai.openai"
    )


def _capture(attributes: dict[str, Any]) -> agentsteps.Usage:
    provider = TracerProvider()
    provider.add_span_processor(agentsteps.UsageCaptureProcessor())
    tracer = provider.get_tracer("other-instrumentation")

    @step(name="capture")
    def run() -> agentsteps.Usage:
        with tracer.start_as_current_span("chat claude-haiku-4-5", attributes=attributes):
            pass
        return agentsteps.current_step().usage  # type: ignore[union-attr]

    return run()


@pytest.mark.parametrize(
    "name",
    [
        "gen_ai.usage.cache_creation.input_tokens",
        "gen_ai.usage.cache_write.input_tokens",
        "gen_ai.usage.cache_creation_input_tokens",
    ],
)
def test_capture_reads_every_cache_write_name(name: str) -> None:
    usage = _capture(
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "private-model",
            "gen_ai.usage.input_tokens": 1_000,
            "gen_ai.usage.output_tokens": 10,
            name: 600,
        }
    )
    assert usage.cache_write_tokens == 600
    assert usage.input_tokens == 1_000
