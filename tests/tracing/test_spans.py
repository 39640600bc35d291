"""Every persona and step is an OpenTelemetry span with the documented attributes."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterator

import pytest
from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode

import agentsteps
from agentsteps import Budget, StepBudgetExhausted, StepEscalated, persona, record_usage, step
from tests.support import Spans


class TestNamesAndParentage:
    def test_persona_and_step_spans(self, spans: Spans) -> None:
        """Persona -> invoke_agent {name}; step -> invoke_workflow {name}; children nest."""

        @step(
            name="summarize",
            model="claude-haiku-4-5",
            budget=Budget(max_tokens=2000, max_usd=0.05, max_llm_calls=3),
        )
        def summarize() -> None:
            record_usage(input_tokens=812, output_tokens=95, cost_usd=0.0012)
            helper()

        @step(name="helper")
        def helper() -> None:
            record_usage(
                model="claude-sonnet-4-5", input_tokens=100, output_tokens=10, cost_usd=0.001
            )

        @persona(name="reviewer")
        def review() -> None:
            summarize()

        review()
        p = spans.named("invoke_agent reviewer")
        s = spans.step("summarize")
        h = spans.step("helper")
        assert p.kind is SpanKind.INTERNAL and s.kind is SpanKind.INTERNAL
        assert p.parent is None
        assert s.parent is not None and s.parent.span_id == p.context.span_id
        assert h.parent is not None and h.parent.span_id == s.context.span_id
        assert len({x.context.trace_id for x in spans.all}) == 1

        assert p.attributes is not None and s.attributes is not None and h.attributes is not None
        assert p.attributes["gen_ai.operation.name"] == "invoke_agent"
        assert p.attributes["gen_ai.agent.name"] == "reviewer"
        assert p.attributes["agentsteps.persona.status"] == "completed"

        a = dict(s.attributes)
        assert a["gen_ai.operation.name"] == "invoke_workflow"
        assert a["gen_ai.agent.name"] == "reviewer"
        assert a["gen_ai.request.model"] == "claude-haiku-4-5"
        assert a["gen_ai.response.model"] == "claude-haiku-4-5"
        assert a["agentsteps.step.name"] == "summarize"
        assert a["agentsteps.step.function"].endswith("<locals>.summarize")
        assert a["agentsteps.step.status"] == "completed"
        assert a["agentsteps.step.error_boundary"] == "fail"
        assert a["agentsteps.budget.max_tokens"] == 2000
        assert a["agentsteps.budget.max_usd"] == 0.05
        assert a["agentsteps.budget.max_llm_calls"] == 3
        assert a["agentsteps.usage.self.input_tokens"] == 812
        assert a["agentsteps.usage.self.output_tokens"] == 95
        assert a["agentsteps.usage.self.llm_calls"] == 1
        assert a["agentsteps.usage.self.cost_usd"] == pytest.approx(0.0012)
        assert a["agentsteps.usage.subtree.input_tokens"] == 912
        assert a["agentsteps.usage.subtree.llm_calls"] == 2
        assert a["agentsteps.usage.subtree.cost_usd"] == pytest.approx(0.0022)
        assert s.status.status_code is StatusCode.UNSET

        ha = dict(h.attributes)
        assert ha["gen_ai.request.model"] == "claude-haiku-4-5"  # inherited
        assert ha["gen_ai.response.model"] == "claude-sonnet-4-5"  # actually used

    def test_function_attribute_only_when_it_adds_something(self, spans: Spans) -> None:
        """A step named after its function does not repeat the name as the function."""

        @step
        def plain() -> None: ...

        plain()
        (span,) = spans.all
        attributes = dict(span.attributes or {})
        assert attributes["agentsteps.step.name"].endswith("<locals>.plain")
        assert "agentsteps.step.function" not in attributes

    def test_self_usage_sums_without_double_counting(self, spans: Spans) -> None:
        """Summing the self figures over all spans gives the true total."""

        @step(name="a")
        def a() -> None:
            record_usage(model="m", input_tokens=1, output_tokens=1, cost_usd=0.5)
            b()

        @step(name="b")
        def b() -> None:
            record_usage(model="m", input_tokens=2, output_tokens=2, cost_usd=0.25)

        a()
        total = sum(
            s.attributes.get("agentsteps.usage.self.input_tokens", 0)  # type: ignore[union-attr,misc]
            for s in spans.all
        )
        assert total == 3

    def test_user_span_in_between_is_respected(self, spans: Spans) -> None:
        """A span the user opens inside a step parents the nested step."""
        tracer = spans.provider.get_tracer("user")

        @step(name="outer")
        def outer() -> None:
            with tracer.start_as_current_span("user-work"):
                inner()

        @step(name="inner")
        def inner() -> None: ...

        outer()
        assert spans.step("inner").parent.span_id == spans.named("user-work").context.span_id  # type: ignore[union-attr]

    def test_async_concurrent_parentage(self, spans: Spans) -> None:
        """Concurrent async steps each parent to the step that spawned them."""

        @step(name="leaf")
        async def leaf() -> None:
            await asyncio.sleep(0)

        @step(name="root")
        async def root() -> None:
            await asyncio.gather(*(leaf() for _ in range(10)))

        asyncio.run(root())
        root_id = spans.step("root").context.span_id
        leaves = [s for s in spans.all if s.name == "invoke_workflow leaf"]
        assert len(leaves) == 10
        assert all(s.parent is not None and s.parent.span_id == root_id for s in leaves)


class TestStatuses:
    def test_failed_step(self, spans: Spans) -> None:
        """failed: status ERROR, error.type and the exception recorded."""

        @step(name="s")
        def s() -> None:
            raise ValueError("bad diff")

        with pytest.raises(ValueError, match="bad diff"):
            s()
        span = spans.step("s")
        assert span.status.status_code is StatusCode.ERROR
        assert span.status.description == "ValueError: bad diff"
        assert span.attributes["error.type"] == "ValueError"  # type: ignore[index]
        assert span.attributes["agentsteps.step.status"] == "failed"  # type: ignore[index]
        assert [e.name for e in span.events] == ["exception"]

    def test_skipped_step_records_event_and_stays_ok(self, spans: Spans) -> None:
        """skipped: an exhaustion event, status not ERROR."""

        @step(name="s", budget=Budget(max_tokens=10), error_boundary="continue")
        def s() -> None:
            record_usage(model="m", input_tokens=20, output_tokens=0, cost_usd=0)

        s()
        span = spans.step("s")
        assert span.status.status_code is not StatusCode.ERROR
        assert span.attributes["agentsteps.step.status"] == "skipped"  # type: ignore[index]
        assert span.attributes["agentsteps.budget.exhausted_limit"] == "max_tokens"  # type: ignore[index]
        (event,) = span.events
        assert event.name == "agentsteps.budget_exhausted"
        assert event.attributes["agentsteps.budget.limit"] == "max_tokens"  # type: ignore[index]
        assert event.attributes["agentsteps.budget.consumed_tokens"] == 20  # type: ignore[index]

    def test_escalated_step(self, spans: Spans) -> None:
        """escalated: status ERROR with error.type StepEscalated."""

        @step(name="s", budget=Budget(max_tokens=10), error_boundary="escalate")
        def s() -> None:
            record_usage(model="m", input_tokens=20, output_tokens=0, cost_usd=0)

        with pytest.raises(StepEscalated) as info:
            s()
        span = spans.step("s")
        assert span.status.status_code is StatusCode.ERROR
        assert span.attributes["error.type"] == "StepEscalated"  # type: ignore[index]
        assert span.attributes["agentsteps.step.status"] == "escalated"  # type: ignore[index]
        ctx = span.get_span_context()
        assert info.value.span_id == trace.format_span_id(ctx.span_id)
        assert info.value.trace_id == trace.format_trace_id(ctx.trace_id)

    def test_exhaustion_carries_span_ids(self, spans: Spans) -> None:
        """StepBudgetExhausted names the trace and span of its step."""

        @step(name="s", budget=Budget(max_llm_calls=0))
        def s() -> None:
            record_usage(model="m", cost_usd=0)

        with pytest.raises(StepBudgetExhausted) as info:
            s()
        ctx = spans.step("s").get_span_context()
        assert info.value.span_id == trace.format_span_id(ctx.span_id)

    def test_records_carry_span_ids(self, spans: Spans) -> None:
        """CompletedStep records name their span, parent span and trace."""

        @persona(name="p")
        def p() -> None:
            s()

        @step(name="s")
        def s() -> None: ...

        with agentsteps.run() as r:
            p()
        rec = r.steps[0]
        span = spans.step("s")
        assert rec.span_id == trace.format_span_id(span.context.span_id)
        assert rec.parent_span_id == trace.format_span_id(span.parent.span_id)  # type: ignore[union-attr]
        assert rec.trace_id == r.personas[0].trace_id


class TestTracingOff:
    def test_no_provider_means_no_ids(self) -> None:
        """With no SDK anywhere, steps run and records have no span ids."""

        @step(name="s")
        def s() -> int:
            return 1

        with agentsteps.run() as r:
            assert s() == 1
        assert r.steps[0].trace_id is None and r.steps[0].span_id is None

    def test_configure_rejects_non_provider(self) -> None:
        """configure(tracer_provider=...) checks its argument."""
        with pytest.raises(
            TypeError,
            match=re.escape("'tracer_provider' must be an opentelemetry.trace.TracerProvider"),
        ):
            agentsteps.configure(tracer_provider="jaeger")  # type: ignore[arg-type]


class TestSamplers:
    def test_attribute_reading_sampler_sees_start_attributes(self) -> None:
        """A sampler that reads attributes gets operation, agent and model at start."""
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult

        seen: list[dict[str, object]] = []

        class Recording(Sampler):
            def should_sample(
                self, parent_context, trace_id, name, kind=None, attributes=None, links=None
            ):  # type: ignore[no-untyped-def]
                seen.append(dict(attributes or {}))
                return SamplingResult(Decision.RECORD_AND_SAMPLE, attributes)

            def get_description(self) -> str:
                return "Recording"

        agentsteps.configure(tracer_provider=TracerProvider(sampler=Recording()))

        @step(name="s", model="m")
        def s() -> None: ...

        @persona(name="p")
        def p() -> None:
            s()

        p()
        assert seen[1] == {
            "gen_ai.operation.name": "invoke_workflow",
            "agentsteps.step.name": "s",
            "gen_ai.request.model": "m",
            "gen_ai.agent.name": "p",
        }

    @pytest.mark.parametrize(
        ("sampler_name", "reads"),
        [("DEFAULT_ON", False), ("ALWAYS_OFF", False), ("DEFAULT_OFF", False)],
    )
    def test_known_samplers_are_attribute_blind(self, sampler_name: str, reads: bool) -> None:
        """The SDK's stock samplers are recognised as not reading attributes."""
        from opentelemetry.sdk.trace import TracerProvider, sampling

        from agentsteps._core.config import sampler_reads_attributes

        provider = TracerProvider(sampler=getattr(sampling, sampler_name))
        assert sampler_reads_attributes(provider) is reads
        ratio = TracerProvider(sampler=sampling.ParentBasedTraceIdRatio(0.25))
        assert sampler_reads_attributes(ratio) is False


class TestGeneratorContext:
    def test_body_sees_the_consumers_current_context_at_each_resume(self, spans: Spans) -> None:
        """Each resume layers the step's span over the consumer's context of that moment."""
        from opentelemetry import baggage
        from opentelemetry import context as otel_context

        seen: list[object] = []

        @step(name="gen")
        def gen() -> Iterator[int]:
            for i in range(3):
                seen.append(baggage.get_baggage("k"))
                assert trace.get_current_span() is not trace.INVALID_SPAN
                yield i

        it = gen()
        next(it)
        token = otel_context.attach(baggage.set_baggage("k", "v"))
        try:
            next(it)
        finally:
            otel_context.detach(token)
        next(it)
        assert list(it) == []
        assert seen == [None, "v", None]
        assert trace.get_current_span() is trace.INVALID_SPAN
        assert spans.step("gen").attributes["agentsteps.step.status"] == "completed"  # type: ignore[index]

    def test_scope_across_a_yield_stays_current_in_the_body(self, spans: Spans) -> None:
        """A scope the body opens around a ``yield`` is still current when the body resumes:
        usage and child steps there belong to it; the consumer never sees it."""
        from agentsteps import current_step, run, step_scope

        seen_in_body: list[str | None] = []
        seen_by_consumer: list[object] = []

        @step(name="child")
        def child() -> None:
            record_usage(model="m", input_tokens=1, output_tokens=1, cost_usd=0)

        @step(name="gen")
        def gen() -> Iterator[int]:
            with step_scope("inner"):
                yield 1
                seen_in_body.append(agentsteps.current_step().name)  # type: ignore[union-attr]
                record_usage(model="m", input_tokens=3, output_tokens=4, cost_usd=0)
                child()
                yield 2
            seen_in_body.append(agentsteps.current_step().name)  # type: ignore[union-attr]
            yield 3

        with run() as r:
            for _ in gen():
                seen_by_consumer.append(current_step())
        assert seen_in_body == ["inner", "gen"]
        assert seen_by_consumer == [None, None, None]
        by_name = {s.name: s for s in r.steps}
        assert by_name["inner"].usage.total_tokens == 7
        assert by_name["inner"].subtree_usage.total_tokens == 9
        assert by_name["gen"].usage.total_tokens == 0
        assert by_name["child"].parent == "inner"
        inner_span = spans.step("inner")
        assert spans.step("child").parent.span_id == inner_span.context.span_id  # type: ignore[union-attr]
        assert inner_span.parent.span_id == spans.step("gen").context.span_id  # type: ignore[union-attr]

    def test_async_scope_across_a_yield(self, spans: Spans) -> None:
        """The same for an async generator step, with awaits inside the scope."""
        from agentsteps import step_scope

        seen: list[str | None] = []

        @step(name="child")
        async def child() -> None:
            await asyncio.sleep(0)

        @step(name="agen")
        async def agen() -> AsyncIterator[int]:
            async with step_scope("inner"):
                yield 1
                await asyncio.sleep(0)
                seen.append(agentsteps.current_step().name)  # type: ignore[union-attr]
                await child()
                yield 2
            seen.append(agentsteps.current_step().name)  # type: ignore[union-attr]

        async def consume() -> list[object]:
            outside = []
            async for _ in agen():
                outside.append(agentsteps.current_step())
            return outside

        assert asyncio.run(consume()) == [None, None]
        assert seen == ["inner", "agen"]
        assert spans.step("child").parent.span_id == spans.step("inner").context.span_id  # type: ignore[union-attr]

    def test_body_scope_left_open_when_closed_early(self, spans: Spans) -> None:
        """Closing the generator inside such a scope ends the scope, then the step."""
        from agentsteps import StepStatus, run, step_scope

        @step(name="gen")
        def gen() -> Iterator[int]:
            with step_scope("inner"):
                yield 1
                yield 2

        with run() as r:
            it = gen()
            next(it)
            it.close()
        statuses = {s.name: s.status for s in r.steps}
        assert statuses == {"inner": StepStatus.CANCELLED, "gen": StepStatus.CANCELLED}
        assert agentsteps.current_step() is None

    def test_consumer_context_vars_still_reach_the_body(self) -> None:
        """Other context variables follow the consumer, as in a plain generator."""
        import contextvars

        var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")

        @step(name="gen")
        def gen() -> Iterator[str]:
            yield var.get()
            yield var.get()

        it = gen()
        first = next(it)
        var.set("set by the consumer")
        assert (first, next(it)) == ("unset", "set by the consumer")
        assert list(it) == []
