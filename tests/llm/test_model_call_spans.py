"""One span per model call, one charge per model call, whichever instrumentation wraps which."""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind

from agentsteps import (
    Budget,
    current_step,
    llm_call,
    record_usage,
    run,
    step,
)
from agentsteps.integrations import record_anthropic, record_openai
from tests.support import Spans

USAGE = {"gen_ai.usage.input_tokens": 100, "gen_ai.usage.output_tokens": 10}


def model_spans(spans: Spans) -> list[ReadableSpan]:
    """Spans a backend summing model calls counts: OpenInference LLM spans with tokens."""
    counted = []
    for span in spans.all:
        attributes = span.attributes or {}
        kind = attributes.get("openinference.span.kind")
        if kind is None and attributes.get("gen_ai.operation.name") == "chat":
            kind = "LLM"  # what Phoenix infers for a GenAI chat span
        if kind == "LLM" and "gen_ai.usage.input_tokens" in attributes:
            counted.append(span)
    return counted


class TestRecordedCalls:
    def test_record_usage_makes_a_zero_duration_client_span(self, spans: Spans) -> None:
        @step(name="summarize", model="claude-haiku-4-5")
        def summarize() -> None:
            record_usage(
                input_tokens=1_000, output_tokens=200, cache_write_tokens=600, cost_usd=0.002
            )

        summarize()
        span = spans.named("chat claude-haiku-4-5")
        assert span.kind is SpanKind.CLIENT
        assert span.start_time == span.end_time
        assert span.parent is not None
        assert span.parent.span_id == spans.step("summarize").context.span_id
        attributes = dict(span.attributes or {})
        assert attributes == {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "anthropic",
            "gen_ai.request.model": "claude-haiku-4-5",
            "gen_ai.response.model": "claude-haiku-4-5",
            "gen_ai.usage.input_tokens": 1_000,
            "gen_ai.usage.output_tokens": 200,
            "gen_ai.usage.cache_creation.input_tokens": 600,
            "gen_ai.usage.cost": 0.002,
            "agentsteps.kind": "llm_call",
            "agentsteps.usage.cost_usd": 0.002,
            "agentsteps.usage.cost_source": "provider",
            "openinference.span.kind": "LLM",
            "llm.model_name": "claude-haiku-4-5",
            "llm.provider": "anthropic",
            "llm.token_count.prompt": 1_000,
            "llm.token_count.completion": 200,
            "llm.token_count.total": 1_200,
            "llm.token_count.prompt_details.cache_write": 600,
            "llm.cost.total": 0.002,
        }

    def test_record_openai_and_anthropic(self, spans: Spans) -> None:
        openai_reply = {
            "model": "gpt-4o-mini-2024-07-18",
            "usage": {"prompt_tokens": 120, "completion_tokens": 30},
        }
        anthropic_reply = {
            "type": "message",
            "model": "claude-haiku-4-5-20251001",
            "usage": {"input_tokens": 50, "output_tokens": 5},
        }

        @step(name="both")
        def both() -> None:
            record_openai(openai_reply)
            record_anthropic(anthropic_reply)

        both()
        assert [(s.name, (s.attributes or {})["llm.token_count.total"]) for s in spans.all[:2]] == [
            ("chat gpt-4o-mini-2024-07-18", 150),
            ("chat claude-haiku-4-5-20251001", 55),
        ]
        priced = spans.named("chat gpt-4o-mini-2024-07-18").attributes or {}
        assert priced["agentsteps.usage.cost_source"] == "catalog"
        assert priced["llm.cost.total"] == priced["gen_ai.usage.cost"] > 0
        assert priced["gen_ai.provider.name"] == "openai"

    def test_outside_a_step_no_span(self, spans: Spans) -> None:
        record_usage(model="m", input_tokens=1, output_tokens=1, cost_usd=0)
        assert spans.all == []

    def test_inside_llm_call_one_span(self, spans: Spans) -> None:
        """A record inside an llm_call block shows on the call's span, not a second one."""

        @step(name="s", model="m")
        def s() -> None:
            with llm_call():
                record_usage(input_tokens=70, output_tokens=7, cost_usd=0.5)

        s()
        (call,) = [x for x in spans.all if x.name == "chat m"]
        attributes = call.attributes or {}
        assert attributes["gen_ai.usage.input_tokens"] == 70
        assert attributes["llm.cost.total"] == 0.5
        assert len(model_spans(spans)) == 1


def _foreign(spans: Spans, name: str = "chat gpt-4o", **extra: Any) -> Any:
    """A span of another GenAI instrumentation (Pydantic AI, OpenLLMetry, LiteLLM...)."""
    attributes = {"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o", **extra}
    tracer = spans.provider.get_tracer("another-instrumentation")
    return tracer.start_as_current_span(name, kind=SpanKind.CLIENT, attributes=attributes)


class TestNoDoubleCounting:
    def test_foreign_span_around_llm_call(self, capture: Spans) -> None:
        """The issue's one-call repro: 110 tokens and 1 call, not 220 and 2."""

        @step(name="s", model="gpt-4o")
        def s() -> tuple[int, int]:
            with _foreign(capture) as outer:
                with llm_call() as call:
                    call.record(input_tokens=100, output_tokens=10, cost_usd=0.001)
                outer.set_attributes(USAGE)
            usage = current_step().usage  # type: ignore[union-attr]
            return usage.total_tokens, usage.llm_calls

        assert s() == (110, 1)
        # Backends see the request once: on the outer span, which carries the usage.
        (counted,) = model_spans(capture)
        assert counted.name == "chat gpt-4o" and counted.instrumentation_scope is not None
        assert counted.instrumentation_scope.name == "another-instrumentation"
        ours = [x for x in capture.all if (x.attributes or {}).get("agentsteps.kind")]
        (ours_attributes,) = [x.attributes or {} for x in ours]
        assert ours_attributes["openinference.span.kind"] == "CHAIN"
        assert ours_attributes["agentsteps.llm_call.usage_on_other_span"] is True
        assert ours_attributes["agentsteps.usage.subtree.input_tokens"] == 100

    def test_foreign_span_inside_llm_call(self, capture: Spans) -> None:
        @step(name="s", model="gpt-4o")
        def s() -> tuple[int, int]:
            with llm_call(), _foreign(capture) as inner:
                inner.set_attributes(USAGE)
            usage = current_step().usage  # type: ignore[union-attr]
            return usage.total_tokens, usage.llm_calls

        assert s() == (110, 1)
        (counted,) = model_spans(capture)
        assert counted.instrumentation_scope is not None
        assert counted.instrumentation_scope.name == "another-instrumentation"

    def test_framework_agent_run_around_chat_spans_around_llm_calls(self, capture: Spans) -> None:
        """Pydantic AI's shape: an agent run span (usage totals) around chat spans (usage),
        each around an llm_call. 4 requests: 4 calls, not 8; 4 x 7,780 tokens, not twice."""
        tracer = capture.provider.get_tracer("pydantic-ai")

        @step(name="agent", model="gpt-4o", budget=Budget(max_tokens=1_000_000))
        def agent() -> tuple[int, int]:
            totals = {"gen_ai.usage.input_tokens": 0, "gen_ai.usage.output_tokens": 0}
            with tracer.start_as_current_span(
                "invoke_agent agent", attributes={"gen_ai.operation.name": "invoke_agent"}
            ) as agent_run:
                for _ in range(4):
                    with _foreign(capture) as chat:
                        with llm_call() as call:
                            call.record(input_tokens=7_000, output_tokens=780, cost_usd=0.01)
                        chat.set_attributes(
                            {"gen_ai.usage.input_tokens": 7_000, "gen_ai.usage.output_tokens": 780}
                        )
                    totals["gen_ai.usage.input_tokens"] += 7_000
                    totals["gen_ai.usage.output_tokens"] += 780
                agent_run.set_attributes(totals)
            usage = current_step().usage  # type: ignore[union-attr]
            return usage.total_tokens, usage.llm_calls

        with run() as r:
            assert agent() == (31_120, 4)
        assert r.total.llm_calls == 4
        assert len(model_spans(capture)) == 4

    def test_foreign_span_around_record_openai(self, capture: Spans) -> None:
        reply = {"model": "gpt-4o", "usage": {"prompt_tokens": 100, "completion_tokens": 10}}

        @step(name="s")
        def s() -> tuple[int, int]:
            with _foreign(capture) as outer:
                record_openai(reply)
                outer.set_attributes(USAGE)
            usage = current_step().usage  # type: ignore[union-attr]
            return usage.total_tokens, usage.llm_calls

        assert s() == (110, 1)
        # In a backend too: the framework's span carries the usage, the record's span not.
        (counted,) = model_spans(capture)
        assert counted.instrumentation_scope is not None
        assert counted.instrumentation_scope.name == "another-instrumentation"
        ours = [x for x in capture.all if (x.attributes or {}).get("agentsteps.kind")]
        (ours_attributes,) = [x.attributes or {} for x in ours]
        assert ours_attributes["agentsteps.llm_call.usage_on_other_span"] is True
        assert ours_attributes["agentsteps.usage.subtree.input_tokens"] == 100

    def test_unrelated_foreign_spans_still_charged(self, capture: Spans) -> None:
        """A foreign chat span next to (not around) an llm_call is its own request."""

        @step(name="s", model="gpt-4o")
        def s() -> tuple[int, int]:
            with llm_call() as call:
                call.record(input_tokens=100, output_tokens=10, cost_usd=0.001)
            with _foreign(capture) as other:
                other.set_attributes(USAGE)
            usage = current_step().usage  # type: ignore[union-attr]
            return usage.total_tokens, usage.llm_calls

        assert s() == (220, 2)
        assert len(model_spans(capture)) == 2
