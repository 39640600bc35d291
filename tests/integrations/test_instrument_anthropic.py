"""instrument_anthropic(): the real anthropic SDK against a loopback fake of the Messages API."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

anthropic = pytest.importorskip("anthropic")
pytest.importorskip("wrapt")

from anthropic import _base_client  # noqa: E402

import agentsteps  # noqa: E402
from agentsteps import (  # noqa: E402
    Budget,
    StepBudgetExhausted,
    current_step,
    instrument_anthropic,
    run,
    step,
)
from tests.fakes.providers import ErrorReply, FakeProvider, Reply, Usage  # noqa: E402
from tests.fakes.providers import documented_estimate as estimate  # noqa: E402
from tests.support import Spans  # noqa: E402

MODEL = "claude-sonnet-4-5"
MESSAGES = [{"role": "user", "content": "Look it up."}]
SYSTEM = "You look things up."


@pytest.fixture
def client(fake: FakeProvider) -> Iterator[Any]:
    with anthropic.Anthropic(base_url=fake.anthropic_base_url, api_key="test", max_retries=0) as c:
        yield c


@pytest.fixture
def instrumented() -> Iterator[agentsteps.InstrumentationHandle]:
    with instrument_anthropic() as handle:
        yield handle


def message(client: Any, max_tokens: int = 1024, **kwargs: Any) -> Any:
    return client.messages.create(
        model=MODEL, max_tokens=max_tokens, system=SYSTEM, messages=MESSAGES, **kwargs
    )


@pytest.mark.usefixtures("instrumented")
def test_loop_of_six_sends_three_and_raises_on_the_third(fake: FakeProvider, client: Any) -> None:
    @step(name="agent", model=MODEL, budget=Budget(max_tokens=4000))
    def agent() -> None:
        for _ in range(6):
            message(client)

    with run() as r, pytest.raises(StepBudgetExhausted) as caught:
        agent()
    assert str(caught.value) == "step 'agent' exceeded max_tokens budget (4500 > 4000 tokens)"
    assert len(fake.model_requests) == 3
    usage = r.steps[0].usage
    assert (usage.input_tokens, usage.output_tokens, usage.llm_calls) == (3000, 1500, 3)


@pytest.mark.usefixtures("instrumented")
def test_loop_degrades_per_the_error_boundary(fake: FakeProvider, client: Any) -> None:
    @step(name="agent", model=MODEL, budget=Budget(max_tokens=4000), error_boundary="continue")
    def agent() -> str:
        for _ in range(6):
            message(client)
        return "finished"

    with run() as r:
        assert agent() is None
    assert len(fake.model_requests) == 3
    assert r.steps[0].status is agentsteps.StepStatus.SKIPPED


@pytest.mark.usefixtures("instrumented")
def test_cache_reads_and_writes_are_added_to_input_and_priced_as_such(
    fake: FakeProvider, client: Any
) -> None:
    agentsteps.register_price(
        MODEL,
        input_per_mtok=3.0,
        output_per_mtok=15.0,
        cache_read_per_mtok=0.3,
        cache_write_per_mtok=3.75,
    )
    cached = Usage(1000, 500, cache_read_tokens=600, cache_write_tokens=300)
    fake.set_replies([Reply(usage=cached)])

    @step(name="agent", model=MODEL)
    def agent() -> None:
        message(client)
        for _ in message(client, stream=True):
            pass
        with client.messages.stream(
            model=MODEL, max_tokens=1024, system=SYSTEM, messages=MESSAGES
        ) as stream:
            for _ in stream:
                pass

    with run() as r:
        agent()
    usage = r.steps[0].usage
    assert usage.input_tokens == 3 * 1000  # the API's input_tokens (100) plus cache reads/writes
    assert usage.cache_read_tokens == 3 * 600
    assert usage.cache_write_tokens == 3 * 300
    assert usage.output_tokens == 3 * 500
    assert usage.llm_calls == 3
    # Per call: 100 uncached at $3, 600 read at $0.30, 300 written at $3.75, 500 out at $15.
    per_call = 100 * 3000 + 600 * 300 + 300 * 3750 + 500 * 15000
    assert usage.cost_nano_usd == 3 * per_call


def test_limit_output_lowers_max_tokens_to_the_headroom(fake: FakeProvider, client: Any) -> None:
    with instrument_anthropic(limit_output=True):

        @step(name="agent", model=MODEL, budget=Budget(max_tokens=10_000))
        def agent() -> None:
            message(client, max_tokens=20_000)
            message(client, max_tokens=20_000)
            message(client, max_tokens=10)

        agent()
    est = estimate(system=SYSTEM, messages=MESSAGES)
    caps = [r.body["max_tokens"] for r in fake.model_requests]
    assert caps == [10_000 - est, 8500 - est, 10]


@pytest.mark.usefixtures("instrumented")
def test_stream_is_cut_at_the_event_that_crosses_the_limit(fake: FakeProvider, client: Any) -> None:
    fake.set_replies([Reply(text="Done, and done again.", usage=Usage(1000, 500))])
    seen: list[str] = []

    # message_start reports the 1,000 input tokens at once: a budget of 1,002 lets the
    # first text delta through (1,001 + 1) and stops at the second.
    @step(name="agent", model=MODEL, budget=Budget(max_tokens=1002))
    def agent() -> None:
        for event in message(client, stream=True):
            seen.append(event.type)

    with run() as r, pytest.raises(StepBudgetExhausted) as caught:
        agent()
    assert str(caught.value) == "step 'agent' exceeded max_tokens budget (1003 > 1002 tokens)"
    assert seen.count("content_block_delta") == 1
    assert "message_stop" not in seen
    assert r.steps[0].usage.llm_calls == 1


def test_async_client_and_stream_helper(fake: FakeProvider, instrumented: Any) -> None:
    async def main() -> None:
        async with anthropic.AsyncAnthropic(
            base_url=fake.anthropic_base_url, api_key="test", max_retries=0
        ) as ac:

            @step(name="agent", model=MODEL, budget=Budget(max_tokens=4000))
            async def agent() -> None:
                await ac.messages.create(
                    model=MODEL, max_tokens=1024, system=SYSTEM, messages=MESSAGES
                )
                async with ac.messages.stream(
                    model=MODEL, max_tokens=1024, system=SYSTEM, messages=MESSAGES
                ) as stream:
                    async for _ in stream:
                        pass
                    final = await stream.get_final_message()
                    assert final.usage.output_tokens == 500
                stream2 = await ac.messages.create(
                    model=MODEL, max_tokens=1024, system=SYSTEM, messages=MESSAGES, stream=True
                )
                async for _ in stream2:
                    pass

            with run() as r, pytest.raises(StepBudgetExhausted):
                await agent()
            # The third stream's message_start (1,000 input and 1 output token) crossed.
            assert r.steps[0].usage.total_tokens == 4001

    asyncio.run(main())
    assert len(fake.model_requests) == 3


@pytest.mark.usefixtures("instrumented")
def test_raw_responses_are_charged(fake: FakeProvider, client: Any) -> None:
    @step(name="agent", model=MODEL)
    def agent() -> None:
        raw = client.messages.with_raw_response.create(
            model=MODEL, max_tokens=1024, messages=MESSAGES
        )
        assert current_step().usage.llm_calls == 1  # before parse()
        assert raw.parse().usage.output_tokens == 500
        with client.messages.with_streaming_response.create(
            model=MODEL, max_tokens=1024, messages=MESSAGES
        ) as response:
            response.parse()

    with run() as r:
        agent()
    usage = r.steps[0].usage
    assert (usage.input_tokens, usage.output_tokens, usage.llm_calls) == (2000, 1000, 2)


def test_uninstrument_restores_and_twice_wraps_once(fake: FakeProvider, client: Any) -> None:
    original = _base_client.SyncAPIClient.__dict__["request"]
    with instrument_anthropic() as first:
        assert instrument_anthropic() is first
        assert _base_client.SyncAPIClient.__dict__["request"].__wrapped__ is original

        @step(name="agent", model=MODEL)
        def agent() -> None:
            message(client)

        with run() as r:
            agent()
        assert r.steps[0].usage.llm_calls == 1
    assert not first.active
    assert _base_client.SyncAPIClient.__dict__["request"] is original
    with run() as r:
        agent()
    assert r.steps[0].usage.llm_calls == 0


def test_one_client_only(fake: FakeProvider, client: Any) -> None:
    with (
        anthropic.Anthropic(base_url=fake.anthropic_base_url, api_key="t", max_retries=0) as other,
        instrument_anthropic(client),
    ):

        @step(name="agent", model=MODEL)
        def agent() -> None:
            message(client)
            message(other)

        with run() as r:
            agent()
    assert r.steps[0].usage.llm_calls == 1
    assert len(fake.model_requests) == 2


def test_a_client_of_the_wrong_type_is_a_type_error() -> None:
    openai = pytest.importorskip("openai")
    with openai.OpenAI(api_key="test") as wrong, pytest.raises(TypeError) as caught:
        instrument_anthropic(wrong)
    assert str(caught.value).startswith(
        "instrument_anthropic(): 'client' must be an anthropic.Anthropic or "
        "anthropic.AsyncAnthropic client (got <openai.OpenAI object at"
    )
    assert str(caught.value).endswith(
        "of type OpenAI); pass the client you make requests with, or no client to instrument "
        "every Anthropic client"
    )


def test_outside_steps_nothing_is_charged_or_changed(fake: FakeProvider, client: Any) -> None:
    with instrument_anthropic(limit_output=True), run() as r:
        message(client, max_tokens=20_000)
    assert r.steps == []
    assert fake.model_requests[0].body["max_tokens"] == 20_000


@pytest.mark.usefixtures("instrumented")
def test_provider_errors_charge_nothing_and_keep_the_sdks_exception(
    fake: FakeProvider, client: Any, spans: Spans
) -> None:
    fake.set_replies([Reply(error=ErrorReply(status=529, message="Overloaded"))])

    @step(name="agent", model=MODEL)
    def agent() -> None:
        message(client)

    with run() as r, pytest.raises(anthropic.APIStatusError) as caught:
        agent()
    assert caught.value.status_code == 529
    assert r.steps[0].usage.llm_calls == 0
    assert spans.named(f"chat {MODEL}").status.status_code.name == "ERROR"


@pytest.mark.usefixtures("instrumented")
def test_the_call_span_carries_the_semconv_attributes(
    fake: FakeProvider, client: Any, spans: Spans
) -> None:
    @step(name="agent", model=MODEL)
    def agent() -> None:
        message(client)

    agent()
    attributes = dict(spans.named(f"chat {MODEL}").attributes or {})
    assert attributes["gen_ai.provider.name"] == "anthropic"
    assert attributes["gen_ai.response.id"].startswith("msg_")
    assert attributes["gen_ai.response.finish_reasons"] == ("end_turn",)
    assert attributes["gen_ai.request.max_tokens"] == 1024
    assert attributes["server.address"] == "127.0.0.1"
    assert attributes["gen_ai.usage.output_tokens"] == 500
