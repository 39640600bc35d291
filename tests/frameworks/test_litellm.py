"""LiteLLM (completion, acompletion, streams; OpenAI and Anthropic models) stops at the budget."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator
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

litellm = require("litellm", "litellm")

from litellm.llms.custom_httpx.async_client_cleanup import (  # noqa: E402 - after require()
    close_litellm_async_clients,
)

# Warnings LiteLLM's own code raises under the pinned pydantic, with or without agentsteps:
# its first call builds models of TypedDicts with ReadOnly items, and its stream handler
# reads model_fields and model_computed_fields on instances (deprecated since pydantic 2.11).
pytestmark = [
    pytest.mark.filterwarnings("ignore:.* using the `ReadOnly` qualifier:UserWarning"),
    pytest.mark.filterwarnings(
        r"ignore:Accessing the 'model_\w*fields' attribute on the instance:DeprecationWarning"
    ),
    # LiteLLM caches its HTTP clients per event loop and never closes the ones it drops, and
    # leaves an internal event loop open: measured with plain litellm.completion then
    # acompletion, without agentsteps. `_collect_litellm_garbage` collects them here, so the
    # warnings land in these tests (ignored) rather than at the session's end.
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
]


@pytest.fixture(autouse=True)
def _collect_litellm_garbage() -> Iterator[None]:
    yield
    litellm.in_memory_llm_clients_cache.flush_cache()
    gc.collect()


@pytest.fixture
def instrumented_litellm(instrumented: bool) -> Iterator[bool]:
    """LiteLLM instrumented on top of the OpenAI and Anthropic SDKs: each call charged once."""
    with agentsteps.instrument_litellm(limit_output=instrumented):
        yield instrumented


def _args(kind: str, fake: FakeProvider) -> dict[str, Any]:
    if kind == "anthropic":
        fake.set_replies([Reply(text="Sunny.", usage=ANTHROPIC_USAGE)])
        model, base = f"anthropic/{ANTHROPIC_MODEL}", fake.anthropic_base_url
    else:
        fake.set_replies([Reply(text="Sunny.", usage=OPENAI_USAGE)])
        model, base = f"openai/{OPENAI_MODEL}", fake.openai_base_url
    messages = [{"role": "user", "content": "Weather?"}]
    return {"model": model, "messages": messages, "api_base": base, "api_key": "test"}


def _text(response: Any) -> str:
    return str(response.choices[0].message.content)


def _streamed(chunks: Any) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


async def _astreamed(chunks: Any) -> str:
    return "".join([c.choices[0].delta.content or "" async for c in chunks if c.choices])


def _sync_loop(args: dict[str, Any], stream: bool) -> list[str]:
    if stream:
        return [_streamed(litellm.completion(**args, stream=True)) for _ in range(LOOP)]
    return [_text(litellm.completion(**args)) for _ in range(LOOP)]


async def _async_loop(args: dict[str, Any], stream: bool) -> list[str]:
    if stream:
        return [
            await _astreamed(await litellm.acompletion(**args, stream=True)) for _ in range(LOOP)
        ]
    return [_text(await litellm.acompletion(**args)) for _ in range(LOOP)]


CASES = [
    (kind, mode, stream)
    for kind in ("openai", "anthropic")
    for mode in ("completion", "acompletion")
    for stream in (False, True)
]
IDS = [f"{k}-{m}{'-stream' if s else ''}" for k, m, s in CASES]


def _run(kind: str, mode: str, stream: bool, fake: FakeProvider, budget: Budget | None) -> Any:
    args = _args(kind, fake)
    if mode == "completion":

        @step(budget=budget)
        def loop() -> list[str]:
            return _sync_loop(args, stream)

        return loop()

    @step(budget=budget)
    async def aloop() -> list[str]:
        return await _async_loop(args, stream)

    async def main() -> list[str]:
        try:
            return await aloop()
        finally:
            # LiteLLM caches its async HTTP clients across event loops: close them on this one.
            await close_litellm_async_clients()

    return asyncio.run(main())


@pytest.mark.parametrize(("kind", "mode", "stream"), CASES, ids=IDS)
def test_the_loop_runs_six_requests_without_a_budget(
    kind: str, mode: str, stream: bool, fake: FakeProvider, instrumented_litellm: bool
) -> None:
    """Unlimited, all 6 calls go out and each is charged once, exactly."""
    register_prices()
    with agentsteps.run() as run:
        assert _run(kind, mode, stream, fake, None) == ["Sunny."] * LOOP
    assert len(fake.model_requests) == LOOP
    assert_charged_exactly(run.steps[0].subtree_usage, fake)


@pytest.mark.parametrize(("kind", "mode", "stream"), CASES, ids=IDS)
def test_the_budget_stops_the_loop_at_the_third_call(
    kind: str, mode: str, stream: bool, fake: FakeProvider, instrumented_litellm: bool
) -> None:
    """3 of 6 requests sent; StepBudgetExhausted comes out of LiteLLM, not wrapped by it."""
    register_prices()
    with agentsteps.run() as run, pytest.raises(StepBudgetExhausted) as caught:
        _run(kind, mode, stream, fake, Budget(max_tokens=BUDGET_TOKENS))
    assert type(caught.value) is StepBudgetExhausted
    assert len(fake.model_requests) == SENT
    assert run.steps[0].status == "failed"
    assert_charged_exactly(run.steps[0].subtree_usage, fake)
    assert_output_limited(fake, limit_output=instrumented_litellm)


@pytest.mark.parametrize(("kind", "mode", "stream"), CASES, ids=IDS)
def test_a_spent_budget_refuses_the_next_call_before_it_is_sent(
    kind: str, mode: str, stream: bool, fake: FakeProvider, instrumented_litellm: bool
) -> None:
    """max_llm_calls=2: the third call never reaches the server; LiteLLM does not wrap it."""
    register_prices()
    with agentsteps.run() as run, pytest.raises(StepBudgetExhausted) as caught:
        _run(kind, mode, stream, fake, Budget(max_llm_calls=CALLS_BUDGET))
    assert_refused_third(caught, fake)
    assert_charged_exactly(run.steps[0].subtree_usage, fake)


def test_without_instrument_litellm_litellm_wraps_the_refusal(
    fake: FakeProvider, instrumented: bool
) -> None:
    """
    Only instrument_openai on: the overrun raised inside the OpenAI SDK reaches the caller
    as LiteLLM's own exception, the StepBudgetExhausted as its cause (what LiteLLM does to
    any exception from the SDK); the loop still stops at 3 requests.
    """
    register_prices()
    args = _args("openai", fake)

    @step(budget=Budget(max_tokens=BUDGET_TOKENS))
    def loop() -> list[str]:
        return _sync_loop(args, stream=False)

    with pytest.raises(litellm.InternalServerError) as caught:
        loop()
    chain = []
    error: BaseException | None = caught.value
    while error is not None:
        chain.append(type(error))
        error = error.__cause__ or error.__context__
    assert StepBudgetExhausted in chain
    assert len(fake.model_requests) == SENT
