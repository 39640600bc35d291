"""Tests for agentsteps.integrations.anthropic against the real anthropic SDK types and client.

Messages come from a real ``anthropic.Anthropic`` client whose HTTP transport is an
in-process mock (no socket is opened), so the objects, raw stream events and stream-helper
events are exactly what the SDK hands its users.
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Callable
from typing import Any

import anthropic
import pytest
from anthropic.types import Message, RawMessageDeltaEvent, RawMessageStartEvent, Usage

import agentsteps
from agentsteps.integrations import (
    AnthropicStreamUsage,
    ProviderUsage,
    anthropic_usage,
    record_anthropic,
)
from tests.support import requires_catalog

# The HTTP library this SDK release is built on: httpx2 in current releases, httpx before.
_sdk_base = importlib.import_module("anthropic._base_client")
httpx = getattr(_sdk_base, "httpx2", None) or _sdk_base.httpx

MODEL = "claude-haiku-4-5-20251001"  # what the API reports for "claude-haiku-4-5"


def client_for(handler: Callable[[Any], Any]) -> anthropic.Anthropic:
    """A real Anthropic client whose requests are answered in-process by *handler*."""
    return anthropic.Anthropic(
        api_key="sk-ant-test",
        base_url="http://anthropic.test",
        max_retries=0,
        http_client=httpx.Client(transport=httpx.MockTransport(handler)),
    )


def json_reply(payload: dict[str, Any]) -> Callable[[Any], Any]:
    return lambda request: httpx.Response(200, json=payload)


def sse_reply(events: list[dict[str, Any]]) -> Callable[[Any], Any]:
    body = "".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events).encode()
    return lambda request: httpx.Response(
        200, headers={"content-type": "text/event-stream"}, content=body
    )


def usage_json(
    uncached: int,
    output: int,
    *,
    cache_read: int = 0,
    cache_write: int = 0,
    thinking: int | None = None,
) -> dict[str, Any]:
    """Usage as Anthropic reports it: input_tokens counts only the uncached input."""
    usage: dict[str, Any] = {
        "input_tokens": uncached,
        "cache_creation_input_tokens": cache_write,
        "cache_read_input_tokens": cache_read,
        "cache_creation": {
            "ephemeral_5m_input_tokens": cache_write,
            "ephemeral_1h_input_tokens": 0,
        },
        "output_tokens": output,
        "service_tier": "standard",
    }
    if thinking is not None:
        usage["output_tokens_details"] = {"thinking_tokens": thinking}
    return usage


def message_json(usage: dict[str, Any], *, streaming_start: bool = False) -> dict[str, Any]:
    return {
        "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
        "type": "message",
        "role": "assistant",
        "model": MODEL,
        "content": [] if streaming_start else [{"type": "text", "text": "Paris."}],
        "stop_reason": None if streaming_start else "end_turn",
        "stop_sequence": None,
        "usage": usage,
    }


def stream_events(
    uncached: int, output: int, *, cache_read: int = 0, cache_write: int = 0
) -> list[dict[str, Any]]:
    """A raw Messages stream: input and cache counts in message_start, output in message_delta."""
    start_usage = usage_json(uncached, 1, cache_read=cache_read, cache_write=cache_write)
    return [
        {"type": "message_start", "message": message_json(start_usage, streaming_start=True)},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "ping"},
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "text_delta", "text": "Paris."},
        },
        {"type": "content_block_stop", "index": 0},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {"output_tokens": output},
        },
        {"type": "message_stop"},
    ]


def ask(client: anthropic.Anthropic) -> Message:
    return client.messages.create(
        model="claude-haiku-4-5",
        max_tokens=1024,
        messages=[{"role": "user", "content": "Capital of France?"}],
    )


class TestMessages:
    """Message objects from client.messages.create."""

    def test_cache_tokens_added_to_input(self) -> None:
        """input_tokens excludes cache reads and writes; the reader adds them back."""
        payload = message_json(usage_json(2_000, 500, cache_read=60_000, cache_write=8_000))
        message = ask(client_for(json_reply(payload)))
        assert isinstance(message, Message)
        assert anthropic_usage(message) == ProviderUsage(
            model=MODEL,
            provider="anthropic",
            input_tokens=70_000,
            output_tokens=500,
            cache_read_tokens=60_000,
            cache_write_tokens=8_000,
        )

    def test_thinking_tokens(self) -> None:
        """output_tokens_details.thinking_tokens becomes reasoning_tokens, inside output."""
        message = ask(client_for(json_reply(message_json(usage_json(10, 900, thinking=700)))))
        usage = anthropic_usage(message)
        assert (usage.output_tokens, usage.reasoning_tokens) == (900, 700)

    def test_null_cache_fields(self) -> None:
        """Null cache fields (older API versions) read as zero."""
        bare = {"input_tokens": 25, "output_tokens": 3}
        assert anthropic_usage(ask(client_for(json_reply(message_json(bare))))) == (
            ProviderUsage(MODEL, "anthropic", 25, 3)
        )

    def test_bare_usage_and_dict(self) -> None:
        """A bare Usage reads without a model; a model_dump() dict reads like the object."""
        usage = Usage(input_tokens=5, output_tokens=1, cache_read_input_tokens=10)
        assert anthropic_usage(usage) == ProviderUsage(None, "anthropic", 15, 1, 10)
        message = ask(client_for(json_reply(message_json(usage_json(5, 1, cache_read=10)))))
        assert anthropic_usage(message.model_dump()) == anthropic_usage(message)


class TestStreams:
    """Raw streams (stream=True) and the messages.stream() helper."""

    def test_raw_stream_collector(self) -> None:
        """message_start gives input and cache counts, message_delta the final output count."""
        client = client_for(sse_reply(stream_events(2_000, 450, cache_read=60_000)))
        collector = AnthropicStreamUsage()
        stream = client.messages.create(
            model="claude-haiku-4-5",
            max_tokens=1024,
            messages=[{"role": "user", "content": "Capital of France?"}],
            stream=True,
        )
        events = []
        for event in stream:
            events.append(event)
            collector.add(event)
        assert isinstance(events[0], RawMessageStartEvent)
        assert any(isinstance(e, RawMessageDeltaEvent) for e in events)
        assert collector.usage == ProviderUsage(MODEL, "anthropic", 62_000, 450, 60_000)

    def test_collector_before_start(self) -> None:
        """Before message_start the collector has no usage."""
        assert AnthropicStreamUsage().usage is None

    def test_delta_with_cumulative_input(self) -> None:
        """A message_delta that repeats input counts overrides what message_start said."""
        collector = AnthropicStreamUsage()
        events = stream_events(100, 10)
        events[5]["usage"] |= {"input_tokens": 120, "cache_read_input_tokens": 30}
        client = client_for(sse_reply(events))
        for event in client.messages.create(
            model="claude-haiku-4-5", max_tokens=64, messages=[], stream=True
        ):
            collector.add(event)
        assert collector.usage == ProviderUsage(MODEL, "anthropic", 150, 10, 30)

    def test_stream_helper(self) -> None:
        """The helper's events fed to the collector and its final message agree."""
        client = client_for(sse_reply(stream_events(2_000, 450, cache_write=8_000)))
        collector = AnthropicStreamUsage()
        with client.messages.stream(
            model="claude-haiku-4-5",
            max_tokens=1024,
            messages=[{"role": "user", "content": "Capital of France?"}],
        ) as stream:
            for event in stream:
                collector.add(event)
            final = stream.get_final_message()
        expected = ProviderUsage(MODEL, "anthropic", 10_000, 450, cache_write_tokens=8_000)
        assert collector.usage == expected
        assert anthropic_usage(final) == expected

    def test_every_event_is_accepted(self) -> None:
        """Events without usage give None; message_delta gives its own (partial) counts."""
        events = stream_events(100, 10, cache_read=30)
        client = client_for(sse_reply(events))
        read = {
            event.type: anthropic_usage(event)
            for event in client.messages.create(
                model="claude-haiku-4-5", max_tokens=64, messages=[], stream=True
            )
        }
        assert read == {
            "message_start": ProviderUsage(MODEL, "anthropic", 130, 1, 30),
            "content_block_start": None,
            "content_block_delta": None,
            "content_block_stop": None,
            "message_delta": ProviderUsage(None, "anthropic", 0, 10),  # output only, no model
            "message_stop": None,  # a raw message_stop carries nothing
        }
        assert anthropic_usage({"type": "ping"}) is None

    def test_record_refuses_a_partial_event(self) -> None:
        """record_anthropic needs a whole call: a message_delta is refused, naming the fix."""
        event = RawMessageDeltaEvent.model_validate(stream_events(1, 1)[5])

        @agentsteps.step
        def record() -> None:
            record_anthropic(event)

        with pytest.raises(
            TypeError,
            match=re.escape(
                "record_anthropic() needs a whole call's usage, got a message_delta stream "
                "event; feed the stream's events to AnthropicStreamUsage.add() and record its "
                ".usage, or read the stream with metered(..., usage=anthropic_usage)"
            ),
        ):
            record()

    @pytest.mark.parametrize("helper", [False, True])
    def test_metered_combines_start_and_delta(self, helper: bool) -> None:
        """usage=anthropic_usage: input from message_start, output from message_delta."""
        client = client_for(sse_reply(stream_events(2_000, 450, cache_read=6_000)))

        @agentsteps.step(model="claude-haiku-4-5", budget=agentsteps.Budget(max_tokens=100_000))
        def stream() -> agentsteps.Usage:
            with agentsteps.llm_call() as call:
                if helper:
                    with client.messages.stream(
                        model="claude-haiku-4-5", max_tokens=1024, messages=[]
                    ) as events:
                        for _ in agentsteps.metered(events, call, usage=anthropic_usage):
                            pass
                else:
                    events = client.messages.create(
                        model="claude-haiku-4-5", max_tokens=1024, messages=[], stream=True
                    )
                    for _ in agentsteps.metered(events, call, usage=anthropic_usage):
                        pass
            return call.usage

        usage = stream()
        assert (usage.input_tokens, usage.output_tokens, usage.cache_read_tokens) == (
            8_000,
            450,
            6_000,
        )
        assert usage.llm_calls == 1

    def test_not_anthropic(self) -> None:
        """A foreign object raises a TypeError saying what is accepted."""
        with pytest.raises(
            TypeError,
            match=re.escape(
                "anthropic_usage() expects an anthropic Message, a message_stop event, or a "
                "Usage, got int: 3"
            ),
        ):
            anthropic_usage(3)


# Claude Haiku 4.5 list prices (Anthropic pricing page,
# platform.claude.com/docs/en/about-claude/pricing), USD per million tokens: base input $1,
# 5-minute cache writes $1.25 (1.25x), cache hits $0.10 (0.1x), output $5.
# Per token that is 1,000 / 1,250 / 100 / 5,000 nano-dollars.
class TestCostsToTheCent:
    """record_anthropic inside a step: plain, cache-read and cache-write calls on Haiku 4.5."""

    @pytest.mark.parametrize(
        ("cache", "nanos", "dollars"),
        [
            # 100,000 x $1/M + 2,000 x $5/M = $0.10 + $0.01
            ({}, 100_000 * 1_000 + 2_000 * 5_000, 0.11),
            # 40,000 x $1/M + 60,000 x $0.10/M + 2,000 x $5/M = $0.04 + $0.006 + $0.01
            ({"cache_read": 60_000}, 40_000 * 1_000 + 60_000 * 100 + 2_000 * 5_000, 0.056),
            # 40,000 x $1/M + 60,000 x $1.25/M + 2,000 x $5/M = $0.04 + $0.075 + $0.01
            ({"cache_write": 60_000}, 40_000 * 1_000 + 60_000 * 1_250 + 2_000 * 5_000, 0.125),
        ],
        ids=["plain", "cache-read", "cache-write"],
    )
    @pytest.mark.parametrize(
        "price_source", [pytest.param("catalog", marks=requires_catalog), "registered"]
    )
    def test_haiku_4_5(
        self, cache: dict[str, int], nanos: int, dollars: float, price_source: str
    ) -> None:
        """The step is charged the hand-computed cost, from the catalog or a registered price."""
        if price_source == "registered":
            # Registered under the undated name; it prices the dated snapshot too.
            agentsteps.register_price(
                "claude-haiku-4-5",
                input_per_mtok=1.00,
                output_per_mtok=5.00,
                cache_read_per_mtok=0.10,
                cache_write_per_mtok=1.25,
            )
        uncached = 100_000 - sum(cache.values())
        message = ask(client_for(json_reply(message_json(usage_json(uncached, 2_000, **cache)))))
        with agentsteps.step_scope("answer") as step:
            recorded = record_anthropic(message)
            usage = step.usage
        assert recorded.input_tokens == 100_000
        assert usage.cost_usd == pytest.approx(dollars, abs=0.005)  # to the cent
        assert usage.cost_nano_usd == nanos  # and exactly
        assert (usage.input_tokens, usage.output_tokens, usage.llm_calls) == (100_000, 2_000, 1)
        assert usage.cache_read_tokens == cache.get("cache_read", 0)
        assert usage.cache_write_tokens == cache.get("cache_write", 0)
        assert usage.unpriced_calls == 0

    @requires_catalog
    def test_streamed_call(self) -> None:
        """A streamed call's collected usage is charged like a plain message."""
        client = client_for(sse_reply(stream_events(40_000, 2_000, cache_read=60_000)))
        collector = AnthropicStreamUsage()
        for event in client.messages.create(
            model="claude-haiku-4-5", max_tokens=4096, messages=[], stream=True
        ):
            collector.add(event)
        assert collector.usage is not None
        with agentsteps.step_scope("answer") as step:
            collector.usage.record()
            assert step.usage.cost_nano_usd == 56_000_000
