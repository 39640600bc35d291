"""Tests for `UsageCaptureProcessor`: usage charged from other instrumentations' GenAI spans.

The first group drives the real ``openai`` client, instrumented by the real
``opentelemetry-instrumentation-openai-v2``, against an OpenAI-compatible server on
loopback. The second group makes GenAI spans with the OpenTelemetry SDK directly, for the
cases an instrumentation package does not reach easily.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind

from agentsteps import (
    Budget,
    StepBudgetExhausted,
    StepStatus,
    UsageCaptureProcessor,
    current_step,
    llm_call,
    metered,
    record_usage,
    run,
    step,
)
from agentsteps._llm import capture as _capture

USAGE = {
    "prompt_tokens": 120,
    "completion_tokens": 30,
    "total_tokens": 150,
    "prompt_tokens_details": {"cached_tokens": 100},
    "completion_tokens_details": {"reasoning_tokens": 10},
}
RESPONSE_MODEL = "gpt-4o-mini-2024-07-18"


class ChatCompletions(BaseHTTPRequestHandler):
    """Answers ``POST /v1/chat/completions`` like OpenAI, streamed or not."""

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        if self.path != "/v1/chat/completions":
            self.send_error(404)
            return
        if body.get("stream"):
            self._stream()
            return
        payload = json.dumps(
            {
                "id": "chatcmpl-test",
                "object": "chat.completion",
                "created": 1_700_000_000,
                "model": RESPONSE_MODEL,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "LGTM"},
                        "finish_reason": "stop",
                    }
                ],
                "usage": USAGE,
            }
        ).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _stream(self) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.end_headers()
        base = {
            "id": "chatcmpl-test",
            "object": "chat.completion.chunk",
            "created": 1_700_000_000,
            "model": RESPONSE_MODEL,
        }
        deltas = [{"role": "assistant", "content": ""}] + [{"content": w} for w in "LGTM!"]
        for delta in deltas:
            choice = {"index": 0, "delta": delta, "finish_reason": None}
            self._event({**base, "choices": [choice]})
        self._event({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        self._event({**base, "choices": [], "usage": USAGE})
        self.wfile.write(b"data: [DONE]\n\n")

    def _event(self, data: dict[str, Any]) -> None:
        self.wfile.write(b"data: " + json.dumps(data).encode() + b"\n\n")

    def log_message(self, format: str, *args: Any) -> None:
        """Keep the test output quiet."""


@pytest.fixture
def openai_server() -> Iterator[str]:
    """An OpenAI-compatible chat completions endpoint on loopback; yields its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), ChatCompletions)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def openai_client(capture, openai_server):
    """(sync client, async client, spans), instrumented by the openai-v2 instrumentation."""
    openai = pytest.importorskip("openai")
    openai_v2 = pytest.importorskip("opentelemetry.instrumentation.openai_v2")
    instrumentor = openai_v2.OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=capture.provider)
    client = openai.OpenAI(base_url=openai_server, api_key="test", max_retries=0)
    aclient = openai.AsyncOpenAI(base_url=openai_server, api_key="test", max_retries=0)
    yield client, aclient, capture
    client.close()
    instrumentor.uninstrument()


MESSAGES = [{"role": "user", "content": "Review this diff"}]


class TestRealOpenAIInstrumentation:
    def test_sync_client_charges_step(self, openai_client, prices):
        """A chat completion made in a step is charged to it, priced, as one model call."""
        client, _, spans = openai_client
        prices("gpt-4o-mini", 1.0, 2.0)

        @step(name="review", budget=Budget(max_tokens=1_000))
        def review():
            reply = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
            return reply.choices[0].message.content, current_step().usage

        with run() as r:
            content, usage = review()
        assert content == "LGTM"
        assert (usage.input_tokens, usage.output_tokens, usage.llm_calls) == (120, 30, 1)
        assert usage.cost_nano_usd == 120 * 1_000 + 30 * 2_000
        assert usage.unpriced_calls == 0
        assert r.steps[0].model == RESPONSE_MODEL
        openai_span = spans.named("chat gpt-4o-mini")
        assert openai_span.kind is SpanKind.CLIENT
        assert openai_span.parent.span_id == spans.step("review").context.span_id
        assert spans.step("review").attributes["agentsteps.usage.self.input_tokens"] == 120

    def test_over_budget_raised_at_step_exit(self, openai_client):
        """Captured usage over budget never raises inside the client; the step exit does."""
        client, _, spans = openai_client
        after_call = []

        @step(name="review", budget=Budget(max_tokens=100))
        def review():
            reply = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
            after_call.append(reply.choices[0].message.content)

        with (
            run() as r,
            pytest.raises(
                StepBudgetExhausted,
                match=re.escape("step 'review' exceeded max_tokens budget (150 > 100 tokens)"),
            ),
        ):
            review()
        assert after_call == ["LGTM"]
        assert r.steps[0].status is StepStatus.FAILED
        assert spans.named("chat gpt-4o-mini").status.is_ok

    def test_over_budget_raised_at_next_llm_call(self, openai_client):
        """The next llm_call in the step is the checkpoint: the call is never opened."""
        client, _, _ = openai_client
        reached = []

        @step(name="review", model="gpt-4o-mini", budget=Budget(max_tokens=100))
        def review():
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
            reached.append("after first call")
            with llm_call():
                reached.append("inside second call")

        with pytest.raises(StepBudgetExhausted, match=re.escape("(150 > 100 tokens)")):
            review()
        assert reached == ["after first call"]

    def test_inside_llm_call_not_double_counted(self, openai_client):
        """An instrumented call inside llm_call becomes the call's usage, counted once."""
        client, _, spans = openai_client

        @step(name="review", model="gpt-4o-mini")
        def review():
            with llm_call(provider="openai") as call:
                reply = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
                assert call.usage.input_tokens == 120  # captured before we record
                call.record(
                    input_tokens=reply.usage.prompt_tokens,
                    output_tokens=reply.usage.completion_tokens,
                    cache_read_tokens=reply.usage.prompt_tokens_details.cached_tokens,
                    reasoning_tokens=reply.usage.completion_tokens_details.reasoning_tokens,
                    response_model=reply.model,
                )
            return current_step().usage

        usage = review()
        assert (usage.total_tokens, usage.llm_calls, usage.cache_read_tokens) == (150, 1, 100)
        ours = [s for s in spans.all if s.attributes.get("agentsteps.kind") == "llm_call"]
        theirs = [s for s in spans.all if s.name == "chat gpt-4o-mini" and s not in ours]
        assert len(ours) == len(theirs) == 1
        assert theirs[0].parent.span_id == ours[0].context.span_id
        # One request, one span with usage for a backend that sums model-call spans: the
        # instrumentation's. Ours keeps the figures in its own namespace only.
        assert theirs[0].attributes["gen_ai.usage.input_tokens"] == 120
        assert "gen_ai.usage.input_tokens" not in ours[0].attributes
        assert "llm.token_count.prompt" not in ours[0].attributes
        assert ours[0].attributes["openinference.span.kind"] == "CHAIN"
        assert ours[0].attributes["agentsteps.llm_call.usage_on_other_span"] is True
        assert ours[0].attributes["agentsteps.usage.subtree.input_tokens"] == 120
        assert ours[0].attributes["gen_ai.response.model"] == RESPONSE_MODEL

    def test_async_client(self, openai_client):
        """The async client's spans are charged to the step of the awaiting task."""
        _, aclient, _ = openai_client

        @step(name="areview")
        async def areview():
            await aclient.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
            return current_step().usage

        async def main():
            try:
                return await areview()
            finally:
                await aclient.close()

        usage = asyncio.run(main())
        assert (usage.input_tokens, usage.output_tokens, usage.llm_calls) == (120, 30, 1)

    def test_stream_metered_and_captured_once(self, openai_client):
        """A metered stream whose span is captured too ends charged the provider's figures."""
        from agentsteps.integrations import openai_usage

        client, _, spans = openai_client

        @step(name="review", model="gpt-4o-mini")
        def review():
            with llm_call(provider="openai", input_tokens=100) as call:
                stream = client.chat.completions.create(
                    model="gpt-4o-mini",
                    messages=MESSAGES,
                    stream=True,
                    stream_options={"include_usage": True},
                )
                text = "".join(
                    c.choices[0].delta.content or ""
                    for c in metered(stream, call, usage=openai_usage)
                    if c.choices
                )
            return text, current_step().usage

        text, usage = review()
        assert text == "LGTM!"
        assert (usage.input_tokens, usage.output_tokens, usage.llm_calls) == (120, 30, 1)
        assert (usage.cache_read_tokens, usage.reasoning_tokens) == (100, 10)
        assert [s.name for s in spans.all].count("chat gpt-4o-mini") == 2

    def test_stream_stopped_by_budget(self, openai_client):
        """A metered OpenAI stream is cut when the budget runs out, and its response closed."""
        client, _, _ = openai_client
        received = []

        @step(name="review", model="gpt-4o-mini", budget=Budget(max_tokens=103))
        def review():
            with llm_call(provider="openai", input_tokens=100) as call:
                stream = client.chat.completions.create(
                    model="gpt-4o-mini", messages=MESSAGES, stream=True
                )
                for chunk in metered(stream, call):
                    received.append(chunk)

        with run() as r, pytest.raises(StepBudgetExhausted, match=re.escape("(104 > 103")):
            review()
        assert len(received) == 3
        assert r.steps[0].usage.total_tokens == 104


def _genai_span(tracer, name="chat m", *, usage=None, **attributes):
    """Make a GenAI client span as an instrumentation would, ending it with usage."""
    span = tracer.start_span(name, kind=SpanKind.CLIENT, attributes=attributes or None)
    return span, (usage or {})


def _end(span, usage):
    span.set_attributes(usage)
    span.end()


USAGE_ATTRS = {"gen_ai.usage.input_tokens": 60, "gen_ai.usage.output_tokens": 50}


class TestSdkSpans:
    @pytest.fixture
    def tracer(self, capture):
        """A tracer standing for some other GenAI instrumentation."""
        return capture.provider.get_tracer("some-genai-instrumentation")

    def test_charges_innermost_step(self, tracer):
        """The usage on a GenAI span goes to the step it started in and every step around it."""

        @step(name="outer")
        def outer():
            inner()
            return current_step()

        @step(name="inner")
        def inner():
            with tracer.start_as_current_span("chat m", kind=SpanKind.CLIENT) as span:
                span.set_attributes({**USAGE_ATTRS, "gen_ai.request.model": "m"})

        with run() as r:
            outer()
        inner_rec, outer_rec = r.steps
        assert inner_rec.usage.total_tokens == 110
        assert inner_rec.usage.llm_calls == 1
        assert inner_rec.usage.unpriced_calls == 1
        assert outer_rec.usage.total_tokens == 0
        assert outer_rec.subtree_usage.total_tokens == 110

    def test_own_spans_not_counted(self, capture):
        """llm_call spans carry gen_ai.usage too, but are never charged again."""

        @step(name="outer")
        def outer():
            inner()
            with llm_call("m") as call:
                call.record(5, 5, cost_usd=0)
            return current_step().subtree_usage

        @step(name="inner")
        def inner():
            record_usage("m", 10, 10, cost_usd=0)

        usage = outer()
        assert (usage.total_tokens, usage.llm_calls) == (30, 2)
        assert capture.step("inner").attributes["agentsteps.usage.self.input_tokens"] == 10
        assert "gen_ai.usage.input_tokens" not in capture.step("inner").attributes

    def test_nested_genai_spans_counted_once(self, tracer):
        """A framework's GenAI span wrapping a client's: the innermost report wins."""

        @step(name="agent")
        def agent():
            with tracer.start_as_current_span("invoke_agent helper") as outer_span:
                with tracer.start_as_current_span("chat m") as inner_span:
                    inner_span.set_attributes(USAGE_ATTRS)
                outer_span.set_attributes(USAGE_ATTRS)
            return current_step().usage

        usage = agent()
        assert (usage.total_tokens, usage.llm_calls) == (110, 1)

    def test_span_outside_steps_ignored(self, tracer):
        """A GenAI span started and ended outside any step charges nothing, raises nothing."""
        with tracer.start_as_current_span("chat m") as span:
            span.set_attributes(USAGE_ATTRS)

        @step(name="later")
        def later():
            return current_step().usage.llm_calls

        assert later() == 0

    def test_span_started_outside_ending_inside_ignored(self, tracer):
        """As documented: a span started outside any step is not charged to the step it ends in."""
        span = tracer.start_span("chat m", kind=SpanKind.CLIENT)

        @step(name="reader")
        def reader():
            span.set_attributes(USAGE_ATTRS)
            span.end()
            return current_step().usage

        usage = reader()
        assert (usage.total_tokens, usage.llm_calls) == (0, 0)

    def test_span_started_before_the_processor_charged_where_it_ends(self):
        """A span whose start the processor never saw goes to the step it ends in."""
        provider = TracerProvider()
        span = provider.get_tracer("late").start_span("chat m", kind=SpanKind.CLIENT)
        provider.add_span_processor(UsageCaptureProcessor())

        @step(name="reader")
        def reader():
            span.set_attributes(USAGE_ATTRS)
            span.end()
            return current_step().usage

        usage = reader()
        assert (usage.total_tokens, usage.llm_calls) == (110, 1)

    def test_owner_is_where_span_started(self, tracer):
        """A span ended in another thread after its step returned charges the step it began in."""
        pending = []

        @step(name="outer", budget=Budget(max_tokens=1_000))
        def outer():
            starter()
            worker = threading.Thread(target=lambda: _end(*pending[0]))
            worker.start()
            worker.join()
            return current_step().subtree_usage.total_tokens

        @step(name="starter")
        def starter():
            pending.append(_genai_span(tracer, usage=USAGE_ATTRS))

        assert outer() == 110

    def test_inside_llm_call_capture_replaces_estimate(self, tracer):
        """Inside llm_call, a captured span replaces streamed estimates with its figures."""

        @step(name="chat", model="m")
        def chat():
            with llm_call() as call:
                call.add_usage(input_tokens=500, output_tokens=5)
                with tracer.start_as_current_span("chat m") as span:
                    span.set_attributes(USAGE_ATTRS)
            return call.usage, current_step().usage

        call_usage, step_usage = chat()
        assert call_usage == step_usage
        assert (step_usage.input_tokens, step_usage.output_tokens) == (60, 50)
        assert step_usage.llm_calls == 1

    def test_inside_llm_call_record_stands(self, tracer):
        """Figures given with record() are not replaced by a later, poorer captured span."""

        @step(name="chat", model="m")
        def chat():
            with llm_call() as call:
                span = tracer.start_span("chat m")
                call.record(input_tokens=60, output_tokens=50, cache_read_tokens=40)
                _end(span, USAGE_ATTRS)
            return current_step().usage

        usage = chat()
        assert (usage.total_tokens, usage.cache_read_tokens, usage.llm_calls) == (110, 40, 1)

    def test_latched_exhaustion_raised_at_next_record(self, tracer):
        """Exhaustion found from a span is raised by the step's next record_usage."""
        reached = []

        @step(name="review", budget=Budget(max_tokens=100))
        def review():
            with tracer.start_as_current_span("chat m") as span:
                span.set_attributes(USAGE_ATTRS)
            reached.append("span ended")
            record_usage("m", 1, 0, cost_usd=0)
            reached.append("not reached")

        with pytest.raises(
            StepBudgetExhausted,
            match=re.escape("step 'review' exceeded max_tokens budget (111 > 100 tokens)"),
        ):
            review()
        assert reached == ["span ended"]

    def test_latched_exhaustion_continue_boundary(self, tracer):
        """At step exit a latched exhaustion goes through the step's boundary as usual."""

        @step(
            name="review",
            budget=Budget(max_llm_calls=1),
            error_boundary="continue",
            default="skipped",
        )
        def review():
            for _ in range(2):
                with tracer.start_as_current_span("chat m") as span:
                    span.set_attributes(USAGE_ATTRS)
            return "done"

        with run() as r:
            assert review() == "skipped"
        assert r.steps[0].status is StepStatus.SKIPPED
        assert r.steps[0].usage.llm_calls == 2

    def test_latched_exhaustion_of_outer_step(self, tracer):
        """A nested step's record raises the enclosing step's latched exhaustion."""

        @step(name="outer", budget=Budget(max_tokens=100))
        def outer():
            with tracer.start_as_current_span("chat m") as span:
                span.set_attributes(USAGE_ATTRS)
            inner()

        @step(name="inner", error_boundary="continue")
        def inner():
            record_usage("m", 1, 1, cost_usd=0)

        with pytest.raises(StepBudgetExhausted, match=re.escape("step 'outer' exceeded")):
            outer()

    def test_older_attribute_names_and_cached_repair(self, tracer, prices):
        """prompt/completion tokens and gen_ai.system are read; cached-apart input is added."""
        prices("claude-test", 3.0, 15.0)

        @step(name="legacy")
        def legacy():
            with tracer.start_as_current_span("chat claude-test") as span:
                span.set_attributes(
                    {
                        "gen_ai.system": "anthropic",
                        "gen_ai.request.model": "claude-test",
                        "gen_ai.usage.prompt_tokens": 10,
                        "gen_ai.usage.completion_tokens": 5,
                        "gen_ai.usage.cache_read.input_tokens": 1_000,
                        "gen_ai.usage.reasoning.output_tokens": 2,
                    }
                )
            return current_step().usage

        usage = legacy()
        assert (usage.input_tokens, usage.cache_read_tokens) == (1_010, 1_000)
        assert (usage.output_tokens, usage.reasoning_tokens) == (5, 2)
        assert usage.unpriced_calls == 0

    def test_malformed_attributes_ignored(self, tracer):
        """Spans without usage, or with nonsense counts, never raise into the library."""

        @step(name="odd")
        def odd():
            with tracer.start_as_current_span("chat m") as span:
                span.set_attribute("gen_ai.operation.name", "chat")
            with tracer.start_as_current_span("chat m") as span:
                span.set_attributes(
                    {"gen_ai.usage.input_tokens": -5, "gen_ai.usage.output_tokens": "many"}
                )
            return current_step().usage

        usage = odd()
        assert (usage.total_tokens, usage.llm_calls) == (0, 1)

    def test_internal_error_logged_not_raised(self, tracer, monkeypatch, caplog):
        """If charging fails, the error is logged and the instrumented code carries on."""

        def broken(*args, **kwargs):
            raise RuntimeError("pricing exploded")

        monkeypatch.setattr(_capture, "price", broken)

        @step(name="review")
        def review():
            with tracer.start_as_current_span("chat m") as span:
                span.set_attributes(USAGE_ATTRS)
            return "carried on"

        with caplog.at_level(logging.ERROR, logger="agentsteps"):
            assert review() == "carried on"
        assert "agentsteps could not charge the usage of span 'chat m'" in caplog.text

    def test_shutdown_and_flush(self):
        """The processor buffers nothing: flush is immediate, shutdown forgets open spans."""
        processor = UsageCaptureProcessor()
        assert processor.force_flush() is True
        processor.shutdown()
