"""
instrument_litellm(): the real litellm package against the loopback fake OpenAI/Anthropic APIs.

LiteLLM is in the ``test`` extra. Without it these tests are skipped, except under CI=true,
where a missing LiteLLM fails the run (``pip install litellm`` to run them locally).
"""

from __future__ import annotations

import asyncio
import gc
import importlib.util
import os
import warnings
from collections.abc import Iterator
from typing import Any

import pytest

# LiteLLM downloads its model cost map when imported unless told to use its bundled copy:
# no test reaches the internet.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

if importlib.util.find_spec("litellm") is None:
    if os.environ.get("CI", "").strip().lower() == "true":
        pytest.fail("CI=true and litellm is not installed (pip install -e '.[test]')")
    pytest.skip("litellm is not installed (pip install litellm)", allow_module_level=True)

import litellm

import agentsteps
from agentsteps import (
    Budget,
    StepBudgetExhausted,
    instrument_litellm,
    instrument_openai,
    run,
    step,
)
from tests.fakes.providers import ErrorReply, FakeProvider, Reply, Usage
from tests.fakes.providers import documented_estimate as estimate

# LiteLLM's own use of pydantic warns (when its models are built, when it reads them); not
# ours to fix, and an error here would turn into a LiteLLM error.
pytestmark = [
    pytest.mark.filterwarnings("ignore:.*ReadOnly. qualifier:UserWarning"),
    pytest.mark.filterwarnings("ignore:Accessing the 'model_computed_fields':DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:Accessing the 'model_fields':DeprecationWarning"),
]

MESSAGES = [{"role": "user", "content": "Look it up."}]
OPENAI = "openai/gpt-4o-mini"
ANTHROPIC = "anthropic/claude-sonnet-4-5"


@pytest.fixture(autouse=True, scope="module")
def _release_litellms_leftovers() -> Iterator[None]:
    """LiteLLM keeps HTTP clients cached and makes event loops it never closes (its sync path
    runs async logging). Collect them here, quietly, or their sockets warn (an error under this
    suite) in whichever later test happens to run the garbage collector."""
    yield
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        for obj in gc.get_objects():
            open_loop = isinstance(obj, asyncio.AbstractEventLoop) and not obj.is_closed()
            if open_loop and not obj.is_running():
                obj.close()
        cache = getattr(litellm, "in_memory_llm_clients_cache", None)
        flush = getattr(cache, "flush_cache", None)
        if flush is not None:
            flush()
        gc.collect()


@pytest.fixture
def instrumented() -> Iterator[agentsteps.InstrumentationHandle]:
    with instrument_litellm() as handle:
        yield handle


def base(fake: FakeProvider, model: str) -> str:
    return fake.openai_base_url if model.startswith("openai/") else fake.anthropic_base_url


def complete(fake: FakeProvider, model: str, **kwargs: Any) -> Any:
    kwargs.setdefault("max_tokens", 1000)
    return litellm.completion(
        model=model, messages=MESSAGES, api_base=base(fake, model), api_key="test", **kwargs
    )


async def acomplete(fake: FakeProvider, model: str, **kwargs: Any) -> Any:
    kwargs.setdefault("max_tokens", 1000)
    return await litellm.acompletion(
        model=model, messages=MESSAGES, api_base=base(fake, model), api_key="test", **kwargs
    )


@pytest.mark.usefixtures("instrumented")
@pytest.mark.parametrize("model", [OPENAI, ANTHROPIC])
def test_loop_of_six_sends_three_and_raises_on_the_third(fake: FakeProvider, model: str) -> None:
    @step(name="agent", budget=Budget(max_tokens=4000))
    def agent() -> None:
        for _ in range(6):
            complete(fake, model)

    with run() as r, pytest.raises(StepBudgetExhausted) as caught:
        agent()
    # Raised from litellm.completion itself, not wrapped into one of LiteLLM's errors.
    assert type(caught.value) is StepBudgetExhausted
    assert str(caught.value) == "step 'agent' exceeded max_tokens budget (4500 > 4000 tokens)"
    assert len(fake.model_requests) == 3
    usage = r.steps[0].usage
    assert (usage.input_tokens, usage.output_tokens, usage.llm_calls) == (3000, 1500, 3)


@pytest.mark.usefixtures("instrumented")
def test_a_spent_budget_is_refused_before_litellm_sends(fake: FakeProvider) -> None:
    @step(name="agent", budget=Budget(max_llm_calls=2), error_boundary="continue")
    def agent() -> str:
        for _ in range(6):
            complete(fake, ANTHROPIC)
        return "finished"

    with run() as r:
        assert agent() is None
    assert len(fake.model_requests) == 2
    assert r.steps[0].status is agentsteps.StepStatus.SKIPPED


def test_with_instrument_openai_too_each_request_is_charged_once(fake: FakeProvider) -> None:
    with instrument_openai(), instrument_litellm():

        @step(name="agent")
        def agent() -> None:
            complete(fake, OPENAI)
            for _ in complete(fake, OPENAI, stream=True):
                pass

        with run() as r:
            agent()
    usage = r.steps[0].usage
    assert (usage.input_tokens, usage.output_tokens, usage.llm_calls) == (2000, 1000, 2)


@pytest.mark.usefixtures("instrumented")
@pytest.mark.parametrize("model", [OPENAI, ANTHROPIC])
def test_streams_ask_for_usage_and_are_charged_exactly(fake: FakeProvider, model: str) -> None:
    @step(name="agent")
    def agent() -> list[Any]:
        return list(complete(fake, model, stream=True))

    with run() as r:
        chunks = agent()
    assert all(c.choices for c in chunks)  # the usage chunk we asked for is not handed on
    usage = r.steps[0].usage
    assert (usage.input_tokens, usage.output_tokens, usage.llm_calls) == (1000, 500, 1)
    if model == OPENAI:
        assert fake.model_requests[0].body["stream_options"] == {"include_usage": True}


@pytest.mark.usefixtures("instrumented")
def test_a_stream_is_cut_at_the_chunk_that_crosses_the_limit(fake: FakeProvider) -> None:
    est = estimate(messages=MESSAGES)
    seen: list[Any] = []

    @step(name="agent", budget=Budget(max_tokens=est + 1))
    def agent() -> None:
        for chunk in complete(fake, OPENAI, stream=True):
            seen.append(chunk)

    with pytest.raises(StepBudgetExhausted) as caught:
        agent()
    assert len(seen) == 1
    assert str(caught.value) == (
        f"step 'agent' exceeded max_tokens budget ({est + 2} > {est + 1} tokens)"
    )


@pytest.mark.usefixtures("instrumented")
@pytest.mark.parametrize("model", [OPENAI, ANTHROPIC])
def test_acompletion_and_async_streams(fake: FakeProvider, model: str) -> None:
    @step(name="agent", budget=Budget(max_tokens=4000))
    async def agent() -> None:
        await acomplete(fake, model)
        stream = await acomplete(fake, model, stream=True)
        async for _ in stream:
            pass
        await acomplete(fake, model)
        await acomplete(fake, model)

    async def main() -> None:
        with run() as r, pytest.raises(StepBudgetExhausted):
            await agent()
        assert r.steps[0].usage.total_tokens == 4500

    asyncio.run(main())
    assert len(fake.model_requests) == 3


@pytest.mark.usefixtures("instrumented")
def test_anthropic_cache_reads_and_writes_are_priced_as_such(fake: FakeProvider) -> None:
    agentsteps.register_price(
        "claude-sonnet-4-5",
        input_per_mtok=3.0,
        output_per_mtok=15.0,
        cache_read_per_mtok=0.3,
        cache_write_per_mtok=3.75,
    )
    fake.set_replies([Reply(usage=Usage(1000, 500, cache_read_tokens=600, cache_write_tokens=300))])

    @step(name="agent")
    def agent() -> None:
        complete(fake, ANTHROPIC)

    with run() as r:
        agent()
    usage = r.steps[0].usage
    assert (usage.input_tokens, usage.cache_read_tokens, usage.cache_write_tokens) == (
        1000,
        600,
        300,
    )
    assert usage.cost_nano_usd == 100 * 3000 + 600 * 300 + 300 * 3750 + 500 * 15000


@pytest.mark.parametrize("model", [OPENAI, ANTHROPIC])
def test_limit_output_caps_max_tokens_to_the_headroom(fake: FakeProvider, model: str) -> None:
    with instrument_litellm(limit_output=True):

        @step(name="agent", budget=Budget(max_tokens=10_000))
        def agent() -> None:
            complete(fake, model, max_tokens=20_000)
            complete(fake, model, max_tokens=20_000)
            complete(fake, model, max_tokens=10)

        agent()
    est = estimate(messages=MESSAGES)
    caps = [r.max_output_tokens for r in fake.model_requests]
    assert caps == [10_000 - est, 8500 - est, 10]


def test_uninstrument_restores_litellm(fake: FakeProvider) -> None:
    import litellm.main

    originals = (litellm.completion, litellm.acompletion, litellm.main.completion)
    with instrument_litellm() as handle:
        assert instrument_litellm() is handle
        assert litellm.completion is not originals[0]
    assert (litellm.completion, litellm.acompletion, litellm.main.completion) == originals

    @step(name="agent")
    def agent() -> None:
        complete(fake, OPENAI)

    with run() as r:
        agent()
    assert r.steps[0].usage.llm_calls == 0


@pytest.mark.usefixtures("instrumented")
def test_outside_steps_nothing_is_charged_or_changed(fake: FakeProvider) -> None:
    with run() as r:
        list(complete(fake, OPENAI, stream=True))
    assert r.steps == []
    assert "stream_options" not in fake.model_requests[0].body


@pytest.mark.usefixtures("instrumented")
def test_provider_errors_charge_nothing(fake: FakeProvider) -> None:
    fake.set_replies([Reply(error=ErrorReply(status=400, message="bad"))])

    @step(name="agent")
    def agent() -> None:
        complete(fake, ANTHROPIC, num_retries=0)

    with run() as r, pytest.raises(litellm.BadRequestError):
        agent()
    assert r.steps[0].usage.llm_calls == 0
