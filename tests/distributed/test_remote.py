"""Propagation in: `remote_parent`, `with_remote_parent` and the validation of what comes in."""

from __future__ import annotations

import asyncio
import email.message
import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import baggage as otel_baggage
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import StatusCode, format_span_id

import agentsteps
from agentsteps import (
    Budget,
    StepBudgetExhausted,
    current_step,
    persona_scope,
    record_usage,
    remote_parent,
    step,
    step_scope,
    with_remote_parent,
)
from agentsteps._core.context import CURRENT
from tests.support import Spans


def outgoing(budget: Budget | None = None, *, persona: str | None = None) -> dict[str, str]:
    """What a caller step named 'plan' with ``budget`` sends (ends the step)."""
    carrier: dict[str, str] = {}
    if persona is not None:
        with persona_scope(persona), step_scope("plan", budget=budget):
            agentsteps.inject(carrier)
    else:
        with step_scope("plan", budget=budget):
            agentsteps.inject(carrier)
    return carrier


def parent_id(span: Any) -> str | None:
    """Hex span id of a finished span's parent."""
    return None if span.parent is None else format_span_id(span.parent.span_id)


def own_id(span: Any) -> str:
    """Hex span id of a finished span."""
    return format_span_id(span.context.span_id)


class TestRemoteParent:
    def test_steps_inside_are_children_of_the_callers_span(self, spans: Spans) -> None:
        """One trace: remote scope under the caller's step, local steps under the scope."""
        carrier = outgoing()
        with remote_parent(carrier) as scope, step_scope("tool"):
            assert scope.name == "remote:plan"
        plan = spans.step("plan")
        remote = spans.step("remote:plan")
        tool = spans.step("tool")
        assert {s.context.trace_id for s in (plan, remote, tool)} == {plan.context.trace_id}
        assert parent_id(remote) == own_id(plan)
        assert parent_id(tool) == own_id(remote)
        assert remote.attributes["agentsteps.remote.caller_step_path"] == "plan"

    def test_inherits_the_carried_remainder_as_its_budget(self) -> None:
        """The scope's budget is what the caller had left; spending past it raises."""
        with step_scope("plan", budget=Budget(max_tokens=1_000, max_usd=0.5)):
            record_usage(model="m", input_tokens=300, output_tokens=100, cost_usd=0.25)
            carrier: dict[str, str] = {}
            agentsteps.inject(carrier)
        with remote_parent(carrier) as scope:
            assert scope.budget == Budget(max_tokens=600, max_usd=0.25)
            with step_scope("tool"), pytest.raises(StepBudgetExhausted) as info:
                record_usage(model="m", input_tokens=500, output_tokens=101, cost_usd=0)
        assert (info.value.step, info.value.limit) == ("remote:plan", "max_tokens")
        assert scope.subtree_usage.total_tokens == 601

    def test_combines_with_a_local_budget_by_the_minimum(self) -> None:
        """Each limit is the smaller of the carried and the local one."""
        carrier = outgoing(Budget(max_tokens=600, max_llm_calls=2))
        local = Budget(max_tokens=100, max_usd=1.0, max_llm_calls=5)
        with remote_parent(carrier, budget=local) as scope:
            assert scope.budget == Budget(max_tokens=100, max_usd=1.0, max_llm_calls=2)

    def test_local_dict_budget(self) -> None:
        """The local budget takes the dict form too."""
        with remote_parent({}, budget={"max_llm_calls": 3}) as scope:
            assert scope.budget == Budget(max_llm_calls=3)

    def test_nested_step_budgets_still_apply(self) -> None:
        """A nested step with a tighter budget of its own trips first."""
        carrier = outgoing(Budget(max_tokens=1_000))

        @step(budget=Budget(max_tokens=50), error_boundary="continue", default="skipped")
        def tool() -> str:
            record_usage(model="m", input_tokens=60, output_tokens=0, cost_usd=0)
            return "done"

        with remote_parent(carrier) as scope:
            assert tool() == "skipped"
        assert scope.subtree_usage.total_tokens == 60

    def test_refuses_to_start_when_the_carried_budget_is_spent(self, spans: Spans) -> None:
        """A carried remainder of 0 raises at entry; the scope's span says why."""
        with step_scope("plan", budget=Budget(max_llm_calls=1)):
            record_usage(model="m", input_tokens=1, output_tokens=1, cost_usd=0)
            carrier: dict[str, str] = {}
            agentsteps.inject(carrier)
        ran = False
        scope = remote_parent(carrier)
        with (
            pytest.raises(
                StepBudgetExhausted,
                match=re.escape(
                    "step 'remote:plan' refused to start: the caller's max_llm_calls budget is "
                    "already spent (0 calls left)"
                ),
            ) as info,
            scope,
        ):
            ran = True
        assert not ran
        assert (info.value.limit, info.value.limit_value, info.value.llm_calls) == (
            "max_llm_calls",
            0,
            0,
        )
        assert CURRENT.get() is None
        assert otel_context.get_current() == otel_context.Context()
        remote = spans.step("remote:plan")
        assert remote.status.status_code is StatusCode.ERROR
        assert remote.attributes["agentsteps.step.status"] == "failed"
        assert remote.attributes["agentsteps.budget.exhausted_limit"] == "max_llm_calls"
        assert parent_id(remote) == own_id(spans.step("plan"))
        assert scope.usage == agentsteps.Usage()

    @pytest.mark.parametrize(
        ("budget", "limit", "units"),
        [
            (Budget(max_tokens=0), "max_tokens", "tokens"),
            (Budget(max_usd=0), "max_usd", "USD"),
        ],
    )
    def test_refusal_names_the_spent_limit(self, budget: Budget, limit: str, units: str) -> None:
        """Tokens and dollars are refused like calls."""
        with pytest.raises(
            StepBudgetExhausted,
            match=re.escape(f"the caller's {limit} budget is already spent (0 {units} left)"),
        ):
            remote_parent(outgoing(budget)).__enter__()
        assert CURRENT.get() is None

    def test_refuse_spent_false_runs_the_block(self) -> None:
        """Opting out lets free work run; any recorded usage then trips the budget."""
        carrier = outgoing(Budget(max_tokens=0))
        with (
            remote_parent(carrier, refuse_spent=False),
            pytest.raises(StepBudgetExhausted) as info,
        ):
            record_usage(model="m", input_tokens=1, output_tokens=0, cost_usd=0)
        assert info.value.limit == "max_tokens"

    def test_keeps_a_server_span_of_the_same_trace(self, spans: Spans) -> None:
        """When server instrumentation already continued the trace, its span is the parent."""
        carrier = outgoing()
        tracer = spans.provider.get_tracer("server")
        from opentelemetry.propagate import extract

        with (
            tracer.start_as_current_span("POST /tool", context=extract(carrier)),
            remote_parent(carrier),
        ):
            pass
        server = spans.named("POST /tool")
        assert parent_id(server) == own_id(spans.step("plan"))
        assert parent_id(spans.step("remote:plan")) == own_id(server)

    def test_a_span_of_another_trace_does_not_capture_the_work(self, spans: Spans) -> None:
        """An unrelated current span (another trace) is not the parent: the caller is."""
        carrier = outgoing()
        with (
            spans.provider.get_tracer("x").start_as_current_span("unrelated"),
            remote_parent(carrier),
        ):
            pass
        assert parent_id(spans.step("remote:plan")) == own_id(spans.step("plan"))

    def test_carries_persona_and_path_onwards(self) -> None:
        """A call further out carries the original persona and the full step path."""
        carrier = outgoing(persona="planner")
        with remote_parent(carrier), step_scope("tool"):
            onward: dict[str, str] = {}
            agentsteps.inject(onward)
        assert "agentsteps.persona=planner" in onward["baggage"]
        assert "agentsteps.step_path=plan%2Ftool" in onward["baggage"]

    def test_local_persona_wins_over_the_carried_one(self) -> None:
        """Under a persona of its own, the callee carries that persona on."""
        carrier = outgoing(persona="planner")
        with remote_parent(carrier), persona_scope("searcher"):
            onward: dict[str, str] = {}
            agentsteps.inject(onward)
        assert "agentsteps.persona=searcher" in onward["baggage"]

    def test_caller_persona_is_on_the_scope_span(self, spans: Spans) -> None:
        """The scope's span names the agent that asked for the work."""
        with remote_parent(outgoing(persona="planner")):
            pass
        remote = spans.step("remote:plan")
        assert remote.attributes["agentsteps.remote.caller_persona"] == "planner"
        assert remote.attributes["gen_ai.agent.name"] == "planner"

    def test_a_sampler_sees_the_caller_persona_and_the_remote_parent(self) -> None:
        """An attribute-reading sampler gets the agent name at start, and the remote parent."""
        seen: list[tuple[str, Any, bool]] = []

        class Recording(Sampler):
            def should_sample(
                self,
                parent_context: Any,
                trace_id: int,
                name: str,
                kind: Any = None,
                attributes: Any = None,
                links: Any = None,
                trace_state: Any = None,
            ) -> SamplingResult:
                parent = trace.get_current_span(parent_context).get_span_context()
                seen.append((name, dict(attributes or {}), parent.is_remote))
                return SamplingResult(Decision.RECORD_AND_SAMPLE, attributes)

            def get_description(self) -> str:
                return "Recording"

        agentsteps.configure(tracer_provider=TracerProvider(sampler=Recording()))
        carrier = outgoing(persona="planner")
        with remote_parent(carrier):
            pass
        name, attributes, remote_parent_span = seen[-1]
        assert name == "invoke_workflow remote:plan"
        assert attributes["gen_ai.agent.name"] == "planner"
        assert remote_parent_span

    def test_other_baggage_is_kept_in_the_context(self) -> None:
        """Foreign baggage entries stay visible to other instrumentation; ours do not."""
        carrier = {"baggage": "tenant=acme,agentsteps.remaining_calls=3"}
        with remote_parent(carrier):
            assert otel_baggage.get_baggage("tenant") == "acme"
            assert otel_baggage.get_baggage("agentsteps.remaining_calls") is None
        assert otel_baggage.get_baggage("tenant") is None

    def test_accepts_http_server_headers(self, spans: Spans) -> None:
        """The headers of a BaseHTTPRequestHandler (an email Message) work as a carrier."""
        headers = email.message.Message()
        for key, value in outgoing(Budget(max_llm_calls=2)).items():
            headers[key.title()] = value
        with remote_parent(headers) as scope:
            assert scope.budget == Budget(max_llm_calls=2)
        assert parent_id(spans.step("remote:plan")) == own_id(spans.step("plan"))

    def test_no_carried_values(self) -> None:
        """With nothing carried the scope is a plain step named 'remote' with no budget."""
        with remote_parent({"content-type": "text/plain"}) as scope:
            assert (scope.name, scope.budget) == ("remote", None)

    def test_async_with(self, spans: Spans) -> None:
        """The scope works with ``async with`` and across awaits."""
        carrier = outgoing(Budget(max_llm_calls=2))

        async def handler() -> str:
            async with remote_parent(carrier):
                await asyncio.sleep(0)
                step_ = current_step()
                assert step_ is not None
                return step_.name

        assert asyncio.run(handler()) == "remote:plan"
        assert parent_id(spans.step("remote:plan")) == own_id(spans.step("plan"))

    def test_an_error_in_the_block_fails_the_scope(self, spans: Spans) -> None:
        """An exception leaving the block ends the scope failed and propagates."""
        with pytest.raises(KeyError), remote_parent(outgoing()):
            raise KeyError("boom")
        assert spans.step("remote:plan").attributes["agentsteps.step.status"] == "failed"
        assert otel_context.get_current() == otel_context.Context()

    def test_cannot_be_entered_twice(self) -> None:
        """A scope object is single-use while active."""
        scope = remote_parent({})
        with scope, pytest.raises(RuntimeError, match=re.escape("already active")):
            scope.__enter__()

    def test_rejects_a_carrier_without_items(self) -> None:
        """The message names the argument and the accepted kinds."""
        with pytest.raises(
            TypeError,
            match=re.escape(
                "remote_parent(): 'carrier' must be a mapping of header names to values, "
                "such as a dict or the request's headers (got 'traceparent' of type str)"
            ),
        ):
            remote_parent("traceparent")

    def test_rejects_a_non_bool_refuse_spent(self) -> None:
        """refuse_spent is a flag."""
        with pytest.raises(
            TypeError,
            match=re.escape("remote_parent(): 'refuse_spent' must be a bool (got 'no')"),
        ):
            remote_parent({}, refuse_spent="no")  # type: ignore[arg-type]

    def test_rejects_an_invalid_local_budget(self) -> None:
        """The local budget is validated like a step's."""
        with pytest.raises(
            ValueError,
            match=re.escape("remote_parent(): budget 'max_tokens' must be >= 0 (got -1)"),
        ):
            remote_parent({}, budget={"max_tokens": -1})

    def test_hooks_fire_as_for_a_step_scope(self) -> None:
        """
        The scope starts and ends through the same functions as a step: its pre_step,
        post_step and step_error hooks fire, and under ``async with`` async handlers are
        awaited. Regression: pre_step never fired, and the async forms ran the hooks as
        for sync code (an async handler was refused with TypeError).
        """
        seen: list[str] = []

        async def handler(event: agentsteps.HookContext) -> None:
            await asyncio.sleep(0)
            seen.append(event.event.value)

        def sync_handler(event: agentsteps.HookContext) -> None:
            seen.append(event.event.value)

        async def main() -> None:
            async with remote_parent(outgoing()):
                pass
            with pytest.raises(KeyError):
                async with remote_parent(outgoing()):
                    raise KeyError("k")

        with agentsteps.scoped_hooks():
            for event in ("pre_step", "post_step", "step_error"):
                agentsteps.on_step("*", "remote:plan", event)(handler)
            asyncio.run(main())
        assert seen == ["pre_step", "post_step", "pre_step", "step_error"]
        seen.clear()
        with agentsteps.scoped_hooks():
            agentsteps.on_step("*", "remote:plan", "pre_step")(sync_handler)
            with remote_parent(outgoing()):
                pass
        assert seen == ["pre_step"]


class TestIncomingValidation:
    @pytest.mark.parametrize(
        ("entry", "why"),
        [
            ("agentsteps.remaining_tokens=-5", "agentsteps.remaining_tokens='-5' (negative"),
            ("agentsteps.remaining_tokens=lots", "(malformed: must be a whole number)"),
            ("agentsteps.remaining_tokens=1.5", "(malformed: must be a whole number)"),
            ("agentsteps.remaining_tokens=" + "9" * 40, "(oversized)"),
            ("agentsteps.remaining_calls=" + "9" * 20, "(oversized)"),
            ("agentsteps.remaining_usd=-0.5", "agentsteps.remaining_usd='-0.5' (negative"),
            ("agentsteps.remaining_usd=1e3", "(malformed: must be a decimal number of dollars)"),
            ("agentsteps.remaining_usd=nan", "(malformed: must be a decimal number of dollars)"),
            ("agentsteps.remaining_usd=9999999999999", "(oversized)"),
            ("agentsteps.persona=%20", "agentsteps.persona='' (must be non-empty printable"),
            ("agentsteps.persona=a%0Ab", "(must be non-empty printable text)"),
            ("agentsteps.persona=" + "p" * 300, "agentsteps.persona of 300 characters"),
        ],
    )
    def test_a_bad_value_is_ignored_with_one_warning(
        self, warnings_log: pytest.LogCaptureFixture, entry: str, why: str
    ) -> None:
        """The bad entry counts as not sent; the valid one next to it still applies."""
        carrier = {"baggage": f"{entry},agentsteps.remaining_calls=7"}
        if entry.startswith("agentsteps.remaining_calls"):
            carrier = {"baggage": f"agentsteps.remaining_tokens=7,{entry}"}
        with remote_parent(carrier) as scope:
            pass
        assert len(warnings_log.records) == 1
        record = warnings_log.records[0]
        assert (record.name, record.levelno) == ("agentsteps", logging.WARNING)
        assert why in record.getMessage()
        assert "advisory" in record.getMessage()
        assert scope.budget in (Budget(max_llm_calls=7), Budget(max_tokens=7))

    def test_several_problems_make_one_warning(
        self, warnings_log: pytest.LogCaptureFixture
    ) -> None:
        """However many values are bad, one warning lists them all."""
        carrier = {
            "traceparent": "00-zz-zz-01",
            "baggage": "agentsteps.remaining_tokens=-1,agentsteps.remaining_calls=x",
        }
        with remote_parent(carrier) as scope:
            pass
        assert len(warnings_log.records) == 1
        message = warnings_log.records[0].getMessage()
        assert "ignored 3 invalid propagated value(s)" in message
        assert "traceparent='00-zz-zz-01' (not a valid W3C traceparent)" in message
        assert scope.budget is None

    def test_an_oversized_baggage_header_is_ignored_whole(
        self, warnings_log: pytest.LogCaptureFixture
    ) -> None:
        """Past the W3C size limit nothing in the header is read, and one warning says so."""
        header = "agentsteps.remaining_calls=1," + ",".join(f"k{i}=v" for i in range(2_000))
        with remote_parent({"baggage": header}) as scope:
            assert otel_baggage.get_baggage("k1") is None
        assert scope.budget is None
        assert len(warnings_log.records) == 1
        assert "over the W3C limit of 8192" in warnings_log.records[0].getMessage()

    def test_a_malformed_traceparent_starts_a_new_trace(
        self, spans: Spans, warnings_log: pytest.LogCaptureFixture
    ) -> None:
        """No valid parent: the scope is a root span; the budget still applies."""
        carrier = {"traceparent": "garbage", "baggage": "agentsteps.remaining_calls=2"}
        with remote_parent(carrier) as scope:
            assert scope.budget == Budget(max_llm_calls=2)
        assert spans.step("remote").parent is None
        assert len(warnings_log.records) == 1

    def test_a_huge_carried_limit_cannot_raise_a_local_one(self) -> None:
        """Incoming values only ever tighten: the minimum wins."""
        carrier = {"baggage": "agentsteps.remaining_tokens=1000000000000000000"}
        with remote_parent(carrier, budget=Budget(max_tokens=100)) as scope:
            assert scope.budget == Budget(max_tokens=100)
            with step_scope("tool", budget=Budget(max_tokens=50)) as tool:
                assert tool.budget == Budget(max_tokens=50)

    def test_valid_values_log_nothing(self, warnings_log: pytest.LogCaptureFixture) -> None:
        """A well-formed carrier is silent."""
        with remote_parent(outgoing(Budget(max_tokens=5, max_usd=0.1, max_llm_calls=1))):
            pass
        assert warnings_log.records == []

    def test_repeated_traceparent_headers_are_invalid(
        self, warnings_log: pytest.LogCaptureFixture
    ) -> None:
        """Two traceparents are ambiguous (W3C): neither is trusted."""
        headers = email.message.Message()
        headers["traceparent"] = "00-" + "1" * 32 + "-" + "2" * 16 + "-01"
        headers["traceparent"] = "00-" + "3" * 32 + "-" + "4" * 16 + "-01"
        with remote_parent(headers):
            pass
        assert len(warnings_log.records) == 1
        assert "not a valid W3C traceparent" in warnings_log.records[0].getMessage()


class TestWithRemoteParent:
    def test_runs_the_handler_in_the_scope(self, spans: Spans) -> None:
        """Each call of the handler is a remote scope built from its own arguments."""

        @with_remote_parent(lambda request: request["headers"], budget=Budget(max_tokens=9))
        def handle(request: dict[str, Any]) -> tuple[str, Budget | None]:
            scope = current_step()
            assert scope is not None
            return scope.name, scope.budget

        assert handle({"headers": outgoing(Budget(max_llm_calls=3))}) == (
            "remote:plan",
            Budget(max_tokens=9, max_llm_calls=3),
        )
        assert parent_id(spans.step("remote:plan")) == own_id(spans.step("plan"))
        assert handle.__name__ == "handle"

    def test_async_handlers(self, spans: Spans) -> None:
        """``async def`` handlers run inside the scope across their awaits."""

        class Handler:
            def __init__(self, headers: dict[str, str]) -> None:
                self.headers = headers

            @with_remote_parent(lambda self: self.headers)
            async def get(self) -> str | None:
                await asyncio.sleep(0)
                scope = current_step()
                return None if scope is None else scope.name

        assert asyncio.run(Handler(outgoing()).get()) == "remote:plan"
        assert CURRENT.get() is None

    def test_a_spent_budget_refuses_before_the_handler_runs(self) -> None:
        """The refusal comes out of the call; the handler body never runs."""
        calls: list[int] = []

        @with_remote_parent(lambda headers: headers)
        def handle(headers: dict[str, str]) -> None:
            calls.append(1)

        with pytest.raises(StepBudgetExhausted, match=re.escape("refused to start")):
            handle(outgoing(Budget(max_usd=0)))
        assert calls == []

    def test_refuse_spent_false(self) -> None:
        """The opt-out reaches the scope."""

        @with_remote_parent(lambda headers: headers, refuse_spent=False)
        def handle(headers: dict[str, str]) -> str:
            return "ran"

        assert handle(outgoing(Budget(max_usd=0))) == "ran"

    def test_rejects_generators(self) -> None:
        """A generator would leave the scope at its first yield: refused, with the fix."""
        with pytest.raises(
            TypeError,
            match=re.escape(
                "with_remote_parent() decorates plain and async functions, not generators"
            ),
        ):

            @with_remote_parent(dict)
            def stream() -> Iterator[int]:
                yield 1

    def test_rejects_a_carrier_that_is_not_callable(self) -> None:
        """The getter must be callable; the message shows the usual form."""
        with pytest.raises(
            TypeError,
            match=re.escape(
                "with_remote_parent(): 'carrier' must be a callable that takes the handler's "
                "arguments and returns the incoming headers, e.g. lambda request: "
                "request.headers (got {} of type dict)"
            ),
        ):
            with_remote_parent({})  # type: ignore[arg-type]

    def test_context_is_restored_without_tracing(self) -> None:
        """Without a tracer nothing is traced, and the context is restored all the same."""
        before = trace.get_current_span()

        @with_remote_parent(lambda headers: headers)
        def handle(headers: dict[str, str]) -> None:
            pass

        handle(outgoing())
        assert trace.get_current_span() is before
