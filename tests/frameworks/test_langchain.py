"""LangChain chat models (ChatOpenAI invoke, stream; ChatAnthropic invoke) stop at the budget."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import agentsteps
from agentsteps import Budget, StepBudgetExhausted, step
from tests.fakes import FakeProvider, Reply
from tests.frameworks.support import (
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

require("langchain_openai", "langchain-openai")
require("langchain_anthropic", "langchain-anthropic")

from langchain_anthropic import ChatAnthropic  # noqa: E402 - after the require() above
from langchain_openai import ChatOpenAI  # noqa: E402


def _model(kind: str, fake: FakeProvider) -> Any:
    if kind == "anthropic":
        fake.set_replies([Reply(text="Sunny.", usage=ANTHROPIC_USAGE)])
        return ChatAnthropic(
            model_name=ANTHROPIC_MODEL,
            base_url=fake.anthropic_base_url,
            api_key="test",  # type: ignore[arg-type]
            timeout=None,
            stop=None,
        )
    fake.set_replies([Reply(text="Sunny.", usage=OPENAI_USAGE)])
    return ChatOpenAI(model=OPENAI_MODEL, base_url=fake.openai_base_url, api_key="test")  # type: ignore[arg-type]


# How each case calls the model once: the loop calls it 6 times.
CALLS = {
    "openai-invoke": ("openai", lambda llm: llm.invoke("Weather?").content),
    "openai-stream": ("openai", lambda llm: "".join(c.content for c in llm.stream("Weather?"))),
    "anthropic-invoke": ("anthropic", lambda llm: llm.invoke("Weather?").content),
}


@pytest.mark.parametrize("case", sorted(CALLS))
def test_the_loop_runs_six_requests_without_a_budget(
    case: str, fake: FakeProvider, instrumented: bool
) -> None:
    """Unlimited, all 6 calls go out and are charged exactly (streams included)."""
    register_prices()
    kind, call = CALLS[case]
    llm = _model(kind, fake)

    @step
    def loop() -> list[str]:
        return [call(llm) for _ in range(LOOP)]

    with agentsteps.run() as run:
        assert loop() == ["Sunny."] * LOOP
    assert len(fake.model_requests) == LOOP
    assert_charged_exactly(run.steps[0].subtree_usage, fake)


@pytest.mark.parametrize("case", sorted(CALLS))
def test_the_budget_stops_the_loop_at_the_third_call(
    case: str, fake: FakeProvider, instrumented: bool
) -> None:
    """3 of 6 requests sent; StepBudgetExhausted comes out of LangChain unwrapped."""
    register_prices()
    kind, call = CALLS[case]
    llm = _model(kind, fake)

    @step(budget=Budget(max_tokens=BUDGET_TOKENS))
    def loop() -> list[str]:
        return [call(llm) for _ in range(LOOP)]

    with agentsteps.run() as run, pytest.raises(StepBudgetExhausted) as caught:
        loop()
    assert type(caught.value) is StepBudgetExhausted
    assert len(fake.model_requests) == SENT
    assert run.steps[0].status == "failed"
    assert_charged_exactly(run.steps[0].subtree_usage, fake)
    assert_output_limited(fake, limit_output=instrumented)


@pytest.mark.parametrize("case", sorted(CALLS))
def test_a_spent_budget_refuses_the_next_call_before_it_is_sent(
    case: str, fake: FakeProvider, instrumented: bool
) -> None:
    """max_llm_calls=2: the third call is never sent, and not retried by the SDK."""
    register_prices()
    kind, call = CALLS[case]
    llm = _model(kind, fake)

    @step(budget=Budget(max_llm_calls=CALLS_BUDGET))
    def loop() -> list[str]:
        return [call(llm) for _ in range(LOOP)]

    with agentsteps.run() as run, pytest.raises(StepBudgetExhausted) as caught:
        loop()
    assert_refused_third(caught, fake)
    assert_charged_exactly(run.steps[0].subtree_usage, fake)


def test_stream_is_charged_although_langchain_asks_no_usage(
    fake: FakeProvider, instrumented: bool
) -> None:
    """
    ChatOpenAI.stream() sends no stream_options (stream_usage is off by default): the
    instrumentation asks for the usage chunk, charges it, and does not hand it to LangChain.
    """
    register_prices()
    llm = _model("openai", fake)

    @step
    def once() -> list[Any]:
        return list(llm.stream("Weather?"))

    with agentsteps.run() as run:
        chunks = once()
    [request] = fake.model_requests
    assert request.body["stream_options"] == {"include_usage": True}
    assert all(c.usage_metadata is None for c in chunks)  # as without agentsteps
    assert_charged_exactly(run.steps[0].subtree_usage, fake)


def test_ainvoke_continue_boundary(fake: FakeProvider, instrumented: bool) -> None:
    """Async ainvoke in an async step with error_boundary="continue": 3 sent, default returned."""
    register_prices()
    llm = _model("openai", fake)

    @step(budget=Budget(max_tokens=BUDGET_TOKENS), error_boundary="continue", default=[])
    async def loop() -> list[Any]:
        return [(await llm.ainvoke("Weather?")).content for _ in range(LOOP)]

    with agentsteps.run() as run:
        assert asyncio.run(loop()) == []
    assert len(fake.model_requests) == SENT
    assert run.steps[0].status == "skipped"
    assert_charged_exactly(run.steps[0].subtree_usage, fake)
