"""Tests for `llm_call`: the model-call span, charging, pre-flight refusal and headroom."""

from __future__ import annotations

import asyncio
import re

import pytest
from opentelemetry.trace import SpanKind, StatusCode

from agentsteps import (
    Budget,
    LLMCall,
    StepBudgetExhausted,
    StepStatus,
    current_step,
    llm_call,
    record_usage,
    run,
    step,
    step_scope,
)


class TestSpan:
    def test_client_span_named_per_genai_conventions(self, spans):
        """The call is a CLIENT child of the step span named "chat {model}" with GenAI attrs."""

        @step(name="answer", model="gpt-test")
        def answer():
            with llm_call(provider="openai") as call:
                call.record(
                    input_tokens=120,
                    output_tokens=30,
                    cache_read_tokens=100,
                    reasoning_tokens=10,
                    cost_usd=0.25,
                    response_model="gpt-test-2026-01-01",
                )

        answer()
        span = spans.named("chat gpt-test")
        parent = spans.step("answer")
        assert span.kind is SpanKind.CLIENT
        assert span.parent is not None
        assert span.parent.span_id == parent.context.span_id
        assert dict(span.attributes) == {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-test",
            "gen_ai.response.model": "gpt-test-2026-01-01",
            "gen_ai.usage.input_tokens": 120,
            "gen_ai.usage.output_tokens": 30,
            "gen_ai.usage.cache_read.input_tokens": 100,
            "gen_ai.usage.reasoning.output_tokens": 10,
            "agentsteps.kind": "llm_call",
            "agentsteps.usage.cost_usd": 0.25,
            "agentsteps.usage.cost_source": "provider",
            # Where backends read a model call's cost: Langfuse, then OpenInference.
            "gen_ai.usage.cost": 0.25,
            "llm.cost.total": 0.25,
            # OpenInference, so Phoenix counts this LLM span's tokens.
            "openinference.span.kind": "LLM",
            "llm.model_name": "gpt-test-2026-01-01",
            "llm.provider": "openai",
            "llm.token_count.prompt": 120,
            "llm.token_count.completion": 30,
            "llm.token_count.total": 150,
            "llm.token_count.prompt_details.cache_read": 100,
            "llm.token_count.completion_details.reasoning": 10,
        }
        assert span.status.status_code is StatusCode.UNSET

    def test_cache_write_tokens_and_operation(self, spans):
        """Cache writes get their own attribute; the operation names the span."""

        @step
        def embed():
            with llm_call("emb-model", operation="embeddings") as call:
                call.record(input_tokens=50, cache_write_tokens=40, cost_usd=0)

        embed()
        span = spans.named("embeddings emb-model")
        assert span.attributes["gen_ai.operation.name"] == "embeddings"
        assert span.attributes["gen_ai.usage.cache_creation.input_tokens"] == 40
        assert "gen_ai.provider.name" not in span.attributes

    def test_span_without_model(self, spans):
        """With no model anywhere the span is named after the operation alone."""

        @step
        def anonymous():
            with llm_call() as call:
                call.record(input_tokens=1, output_tokens=1, cost_usd=0)

        anonymous()
        span = spans.named("chat")
        assert "gen_ai.request.model" not in span.attributes

    def test_estimate_and_headroom_on_span(self, spans):
        """The input estimate and the output headroom at entry are on the span."""

        @step(model="m", budget=Budget(max_tokens=1000))
        def plan():
            with llm_call(input_tokens=300):
                pass

        plan()
        span = spans.named("chat m")
        assert span.attributes["agentsteps.llm_call.input_tokens_estimate"] == 300
        assert span.attributes["agentsteps.llm_call.max_output_tokens"] == 700

    def test_error_leaves_the_call(self, spans):
        """An exception leaving the block marks the span as an error with its type."""

        @step(model="m")
        def broken():
            with llm_call():
                raise ConnectionError("reset by peer")

        with pytest.raises(ConnectionError, match=re.escape("reset by peer")):
            broken()
        span = spans.named("chat m")
        assert span.status.status_code is StatusCode.ERROR
        assert span.status.description == "ConnectionError: reset by peer"
        assert span.attributes["error.type"] == "ConnectionError"
        assert "gen_ai.usage.input_tokens" not in span.attributes

    def test_outside_any_step(self, spans):
        """Outside steps the span is made and nothing is charged or raised."""
        with llm_call("m", "openai") as call:
            call.record(input_tokens=5, output_tokens=6, cost_usd=0.5)
        span = spans.named("chat m")
        assert span.parent is None
        assert span.attributes["gen_ai.usage.output_tokens"] == 6
        assert call.usage.total_tokens == 11

    def test_no_tracer(self):
        """Without any tracer provider the call still charges the step."""

        @step(model="m")
        def quiet():
            with llm_call() as call:
                call.record(input_tokens=2, output_tokens=3, cost_usd=0)
            assert call.trace_id is None
            assert call.span_id is None
            return current_step().usage.total_tokens

        assert quiet() == 5


class TestCharging:
    def test_charges_step_and_parents(self, spans):
        """Recorded usage is charged to the step (self) and every enclosing step (subtree)."""

        @step(name="outer", model="m")
        def outer():
            inner()
            return current_step()

        @step(name="inner")
        def inner():
            with llm_call() as call:
                call.record(input_tokens=10, output_tokens=5, cost_usd=0.001)

        with run() as r:
            outer()
        inner_rec, outer_rec = r.steps
        assert inner_rec.usage.total_tokens == 15
        assert inner_rec.usage.llm_calls == 1
        assert inner_rec.usage.cost_nano_usd == 1_000_000
        assert outer_rec.usage.total_tokens == 0
        assert outer_rec.subtree_usage.total_tokens == 15
        assert spans.step("outer").attributes["agentsteps.usage.subtree.llm_calls"] == 1

    def test_priced_from_registered_price(self, spans, prices):
        """Without cost_usd the call is priced by the model's price: source "user"."""
        prices("priced-model", 2.0, 10.0)

        @step(model="priced-model")
        def priced():
            with llm_call() as call:
                call.record(input_tokens=1_000_000, output_tokens=100_000)
            return call

        call = priced()
        assert call.cost_source == "user"
        assert call.usage.cost_usd == pytest.approx(3.0)
        assert call.usage.unpriced_calls == 0
        span = spans.named("chat priced-model")
        assert span.attributes["agentsteps.usage.cost_source"] == "user"
        assert span.attributes["agentsteps.usage.cost_usd"] == pytest.approx(3.0)

    def test_response_model_priced_when_request_unknown(self, prices):
        """An unpriced request name falls back to the response model's price."""
        prices("snapshot-2026", 1.0, 1.0)

        @step
        def call_alias():
            with llm_call("alias-without-price") as call:
                call.record(1_000_000, 0, response_model="snapshot-2026")
            return call

        call = call_alias()
        assert call.cost_source == "user"
        assert call.usage.cost_usd == pytest.approx(1.0)

    def test_unpriced_call_counted_on_step(self, spans):
        """A call with no price and no cost is $0, source "unknown", one unpriced call."""

        @step(name="mystery", model="no-such-model-anywhere")
        def mystery():
            with llm_call() as call:
                call.record(input_tokens=3, output_tokens=4)
            return call, current_step().usage

        call, usage = mystery()
        assert call.cost_source == "unknown"
        assert usage.unpriced_calls == 1
        assert usage.cost_nano_usd == 0
        step_span = spans.step("mystery")
        assert step_span.attributes["agentsteps.usage.self.unpriced_calls"] == 1
        assert spans.named("chat no-such-model-anywhere").attributes[
            "agentsteps.usage.cost_source"
        ] == ("unknown")

    def test_record_replaces_totals(self):
        """A second record() restates the call's totals: the step is charged once."""

        @step(model="m")
        def twice():
            with llm_call() as call:
                call.record(input_tokens=10, output_tokens=10, cost_usd=0.01)
                call.record(input_tokens=12, output_tokens=8, cost_usd=0.02)
            return current_step().usage

        usage = twice()
        assert (usage.input_tokens, usage.output_tokens, usage.llm_calls) == (12, 8, 1)
        assert usage.cost_nano_usd == 20_000_000

    def test_add_usage_then_record_corrects(self):
        """add_usage() grows the running total; record() corrects it to the final figures."""

        @step(model="m")
        def streamed():
            seen = []
            with llm_call() as call:
                call.add_usage(input_tokens=100, output_tokens=1)
                call.add_usage(output_tokens=1)
                seen.append(current_step().usage.total_tokens)
                call.record(input_tokens=90, output_tokens=2, cost_usd=0)
            seen.append(current_step().usage.total_tokens)
            return seen, current_step().usage.llm_calls

        assert streamed() == ([102, 92], 1)

    def test_exit_without_usage_counts_one_call(self):
        """A call that reports nothing still counts as one model call."""

        @step(model="m")
        def silent():
            with llm_call():
                pass
            return current_step().usage

        usage = silent()
        assert usage.llm_calls == 1
        assert usage.total_tokens == 0

    def test_exception_without_usage_counts_nothing(self):
        """A call an exception leaves before any report charges nothing."""

        @step(model="m", budget=Budget(max_llm_calls=1))
        def flaky():
            try:
                with llm_call():
                    raise TimeoutError
            except TimeoutError:
                pass
            with llm_call() as call:  # still allowed: the failed one was not counted
                call.record(1, 1, cost_usd=0)
            return current_step().usage.llm_calls

        assert flaky() == 1

    def test_record_over_budget_raises_and_charges(self, spans):
        """Usage that takes the step over raises from record(), charged all the same."""

        @step(name="greedy", model="m", budget=Budget(max_tokens=100))
        def greedy():
            with llm_call() as call:
                call.record(input_tokens=90, output_tokens=20, cost_usd=0)

        with run() as r, pytest.raises(StepBudgetExhausted) as info:
            greedy()
        assert str(info.value) == "step 'greedy' exceeded max_tokens budget (110 > 100 tokens)"
        assert r.steps[0].usage.total_tokens == 110
        call_span = spans.named("chat m")
        assert call_span.attributes["error.type"] == "StepBudgetExhausted"
        assert call_span.attributes["gen_ai.usage.input_tokens"] == 90

    def test_async_with(self, spans):
        """``async with llm_call(...)`` works like ``with``."""

        @step(name="answer", model="m")
        async def answer():
            async with llm_call(provider="anthropic") as call:
                await asyncio.sleep(0)
                call.record(input_tokens=7, output_tokens=8, cost_usd=0)
            return current_step().usage.total_tokens

        assert asyncio.run(answer()) == 15
        assert spans.named("chat m").attributes["gen_ai.provider.name"] == "anthropic"

    def test_concurrent_tasks_each_charge(self):
        """Calls in concurrent tasks of one step all land on that step."""

        @step(model="m")
        async def fan_out():
            async def one():
                async with llm_call() as call:
                    await asyncio.sleep(0)
                    call.record(input_tokens=1, output_tokens=1, cost_usd=0)

            await asyncio.gather(*(one() for _ in range(5)))
            return current_step().usage

        usage = asyncio.run(fan_out())
        assert (usage.llm_calls, usage.total_tokens) == (5, 10)


class TestPreflight:
    def test_refuses_when_tokens_spent(self, spans):
        """A step with no tokens left refuses the call before it is made, charging nothing."""

        @step(name="spent", model="m", budget=Budget(max_tokens=100))
        def spent():
            record_usage(input_tokens=60, output_tokens=40, cost_usd=0)
            with llm_call():
                raise AssertionError("the call must not be made")

        with run() as r, pytest.raises(StepBudgetExhausted) as info:
            spent()
        exc = info.value
        assert str(exc) == (
            "step 'spent' refused a model call before making it: its max_tokens budget "
            "cannot afford it (100 of 100 tokens used)"
        )
        assert (exc.limit, exc.consumed_tokens, exc.llm_calls) == ("max_tokens", 100, 1)
        assert r.steps[0].usage.llm_calls == 1
        assert r.steps[0].status is StepStatus.FAILED
        # The record's model-call span, and the step's: no span for the refused call.
        assert [s.name for s in spans.all] == ["chat m", "invoke_workflow spent"]
        step_span = spans.step("spent")
        assert step_span.attributes["agentsteps.budget.exhausted_limit"] == "max_tokens"

    def test_refuses_when_estimate_leaves_no_room(self):
        """An input estimate that fills what is left leaves no room for output: refused."""

        @step(model="m", budget=Budget(max_tokens=100))
        def big_prompt():
            record_usage(input_tokens=50, output_tokens=20, cost_usd=0)
            with llm_call(input_tokens=30):
                pass

        with pytest.raises(
            StepBudgetExhausted,
            match=re.escape(
                "its max_tokens budget cannot afford it (70 of 100 tokens used, and the "
                "call's 30 input tokens leave no room for output)"
            ),
        ):
            big_prompt()

    def test_refuses_when_calls_spent(self):
        """max_llm_calls reached: the next call is refused."""

        @step(model="m", budget=Budget(max_llm_calls=2))
        def chatty():
            for _ in range(3):
                with llm_call() as call:
                    call.record(1, 1, cost_usd=0)

        with (
            run() as r,
            pytest.raises(
                StepBudgetExhausted,
                match=re.escape("its max_llm_calls budget cannot afford it (2 of 2 calls made)"),
            ),
        ):
            chatty()
        assert r.steps[0].usage.llm_calls == 2

    def test_refuses_when_dollars_spent(self):
        """No dollars left: refused even when the model's price is unknown."""

        @step(model="no-price-model", budget=Budget(max_usd=0.01))
        def broke():
            record_usage(input_tokens=1, output_tokens=1, cost_usd=0.01)
            with llm_call():
                pass

        with pytest.raises(
            StepBudgetExhausted,
            match=re.escape("its max_usd budget cannot afford it ($0.0100 of $0.0100 spent)"),
        ):
            broke()

    def test_refuses_when_priced_input_unaffordable(self, prices):
        """With a price, an input that costs more than what is left is refused."""
        prices("dear-model", 10.0, 30.0)

        @step(model="dear-model", budget=Budget(max_usd=0.001))
        def too_dear():
            with llm_call(input_tokens=200):  # $0.002 of input
                pass

        with pytest.raises(
            StepBudgetExhausted,
            match=re.escape(
                "($0.0000 of $0.0010 spent, and 200 input tokens plus one output token "
                "would cost $0.002030)"
            ),
        ):
            too_dear()

    def test_free_model_allowed_at_zero_dollars(self, prices):
        """A model known to be free may still be called with no dollars left."""
        prices("free-model", 0.0, 0.0)

        @step(model="free-model", budget=Budget(max_usd=0))
        def free():
            with llm_call(input_tokens=10) as call:
                call.record(10, 10)
            return call.max_output_tokens

        assert free() is None

    def test_outermost_step_dominates(self):
        """When several steps are spent, the outermost one's exhaustion is raised."""
        seen = []

        @step(name="outer", model="m", budget=Budget(max_tokens=10))
        def outer():
            inner()

        @step(budget=Budget(max_tokens=10), error_boundary="continue")
        def inner():
            try:
                record_usage(input_tokens=10, output_tokens=0, cost_usd=0)
                with llm_call():
                    pass
            except StepBudgetExhausted as exc:
                seen.append(exc.step)
                raise

        with pytest.raises(StepBudgetExhausted, match=re.escape("step 'outer' refused")):
            outer()
        assert seen == ["outer"]

    def test_continue_boundary_skips_step(self):
        """Under a "continue" boundary a refused call skips the step with its default."""

        @step(
            model="m",
            budget=Budget(max_llm_calls=0),
            error_boundary="continue",
            default="(no budget)",
        )
        def polite():
            with llm_call():
                return "called"

        with run() as r:
            assert polite() == "(no budget)"
        assert r.steps[0].status is StepStatus.SKIPPED
        assert r.steps[0].usage.llm_calls == 0

    def test_refusal_does_not_hide_later_overrun(self):
        """A refusal caught in the step does not stop a later overrun from raising."""

        @step(name="stubborn", model="m", budget=Budget(max_tokens=10))
        def stubborn():
            record_usage(input_tokens=10, cost_usd=0)
            with pytest.raises(StepBudgetExhausted):
                llm_call().__enter__()
            record_usage(input_tokens=1, cost_usd=0)

        with pytest.raises(
            StepBudgetExhausted,
            match=re.escape("step 'stubborn' exceeded max_tokens budget (11 > 10 tokens)"),
        ):
            stubborn()


class TestMaxOutputTokens:
    def test_none_without_limits(self):
        """No token or dollar limit and no cap: no limit on output."""

        @step(model="m")
        def free():
            with llm_call(input_tokens=10_000) as call:
                return call.max_output_tokens

        assert free() is None

    def test_tightest_token_budget(self):
        """The tightest enclosing max_tokens, less what is used and the input estimate."""

        @step(name="outer", model="m", budget=Budget(max_tokens=10_000))
        def outer():
            record_usage(input_tokens=7_000, cost_usd=0)
            return inner()

        @step(budget=Budget(max_tokens=5_000))
        def inner():
            with llm_call(input_tokens=1_000) as call:
                return call.max_output_tokens, call.max_output_tokens_for(2_500)

        assert outer() == (2_000, 500)

    def test_cap_applies(self):
        """The max_output_tokens given to llm_call caps the answer."""

        @step(model="m", budget=Budget(max_tokens=10_000))
        def capped():
            with llm_call(max_output_tokens=256) as call:
                return call.max_output_tokens

        assert capped() == 256

    def test_dollar_budget_with_price(self, prices):
        """With a priced model, max_usd limits output to what the dollars left pay for."""
        prices("rated", 1.0, 4.0)  # $4 per million output tokens

        @step(model="rated", budget=Budget(max_usd=0.01))
        def paid():
            with llm_call(input_tokens=2_000) as call:  # $0.002 of input
                limit = call.max_output_tokens
                # Asking for exactly that much stays within budget; one more would not.
                call.record(2_000, limit)
                return limit

        assert paid() == 2_000  # $0.008 left / $4 per million

    def test_dollar_budget_unpriced_model(self):
        """An unpriced model is not limited by dollars (its cost is unknown)."""

        @step(model="no-price-here", budget=Budget(max_usd=1.0))
        def unknown():
            with llm_call() as call:
                return call.max_output_tokens

        assert unknown() is None

    def test_zero_when_input_fills_budget(self):
        """max_output_tokens_for() an input bigger than what is left is 0."""

        @step(model="m", budget=Budget(max_tokens=100))
        def full():
            with llm_call() as call:
                return call.max_output_tokens_for(150)

        assert full() == 0

    def test_before_entering(self):
        """Read before the block, it uses the current step's budget."""

        @step(model="m", budget=Budget(max_tokens=100))
        def early():
            return llm_call(input_tokens=40).max_output_tokens

        assert early() == 60


class TestMisuse:
    def test_bad_arguments(self):
        """Arguments are checked when the call is created, naming the argument."""
        with pytest.raises(TypeError, match=re.escape("llm_call(): 'model' must be a str")):
            llm_call(model=3)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match=re.escape("'input_tokens' must be >= 0 (got -1)")):
            llm_call(input_tokens=-1)
        with pytest.raises(
            TypeError,
            match=re.escape("llm_call(): 'max_output_tokens' must be an int (got 1.5"),
        ):
            llm_call(max_output_tokens=1.5)  # type: ignore[arg-type]
        with pytest.raises(
            ValueError, match=re.escape("llm_call(): 'operation' must be a non-empty str (got '')")
        ):
            llm_call(operation="")
        with pytest.raises(
            ValueError, match=re.escape("llm_call(): 'model' must be a non-empty str or None")
        ):
            llm_call(model=" ")

    def test_bad_record(self):
        """record() checks its counts like record_usage, naming itself."""

        @step(model="m")
        def sloppy():
            with llm_call() as call:
                with pytest.raises(ValueError, match=re.escape("LLMCall.record(): cached tokens")):
                    call.record(input_tokens=1, cache_read_tokens=2)
                with pytest.raises(
                    ValueError, match=re.escape("'reasoning_tokens' (5) exceeds 'output_tokens'")
                ):
                    call.record(output_tokens=1, reasoning_tokens=5)
                with pytest.raises(TypeError, match=re.escape("'cost_usd' must be a number")):
                    call.record(cost_usd="free")  # type: ignore[arg-type]
                with pytest.raises(
                    TypeError, match=re.escape("LLMCall.add_usage(): 'output_tokens' must be")
                ):
                    call.add_usage(output_tokens=True)
                call.record(1, 1, cost_usd=0)

        sloppy()

    def test_record_outside_block(self):
        """Reporting before or after the block is a mistake, and says so."""
        call = llm_call("m")
        with pytest.raises(RuntimeError, match=re.escape("(before its 'with' block)")):
            call.record(1, 1)
        with call:
            pass
        with pytest.raises(RuntimeError, match=re.escape("(after its 'with' block)")):
            call.add_usage(1, 1)

    def test_reentry(self):
        """A call object is used once."""
        call = llm_call("m")
        with call:
            pass
        with pytest.raises(RuntimeError, match=re.escape("this call was already opened")):
            call.__enter__()

    def test_repr(self):
        """The repr names the operation, the model and the state."""
        assert repr(llm_call("m")) == "<LLMCall chat 'm' new>"
        assert isinstance(llm_call(), LLMCall)

    def test_step_scope_model_inherited(self):
        """The model defaults to the step's, from a step_scope too."""
        with step_scope("s", model="scoped-model"), llm_call() as call:
            assert call.model == "scoped-model"
            call.record(1, 1, cost_usd=0)
        assert call.response_model is None
        assert call.provider is None
