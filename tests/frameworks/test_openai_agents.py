"""The OpenAI Agents SDK (Runner.run with a tool, Responses API) stops at the step's budget."""

from __future__ import annotations

import asyncio

import openai
import pytest

import agentsteps
from agentsteps import Budget, StepBudgetExhausted, step
from tests.fakes import FakeProvider, tool_calls_then_text
from tests.frameworks.support import (
    BUDGET_TOKENS,
    CALLS_BUDGET,
    LOOP,
    OPENAI_MODEL,
    OPENAI_USAGE,
    SENT,
    assert_charged_exactly,
    assert_output_limited,
    assert_refused_third,
    register_prices,
    require,
)

require("agents", "openai-agents")

from agents import (  # noqa: E402 - after the require() above
    Agent,
    MaxTurnsExceeded,
    OpenAIResponsesModel,
    Runner,
    function_tool,
    set_tracing_disabled,
)

# The SDK's own tracing would export to OpenAI's servers: off, no test reaches the internet.
set_tracing_disabled(True)


@function_tool
def lookup(city: str) -> str:
    """The weather in a city."""
    return f"Sunny in {city}"


def _agent(fake: FakeProvider, client: openai.AsyncOpenAI) -> Agent:
    """An agent whose fake model calls its tool 5 times and then answers: 6 requests."""
    fake.set_replies(
        tool_calls_then_text("lookup", {"city": "Paris"}, calls=LOOP - 1, usage=OPENAI_USAGE)
    )
    model = OpenAIResponsesModel(OPENAI_MODEL, openai_client=client)
    return Agent(name="weather", instructions="Use the tool.", tools=[lookup], model=model)


def _client(fake: FakeProvider) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=fake.openai_base_url, api_key="test")


def test_the_loop_runs_six_requests_without_a_budget(
    fake: FakeProvider, instrumented: bool
) -> None:
    """Unlimited, Runner.run sends all 6 Responses requests, each charged exactly."""
    register_prices()

    @step
    async def research() -> str:
        async with _client(fake) as client:
            result = await Runner.run(_agent(fake, client), "Weather in Paris?", max_turns=10)
            return str(result.final_output)

    with agentsteps.run() as run:
        assert asyncio.run(research()) == "Done."
    assert [r.path for r in fake.model_requests] == ["/v1/responses"] * LOOP
    assert_charged_exactly(run.steps[0].subtree_usage, fake)


def test_the_budget_stops_the_run_at_the_third_request(
    fake: FakeProvider, instrumented: bool
) -> None:
    """3 of 6 requests sent; StepBudgetExhausted comes out of Runner.run unwrapped."""
    register_prices()

    @step(budget=Budget(max_tokens=BUDGET_TOKENS))
    async def research() -> str:
        async with _client(fake) as client:
            result = await Runner.run(_agent(fake, client), "Weather in Paris?", max_turns=10)
            return str(result.final_output)

    with agentsteps.run() as run, pytest.raises(StepBudgetExhausted) as caught:
        asyncio.run(research())
    assert type(caught.value) is StepBudgetExhausted
    assert caught.value.limit == "max_tokens"
    assert len(fake.model_requests) == SENT
    [record] = run.steps
    assert record.status == "failed"
    assert_charged_exactly(record.subtree_usage, fake)
    assert_output_limited(fake, limit_output=instrumented)


def test_a_continue_boundary_degrades_to_the_default(
    fake: FakeProvider, instrumented: bool
) -> None:
    """error_boundary="continue": the step returns its default after the third request."""
    register_prices()

    @step(budget=Budget(max_tokens=BUDGET_TOKENS), error_boundary="continue", default="none")
    async def research() -> str:
        async with _client(fake) as client:
            result = await Runner.run(_agent(fake, client), "Weather in Paris?", max_turns=10)
            return str(result.final_output)

    with agentsteps.run() as run:
        assert asyncio.run(research()) == "none"
    assert len(fake.model_requests) == SENT
    assert run.steps[0].status == "skipped"
    assert_charged_exactly(run.steps[0].subtree_usage, fake)


def test_a_spent_budget_refuses_the_next_turn_before_it_is_sent(
    fake: FakeProvider, instrumented: bool
) -> None:
    """max_llm_calls=2: the third turn is never sent; the refusal leaves Runner.run as is."""
    register_prices()

    @step(budget=Budget(max_llm_calls=CALLS_BUDGET))
    async def research() -> str:
        async with _client(fake) as client:
            result = await Runner.run(_agent(fake, client), "Weather in Paris?", max_turns=10)
            return str(result.final_output)

    with agentsteps.run() as run, pytest.raises(StepBudgetExhausted) as caught:
        asyncio.run(research())
    assert_refused_third(caught, fake)
    assert_charged_exactly(run.steps[0].subtree_usage, fake)


def test_streamed_run_is_cut_and_charged(fake: FakeProvider, instrumented: bool) -> None:
    """Runner.run_streamed (Responses SSE): the same 3 requests, usage from response.completed."""
    register_prices()

    @step(budget=Budget(max_tokens=BUDGET_TOKENS))
    async def research() -> None:
        async with _client(fake) as client:
            result = Runner.run_streamed(_agent(fake, client), "Weather in Paris?", max_turns=10)
            async for _event in result.stream_events():
                pass

    with agentsteps.run() as run, pytest.raises(StepBudgetExhausted):
        asyncio.run(research())
    assert len(fake.model_requests) == SENT
    assert all(r.body["stream"] is True for r in fake.model_requests)
    assert_charged_exactly(run.steps[0].subtree_usage, fake)


def test_max_turns_alone_counts_turns_not_tokens(fake: FakeProvider) -> None:
    """Side by side: max_turns=3 also stops after 3 requests, whatever they cost."""

    async def research() -> None:
        async with _client(fake) as client:
            await Runner.run(_agent(fake, client), "Weather in Paris?", max_turns=3)

    with pytest.raises(MaxTurnsExceeded):
        asyncio.run(research())
    assert len(fake.model_requests) == SENT
