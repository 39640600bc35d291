"""Tests for agentsteps.integrations.openai against the real openai SDK types and client.

Responses come from a real ``openai.OpenAI`` client whose HTTP transport is an in-process
mock (no socket is opened), so the objects are exactly what the SDK hands its users,
including the stream helpers' parsing of server-sent events.
"""

from __future__ import annotations

import importlib
import json
import logging
import re
from collections.abc import Callable
from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.completion_usage import CompletionUsage
from openai.types.responses import Response, ResponseCompletedEvent

import agentsteps
from agentsteps.integrations import OpenAIStreamUsage, ProviderUsage, openai_usage, record_openai
from tests.support import requires_catalog

# The HTTP library this SDK release is built on: httpx2 in current releases, httpx before.
_sdk_base = importlib.import_module("openai._base_client")
httpx = getattr(_sdk_base, "httpx2", None) or _sdk_base.httpx

MODEL = "gpt-4o-2024-08-06"  # what the API reports for requests to "gpt-4o"


def client_for(handler: Callable[[Any], Any]) -> openai.OpenAI:
    """A real OpenAI client whose requests are answered in-process by *handler*."""
    return openai.OpenAI(
        api_key="sk-test",
        base_url="http://openai.test/v1",
        max_retries=0,
        http_client=httpx.Client(transport=httpx.MockTransport(handler)),
    )


def json_reply(payload: dict[str, Any]) -> Callable[[Any], Any]:
    return lambda request: httpx.Response(200, json=payload)


def sse_reply(events: list[dict[str, Any]], *, named: bool = False) -> Callable[[Any], Any]:
    """Server-sent events as OpenAI streams them; chat streams end with [DONE]."""
    parts = []
    for event in events:
        head = f"event: {event['type']}\n" if named else ""
        parts.append(f"{head}data: {json.dumps(event)}\n\n")
    if not named:
        parts.append("data: [DONE]\n\n")
    body = "".join(parts).encode()
    return lambda request: httpx.Response(
        200, headers={"content-type": "text/event-stream"}, content=body
    )


def chat_usage(
    prompt: int, completion: int, *, cached: int = 0, cache_write: int = 0, reasoning: int = 0
) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {
            "cached_tokens": cached,
            "cache_write_tokens": cache_write,
            "audio_tokens": 0,
        },
        "completion_tokens_details": {
            "reasoning_tokens": reasoning,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def chat_completion(usage: dict[str, Any] | None, model: str = MODEL) -> dict[str, Any]:
    return {
        "id": "chatcmpl-AbC123",
        "object": "chat.completion",
        "created": 1_731_000_000,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Paris.", "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": usage,
        "service_tier": "default",
        "system_fingerprint": "fp_7f2b",
    }


def chat_chunks(usage: dict[str, Any]) -> list[dict[str, Any]]:
    """A chat stream with stream_options={"include_usage": True}: usage in a last, empty chunk."""
    base = {"id": "chatcmpl-AbC123", "object": "chat.completion.chunk", "created": 1_731_000_000}
    base |= {"model": MODEL, "system_fingerprint": "fp_7f2b"}
    deltas: list[tuple[dict[str, Any], str | None]] = [
        ({"role": "assistant", "content": ""}, None),
        ({"content": "Par"}, None),
        ({"content": "is."}, None),
        ({}, "stop"),
    ]
    chunks = [
        base
        | {
            "choices": [{"index": 0, "delta": d, "logprobs": None, "finish_reason": f}],
            "usage": None,
        }
        for d, f in deltas
    ]
    chunks.append(base | {"choices": [], "usage": usage})
    return chunks


def response_usage(
    inp: int, out: int, *, cached: int = 0, cache_write: int = 0, reasoning: int = 0
) -> dict[str, Any]:
    return {
        "input_tokens": inp,
        "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": cache_write},
        "output_tokens": out,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": inp + out,
    }


def response(usage: dict[str, Any] | None, model: str = MODEL) -> dict[str, Any]:
    return {
        "id": "resp_67ccd2bed1ec8190",
        "object": "response",
        "created_at": 1_731_000_000,
        "status": "completed" if usage else "in_progress",
        "model": model,
        "output": [
            {
                "type": "message",
                "id": "msg_67ccd2bf17f0",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": "Paris.", "annotations": []}],
            }
        ]
        if usage
        else [],
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": usage,
    }


def response_events(usage: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {"type": "response.created", "sequence_number": 0, "response": response(None)},
        {
            "type": "response.output_text.delta",
            "sequence_number": 1,
            "item_id": "msg_67ccd2bf17f0",
            "output_index": 0,
            "content_index": 0,
            "delta": "Paris.",
            "logprobs": [],
        },
        {"type": "response.completed", "sequence_number": 2, "response": response(usage)},
    ]


def ask(client: openai.OpenAI) -> ChatCompletion:
    return client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "Capital of France?"}]
    )


class TestChatCompletions:
    """ChatCompletion objects from client.chat.completions.create."""

    def test_cached_and_reasoning_tokens(self) -> None:
        """prompt_tokens already includes cached_tokens; reasoning is part of completion tokens."""
        payload = chat_completion(chat_usage(100_000, 2_000, cached=60_000, reasoning=1_500))
        completion = ask(client_for(json_reply(payload)))
        assert isinstance(completion, ChatCompletion)
        assert openai_usage(completion) == ProviderUsage(
            model=MODEL,
            provider="openai",
            input_tokens=100_000,
            output_tokens=2_000,
            cache_read_tokens=60_000,
            cache_write_tokens=0,
            reasoning_tokens=1_500,
        )

    def test_cache_writes(self) -> None:
        """prompt_tokens_details.cache_write_tokens is read as cache writes."""
        completion = ask(
            client_for(json_reply(chat_completion(chat_usage(100, 5, cache_write=64))))
        )
        usage = openai_usage(completion)
        assert usage is not None
        assert (usage.cache_write_tokens, usage.uncached_input_tokens) == (64, 36)

    def test_without_details(self) -> None:
        """Older responses without the *_details objects read as no cache and no reasoning."""
        bare = {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}
        usage = openai_usage(ask(client_for(json_reply(chat_completion(bare)))))
        assert usage == ProviderUsage(MODEL, "openai", input_tokens=12, output_tokens=3)

    def test_without_usage(self) -> None:
        """A completion that carries no usage gives None."""
        assert openai_usage(ask(client_for(json_reply(chat_completion(None))))) is None

    def test_bare_usage_object(self) -> None:
        """A CompletionUsage on its own reads without a model name."""
        usage = CompletionUsage(prompt_tokens=10, completion_tokens=2, total_tokens=12)
        assert openai_usage(usage) == ProviderUsage(None, "openai", 10, 2)

    def test_model_dump_dict(self) -> None:
        """The model_dump() dict of a completion reads the same as the object."""
        completion = ask(client_for(json_reply(chat_completion(chat_usage(50, 5, cached=20)))))
        assert openai_usage(completion.model_dump()) == openai_usage(completion)

    def test_inconsistent_parts_are_clamped(self) -> None:
        """Details larger than their totals are cut to the totals, keeping the usage recordable."""
        payload = chat_completion(chat_usage(10, 5, cached=8, cache_write=8, reasoning=9))
        usage = openai_usage(ask(client_for(json_reply(payload))))
        assert usage is not None
        assert (usage.cache_read_tokens, usage.cache_write_tokens, usage.reasoning_tokens) == (
            8,
            2,
            5,
        )


class TestChatStreams:
    """Streamed chat completions with stream_options={"include_usage": True}."""

    def test_only_the_last_chunk_carries_usage(self) -> None:
        """Chunks before the last give None; the last gives the call's usage."""
        client = client_for(sse_reply(chat_chunks(chat_usage(1_000, 40, cached=512))))
        stream = client.chat.completions.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": "Capital of France?"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = list(stream)
        assert all(isinstance(c, ChatCompletionChunk) for c in chunks)
        assert [openai_usage(c) for c in chunks[:-1]] == [None] * 4
        assert openai_usage(chunks[-1]) == ProviderUsage(MODEL, "openai", 1_000, 40, 512)

    def test_collector(self) -> None:
        """OpenAIStreamUsage fed every chunk ends with the final usage."""
        client = client_for(sse_reply(chat_chunks(chat_usage(1_000, 40, cached=512))))
        collector = OpenAIStreamUsage()
        for chunk in client.chat.completions.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": "Capital of France?"}],
            stream=True,
            stream_options={"include_usage": True},
        ):
            collector.add(chunk)
        assert collector.usage == ProviderUsage(MODEL, "openai", 1_000, 40, 512)

    def test_stream_helper(self) -> None:
        """The stream helper's events and its final completion both give the usage."""
        client = client_for(sse_reply(chat_chunks(chat_usage(1_000, 40, reasoning=10))))
        collector = OpenAIStreamUsage()
        # The helper moved out of client.beta in later 1.x releases.
        open_stream = getattr(client.chat.completions, "stream", None)
        if open_stream is None:
            open_stream = client.beta.chat.completions.stream
        with open_stream(
            model="gpt-4o",
            messages=[{"role": "user", "content": "Capital of France?"}],
            stream_options={"include_usage": True},
        ) as stream:
            for event in stream:
                collector.add(event)
            final = stream.get_final_completion()
        expected = ProviderUsage(MODEL, "openai", 1_000, 40, reasoning_tokens=10)
        assert collector.usage == expected
        assert openai_usage(final) == expected


class TestResponsesApi:
    """Response objects from client.responses.create, plain and streamed."""

    def test_response(self) -> None:
        """input_tokens includes input_tokens_details.cached_tokens; reasoning is in output."""
        payload = response(response_usage(5_000, 900, cached=4_096, reasoning=700), model="o3")
        result = client_for(json_reply(payload)).responses.create(model="o3", input="Hi")
        assert isinstance(result, Response)
        assert openai_usage(result) == ProviderUsage(
            "o3", "openai", 5_000, 900, cache_read_tokens=4_096, reasoning_tokens=700
        )

    def test_stream_events(self) -> None:
        """Only response.completed carries usage; the collector keeps it."""
        client = client_for(sse_reply(response_events(response_usage(300, 20)), named=True))
        events = list(client.responses.create(model="gpt-4o", input="Hi", stream=True))
        assert isinstance(events[-1], ResponseCompletedEvent)
        assert openai_usage(events[0]) is None  # response.created: still in progress
        assert openai_usage(events[1]) is None  # a text delta holds no usage at all
        collector = OpenAIStreamUsage()
        for event in events:
            collector.add(event)
        assert collector.usage == ProviderUsage(MODEL, "openai", 300, 20)
        assert openai_usage(events[-1]) == collector.usage

    def test_metered_reads_every_event_of_a_responses_stream(self) -> None:
        """usage=openai_usage takes output items and deltas, and records response.completed."""
        events = response_events(response_usage(300, 20, cached=100))
        added = {
            "type": "response.output_item.added",
            "sequence_number": 1,
            "output_index": 0,
            "item": {
                "type": "message",
                "id": "msg_67ccd2bf17f0",
                "status": "in_progress",
                "role": "assistant",
                "content": [],
            },
        }
        events.insert(1, added)
        client = client_for(sse_reply(events, named=True))

        @agentsteps.step(model="gpt-4o", budget=agentsteps.Budget(max_tokens=10_000))
        def stream() -> tuple[list[str], agentsteps.Usage]:
            types = []
            with agentsteps.llm_call(input_tokens=50) as call:
                chunks = client.responses.create(model="gpt-4o", input="Hi", stream=True)
                for event in agentsteps.metered(chunks, call, usage=openai_usage):
                    types.append(event.type)
            return types, call.usage

        types, usage = stream()
        assert types == [
            "response.created",
            "response.output_item.added",
            "response.output_text.delta",
            "response.completed",
        ]
        assert (usage.input_tokens, usage.output_tokens, usage.cache_read_tokens) == (300, 20, 100)
        assert usage.llm_calls == 1


class TestErrors:
    """Objects that are not OpenAI responses."""

    def test_not_openai(self) -> None:
        """A foreign object raises a TypeError listing what is accepted."""
        with pytest.raises(
            TypeError,
            match=re.escape(
                "openai_usage() expects an openai ChatCompletion, ChatCompletionChunk, "
                "Response, a Responses stream event carrying .response, or their usage object, "
                "got str: 'hello'"
            ),
        ):
            openai_usage("hello")

    def test_collector_ignores_foreign_events(self) -> None:
        """The collector skips events it cannot read instead of failing the stream."""
        collector = OpenAIStreamUsage()
        collector.add("keep-alive")
        assert collector.usage is None


# gpt-4o list prices (OpenAI API pricing page, platform.openai.com/docs/pricing):
# input $2.50 per million tokens, cached input $1.25, output $10.00. Cache writes are
# billed as ordinary input.
class TestCostsToTheCent:
    """record_openai inside a step: plain, cache-read and cache-write calls on gpt-4o."""

    # Per token, $X per million is X x 1,000 nano-dollars: input 2,500, cached 1,250, output 10,000.
    @pytest.mark.parametrize(
        ("details", "nanos", "dollars"),
        [
            # 100,000 x $2.50/M + 2,000 x $10/M = $0.25 + $0.02
            ({}, 100_000 * 2_500 + 2_000 * 10_000, 0.27),
            # 40,000 x $2.50/M + 60,000 x $1.25/M + 2,000 x $10/M = $0.10 + $0.075 + $0.02
            ({"cached": 60_000}, 40_000 * 2_500 + 60_000 * 1_250 + 2_000 * 10_000, 0.195),
            # writes cost what input costs: 100,000 x $2.50/M + 2,000 x $10/M
            ({"cache_write": 60_000}, 100_000 * 2_500 + 2_000 * 10_000, 0.27),
        ],
        ids=["plain", "cache-read", "cache-write"],
    )
    @pytest.mark.parametrize(
        "price_source", [pytest.param("catalog", marks=requires_catalog), "registered"]
    )
    def test_gpt_4o(
        self, details: dict[str, int], nanos: int, dollars: float, price_source: str
    ) -> None:
        """The step is charged the hand-computed cost, from the catalog or a registered price."""
        if price_source == "registered":
            agentsteps.register_price(
                "gpt-4o", input_per_mtok=2.50, output_per_mtok=10.00, cache_read_per_mtok=1.25
            )
        completion = ask(
            client_for(json_reply(chat_completion(chat_usage(100_000, 2_000, **details))))
        )
        with agentsteps.step_scope("answer") as step:
            recorded = record_openai(completion)
            usage = step.usage
        assert recorded == openai_usage(completion)
        assert usage.cost_usd == pytest.approx(dollars, abs=0.005)  # to the cent
        assert usage.cost_nano_usd == nanos  # and exactly
        assert (usage.input_tokens, usage.output_tokens, usage.llm_calls) == (100_000, 2_000, 1)
        assert usage.cache_read_tokens == details.get("cached", 0)
        assert usage.cache_write_tokens == details.get("cache_write", 0)
        assert usage.unpriced_calls == 0

    @requires_catalog
    def test_responses_api_cached(self) -> None:
        """A Responses API call with cached input is charged like the chat one."""
        payload = response(response_usage(100_000, 2_000, cached=60_000))
        result = client_for(json_reply(payload)).responses.create(model="gpt-4o", input="Hi")
        with agentsteps.step_scope("answer") as step:
            record_openai(result)
            assert step.usage.cost_nano_usd == 195_000_000

    def test_explicit_cost_wins(self) -> None:
        """An explicit cost_usd is charged as given."""
        completion = ask(client_for(json_reply(chat_completion(chat_usage(100, 10)))))
        with agentsteps.step_scope("answer") as step:
            record_openai(completion, cost_usd=0.5)
            assert step.usage.cost_nano_usd == 500_000_000

    def test_no_usage_logs_and_records_nothing(self, caplog: pytest.LogCaptureFixture) -> None:
        """A chunk without usage records nothing and says how to get usage in streams."""
        chunk = ChatCompletionChunk.model_validate(chat_chunks(chat_usage(1, 1))[1])
        with (
            caplog.at_level(logging.WARNING, logger="agentsteps"),
            agentsteps.step_scope("answer") as step,
        ):
            assert record_openai(chunk) is None
            assert step.usage.llm_calls == 0
        assert "stream_options={'include_usage': True}" in caplog.text
