"""Pydantic AI agents (OpenAI chat and Anthropic models, a tool loop) stop at the step's budget."""

from __future__ import annotations

import asyncio
from typing import Any

import anthropic
import openai
import pytest

import agentsteps
from agentsteps import Budget, StepBudgetExhausted, step
from tests.fakes import FakeProvider, tool_calls_then_text
from tests.frameworks.support import (
    ANTHROPIC_CUT_AFTER,
    ANTHROPIC_MODEL,
    ANTHROPIC_USAGE,
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

require("pydantic_ai", "pydantic-ai-slim")
require("pydantic_ai.models.openai", "pydantic-ai-slim[openai]")
require("pydantic_ai.models.anthropic", "pydantic-ai-slim[anthropic]")

from pydantic_ai import Agent  # noqa: E402 - after the require() above
from pydantic_ai.models.anthropic import AnthropicModel  # noqa: E402
from pydantic_ai.models.openai import OpenAIChatModel  # noqa: E402
from pydantic_ai.providers.anthropic import AnthropicProvider  # noqa: E402
from pydantic_ai.providers.openai import OpenAIProvider  # noqa: E402

KINDS = ["openai", "anthropic"]


def _agent(kind: str, fake: FakeProvider) -> tuple[Agent[None, str], Any]:
    """
    An agent with one tool, whose fake model calls it 5 times and then answers: 6 requests.

    Returned with its SDK client, for the test to close inside its event loop.
    """
    usage = OPENAI_USAGE if kind == "openai" else ANTHROPIC_USAGE
    fake.set_replies(tool_calls_then_text("lookup", {"city": "Paris"}, calls=LOOP - 1, usage=usage))
    model: Any
    client: Any
    if kind == "openai":
        client = openai.AsyncOpenAI(base_url=fake.openai_base_url, api_key="test")
        model = OpenAIChatModel(OPENAI_MODEL, provider=OpenAIProvider(openai_client=client))
    else:
        client = anthropic.AsyncAnthropic(base_url=fake.anthropic_base_url, api_key="test")
        model = AnthropicModel(ANTHROPIC_MODEL, provider=AnthropicProvider(anthropic_client=client))
    agent: Agent[None, str] = Agent(model, instructions="Answer with the tool's help.")

    @agent.tool_plain
    def lookup(city: str) -> str:
        """The weather in a city."""
        return f"Sunny in {city}"

    return agent, client


@pytest.mark.parametrize("kind", KINDS)
def test_the_loop_runs_six_requests_without_a_budget(
    kind: str, fake: FakeProvider, instrumented: bool
) -> None:
    """The scenario is a real loop: unlimited, the agent sends all 6 requests, charged exactly."""
    register_prices()
    agent, client = _agent(kind, fake)

    @step
    async def research() -> str:
        async with client:
            return (await agent.run("Weather in Paris?")).output

    with agentsteps.run() as run:
        assert asyncio.run(research()) == "Done."
    assert len(fake.model_requests) == LOOP
    assert_charged_exactly(run.steps[0].subtree_usage, fake)


@pytest.mark.parametrize("kind", KINDS)
def test_the_budget_stops_the_loop_at_the_third_request(
    kind: str, fake: FakeProvider, instrumented: bool
) -> None:
    """3 of 6 requests sent; StepBudgetExhausted comes out of agent.run() unwrapped."""
    register_prices()
    agent, client = _agent(kind, fake)

    @step(budget=Budget(max_tokens=BUDGET_TOKENS))
    async def research() -> str:
        async with client:
            return (await agent.run("Weather in Paris?")).output

    with agentsteps.run() as run, pytest.raises(StepBudgetExhausted) as caught:
        asyncio.run(research())
    assert type(caught.value) is StepBudgetExhausted
    assert (caught.value.limit, caught.value.limit_value) == ("max_tokens", BUDGET_TOKENS)
    assert len(fake.model_requests) == SENT
    [record] = run.steps
    assert record.status == "failed"
    cut = ANTHROPIC_CUT_AFTER if kind == "anthropic" else None
    assert_charged_exactly(record.subtree_usage, fake, cut_after=cut)
    assert_output_limited(fake, limit_output=instrumented)


@pytest.mark.parametrize("kind", KINDS)
def test_a_continue_boundary_degrades_to_the_default(
    kind: str, fake: FakeProvider, instrumented: bool
) -> None:
    """error_boundary="continue": the step returns its default after the third request."""
    register_prices()
    agent, client = _agent(kind, fake)

    @step(budget=Budget(max_tokens=BUDGET_TOKENS), error_boundary="continue", default="no answer")
    async def research() -> str:
        async with client:
            return (await agent.run("Weather in Paris?")).output

    with agentsteps.run() as run:
        assert asyncio.run(research()) == "no answer"
    assert len(fake.model_requests) == SENT
    [record] = run.steps
    assert record.status == "skipped"
    cut = ANTHROPIC_CUT_AFTER if kind == "anthropic" else None
    assert_charged_exactly(record.subtree_usage, fake, cut_after=cut)


@pytest.mark.parametrize("kind", KINDS)
def test_a_spent_budget_refuses_the_next_request_before_it_is_sent(
    kind: str, fake: FakeProvider, instrumented: bool
) -> None:
    """max_llm_calls=2: the third request is never sent; the refusal leaves agent.run() as is."""
    register_prices()
    agent, client = _agent(kind, fake)

    @step(budget=Budget(max_llm_calls=CALLS_BUDGET))
    async def research() -> str:
        async with client:
            return (await agent.run("Weather in Paris?")).output

    with agentsteps.run() as run, pytest.raises(StepBudgetExhausted) as caught:
        asyncio.run(research())
    assert_refused_third(caught, fake)
    assert_charged_exactly(run.steps[0].subtree_usage, fake)


def test_run_sync_is_charged_to_the_step(fake: FakeProvider, instrumented: bool) -> None:
    """Agent.run_sync (its own event loop) still charges the step that called it."""
    register_prices()
    agent, client = _agent("openai", fake)
    # run_sync runs on the thread's current event loop: own it, to close the client on it.
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)

    @step(budget=Budget(max_tokens=BUDGET_TOKENS))
    def research() -> str:
        return agent.run_sync("Weather in Paris?").output

    try:
        with agentsteps.run() as run, pytest.raises(StepBudgetExhausted):
            research()
    finally:
        loop.run_until_complete(client.close())
        asyncio.set_event_loop(None)
        loop.close()
    assert len(fake.model_requests) == SENT
    assert_charged_exactly(run.steps[0].subtree_usage, fake)


def test_usage_limits_side_by_side(fake: FakeProvider) -> None:
    """
    Side by side: Pydantic AI's own UsageLimits(total_tokens_limit=4000), checked after each
    response of this one run, also stops the loop at the third response (no agentsteps here).
    """
    from pydantic_ai.exceptions import UsageLimitExceeded
    from pydantic_ai.usage import UsageLimits

    agent, client = _agent("openai", fake)
    limits = UsageLimits(total_tokens_limit=4000)

    async def research() -> str:
        async with client:
            return (await agent.run("Weather in Paris?", usage_limits=limits)).output

    with pytest.raises(UsageLimitExceeded):
        asyncio.run(research())
    assert len(fake.model_requests) == SENT
