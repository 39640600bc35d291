"""The loopback fake providers (tests/fakes) answer in shapes the real SDKs parse, usage exact."""

from __future__ import annotations

import json
from collections.abc import Iterator

import anthropic
import openai
import pytest

from tests.fakes import (
    ErrorReply,
    FakeProvider,
    Reply,
    ToolCall,
    Usage,
    always_call_tool,
    tool_calls_then_text,
)

USAGE = Usage(
    input_tokens=1200,
    output_tokens=300,
    cache_read_tokens=200,
    cache_write_tokens=100,
    reasoning_tokens=50,
)
TOOL = ToolCall("lookup", {"city": "Paris"})


_CLIENTS: list[openai.OpenAI | anthropic.Anthropic] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    """Close the test's clients: an open one's socket warns whenever the collector next runs."""
    yield
    while _CLIENTS:
        _CLIENTS.pop().close()


def _openai(fake: FakeProvider) -> openai.OpenAI:
    client = openai.OpenAI(base_url=fake.openai_base_url, api_key="test", max_retries=0)
    _CLIENTS.append(client)
    return client


def _anthropic(fake: FakeProvider) -> anthropic.Anthropic:
    client = anthropic.Anthropic(base_url=fake.anthropic_base_url, api_key="test", max_retries=0)
    _CLIENTS.append(client)
    return client


class TestOpenAIChat:
    def test_json_answer_with_usage_details(self, fake_provider: FakeProvider) -> None:
        """A plain completion carries the text, usage, cached and reasoning tokens."""
        fake_provider.set_replies([Reply(text="Hello there", usage=USAGE)])
        resp = _openai(fake_provider).chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
        )
        assert resp.choices[0].message.content == "Hello there"
        assert resp.choices[0].finish_reason == "stop"
        assert resp.usage is not None
        assert (resp.usage.prompt_tokens, resp.usage.completion_tokens) == (1200, 300)
        assert resp.usage.prompt_tokens_details is not None
        assert resp.usage.prompt_tokens_details.cached_tokens == 200
        assert resp.usage.completion_tokens_details is not None
        assert resp.usage.completion_tokens_details.reasoning_tokens == 50
        [request] = fake_provider.requests
        assert (request.method, request.path) == ("POST", "/v1/chat/completions")
        assert request.body["messages"] == [{"role": "user", "content": "hi"}]
        assert request.headers["authorization"] == "Bearer test"
        assert request.usage == USAGE

    def test_tool_calls(self, fake_provider: FakeProvider) -> None:
        """A tool-call reply parses as the SDK's tool calls, arguments as JSON text."""
        fake_provider.set_replies([Reply(text="", tool_calls=[TOOL])])
        resp = _openai(fake_provider).chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
        )
        choice = resp.choices[0]
        assert choice.finish_reason == "tool_calls"
        assert choice.message.content is None
        assert choice.message.tool_calls is not None
        [call] = choice.message.tool_calls
        assert call.type == "function"
        assert (call.function.name, json.loads(call.function.arguments)) == (
            "lookup",
            TOOL.arguments,
        )

    @pytest.mark.parametrize("include_usage", [False, True])
    def test_stream_usage_chunk_only_when_asked(
        self, fake_provider: FakeProvider, include_usage: bool
    ) -> None:
        """The usage-only chunk (empty choices) comes only with stream_options.include_usage."""
        fake_provider.set_replies([Reply(text="Hello there", tool_calls=[TOOL], usage=USAGE)])
        kwargs = {"stream_options": {"include_usage": True}} if include_usage else {}
        chunks = list(
            _openai(fake_provider).chat.completions.create(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": "hi"}],
                stream=True,
                **kwargs,  # type: ignore[arg-type]
            )
        )
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text == "Hello there"
        args = "".join(
            t.function.arguments or ""
            for c in chunks
            if c.choices
            for t in c.choices[0].delta.tool_calls or []
            if t.function
        )
        assert json.loads(args) == TOOL.arguments
        with_usage = [c for c in chunks if c.usage is not None]
        if include_usage:
            [last] = with_usage
            assert last is chunks[-1] and last.choices == []
            assert last.usage is not None and last.usage.total_tokens == 1500
        else:
            assert with_usage == []
        assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"

    def test_max_tokens_caps_the_output(self, fake_provider: FakeProvider) -> None:
        """A request's max_completion_tokens caps the output, finish_reason "length"."""
        fake_provider.set_replies([Reply(usage=USAGE)])
        resp = _openai(fake_provider).chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "hi"}],
            max_completion_tokens=40,
        )
        assert resp.usage is not None and resp.usage.completion_tokens == 40
        assert resp.choices[0].finish_reason == "length"
        [request] = fake_provider.requests
        assert request.max_output_tokens == 40
        assert request.usage == Usage(1200, 40, 200, 100, 40)

    def test_error_is_the_sdks_exception(self, fake_provider: FakeProvider) -> None:
        """An ErrorReply becomes the SDK's own status error, with the provider's error JSON."""
        fake_provider.set_replies([Reply(error=ErrorReply(429, "Slow down"))])
        with pytest.raises(openai.RateLimitError) as caught:
            _openai(fake_provider).chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
            )
        assert caught.value.status_code == 429
        assert caught.value.body == {
            "message": "Slow down",
            "type": "rate_limit_exceeded",
            "param": None,
            "code": None,
        }
        assert [r.usage for r in fake_provider.requests] == [None]

    def test_models_list(self, fake_provider: FakeProvider) -> None:
        """GET /v1/models lists models; it is not a model request."""
        ids = [m.id for m in _openai(fake_provider).models.list()]
        assert "gpt-4o-mini" in ids
        assert fake_provider.model_requests == []


class TestOpenAIResponses:
    def test_json_answer_with_usage_details(self, fake_provider: FakeProvider) -> None:
        """Text and function calls come back as output items; usage has its details."""
        fake_provider.set_replies([Reply(text="Hi", tool_calls=[TOOL], usage=USAGE)])
        resp = _openai(fake_provider).responses.create(model="gpt-4o-mini", input="hi")
        assert resp.output_text == "Hi"
        call = resp.output[1]
        assert call.type == "function_call"
        assert (call.name, json.loads(call.arguments)) == ("lookup", TOOL.arguments)
        assert resp.usage is not None
        assert (resp.usage.input_tokens, resp.usage.output_tokens) == (1200, 300)
        assert resp.usage.input_tokens_details.cached_tokens == 200
        assert resp.usage.output_tokens_details.reasoning_tokens == 50
        assert fake_provider.requests[0].path == "/v1/responses"

    def test_stream_events_accumulate(self, fake_provider: FakeProvider) -> None:
        """The SDK's stream helper rebuilds the same response from the SSE events."""
        fake_provider.set_replies([Reply(text="Hello there", tool_calls=[TOOL], usage=USAGE)])
        with _openai(fake_provider).responses.stream(model="gpt-4o-mini", input="hi") as stream:
            kinds = [event.type for event in stream]
            final = stream.get_final_response()
        assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
        assert "response.output_text.delta" in kinds
        assert "response.function_call_arguments.delta" in kinds
        assert final.output_text == "Hello there"
        assert final.usage is not None and final.usage.total_tokens == 1500
        assert final.usage.input_tokens_details.cached_tokens == 200

    def test_max_output_tokens_makes_it_incomplete(self, fake_provider: FakeProvider) -> None:
        """Capped by max_output_tokens: status "incomplete", and the stream ends so too."""
        fake_provider.set_replies([Reply(usage=USAGE)])
        client = _openai(fake_provider)
        resp = client.responses.create(model="gpt-4o-mini", input="hi", max_output_tokens=16)
        assert resp.status == "incomplete"
        assert resp.incomplete_details is not None
        assert resp.incomplete_details.reason == "max_output_tokens"
        assert resp.usage is not None and resp.usage.output_tokens == 16
        stream = client.responses.create(
            model="gpt-4o-mini", input="hi", max_output_tokens=16, stream=True
        )
        assert [event.type for event in stream][-1] == "response.incomplete"


class TestAnthropicMessages:
    def test_json_answer_with_cache_usage(self, fake_provider: FakeProvider) -> None:
        """input_tokens excludes the cache reads and writes, as Anthropic reports it."""
        fake_provider.set_replies([Reply(text="Hi", tool_calls=[TOOL], usage=USAGE)])
        msg = _anthropic(fake_provider).messages.create(
            model="claude-sonnet-4-5", max_tokens=1024, messages=[{"role": "user", "content": "hi"}]
        )
        assert [b.type for b in msg.content] == ["text", "tool_use"]
        tool_use = msg.content[1]
        assert tool_use.type == "tool_use"
        assert (tool_use.name, tool_use.input) == ("lookup", TOOL.arguments)
        assert msg.stop_reason == "tool_use"
        assert msg.usage.input_tokens == 900
        assert msg.usage.cache_read_input_tokens == 200
        assert msg.usage.cache_creation_input_tokens == 100
        assert msg.usage.output_tokens == 300
        [request] = fake_provider.requests
        assert request.path == "/v1/messages"
        assert "anthropic-version" in request.headers

    def test_stream_helper_accumulates_usage(self, fake_provider: FakeProvider) -> None:
        """The stream's message_start carries input and cache, message_delta the final output."""
        fake_provider.set_replies([Reply(text="Hello there", tool_calls=[TOOL], usage=USAGE)])
        with _anthropic(fake_provider).messages.stream(
            model="claude-sonnet-4-5", max_tokens=1024, messages=[{"role": "user", "content": "hi"}]
        ) as stream:
            text = "".join(stream.text_stream)
            final = stream.get_final_message()
        assert text == "Hello there"
        assert final.content[1].type == "tool_use"
        assert final.content[1].input == TOOL.arguments
        assert (final.usage.input_tokens, final.usage.output_tokens) == (900, 300)
        assert final.usage.cache_read_input_tokens == 200
        assert final.stop_reason == "tool_use"

    def test_max_tokens_stops_the_output(self, fake_provider: FakeProvider) -> None:
        """max_tokens below the scripted output: stop_reason "max_tokens", output capped."""
        fake_provider.set_replies([Reply(usage=USAGE)])
        msg = _anthropic(fake_provider).messages.create(
            model="claude-sonnet-4-5", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        )
        assert (msg.stop_reason, msg.usage.output_tokens) == ("max_tokens", 10)

    def test_error_is_the_sdks_exception(self, fake_provider: FakeProvider) -> None:
        """An ErrorReply becomes the SDK's status error with Anthropic's error JSON."""
        fake_provider.set_replies([Reply(error=ErrorReply(529, "Overloaded"))])
        with pytest.raises(anthropic.APIStatusError) as caught:
            _anthropic(fake_provider).messages.create(
                model="claude-sonnet-4-5",
                max_tokens=10,
                messages=[{"role": "user", "content": "x"}],
            )
        assert caught.value.status_code == 529
        assert caught.value.body == {
            "type": "error",
            "error": {"type": "overloaded_error", "message": "Overloaded"},
        }


class TestScripts:
    def test_replies_in_order_last_repeats(self) -> None:
        """A list of replies is answered in order, and the last one repeats."""
        with FakeProvider([Reply(text="one"), Reply(text="two")]) as fake:
            client = _openai(fake)
            texts = [
                client.chat.completions.create(model="m", messages=[]).choices[0].message.content
                for _ in range(3)
            ]
        assert texts == ["one", "two", "two"]

    def test_tool_policies(self) -> None:
        """always_call_tool never stops; tool_calls_then_text answers after N calls."""
        with FakeProvider(always_call_tool("f", {"a": 1})) as fake:
            client = _openai(fake)
            for _ in range(3):
                resp = client.chat.completions.create(model="m", messages=[])
                assert resp.choices[0].finish_reason == "tool_calls"
        with FakeProvider(tool_calls_then_text("f", {"a": 1}, calls=2, usage=USAGE)) as fake:
            client = _openai(fake)
            reasons = [
                client.chat.completions.create(model="m", messages=[]).choices[0].finish_reason
                for _ in range(3)
            ]
            assert reasons == ["tool_calls", "tool_calls", "stop"]
            assert fake.total_usage() == Usage(3600, 900, 600, 300, 150)

    def test_bad_usage_names_the_rule(self) -> None:
        """Cached tokens are part of the input; a Usage that says otherwise is refused."""
        with pytest.raises(ValueError, match=r"must not exceed input_tokens \(10\)"):
            Usage(input_tokens=10, cache_read_tokens=11)
