"""instrument_openai(): the real openai SDK against a loopback fake of the OpenAI API."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import threading
import warnings
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

openai = pytest.importorskip("openai")
pytest.importorskip("wrapt")

from openai import _base_client  # noqa: E402

import agentsteps  # noqa: E402
from agentsteps import (  # noqa: E402
    Budget,
    StepBudgetExhausted,
    current_step,
    instrument_openai,
    run,
    step,
)
from tests.fakes.providers import ErrorReply, FakeProvider, Reply, Usage  # noqa: E402
from tests.fakes.providers import documented_estimate as estimate  # noqa: E402
from tests.support import Spans  # noqa: E402

MODEL = "gpt-4o-mini"
MESSAGES = [{"role": "user", "content": "Look it up."}]


@pytest.fixture
def client(fake: FakeProvider) -> Iterator[Any]:
    with openai.OpenAI(base_url=fake.openai_base_url, api_key="test", max_retries=0) as c:
        yield c


@pytest.fixture
def instrumented() -> Iterator[agentsteps.InstrumentationHandle]:
    with instrument_openai() as handle:
        yield handle


def chat(client: Any, **kwargs: Any) -> Any:
    return client.chat.completions.create(model=MODEL, messages=MESSAGES, **kwargs)


# -- the loop of six ---------------------------------------------------------------------


@pytest.mark.usefixtures("instrumented")
def test_loop_of_six_sends_three_and_raises_on_the_third(fake: FakeProvider, client: Any) -> None:
    @step(name="agent", model=MODEL, budget=Budget(max_tokens=4000))
    def agent() -> None:
        for _ in range(6):
            chat(client)

    with run() as r, pytest.raises(StepBudgetExhausted) as caught:
        agent()
    assert str(caught.value) == "step 'agent' exceeded max_tokens budget (4500 > 4000 tokens)"
    assert len(fake.model_requests) == 3
    usage = r.steps[0].usage
    sent = fake.total_usage()
    assert (usage.input_tokens, usage.output_tokens) == (sent.input_tokens, sent.output_tokens)
    assert (usage.input_tokens, usage.output_tokens, usage.llm_calls) == (3000, 1500, 3)


@pytest.mark.usefixtures("instrumented")
def test_loop_degrades_per_the_error_boundary(fake: FakeProvider, client: Any) -> None:
    @step(name="agent", model=MODEL, budget=Budget(max_tokens=4000), error_boundary="continue")
    def agent() -> str:
        for _ in range(6):
            chat(client)
        return "finished"

    with run() as r:
        assert agent() is None
    assert len(fake.model_requests) == 3
    assert r.steps[0].status is agentsteps.StepStatus.SKIPPED
    assert r.steps[0].usage.total_tokens == 4500


def test_a_spent_budget_refuses_before_sending_and_is_never_retried(
    fake: FakeProvider, instrumented: Any
) -> None:
    # The SDK's default retries stay on: a refusal raised inside its retry loop could be
    # retried or rewrapped; it is raised before the loop.
    with openai.OpenAI(base_url=fake.openai_base_url, api_key="test", max_retries=2) as c:

        @step(name="agent", model=MODEL, budget=Budget(max_llm_calls=2))
        def agent() -> None:
            for _ in range(6):
                chat(c)

        with run() as r, pytest.raises(StepBudgetExhausted) as caught:
            agent()
    assert str(caught.value) == (
        "step 'agent' refused a model call before making it: its max_llm_calls budget "
        "cannot afford it (2 of 2 calls made)"
    )
    assert type(caught.value) is StepBudgetExhausted
    assert len(fake.model_requests) == 2
    assert r.steps[0].usage.llm_calls == 2


# -- exact usage and prices ----------------------------------------------------------------


@pytest.mark.usefixtures("instrumented")
def test_cached_and_reasoning_tokens_are_priced_as_such(fake: FakeProvider, client: Any) -> None:
    agentsteps.register_price(
        MODEL, input_per_mtok=1.0, output_per_mtok=2.0, cache_read_per_mtok=0.5
    )
    fake.set_replies([Reply(usage=Usage(1000, 500, cache_read_tokens=400, reasoning_tokens=100))])

    @step(name="agent", model=MODEL)
    def agent() -> None:
        chat(client)
        client.responses.create(model=MODEL, input="Look it up.")

    with run() as r:
        agent()
    usage = r.steps[0].usage
    assert usage.input_tokens == 2000
    assert usage.cache_read_tokens == 800
    assert usage.output_tokens == 1000
    assert usage.reasoning_tokens == 200
    assert usage.llm_calls == 2
    # Per call: 600 uncached at $1, 400 cached at $0.5, 500 output at $2 per million.
    assert usage.cost_nano_usd == 2 * (600 * 1000 + 400 * 500 + 500 * 2000)


# -- limit_output ------------------------------------------------------------------------


def test_limit_output_caps_every_request_to_the_headroom(fake: FakeProvider, client: Any) -> None:
    with instrument_openai(limit_output=True):

        @step(name="agent", model=MODEL, budget=Budget(max_tokens=4000))
        def agent() -> None:
            chat(client)  # 1,500 used
            chat(client)  # 3,000 used
            client.responses.create(model=MODEL, input="Look it up.")

        # The cap bounds the output; the server's 1,000 input tokens still overshoot the
        # estimate, so the third request is charged and raises.
        with pytest.raises(StepBudgetExhausted):
            agent()
    est, est_responses = estimate(messages=MESSAGES), estimate(input="Look it up.")
    caps = [r.max_output_tokens for r in fake.model_requests]
    assert caps == [4000 - est, 2500 - est, 1000 - est_responses]
    chat_fields = [{k for k in r.body if k.startswith("max")} for r in fake.model_requests[:2]]
    assert chat_fields == [{"max_completion_tokens"}, {"max_completion_tokens"}]
    assert "max_output_tokens" in fake.model_requests[2].body


def test_limit_output_keeps_a_smaller_cap_and_the_callers_field(
    fake: FakeProvider, client: Any
) -> None:
    with instrument_openai(limit_output=True):

        @step(name="agent", model=MODEL, budget=Budget(max_tokens=10_000))
        def agent() -> None:
            chat(client, max_tokens=10)  # 1,010 used
            chat(client, max_tokens=100_000)  # 2,510 used
            client.responses.create(model=MODEL, input="hi")

        agent()
    small, big, responses = (r.body for r in fake.model_requests)
    assert small["max_tokens"] == 10
    assert "max_completion_tokens" not in small
    assert big["max_tokens"] == 10_000 - 1010 - estimate(messages=MESSAGES)
    assert responses["max_output_tokens"] == 10_000 - 2510 - estimate(input="hi")


@pytest.mark.usefixtures("instrumented")
def test_without_limit_output_requests_keep_their_max_tokens(
    fake: FakeProvider, client: Any
) -> None:
    @step(name="agent", model=MODEL, budget=Budget(max_tokens=4000))
    def agent() -> None:
        chat(client)
        chat(client, max_tokens=100_000)

    agent()
    first, second = (r.body for r in fake.model_requests)
    assert not {k for k in first if k.startswith("max")}
    assert second["max_tokens"] == 100_000


# -- streams -------------------------------------------------------------------------------


@pytest.mark.usefixtures("instrumented")
def test_chat_stream_asks_for_usage_and_hides_the_extra_chunk(
    fake: FakeProvider, client: Any
) -> None:
    @step(name="agent", model=MODEL)
    def agent() -> list[Any]:
        return list(chat(client, stream=True))

    with run() as r:
        chunks = agent()
    assert fake.model_requests[0].body["stream_options"] == {"include_usage": True}
    assert all(c.choices for c in chunks)  # the usage-only chunk was not handed on
    usage = r.steps[0].usage
    assert (usage.input_tokens, usage.output_tokens, usage.llm_calls) == (1000, 500, 1)


@pytest.mark.usefixtures("instrumented")
def test_chat_stream_keeps_the_usage_chunk_the_caller_asked_for(
    fake: FakeProvider, client: Any
) -> None:
    @step(name="agent", model=MODEL)
    def agent() -> list[Any]:
        return list(chat(client, stream=True, stream_options={"include_usage": True}))

    with run() as r:
        chunks = agent()
    assert chunks[-1].choices == []
    assert chunks[-1].usage.prompt_tokens == 1000
    assert r.steps[0].usage.total_tokens == 1500


@pytest.mark.usefixtures("instrumented")
def test_stream_is_cut_at_the_chunk_that_crosses_the_limit(fake: FakeProvider, client: Any) -> None:
    est = estimate(messages=MESSAGES)
    seen: list[Any] = []

    # The first chunk charges the input estimate and one output token: exactly the budget.
    @step(name="agent", model=MODEL, budget=Budget(max_tokens=est + 1))
    def agent() -> None:
        stream = chat(client, stream=True)
        for chunk in stream:
            seen.append(chunk)

    with run() as r, pytest.raises(StepBudgetExhausted) as caught:
        agent()
    assert len(seen) == 1
    assert str(caught.value) == (
        f"step 'agent' exceeded max_tokens budget ({est + 2} > {est + 1} tokens)"
    )
    assert r.steps[0].usage.llm_calls == 1
    assert len(fake.model_requests) == 1


@pytest.mark.usefixtures("instrumented")
def test_stream_helpers_and_responses_streams_are_charged_exactly(
    fake: FakeProvider, client: Any
) -> None:
    @step(name="agent", model=MODEL)
    def agent() -> str:
        with client.chat.completions.stream(model=MODEL, messages=MESSAGES) as s:
            for _ in s:
                pass
            text = s.get_final_completion().choices[0].message.content
        with client.responses.stream(model=MODEL, input="Look it up.") as rs:
            for _ in rs:
                pass
        for _ in client.responses.create(model=MODEL, input="Look it up.", stream=True):
            pass
        return str(text)

    with run() as r:
        assert agent() == "Done."
    usage = r.steps[0].usage
    assert (usage.input_tokens, usage.output_tokens, usage.llm_calls) == (3000, 1500, 3)


def test_async_client_requests_and_streams(fake: FakeProvider, instrumented: Any) -> None:
    async def main() -> None:
        async with openai.AsyncOpenAI(
            base_url=fake.openai_base_url, api_key="test", max_retries=0
        ) as ac:

            @step(name="agent", model=MODEL, budget=Budget(max_tokens=4000))
            async def agent() -> None:
                for _ in range(3):
                    await ac.chat.completions.create(model=MODEL, messages=MESSAGES)
                stream = await ac.chat.completions.create(
                    model=MODEL, messages=MESSAGES, stream=True
                )
                async for _ in stream:
                    pass

            with run() as r, pytest.raises(StepBudgetExhausted):
                await agent()
            assert r.steps[0].usage.total_tokens == 4500

    asyncio.run(main())
    assert len(fake.model_requests) == 3


def test_async_stream_left_early_charges_what_was_seen_and_ends_its_span_once(
    fake: FakeProvider, instrumented: Any, spans: Spans
) -> None:
    est = estimate(messages=MESSAGES)

    async def main() -> None:
        async with openai.AsyncOpenAI(
            base_url=fake.openai_base_url, api_key="test", max_retries=0
        ) as ac:
            got_one = asyncio.Event()

            @step(name="agent", model=MODEL)
            async def agent() -> None:
                stream = await ac.chat.completions.create(
                    model=MODEL, messages=MESSAGES, stream=True
                )
                async with stream:
                    async for _ in stream:
                        got_one.set()
                        await asyncio.sleep(3600)  # cancelled here

            with run() as r:
                task = asyncio.create_task(agent())
                await got_one.wait()
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
            usage = r.steps[0].usage
            assert (usage.input_tokens, usage.output_tokens, usage.llm_calls) == (est, 1, 1)

    asyncio.run(main())
    calls = [s for s in spans.all if s.name == f"chat {MODEL}"]
    assert len(calls) == 1


# -- raw responses -------------------------------------------------------------------------


@pytest.mark.usefixtures("instrumented")
def test_raw_responses_are_charged_parsed_or_not(fake: FakeProvider, client: Any) -> None:
    @step(name="agent", model=MODEL)
    def agent() -> None:
        raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=MESSAGES)
        assert current_step().usage.llm_calls == 1  # before parse()
        assert raw.parse().usage.prompt_tokens == 1000
        streamed = client.chat.completions.with_raw_response.create(
            model=MODEL, messages=MESSAGES, stream=True
        )
        assert all(c.choices for c in streamed.parse())
        with client.chat.completions.with_streaming_response.create(
            model=MODEL, messages=MESSAGES
        ) as response:
            response.parse()

    with run() as r:
        agent()
    usage = r.steps[0].usage
    assert (usage.input_tokens, usage.output_tokens, usage.llm_calls) == (3000, 1500, 3)


# -- instrumenting and undoing it ----------------------------------------------------------


def test_uninstrument_restores_the_sdk(fake: FakeProvider, client: Any) -> None:
    original = _base_client.SyncAPIClient.__dict__["request"]
    original_async = _base_client.AsyncAPIClient.__dict__["request"]
    handle = instrument_openai()
    assert handle.active
    assert _base_client.SyncAPIClient.__dict__["request"] is not original
    handle.uninstrument()
    handle.uninstrument()  # twice: nothing more to undo
    assert not handle.active
    assert _base_client.SyncAPIClient.__dict__["request"] is original
    assert _base_client.AsyncAPIClient.__dict__["request"] is original_async

    @step(name="agent", model=MODEL)
    def agent() -> None:
        chat(client)

    with run() as r:
        agent()
    assert r.steps[0].usage.llm_calls == 0


def test_instrumenting_twice_wraps_once(fake: FakeProvider, client: Any) -> None:
    original = _base_client.SyncAPIClient.__dict__["request"]
    with instrument_openai() as first:
        second = instrument_openai()
        alone = instrument_openai(client)  # this client again, on its own
        assert second is first
        assert _base_client.SyncAPIClient.__dict__["request"].__wrapped__ is original

        @step(name="agent", model=MODEL)
        def agent() -> None:
            chat(client)

        with run() as r:
            agent()
        assert r.steps[0].usage.llm_calls == 1
        alone.uninstrument()
    assert _base_client.SyncAPIClient.__dict__["request"] is original


def test_one_client_only(fake: FakeProvider, client: Any) -> None:
    with (
        openai.OpenAI(base_url=fake.openai_base_url, api_key="test", max_retries=0) as other,
        instrument_openai(client),
    ):

        @step(name="agent", model=MODEL)
        def agent() -> None:
            chat(client)
            chat(other)

        with run() as r:
            agent()
    assert r.steps[0].usage.llm_calls == 1
    assert len(fake.model_requests) == 2


def test_clients_made_after_instrumenting_are_instrumented(fake: FakeProvider) -> None:
    with instrument_openai():
        made_later = openai.OpenAI(base_url=fake.openai_base_url, api_key="test")

        @step(name="agent", model=MODEL)
        def agent() -> None:
            chat(made_later)

        with run() as r:
            agent()
        made_later.close()
    assert r.steps[0].usage.llm_calls == 1


@pytest.mark.parametrize("wrong", ["sk-123", object()])
def test_a_client_of_the_wrong_type_is_a_type_error(wrong: object) -> None:
    with pytest.raises(TypeError) as caught:
        instrument_openai(wrong)
    assert str(caught.value).startswith(
        "instrument_openai(): 'client' must be an openai.OpenAI or openai.AsyncOpenAI client "
        f"(got {wrong!r:.80} of type {type(wrong).__name__}); pass the client"
    )


def test_an_anthropic_client_is_refused() -> None:
    anthropic = pytest.importorskip("anthropic")
    with anthropic.Anthropic(api_key="test") as wrong, pytest.raises(TypeError, match="'client'"):
        instrument_openai(wrong)


def test_limit_output_must_be_a_bool() -> None:
    with pytest.raises(TypeError, match=r"'limit_output' must be True or False \(got 1\)"):
        instrument_openai(limit_output=1)  # type: ignore[arg-type]


# -- outside steps, errors, spans ---------------------------------------------------------


def test_outside_steps_requests_pass_untouched_with_a_span(
    fake: FakeProvider, client: Any, spans: Spans
) -> None:
    with instrument_openai(limit_output=True), run() as r:
        chat(client)
        list(chat(client, stream=True))
    assert r.steps == []
    first, second = (req.body for req in fake.model_requests)
    assert first == {"model": MODEL, "messages": MESSAGES}
    assert "stream_options" not in second
    calls = [s for s in spans.all if s.name == f"chat {MODEL}"]
    assert len(calls) == 2
    # The span still describes the response; nothing was charged to any step.
    assert (calls[0].attributes or {})["gen_ai.usage.input_tokens"] == 1000


@pytest.mark.usefixtures("instrumented")
@pytest.mark.parametrize("status", [400, 500])
def test_provider_errors_charge_nothing_and_keep_the_sdks_exception(
    fake: FakeProvider, client: Any, spans: Spans, status: int
) -> None:
    fake.set_replies([Reply(error=ErrorReply(status=status, message="nope"))])
    expected = openai.BadRequestError if status == 400 else openai.InternalServerError

    @step(name="agent", model=MODEL)
    def agent() -> None:
        chat(client)

    with run() as r, pytest.raises(expected):
        agent()
    assert r.steps[0].usage.llm_calls == 0
    call = spans.named(f"chat {MODEL}")
    assert call.status.status_code.name == "ERROR"
    assert call.attributes is not None
    assert call.attributes["error.type"] == expected.__qualname__


@pytest.mark.usefixtures("instrumented")
def test_the_call_span_carries_the_semconv_attributes(
    fake: FakeProvider, client: Any, spans: Spans
) -> None:
    @step(name="agent", model=MODEL)
    def agent() -> None:
        chat(client, temperature=0.5, max_tokens=700)

    agent()
    attributes = dict(spans.named(f"chat {MODEL}").attributes or {})
    port = int(fake.url.rsplit(":", 1)[1])
    assert attributes["gen_ai.provider.name"] == "openai"
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.request.model"] == MODEL
    assert attributes["gen_ai.response.model"] == MODEL
    assert attributes["gen_ai.response.id"] == "chatcmpl-fake1"
    assert attributes["gen_ai.response.finish_reasons"] == ("stop",)
    assert attributes["gen_ai.request.max_tokens"] == 700
    assert attributes["gen_ai.request.temperature"] == 0.5
    assert attributes["gen_ai.usage.input_tokens"] == 1000
    assert attributes["gen_ai.usage.output_tokens"] == 500
    assert (attributes["server.address"], attributes["server.port"]) == ("127.0.0.1", port)
    # No prompt or completion content (OpenInference's llm.token_count.prompt is a count).
    content = ("content", "messages", "input.value", "output.value", "gen_ai.prompt")
    assert not [key for key in attributes if any(part in key for part in content)]
    assert attributes["llm.token_count.prompt"] == 1000


# -- responses without usage ---------------------------------------------------------------


class _NoUsageHandler(BaseHTTPRequestHandler):
    """An OpenAI-compatible server that reports no usage, as some do."""

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        body = json.dumps(
            {
                "id": "c1",
                "object": "chat.completion",
                "created": 0,
                "model": MODEL,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "hi"},
                        "finish_reason": "stop",
                    }
                ],
            }
        ).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.mark.usefixtures("instrumented")
def test_a_response_without_usage_counts_one_call_and_warns_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _NoUsageHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        host, port = server.server_address[:2]
        with openai.OpenAI(base_url=f"http://{host!s}:{port}/v1", api_key="t") as c:

            @step(name="agent", model=MODEL)
            def agent() -> None:
                chat(c)
                chat(c)

            with run() as r, caplog.at_level(logging.WARNING, logger="agentsteps"):
                agent()
    finally:
        server.shutdown()
        server.server_close()
    usage = r.steps[0].usage
    assert (usage.total_tokens, usage.llm_calls) == (0, 2)
    warnings = [rec.getMessage() for rec in caplog.records if rec.name == "agentsteps"]
    assert warnings == [
        "step 'agent': a openai chat request (model 'gpt-4o-mini') got a response without "
        "token usage, so it was charged as one model call with only the tokens counted "
        "locally (none for a whole response, the input estimate and one per chunk for a "
        "stream). Use a server that reports usage in its responses."
    ]


@pytest.mark.usefixtures("instrumented")
def test_a_stream_without_usage_warns(
    fake: FakeProvider, client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    @step(name="agent", model=MODEL)
    def agent() -> None:
        list(chat(client, stream=True, stream_options={"include_usage": False}))

    with run() as r, caplog.at_level(logging.WARNING, logger="agentsteps"):
        agent()
    assert r.steps[0].usage.llm_calls == 1
    assert r.steps[0].usage.output_tokens == 4  # one per chunk: role, two texts, finish
    (warning,) = [rec.getMessage() for rec in caplog.records if rec.name == "agentsteps"]
    assert "streamed no token usage" in warning


def test_a_garbage_collected_client_is_forgotten(fake: FakeProvider) -> None:
    # Garbage earlier tests left (LiteLLM's cached async clients, say) is not this test's
    # subject: collect it quietly first, so that the collection below only frees this client.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()
    original = _base_client.SyncAPIClient.__dict__["request"]
    c = openai.OpenAI(base_url=fake.openai_base_url, api_key="test")
    handle = instrument_openai(c)
    assert handle.active
    c.close()
    del c
    gc.collect()
    assert not handle.active
    assert _base_client.SyncAPIClient.__dict__["request"] is original
