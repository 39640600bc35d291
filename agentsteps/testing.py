"""
An offline chat model for examples and tests: scripted replies, realistic usage, no network.

`ScriptedModel` answers from a list of replies (or a function of the prompt) and makes
each call through `llm_call`, exactly as a real client's call goes: checked against the
budget before it is made, traced as a model-call span, charged to the active step with
token counts from a documented estimate and a cost from a price table. It can simulate a
prompt cache, a streamed answer, latency and errors, and it keeps every call for your
assertions::

    >>> from agentsteps import Budget, run, step
    >>> from agentsteps.testing import ScriptedModel
    >>> llm = ScriptedModel(["LGTM, ship it."])
    >>> @step(model="scripted-mini", budget=Budget(max_tokens=1_000))
    ... def review(diff):
    ...     return llm.complete(f"Review this diff:\\n{diff}").text
    >>> with run() as r:
    ...     review("+ print('hello')")
    'LGTM, ship it.'
    >>> r.total.input_tokens, r.total.output_tokens, r.total.cost_usd
    (13, 4, 8.25e-06)
    >>> llm.prompts
    ["Review this diff:\\n+ print('hello')"]

The token estimate is deterministic, so tests can assert exact numbers:

- a text counts ``ceil(len(text.encode("utf-8")) / 4)`` tokens (`estimate_tokens`): about
  what GPT and Claude tokenizers give for English, and never zero for non-empty text;
- a prompt counts each message's content that way plus `MESSAGE_OVERHEAD_TOKENS` (4) for
  the message's role and framing (`count_prompt_tokens`);
- a reply counts its text (no overhead).
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from types import MappingProxyType, TracebackType
from typing import cast

import attrs

from ._accounting import pricing as _pricing
from ._accounting.budget import NANOS_PER_USD
from ._accounting.rates import Price
from ._core.context import current_model
from ._core.locks import new_lock
from ._llm.call import LLMCall, llm_call

__all__ = [
    "DEFAULT_MODEL",
    "DEFAULT_PRICES",
    "MESSAGE_OVERHEAD_TOKENS",
    "Reply",
    "ScriptExhausted",
    "ScriptedCall",
    "ScriptedModel",
    "ScriptedStream",
    "count_prompt_tokens",
    "estimate_tokens",
]

MESSAGE_OVERHEAD_TOKENS = 4
"""Tokens counted per prompt message on top of its content (role and framing)."""

_BYTES_PER_TOKEN = 4

DEFAULT_MODEL = "scripted-mini"
"""The model a `ScriptedModel` reports when neither the call nor the step names one."""

DEFAULT_PRICES: Mapping[str, Price] = MappingProxyType(
    {
        # Made-up models at the price points of today's small and large models, with the
        # usual 90% discount on cached input, so examples show realistic dollar figures.
        "scripted-mini": Price(
            input_per_mtok=0.25, output_per_mtok=1.25, cache_read_per_mtok=0.025
        ),
        "scripted-pro": Price(input_per_mtok=3.0, output_per_mtok=15.0, cache_read_per_mtok=0.3),
    }
)
"""Prices of the two made-up models examples use, in US dollars per million tokens."""

Message = Mapping[str, str]
"""A chat message: ``{"role": "user", "content": "..."}``."""
Prompt = str | Sequence[Message]
"""A plain string (one user message) or a list of chat messages."""
ScriptItem = str | BaseException | type[BaseException]
Responder = Callable[[str], str]


def estimate_tokens(text: str) -> int:
    """
    Tokens in ``text`` by the offline estimate: ``ceil(utf-8 bytes / 4)``.

    Example:
        >>> estimate_tokens(""), estimate_tokens("hi"), estimate_tokens("hello world")
        (0, 1, 3)
    """
    return math.ceil(len(text.encode("utf-8")) / _BYTES_PER_TOKEN)


def count_prompt_tokens(messages: Sequence[Message]) -> int:
    """
    Input tokens of a prompt: each message's content plus `MESSAGE_OVERHEAD_TOKENS`.

    Example:
        >>> count_prompt_tokens([{"role": "system", "content": "Be brief."},
        ...                      {"role": "user", "content": "Hi"}])
        12
    """
    return sum(estimate_tokens(m["content"]) + MESSAGE_OVERHEAD_TOKENS for m in messages)


class ScriptExhausted(AssertionError):
    """
    A `ScriptedModel` was called more times than its script has replies.

    An `AssertionError`: in a test it means the code under test made more model calls
    than the test expected.
    """


@attrs.frozen
class Reply:
    """What a `ScriptedModel` call answered, with the usage it was charged."""

    text: str
    """The reply's text."""
    model: str
    """The model that answered."""
    input_tokens: int
    """Prompt tokens, cached ones included."""
    output_tokens: int
    """Reply tokens."""
    cache_read_tokens: int
    """Prompt tokens served from the simulated prompt cache."""
    cost_usd: float | None
    """The call's cost from the price table; ``None`` when the model is not in it (the
    call is then priced like any other, from `register_price` or the catalog)."""
    finish_reason: str = "stop"
    """``"stop"``, or ``"length"`` when ``max_output_tokens`` cut the reply short."""

    def __str__(self) -> str:
        return self.text


@attrs.frozen
class ScriptedCall:
    """One call a `ScriptedModel` received: what was asked and how it went."""

    index: int
    """1 for the model's first call, 2 for the next, ..."""
    model: str
    """The model the call asked for."""
    messages: tuple[Message, ...]
    """The prompt as chat messages, the model's ``system`` message first if it has one."""
    reply: Reply | None
    """The answer, or ``None`` when the call raised."""
    error: BaseException | None
    """The exception the script raised for this call, if any."""

    @property
    def prompt(self) -> str:
        """The content of the last message: what a plain-string prompt said."""
        return self.messages[-1]["content"] if self.messages else ""


class ScriptedModel:
    """
    A deterministic chat model: replies from a script, usage charged like a real client's.

    Each call opens an `llm_call` (so a step whose budget has nothing left refuses it
    before the script is consumed, and the call has its own span), takes the next reply
    from ``replies`` (or asks ``replies(prompt)`` when it is a function), counts tokens
    with `estimate_tokens`, prices them from ``prices`` and reports them with
    `LLMCall.record`, so budgets, boundaries, spans and reports behave as with a real
    model. Outside any step nothing is charged (as with `record_usage`).

    Args:
        replies: A list of replies, used in order, or a function from the prompt (the last
            message's content) to the reply. A list item that is an exception (instance or
            class) is raised by the call that reaches it, to simulate provider errors; a
            raising function does the same. A failed call is charged nothing.
        model: The model every call uses. By default a call uses the model of the step it
            runs in (`current_model`), else `DEFAULT_MODEL`; ``model=`` on a call wins.
        system: A system message put before every prompt.
        prices: Price per model (`Price`); defaults to `DEFAULT_PRICES`. A model of the
            table is registered with `register_price` when a call first uses it, so that
            the pre-flight check of a ``max_usd`` budget knows its price (the
            registration is process-wide; `reset_defaults` clears it). A model not in the
            table is priced by agentsteps' own pricing (`register_price`, the catalog).
        provider: Reported as the call's provider.
        prompt_cache: Simulate a provider's prompt cache: the longest run of leading
            messages already sent in an earlier call to the same model is counted as
            ``cache_read_tokens`` (and priced at the cache-read rate).
        latency: Seconds each call waits before answering (``time.sleep``, or
            ``asyncio.sleep`` in the async forms). Off by default.
        cycle: Start the list over when it runs out, instead of raising `ScriptExhausted`.

    Raises:
        TypeError, ValueError: A bad argument (the message names it).

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        replies: Sequence[ScriptItem] | Responder,
        *,
        model: str | None = None,
        system: str | None = None,
        prices: Mapping[str, Price] | None = None,
        provider: str = "scripted",
        prompt_cache: bool = False,
        latency: float = 0.0,
        cycle: bool = False,
    ) -> None:
        if isinstance(replies, str) or not (callable(replies) or isinstance(replies, Sequence)):
            msg = (
                "ScriptedModel(): 'replies' must be a list of replies or a function of the "
                f"prompt (got {replies!r} of type {type(replies).__name__}); for one reply, "
                f"write ScriptedModel([{replies!r}])"
            )
            raise TypeError(msg)
        if isinstance(latency, bool) or not isinstance(latency, (int, float)):
            msg = f"ScriptedModel(): 'latency' must be a number of seconds (got {latency!r})"
            raise TypeError(msg)
        if not (latency >= 0 and math.isfinite(latency)):
            msg = f"ScriptedModel(): 'latency' must be a finite number >= 0 (got {latency!r})"
            raise ValueError(msg)
        self._replies: Sequence[ScriptItem] | Responder = (
            replies if callable(replies) else tuple(replies)
        )
        self.model = model
        """The model every call uses, or ``None`` to use the step's."""
        self.system = system
        """The system message put before every prompt, if any."""
        self.prices: Mapping[str, Price] = DEFAULT_PRICES if prices is None else prices
        """Price per model, in US dollars per million tokens."""
        self.provider = provider
        """The provider name calls report."""
        self.prompt_cache = prompt_cache
        """Whether repeated leading messages count as cache reads."""
        self.latency = float(latency)
        """Seconds each call waits before answering."""
        self.cycle = cycle
        """Whether the script starts over when it runs out."""
        self._lock = new_lock()  # re-entrant, fork-safe: see _core/locks.py
        self._calls: list[ScriptedCall] = []
        self._next = 0
        self._cached: dict[str, set[tuple[tuple[str, str], ...]]] = {}

    @property
    def calls(self) -> list[ScriptedCall]:
        """Every call so far, in order (a copy)."""
        with self._lock:
            return list(self._calls)

    @property
    def prompts(self) -> list[str]:
        """The last message of every call so far: what plain-string prompts said."""
        return [c.prompt for c in self.calls]

    def reset(self) -> None:
        """Forget the calls and the prompt cache, and start the script over."""
        with self._lock:
            self._calls.clear()
            self._next = 0
            self._cached.clear()

    # -- calling ---------------------------------------------------------------------

    def complete(
        self, prompt: Prompt, *, model: str | None = None, max_output_tokens: int | None = None
    ) -> Reply:
        """
        Answer ``prompt`` in one model call, charged to the active step.

        Args:
            prompt: A string (one user message) or a list of chat messages.
            model: The model to use for this call.
            max_output_tokens: Cut the reply to this many tokens (``finish_reason``
                ``"length"``), as a real model's ``max_tokens`` does.

        Raises:
            StepBudgetExhausted: A budget had nothing left for the call (refused before
                it was made), or the call took a step over its budget (it is charged).
            ScriptExhausted: The script has no reply left.
            Exception: Whatever the script says this call raises.
        """
        messages, model = self._prepare(prompt, model)
        with self._call(messages, model, max_output_tokens) as call:
            if self.latency:
                time.sleep(self.latency)
            reply = self._answer(messages, model, max_output_tokens)
            _record(call, reply)
        return reply

    async def acomplete(
        self, prompt: Prompt, *, model: str | None = None, max_output_tokens: int | None = None
    ) -> Reply:
        """The async form of `complete` (its latency is an ``asyncio.sleep``)."""
        messages, model = self._prepare(prompt, model)
        async with self._call(messages, model, max_output_tokens) as call:
            if self.latency:
                await asyncio.sleep(self.latency)
            reply = self._answer(messages, model, max_output_tokens)
            _record(call, reply)
        return reply

    def stream(
        self, prompt: Prompt, *, model: str | None = None, max_output_tokens: int | None = None
    ) -> ScriptedStream:
        """
        Answer ``prompt`` as a stream of text chunks (a word and the space after it).

        The call opens when the first chunk is asked for. Each chunk is charged before
        it is handed on (the input with the first one), so a budget that runs out raises
        `StepBudgetExhausted` from the loop at the chunk that crossed it, which is not
        delivered. Closing the stream early (``close()``, leaving a ``with`` block) ends
        the call charged for what was delivered. The reply's text is ``"".join`` of the
        chunks.
        """
        messages, model = self._prepare(prompt, model)
        return ScriptedStream(self, messages, model, max_output_tokens)

    def astream(
        self, prompt: Prompt, *, model: str | None = None, max_output_tokens: int | None = None
    ) -> ScriptedStream:
        """The async form of `stream`: use it with ``async for`` (and ``async with``)."""
        messages, model = self._prepare(prompt, model)
        return ScriptedStream(self, messages, model, max_output_tokens, is_async=True)

    # -- internals -------------------------------------------------------------------

    def _prepare(self, prompt: Prompt, model: str | None) -> tuple[tuple[Message, ...], str]:
        if isinstance(prompt, str):
            messages: list[Message] = [{"role": "user", "content": prompt}]
        elif isinstance(prompt, Sequence) and all(_is_message(m) for m in prompt):
            given = cast("Sequence[Message]", prompt)
            messages = [{"role": m["role"], "content": m["content"]} for m in given]
        else:
            msg = (
                "ScriptedModel: 'prompt' must be a str or a list of {'role': ..., 'content': "
                f"...}} messages with str values (got {prompt!r})"
            )
            raise TypeError(msg)
        if self.system is not None:
            messages.insert(0, {"role": "system", "content": self.system})
        return tuple(messages), model or self.model or current_model() or DEFAULT_MODEL

    def _answer(
        self, messages: tuple[Message, ...], model: str, max_output_tokens: int | None
    ) -> Reply:
        with self._lock:
            index = len(self._calls) + 1
            try:
                text = self._script_reply(messages[-1]["content"] if messages else "")
            except BaseException as exc:
                self._calls.append(ScriptedCall(index, model, messages, None, exc))
                raise
            cached = self._cache_hit(model, messages)
            finish = "stop"
            if max_output_tokens is not None and estimate_tokens(text) > max_output_tokens:
                text = _truncate(text, max_output_tokens)
                finish = "length"
            reply = self._reply(text, model, count_prompt_tokens(messages), cached, finish)
            self._calls.append(ScriptedCall(index, model, messages, reply, None))
        return reply

    def _script_reply(self, prompt: str) -> str:
        """The next reply (caller holds the lock); raises what the script says to raise."""
        replies = self._replies
        if callable(replies):
            item: object = replies(prompt)
        else:
            if self._next >= len(replies):
                if not (self.cycle and replies):
                    msg = (
                        f"ScriptedModel: call {self._next + 1} asked for a reply but the "
                        f"script has {len(replies)}; add replies, pass a function, or "
                        "cycle=True"
                    )
                    raise ScriptExhausted(msg)
                self._next = 0
            item = replies[self._next]
            self._next += 1
        if isinstance(item, BaseException):
            raise item
        if isinstance(item, type) and issubclass(item, BaseException):
            msg = f"simulated by ScriptedModel for prompt {prompt[:40]!r}"
            raise item(msg)
        if not isinstance(item, str):
            msg = f"ScriptedModel: a reply must be a str (got {item!r} for {prompt[:40]!r})"
            raise TypeError(msg)
        return item

    def _cache_hit(self, model: str, messages: tuple[Message, ...]) -> int:
        """Tokens of the longest message prefix sent before (caller holds the lock)."""
        if not self.prompt_cache:
            return 0
        seen = self._cached.setdefault(model, set())
        key = tuple((m["role"], m["content"]) for m in messages)
        hit = 0
        for n in range(len(key), 0, -1):
            if key[:n] in seen:
                hit = count_prompt_tokens(messages[:n])
                break
        seen.update(key[:n] for n in range(1, len(key) + 1))
        return hit

    def _reply(self, text: str, model: str, inp: int, cached: int, finish: str) -> Reply:
        out = estimate_tokens(text)
        price = self.prices.get(model)
        cost = None
        if price is not None:
            usd_per_mtok = (
                (inp - cached) * price.input_per_mtok
                + cached * price.cache_read_per_mtok
                + out * price.output_per_mtok
            )
            cost = round(usd_per_mtok * 1000) / NANOS_PER_USD  # exact to the nano-dollar
        return Reply(text, model, inp, out, cached, cost, finish)

    def _call(
        self, messages: tuple[Message, ...], model: str, max_output_tokens: int | None
    ) -> LLMCall:
        # The same scope a real client's call goes through: the budget is checked before
        # the call (a step with nothing left is refused and the script not consumed), the
        # call gets its own span, and its usage is charged to every enclosing step.
        price = self.prices.get(model)
        if price is not None and _pricing._user_prices.get(model) != price:
            # The pre-flight check of a max_usd budget prices the call with agentsteps'
            # own prices: make the table's price one of them.
            _pricing.register_price(model, **attrs.asdict(price))
        return llm_call(
            model,
            self.provider,
            input_tokens=count_prompt_tokens(messages),
            max_output_tokens=max_output_tokens,
        )

    def __repr__(self) -> str:
        return f"<ScriptedModel model={self.model!r} calls={len(self._calls)}>"


def _record(call: LLMCall, reply: Reply) -> None:
    """Report a reply's usage to its call, as a client reports what the provider said."""
    call.record(
        reply.input_tokens,
        reply.output_tokens,
        cache_read_tokens=reply.cache_read_tokens,
        cost_usd=reply.cost_usd,
        response_model=reply.model,
    )


def _is_message(value: object) -> bool:
    return (
        isinstance(value, Mapping)
        and isinstance(value.get("role"), str)
        and isinstance(value.get("content"), str)
    )


def _truncate(text: str, tokens: int) -> str:
    data = text.encode("utf-8")[: tokens * _BYTES_PER_TOKEN]
    return data.decode("utf-8", errors="ignore")


_CHUNK = re.compile(r"\s*\S+\s*|\s+")


class ScriptedStream(Iterator[str], AsyncIterator[str]):
    """
    A streamed `ScriptedModel` answer: iterate for text chunks; ``reply`` once it ended.

    From `ScriptedModel.stream` iterate it with ``for`` (and ``with``); from
    `ScriptedModel.astream` with ``async for`` (and ``async with``). The call opens with
    the first chunk asked for, and each chunk is charged before it is handed on, so a
    budget stops the stream at the chunk that crosses it (that chunk is not delivered).
    Leaving the block early closes the stream, charged what was delivered.
    """

    def __init__(
        self,
        model: ScriptedModel,
        messages: tuple[Message, ...],
        model_name: str,
        max_output_tokens: int | None,
        *,
        is_async: bool = False,
    ) -> None:
        self._model = model
        self._messages = messages
        self._model_name = model_name
        self._max = max_output_tokens
        self._async = is_async
        self._call: LLMCall | None = None
        self._chunks: list[str] | None = None
        self._full: Reply | None = None
        self._delivered: list[str] = []
        self.reply: Reply | None = None
        """The answer as charged, once the stream ended (``None`` before)."""

    @property
    def text(self) -> str:
        """The text delivered so far."""
        return "".join(self._delivered)

    def _open(self) -> None:
        """Open the call (pre-flight budget check) and get the scripted answer."""
        call = self._model._call(self._messages, self._model_name, self._max)
        call.__enter__()
        self._call = call
        try:
            self._full = self._model._answer(self._messages, self._model_name, self._max)
        except BaseException as exc:
            self._end(exc)
            raise
        self._chunks = _CHUNK.findall(self._full.text)

    def _next_chunk(self) -> str | None:
        if self.reply is not None:
            return None
        if self._chunks is None:
            self._open()
        chunks, call, full = self._chunks, self._call, self._full
        assert chunks is not None
        assert call is not None
        assert full is not None
        if len(self._delivered) == len(chunks):
            if not chunks:
                _record(call, full)
            self._end(None)
            return None
        chunk = chunks[len(self._delivered)]
        # Charge the answer so far, this chunk included, before handing the chunk on.
        so_far = self._partial(self.text + chunk)
        try:
            _record(call, so_far)
        except BaseException as exc:
            self._end(exc)
            raise
        self._delivered.append(chunk)
        return chunk

    def _partial(self, text: str) -> Reply:
        full = self._full
        assert full is not None
        if text == full.text:
            return full
        return self._model._reply(
            text, full.model, full.input_tokens, full.cache_read_tokens, full.finish_reason
        )

    def _end(self, exc: BaseException | None) -> None:
        call, self._call = self._call, None
        self.reply = self._partial(self.text) if self._full is not None else None
        if call is not None:
            call.__exit__(None if exc is None else type(exc), exc, None)

    def __iter__(self) -> ScriptedStream:
        return self

    def __next__(self) -> str:
        if self._async:
            msg = "this stream came from astream(): iterate it with 'async for'"
            raise TypeError(msg)
        if self._chunks is None and self.reply is None and self._model.latency:
            time.sleep(self._model.latency)
        chunk = self._next_chunk()
        if chunk is None:
            raise StopIteration
        return chunk

    def __aiter__(self) -> ScriptedStream:
        return self

    async def __anext__(self) -> str:
        if not self._async:
            msg = "this stream came from stream(): iterate it with 'for'"
            raise TypeError(msg)
        if self._chunks is None and self.reply is None and self._model.latency:
            await asyncio.sleep(self._model.latency)
        else:
            await asyncio.sleep(0)  # let other tasks run between chunks, like a network
        chunk = self._next_chunk()
        if chunk is None:
            raise StopAsyncIteration
        return chunk

    def close(self) -> None:
        """Stop early: the call ends charged for the chunks delivered so far."""
        if self._call is not None:
            self._end(None)

    async def aclose(self) -> None:
        """The async form of `close`."""
        self.close()

    def __enter__(self) -> ScriptedStream:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> ScriptedStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
