"""Tests for `metered` and `ametered`: streams charged per chunk and stopped at the budget."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterator

import pytest
from opentelemetry.trace import StatusCode

from agentsteps import (
    Budget,
    StepBudgetExhausted,
    StepStatus,
    ametered,
    current_step,
    llm_call,
    metered,
    run,
    step,
)


class FakeStream:
    """A provider stream: yields chunks, remembers how far it got and whether it was closed."""

    def __init__(self, chunks: list[str]) -> None:
        self.chunks = chunks
        self.produced = 0
        self.closed = False

    def __iter__(self) -> Iterator[str]:
        for chunk in self.chunks:
            self.produced += 1
            yield chunk

    def close(self) -> None:
        self.closed = True


class FakeAsyncStream:
    """The async form of `FakeStream`, closed with an awaitable ``close()`` like OpenAI's."""

    def __init__(self, chunks: list[str]) -> None:
        self.chunks = chunks
        self.produced = 0
        self.closed = False

    async def __aiter__(self) -> AsyncIterator[str]:
        for chunk in self.chunks:
            await asyncio.sleep(0)
            self.produced += 1
            yield chunk

    async def close(self) -> None:
        self.closed = True


def test_stream_stopped_part_way(spans):
    """An over-budget stream stops at the chunk that crossed; the step ends with partial usage."""
    stream = FakeStream(["tok"] * 100)
    received = []

    @step(name="write", model="m", budget=Budget(max_tokens=50))
    def write():
        with llm_call(input_tokens=20) as call:
            for chunk in metered(stream, call, tokens=lambda c: 5):
                received.append(chunk)

    with run() as r, pytest.raises(StepBudgetExhausted) as info:
        write()
    assert str(info.value) == "step 'write' exceeded max_tokens budget (55 > 50 tokens)"
    # 20 input + 6 chunks x 5 = 50 allowed; the 7th chunk crossed and was not handed on.
    assert len(received) == 6
    assert stream.produced == 7
    assert stream.closed
    record = r.steps[0]
    assert record.status is StepStatus.FAILED
    assert (record.usage.input_tokens, record.usage.output_tokens) == (20, 35)
    assert record.usage.llm_calls == 1
    step_span = spans.step("write")
    assert step_span.attributes["agentsteps.usage.self.output_tokens"] == 35
    assert step_span.attributes["agentsteps.budget.exhausted_limit"] == "max_tokens"
    call_span = spans.named("chat m")
    assert call_span.status.status_code is StatusCode.ERROR
    assert call_span.attributes["gen_ai.usage.output_tokens"] == 35
    assert call_span.attributes["error.type"] == "StepBudgetExhausted"


def test_continue_boundary_returns_default():
    """Under "continue" a stream stopped by the budget skips the step, partial usage kept."""

    @step(model="m", budget=Budget(max_tokens=10), error_boundary="continue", default="")
    def write():
        with llm_call() as call:
            return "".join(metered(FakeStream(list("abcdefghijklmnop")), call))

    with run() as r:
        assert write() == ""
    assert r.steps[0].status is StepStatus.SKIPPED
    assert r.steps[0].usage.output_tokens == 11


def test_final_usage_replaces_estimates():
    """A chunk carrying the provider's usage replaces the per-chunk estimate."""
    chunks: list[object] = ["a", "b", "c", {"input_tokens": 40, "output_tokens": 3}]

    def usage(chunk):
        return chunk if isinstance(chunk, dict) else None

    @step(model="m")
    def write():
        with llm_call(input_tokens=50) as call:
            seen = []
            for _ in metered(chunks, call, usage=usage):
                seen.append(current_step().usage.total_tokens)
        return seen, current_step().usage

    seen, usage_after = write()
    assert seen == [51, 52, 53, 43]
    assert (usage_after.input_tokens, usage_after.output_tokens) == (40, 3)
    assert usage_after.llm_calls == 1


def test_final_usage_object_with_cost_and_model(spans):
    """The usage reader may return an object (like ProviderUsage), with cost and model."""

    class Reported:
        input_tokens = 10
        output_tokens = 4
        cache_read_tokens = 8
        cache_write_tokens = 0
        reasoning_tokens = 2
        model = "m-2026-01-01"
        cost_usd = 0.003

    @step(model="m")
    def write():
        with llm_call() as call:
            for _ in metered(["x", Reported()], call, usage=lambda c: c if c != "x" else None):
                pass
        return call

    call = write()
    assert call.cost_source == "provider"
    assert call.response_model == "m-2026-01-01"
    assert call.usage.cache_read_tokens == 8
    span = spans.named("chat m")
    assert span.attributes["gen_ai.response.model"] == "m-2026-01-01"
    assert span.attributes["gen_ai.usage.reasoning.output_tokens"] == 2


def test_break_closes_stream():
    """Leaving the loop early closes the provider's stream."""
    stream = FakeStream(["a", "b", "c"])

    @step(model="m")
    def first_only():
        with llm_call() as call:
            gen = metered(stream, call)
            for chunk in gen:
                gen.close()
                return chunk
        return None

    assert first_only() == "a"
    assert stream.closed


def test_generator_stream_closed():
    """A plain generator as the stream is closed through its iterator."""
    finished = []

    def produce():
        try:
            yield from range(100)
        finally:
            finished.append(True)

    @step(model="m", budget=Budget(max_tokens=3), error_boundary="continue")
    def count():
        with llm_call() as call:
            for _ in metered(produce(), call):
                pass

    count()
    assert finished == [True]


def test_async_stream_stopped_part_way():
    """ametered stops an async stream at the budget and awaits its close()."""
    stream = FakeAsyncStream(["t"] * 50)
    received = []

    @step(name="awrite", model="m", budget=Budget(max_llm_calls=1, max_tokens=5))
    async def awrite():
        async with llm_call() as call:
            async for chunk in ametered(stream, call, tokens=lambda c: 2):
                received.append(chunk)

    with pytest.raises(
        StepBudgetExhausted,
        match=re.escape("step 'awrite' exceeded max_tokens budget (6 > 5 tokens)"),
    ):
        asyncio.run(awrite())
    assert len(received) == 2
    assert stream.closed


def test_async_generator_stream_closed():
    """An async generator stream is closed with aclose() when the budget stops it."""
    finished = []

    async def produce():
        try:
            for i in range(100):
                yield i
        finally:
            finished.append(True)

    @step(model="m", budget=Budget(max_tokens=2), error_boundary="continue", default=-1)
    async def count():
        async with llm_call() as call:
            total = 0
            async for _ in ametered(produce(), call):
                total += 1
            return total

    assert asyncio.run(count()) == -1
    assert finished == [True]


def test_misuse():
    """The call must be an LLMCall; a tokens reader must return an int >= 0."""
    with pytest.raises(TypeError, match=re.escape("metered(): 'call' must be the LLMCall")):
        metered([], None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=re.escape("ametered(): 'call' must be the LLMCall")):
        ametered(FakeAsyncStream([]), "call")  # type: ignore[arg-type]

    @step(model="m")
    def bad_reader():
        with llm_call() as call:
            for _ in metered(["x"], call, tokens=lambda c: "1"):  # type: ignore[arg-type,return-value]
                pass

    with pytest.raises(
        TypeError, match=re.escape("metered(): tokens(chunk): 'output_tokens' must be an int")
    ):
        bad_reader()


def test_generator_step_streams_to_its_consumer(spans):
    """A generator step may meter a stream and yield its chunks; the consumer sees no call."""
    from agentsteps._llm.call import CALL

    @step(name="relay", model="m", budget=Budget(max_tokens=100))
    def relay():
        with llm_call(input_tokens=10) as call:
            yield from metered(FakeStream(["a", "b", "c"]), call)

    seen = []
    for chunk in relay():
        assert current_step() is None
        seen.append(chunk)
    assert CALL.get() is None
    assert seen == ["a", "b", "c"]
    call_span = spans.named("chat m")
    assert call_span.parent.span_id == spans.step("relay").context.span_id
    assert spans.step("relay").attributes["agentsteps.usage.self.output_tokens"] == 3


def test_async_generator_step_streams():
    """An async generator step can meter an async stream across its yields."""

    @step(name="arelay", model="m")
    async def arelay():
        async with llm_call() as call:
            async for chunk in ametered(FakeAsyncStream(["x", "y"]), call):
                yield chunk

    async def consume():
        with run() as r:
            chunks = [c async for c in arelay()]
        return chunks, r.steps[0].usage

    chunks, usage = asyncio.run(consume())
    assert chunks == ["x", "y"]
    assert (usage.output_tokens, usage.llm_calls) == (2, 1)
