"""`ScriptedModel`: the scripted chat model, its calls and its simulated prompt cache."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Mapping, Sequence
from typing import cast

import attrs

from .._accounting import registrations as _registrations
from .._accounting.rates import Price
from .._core.context import current_model
from .._core.locks import new_lock
from .._llm.call import LLMCall, llm_call
from .replies import (
    DEFAULT_MODEL,
    DEFAULT_PRICES,
    Reply,
    ScriptedCall,
    ScriptExhausted,
    price_reply,
    record_reply,
)
from .stream import ScriptedStream
from .tokens import (
    Message,
    Prompt,
    Responder,
    ScriptItem,
    count_prompt_tokens,
    estimate_tokens,
    is_message,
    truncate,
)

__all__ = ["ScriptedModel"]


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
            record_reply(call, reply)
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
            record_reply(call, reply)
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
        elif isinstance(prompt, Sequence) and all(is_message(m) for m in prompt):
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
                text = truncate(text, max_output_tokens)
                finish = "length"
            inp = count_prompt_tokens(messages)
            reply = price_reply(self.prices, text, model, inp, cached, finish)
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

    def _call(
        self, messages: tuple[Message, ...], model: str, max_output_tokens: int | None
    ) -> LLMCall:
        # The same scope a real client's call goes through: the budget is checked before
        # the call (a step with nothing left is refused and the script not consumed), the
        # call gets its own span, and its usage is charged to every enclosing step.
        price = self.prices.get(model)
        if price is not None and _registrations._user_prices.get(model) != price:
            # The pre-flight check of a max_usd budget prices the call with agentsteps'
            # own prices: make the table's price one of them.
            _registrations.register_price(model, **attrs.asdict(price))
        return llm_call(
            model,
            self.provider,
            input_tokens=count_prompt_tokens(messages),
            max_output_tokens=max_output_tokens,
        )

    def __repr__(self) -> str:
        return f"<ScriptedModel model={self.model!r} calls={len(self._calls)}>"
