"""agentsteps.testing: the scripted offline model charges realistic, deterministic usage."""

from __future__ import annotations

import asyncio
import re
import textwrap
from collections.abc import Iterator

import pytest
from opentelemetry.trace import SpanKind

import agentsteps
from agentsteps import Budget, StepBudgetExhausted, persona, step
from agentsteps.testing import (
    DEFAULT_MODEL,
    DEFAULT_PRICES,
    MESSAGE_OVERHEAD_TOKENS,
    Reply,
    ScriptedModel,
    ScriptExhausted,
    count_prompt_tokens,
    estimate_tokens,
)
from tests.support import DOCS, Spans


class TestEstimate:
    """The documented token estimate."""

    @pytest.mark.parametrize(
        ("text", "tokens"),
        [
            ("", 0),
            ("a", 1),
            ("abcd", 1),
            ("abcde", 2),
            ("é" * 2, 1),
            ("日本語", 3),
            ("x" * 400, 100),
        ],
    )
    def test_estimate_tokens(self, text: str, tokens: int) -> None:
        """ceil(utf-8 bytes / 4): multi-byte characters count by their bytes."""
        assert estimate_tokens(text) == tokens

    def test_prompt_adds_an_overhead_per_message(self) -> None:
        """Each message counts its content plus MESSAGE_OVERHEAD_TOKENS."""
        messages = [{"role": "system", "content": "x" * 8}, {"role": "user", "content": ""}]
        assert MESSAGE_OVERHEAD_TOKENS == 4
        assert count_prompt_tokens(messages) == 2 + 4 + 0 + 4


class TestComplete:
    """complete(): replies and the usage they charge."""

    def test_replies_in_order_and_charges_the_step(self) -> None:
        """Each call takes the next reply and charges exact tokens and cost to the step."""
        llm = ScriptedModel(["first reply", "second"])

        @step(model="scripted-mini")
        def work() -> list[str]:
            return [llm.complete("x" * 40).text, llm.complete("y").text]

        with agentsteps.run() as r:
            assert work() == ["first reply", "second"]
        (record,) = r.steps
        u = record.usage
        assert (u.input_tokens, u.output_tokens, u.llm_calls) == (10 + 4 + 1 + 4, 3 + 2, 2)
        # scripted-mini: $0.25 in / $1.25 out per million tokens.
        assert u.cost_nano_usd == 19 * 250 + 5 * 1250
        assert record.model == "scripted-mini"

    def test_reply_carries_its_usage(self) -> None:
        """The Reply says what was charged, and reads as its text."""
        reply = ScriptedModel(["hello there"]).complete("hi", model="scripted-pro")
        assert reply == Reply(
            text="hello there",
            model="scripted-pro",
            input_tokens=5,
            output_tokens=3,
            cache_read_tokens=0,
            cost_usd=(5 * 3.0 + 3 * 15.0) / 1e6,
        )
        assert str(reply) == "hello there"
        assert reply.finish_reason == "stop"

    def test_outside_a_step_nothing_is_charged(self) -> None:
        """Like record_usage, a call outside any step answers and charges nothing."""
        with agentsteps.run() as r:
            assert ScriptedModel(["ok"]).complete("hi").text == "ok"
        assert r.total.llm_calls == 0

    def test_model_resolution(self) -> None:
        """The call's model= wins, then the constructor's, then the step's, then the default."""
        llm = ScriptedModel(["a"], cycle=True)
        pinned = ScriptedModel(["a"], model="scripted-pro", cycle=True)

        @step(model="from-step")
        def work() -> list[str]:
            return [
                llm.complete("p", model="from-call").model,
                pinned.complete("p").model,
                llm.complete("p").model,
            ]

        assert work() == ["from-call", "scripted-pro", "from-step"]
        assert llm.complete("p").model == DEFAULT_MODEL

    def test_unknown_model_is_priced_by_agentsteps(self) -> None:
        """A model missing from the table is priced like any call (register_price)."""
        agentsteps.register_price("house-model", input_per_mtok=1.0, output_per_mtok=2.0)
        llm = ScriptedModel(["abcd"], model="house-model")

        @step
        def work() -> Reply:
            return llm.complete("abcd")

        with agentsteps.run() as r:
            reply = work()
        assert reply.cost_usd is None
        assert r.total.cost_nano_usd == (5 * 1.0 + 1 * 2.0) * 1000

    def test_dollar_budgets_know_the_table_prices(self, caplog: pytest.LogCaptureFixture) -> None:
        """The pre-flight check of a max_usd budget prices scripted models from the table:
        a call it cannot afford is refused, and no model is reported as unpriced."""
        llm = ScriptedModel(["x" * 4_000], cycle=True)

        @step(model="scripted-pro", budget=Budget(max_usd=0.02))
        def work() -> None:
            llm.complete("p" * 4_000)  # 1,004 in, 1,000 out: $0.018
            llm.complete("p" * 4_000)  # $0.002 left does not pay for the input

        with pytest.raises(StepBudgetExhausted, match="refused a model call before making it"):
            work()
        assert "No price known" not in caplog.text
        assert len(llm.calls) == 1

    def test_custom_price_table(self) -> None:
        """prices= replaces the default table."""
        llm = ScriptedModel(
            ["abcd"], model="m", prices={"m": agentsteps.Price(input_per_mtok=1, output_per_mtok=1)}
        )
        assert llm.complete("abcd").cost_usd == 6 / 1e6
        assert set(DEFAULT_PRICES) == {"scripted-mini", "scripted-pro"}

    def test_function_of_the_prompt(self) -> None:
        """A function gets the last message's content and returns the reply."""
        llm = ScriptedModel(lambda prompt: prompt.upper(), system="be loud")
        assert llm.complete("hi").text == "HI"
        assert (
            llm.complete([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]).text
            == "B"
        )
        assert [m["role"] for m in llm.calls[1].messages] == ["system", "user", "user"]
        assert llm.prompts == ["hi", "b"]

    def test_script_exhausted(self) -> None:
        """Asking for more replies than the script has is an assertion failure that says why."""
        llm = ScriptedModel(["only one"])
        llm.complete("a")
        with pytest.raises(
            ScriptExhausted,
            match=re.escape(
                "ScriptedModel: call 2 asked for a reply but the script has 1; "
                "add replies, pass a function, or cycle=True"
            ),
        ):
            llm.complete("b")
        assert isinstance(ScriptExhausted("x"), AssertionError)

    def test_cycle(self) -> None:
        """cycle=True starts the list over."""
        llm = ScriptedModel(["a", "b"], cycle=True)
        assert [llm.complete("p").text for _ in range(5)] == ["a", "b", "a", "b", "a"]

    def test_reset(self) -> None:
        """reset() forgets calls and starts the script over."""
        llm = ScriptedModel(["a", "b"])
        llm.complete("p")
        llm.reset()
        assert llm.calls == []
        assert llm.complete("p").text == "a"

    def test_max_output_tokens_cuts_the_reply(self) -> None:
        """A reply longer than max_output_tokens is cut, with finish_reason 'length'."""
        reply = ScriptedModel(["x" * 100]).complete("p", max_output_tokens=5)
        assert (reply.text, reply.output_tokens, reply.finish_reason) == ("x" * 20, 5, "length")

    def test_refused_before_the_call_when_nothing_is_left(self) -> None:
        """A step with no budget left refuses the call before the script is consumed."""
        llm = ScriptedModel(["x" * 40, "never"])

        @step(budget=Budget(max_llm_calls=1))
        def work() -> None:
            llm.complete("p")
            llm.complete("p")

        with pytest.raises(StepBudgetExhausted, match="refused a model call before making it"):
            work()
        assert llm.prompts == ["p"]

    def test_budget_exhaustion_is_raised(self) -> None:
        """A call that takes a step over budget raises, exactly as a real client's usage would."""
        llm = ScriptedModel(["x" * 400])

        @step(budget=Budget(max_tokens=50))
        def work() -> None:
            llm.complete("p")

        with pytest.raises(StepBudgetExhausted, match=re.escape("(105 > 50 tokens)")):
            work()


class TestErrors:
    """Simulated provider errors."""

    def test_exception_in_the_script_is_raised(self) -> None:
        """An exception instance in the list is raised by the call that reaches it."""
        boom = ConnectionError("503 upstream")
        llm = ScriptedModel(["ok", boom, "after"])

        @step
        def work() -> list[str]:
            out = [llm.complete("1").text]
            with pytest.raises(ConnectionError, match="503 upstream"):
                llm.complete("2")
            out.append(llm.complete("3").text)
            return out

        with agentsteps.run() as r:
            assert work() == ["ok", "after"]
        assert r.total.llm_calls == 2  # the failed call is charged nothing
        assert llm.calls[1].error is boom
        assert llm.calls[1].reply is None

    def test_exception_class_in_the_script(self) -> None:
        """An exception class is raised with a message naming the prompt."""
        llm = ScriptedModel([TimeoutError])
        with pytest.raises(
            TimeoutError, match=re.escape("simulated by ScriptedModel for prompt 'hi'")
        ):
            llm.complete("hi")

    def test_raising_function(self) -> None:
        """A responder function may raise; the call fails the same way."""

        def responder(prompt: str) -> str:
            raise PermissionError(prompt)

        with pytest.raises(PermissionError, match="nope"):
            ScriptedModel(responder).complete("nope")

    def test_bad_reply_type(self) -> None:
        """A function returning a non-string is a TypeError naming the value."""
        llm = ScriptedModel(lambda p: 42)  # type: ignore[arg-type,return-value]
        with pytest.raises(
            TypeError, match=re.escape("ScriptedModel: a reply must be a str (got 42 for 'p')")
        ):
            llm.complete("p")

    @pytest.mark.parametrize(
        ("kwargs", "error", "message"),
        [
            (
                {"replies": "hello"},
                TypeError,
                "ScriptedModel(): 'replies' must be a list of replies or a function of the prompt "
                "(got 'hello' of type str); for one reply, write ScriptedModel(['hello'])",
            ),
            (
                {"replies": [], "latency": -1},
                ValueError,
                "ScriptedModel(): 'latency' must be a finite number >= 0 (got -1)",
            ),
            (
                {"replies": [], "latency": "1s"},
                TypeError,
                "ScriptedModel(): 'latency' must be a number of seconds (got '1s')",
            ),
        ],
    )
    def test_bad_arguments(
        self, kwargs: dict[str, object], error: type[Exception], message: str
    ) -> None:
        """Constructor mistakes name the argument, the rule and the value."""
        with pytest.raises(error, match=re.escape(message)):
            ScriptedModel(**kwargs)  # type: ignore[arg-type]

    def test_bad_prompt(self) -> None:
        """A prompt that is neither a str nor a list of messages is a TypeError."""
        with pytest.raises(TypeError, match=re.escape("'prompt' must be a str or a list of")):
            ScriptedModel(["a"]).complete([{"role": "user"}])  # type: ignore[list-item]


class TestPromptCache:
    """Simulated prompt caching."""

    def test_repeated_prefix_is_read_from_cache(self) -> None:
        """The longest run of leading messages sent before counts as cache reads, priced lower."""
        llm = ScriptedModel(["a"], system="s" * 40, prompt_cache=True, cycle=True)
        first = llm.complete("question one")
        second = llm.complete("question two")
        third = llm.complete("question two")
        assert first.cache_read_tokens == 0
        assert second.cache_read_tokens == 10 + 4  # the system message
        assert third.cache_read_tokens == third.input_tokens  # the whole prompt, again
        assert second.cost_usd is not None and first.cost_usd is not None
        assert second.cost_usd < first.cost_usd

    def test_cache_is_per_model_and_off_by_default(self) -> None:
        """Another model has its own cache; without prompt_cache nothing is cached."""
        llm = ScriptedModel(["a"], system="s" * 40, prompt_cache=True, cycle=True)
        llm.complete("q", model="scripted-mini")
        assert llm.complete("q", model="scripted-pro").cache_read_tokens == 0
        plain = ScriptedModel(["a"], system="s" * 40, cycle=True)
        plain.complete("q")
        assert plain.complete("q").cache_read_tokens == 0

    def test_cached_tokens_reach_the_step(self) -> None:
        """The step's usage shows the cached part of its input."""
        llm = ScriptedModel(["a"], system="s" * 40, prompt_cache=True, cycle=True)

        @step
        def work() -> None:
            llm.complete("q1")
            llm.complete("q2")

        with agentsteps.run() as r:
            work()
        assert r.total.cache_read_tokens == 14


class TestStream:
    """stream() and astream()."""

    def test_chunks_join_to_the_reply_and_charge_at_the_end(self) -> None:
        """Chunks are words with their spacing; the call is charged once the stream ends."""
        llm = ScriptedModel(["Hello there,  general   Kenobi"])

        @step
        def work() -> tuple[list[str], int]:
            stream = llm.stream("p")
            chunks = list(stream)
            assert stream.reply is not None
            return chunks, stream.reply.output_tokens

        with agentsteps.run() as r:
            chunks, tokens = work()
        assert chunks == ["Hello ", "there,  ", "general   ", "Kenobi"]
        assert tokens == estimate_tokens("Hello there,  general   Kenobi")
        assert r.total.output_tokens == tokens
        assert r.total.llm_calls == 1

    def test_closing_early_charges_what_was_delivered(self) -> None:
        """Leaving a with block early charges the chunks delivered so far."""
        llm = ScriptedModel(["one two three four"])

        @step
        def work() -> str:
            with llm.stream("p") as stream:
                for chunk in stream:
                    if chunk.startswith("two"):
                        break
            return stream.text

        with agentsteps.run() as r:
            assert work() == "one two "
        assert r.total.output_tokens == estimate_tokens("one two ")

    def test_a_stream_never_started_charges_nothing(self) -> None:
        """Closing a stream before the first chunk makes no call."""
        llm = ScriptedModel(["a"])
        llm.stream("p").close()
        assert llm.calls == []

    def test_budget_cuts_a_stream_mid_answer(self) -> None:
        """Chunks are charged before they are handed on: the one crossing the budget is not
        delivered, and a generator step under "continue" ends quietly."""
        llm = ScriptedModel(["word " * 10], cycle=True)

        @step(budget=Budget(max_tokens=30), error_boundary="continue")
        def notes() -> Iterator[str]:
            for _ in range(10):
                yield from llm.stream("next note")

        with agentsteps.run() as r:
            chunks = list(notes())
        # A stream is 7 input + 13 output tokens. The second one reaches 30 tokens with
        # its 2nd chunk (7 + 3); its 3rd would make 31.
        assert len(chunks) == 10 + 2
        (record,) = r.steps
        assert record.status is agentsteps.StepStatus.SKIPPED
        assert record.subtree_usage.total_tokens == 31
        assert [c.reply is not None for c in llm.calls] == [True, True]

    def test_a_spent_budget_refuses_the_next_stream(self) -> None:
        """A stream is refused before it starts when the budget has nothing left."""
        llm = ScriptedModel(["word " * 10], cycle=True)

        @step(budget=Budget(max_tokens=60), error_boundary="continue")
        def notes() -> Iterator[str]:
            for _ in range(10):
                yield from llm.stream("next note")

        with agentsteps.run() as r:
            chunks = list(notes())
        assert len(chunks) == 3 * 10  # 3 streams of 20 tokens used all 60
        assert len(llm.calls) == 3  # the 4th call was never made
        assert r.steps[0].subtree_usage.total_tokens == 60

    def test_async_stream(self) -> None:
        """astream() is iterated with async for, and charged like stream()."""
        llm = ScriptedModel(["a b c"])

        @step
        async def work() -> list[str]:
            return [chunk async for chunk in llm.astream("p")]

        with agentsteps.run() as r:
            assert asyncio.run(work()) == ["a ", "b ", "c"]
        assert r.total.llm_calls == 1

    def test_async_stream_closed_early(self) -> None:
        """async with closes the stream and charges the delivered part."""
        llm = ScriptedModel(["a b c d"])

        @step
        async def work() -> None:
            async with llm.astream("p") as stream:
                async for _ in stream:
                    break

        with agentsteps.run() as r:
            asyncio.run(work())
        assert r.total.output_tokens == 1

    def test_wrong_loop_kind(self) -> None:
        """A sync stream in async for (or the reverse) says which loop to use."""
        llm = ScriptedModel(["a"], cycle=True)
        with pytest.raises(
            TypeError,
            match=re.escape("this stream came from astream(): iterate it with 'async for'"),
        ):
            next(llm.astream("p"))

        async def wrong() -> None:
            async for _ in llm.stream("p"):
                pass

        with pytest.raises(
            TypeError, match=re.escape("this stream came from stream(): iterate it with 'for'")
        ):
            asyncio.run(wrong())


class TestLatency:
    """Simulated latency (off by default)."""

    def test_sync_calls_sleep(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """complete() and stream() wait `latency` seconds with time.sleep."""
        slept: list[float] = []
        monkeypatch.setattr("time.sleep", slept.append)
        llm = ScriptedModel(["a b"], latency=0.25, cycle=True)
        llm.complete("p")
        list(llm.stream("p"))
        assert slept == [0.25, 0.25]
        ScriptedModel(["a"]).complete("p")
        assert slept == [0.25, 0.25]  # off by default

    def test_async_calls_await(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """acomplete() waits with asyncio.sleep, so concurrent calls overlap."""
        slept: list[float] = []
        real_sleep = asyncio.sleep

        async def fake_sleep(seconds: float) -> None:
            slept.append(seconds)
            await real_sleep(0)

        monkeypatch.setattr("asyncio.sleep", fake_sleep)
        llm = ScriptedModel(["a"], latency=0.5, cycle=True)

        async def both() -> list[Reply]:
            return list(await asyncio.gather(llm.acomplete("1"), llm.acomplete("2")))

        assert [r.text for r in asyncio.run(both())] == ["a", "a"]
        assert slept == [0.5, 0.5]


class TestTracing:
    """The usage lands on spans like a real client's."""

    def test_usage_on_the_step_span(self, spans: Spans) -> None:
        """The step's span carries the tokens, cached tokens and cost of the scripted calls."""
        llm = ScriptedModel(["abcd"], system="s" * 8, prompt_cache=True, cycle=True)

        @persona(name="author")
        @step(model="scripted-mini", name="draft")
        def draft() -> None:
            llm.complete("q")
            llm.complete("q2")

        draft()
        attributes = spans.step("draft").attributes
        assert attributes["agentsteps.usage.self.input_tokens"] == 2 * (2 + 4 + 1 + 4)
        assert attributes["agentsteps.usage.self.cache_read_tokens"] == 6
        assert attributes["agentsteps.usage.self.llm_calls"] == 2
        assert attributes["gen_ai.response.model"] == "scripted-mini"

    def test_each_call_is_an_llm_call_span(self, spans: Spans) -> None:
        """Calls go through llm_call: a CLIENT span per call, under the step's span."""
        llm = ScriptedModel(["abcd", "efgh"], provider="scripted")

        @step(name="draft", model="scripted-pro")
        def draft() -> None:
            llm.complete("q")
            list(llm.stream("q"))

        draft()
        step_span = spans.step("draft")
        calls = [s for s in spans.all if s.name == "chat scripted-pro"]
        assert len(calls) == 2
        for call in calls:
            assert call.kind is SpanKind.CLIENT
            assert call.parent is not None
            assert call.parent.span_id == step_span.context.span_id
            assert call.attributes["gen_ai.provider.name"] == "scripted"
            assert call.attributes["gen_ai.usage.input_tokens"] == 5
            assert call.attributes["gen_ai.usage.output_tokens"] == 1
            assert call.attributes["agentsteps.usage.cost_source"] == "provider"
            assert call.attributes["agentsteps.usage.cost_usd"] == pytest.approx(30e-6)

    def test_a_failed_call_is_an_error_span(self, spans: Spans) -> None:
        """A simulated provider error ends its call span with an error status."""
        llm = ScriptedModel([ConnectionError("503")])

        @step
        def draft() -> None:
            with pytest.raises(ConnectionError):
                llm.complete("q")

        draft()
        (call,) = [s for s in spans.all if s.name.startswith("chat ")]
        assert call.status.description == "ConnectionError: 503"


def _python_blocks(markdown: str) -> list[str]:
    return re.findall(r"```python\n(.*?)\s*```", markdown, flags=re.S)


@pytest.mark.parametrize("index", range(3))
def test_docs_examples_run(index: int) -> None:
    """The code in docs/testing.md runs, and the tests it shows pass."""
    docs = DOCS / "testing.md"
    blocks = _python_blocks(docs.read_text(encoding="utf-8"))
    assert len(blocks) == 3
    namespace: dict[str, object] = {"__name__": "docs_testing"}
    code = compile(textwrap.dedent(blocks[index]), f"docs/testing.md block {index + 1}", "exec")
    exec(code, namespace)
    for name, value in namespace.items():
        if name.startswith("test_") and callable(value):
            value()
