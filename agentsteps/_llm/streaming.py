"""Metering a streamed answer: charged chunk by chunk, stopped when a budget runs out."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator, Mapping
from typing import Any, TypeVar

from .._core.recording import _count
from ..integrations.anthropic import AnthropicStreamUsage, anthropic_usage
from .call import LLMCall

__all__ = ["ametered", "metered"]

T = TypeVar("T")

_FIELDS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")


def metered(
    stream: Iterable[T],
    call: LLMCall,
    *,
    tokens: Callable[[T], int] | None = None,
    usage: Callable[[T], object] | None = None,
) -> Iterator[T]:
    """
    Pass a streamed answer through, charging each chunk to ``call`` before handing it on.

    Every chunk is charged with `LLMCall.add_usage` and checked against every enclosing
    budget, so a stream that runs over budget stops at the chunk that crossed the limit:
    `StepBudgetExhausted` is raised from the loop, that chunk is not handed on, the
    underlying stream is closed (the provider stops generating) and the step's span ends
    with the usage charged so far. Breaking out of the loop closes the stream too.

    The first chunk also charges the ``input_tokens`` estimate given to `llm_call` (the
    provider bills the prompt as soon as it answers). When a chunk carries the provider's
    final usage (``usage`` returns it), it replaces the running estimate with
    `LLMCall.record`, so the call ends charged exactly what the provider reported.

    Args:
        stream: The provider's stream (any iterable of chunks).
        call: The open `LLMCall` the stream belongs to.
        tokens: How many output tokens a chunk adds. Defaults to one per chunk, the
            granularity of OpenAI's and most chat streams; pass your own (for example
            counting the chunk's text with a tokenizer) for an exact running figure.
        usage: Reads a chunk's final usage, or returns ``None`` for chunks without one:
            a `Mapping` or an object with ``input_tokens``, ``output_tokens``,
            ``cache_read_tokens``, ``cache_write_tokens``, ``reasoning_tokens`` and
            optionally ``cost_usd`` and ``model``. ``agentsteps.integrations``'
            ``openai_usage`` (chat chunks, Responses stream events) and
            ``anthropic_usage`` (raw and helper Messages stream events; the input counts
            of ``message_start`` and the output counts of ``message_delta`` are combined
            per stream) read every event of their SDK's streams. The chunk that carries
            usage is not counted by ``tokens``.

    Raises:
        StepBudgetExhausted: From the iteration, when a chunk took a budget over.
        TypeError: ``call`` is not an `LLMCall`, ``tokens`` or ``usage`` is not callable
            (raised at the call), or ``tokens`` returned a non-int.

    Example:
        >>> from agentsteps import Budget, StepBudgetExhausted, llm_call, metered, step
        >>> @step(model="m", budget=Budget(max_tokens=50), error_boundary="continue")
        ... def write():
        ...     words = []
        ...     with llm_call(input_tokens=20) as call:
        ...         for word in metered(iter(["lorem"] * 100), call, tokens=lambda w: 10):
        ...             words.append(word)
        ...     return words
        >>> write() is None    # stopped at the chunk that crossed 50 tokens: skipped
        True

    .. versionadded:: 0.1.0
    """
    _check(call, "metered()", tokens, usage)
    return _metered(stream, call, tokens, _per_stream(usage))


def ametered(
    stream: AsyncIterable[T],
    call: LLMCall,
    *,
    tokens: Callable[[T], int] | None = None,
    usage: Callable[[T], object] | None = None,
) -> AsyncIterator[T]:
    """
    The ``async for`` form of `metered`, for async clients' streams.

    The underlying stream is closed with its ``aclose()`` (or an awaitable ``close()``)
    when the budget stops it or the loop is left early.

    .. versionadded:: 0.1.0
    """
    _check(call, "ametered()", tokens, usage)
    return _ametered(stream, call, tokens, _per_stream(usage))


def _per_stream(usage: Callable[[Any], object] | None) -> Callable[[Any], object] | None:
    """
    The usage reader for one stream. ``anthropic_usage`` reads one event at a time, but a
    raw Anthropic stream spreads a call's usage over two events (input in
    ``message_start``, output in ``message_delta``), and each reading replaces the call's
    totals: so for it, each stream gets a collector that adds the events up.
    """
    if usage is None:
        return None
    if usage is not anthropic_usage:
        return usage
    collector = AnthropicStreamUsage()
    delta_seen = False

    def read(event: object) -> object:
        nonlocal delta_seen
        if anthropic_usage(event) is not None:
            collector.add(event)
            delta_seen = delta_seen or _type(event) == "message_delta"
        elif not delta_seen:
            return None
        # After message_delta the totals are final: a later event (message_stop) restates
        # them rather than adding an estimated output token.
        return collector.usage

    return read


def _type(event: object) -> object:
    return event.get("type") if isinstance(event, Mapping) else getattr(event, "type", None)


def _check(call: object, what: str, tokens: object, usage: object) -> None:
    if not isinstance(call, LLMCall):
        msg = (
            f"{what}: 'call' must be the LLMCall of an open llm_call() block (got {call!r} "
            f"of type {type(call).__name__}); write 'with llm_call(...) as call:'"
        )
        raise TypeError(msg)
    # Checked here, at the call: the stream is read lazily, so a bad reader would
    # otherwise fail at the first chunk, after the request was sent and billed.
    for name, reader, example in (
        ("tokens", tokens, "lambda chunk: 1"),
        ("usage", usage, "agentsteps.integrations.openai_usage"),
    ):
        if reader is not None and not callable(reader):
            msg = (
                f"{what}: {name!r} must be a function of a chunk or None (got {reader!r} of "
                f"type {type(reader).__name__}), e.g. {example}"
            )
            raise TypeError(msg)


def _metered(
    stream: Iterable[T],
    call: LLMCall,
    tokens: Callable[[T], int] | None,
    usage: Callable[[T], object] | None,
) -> Iterator[T]:
    iterator = iter(stream)
    first = True
    try:
        for chunk in iterator:
            _charge(call, chunk, tokens, usage, first)
            first = False
            yield chunk
    finally:
        closer = getattr(stream, "close", None) or getattr(iterator, "close", None)
        if closer is not None:
            closer()


async def _ametered(
    stream: AsyncIterable[T],
    call: LLMCall,
    tokens: Callable[[T], int] | None,
    usage: Callable[[T], object] | None,
) -> AsyncIterator[T]:
    iterator = stream.__aiter__()
    first = True
    try:
        async for chunk in iterator:
            _charge(call, chunk, tokens, usage, first)
            first = False
            yield chunk
    finally:
        closer = (
            getattr(stream, "aclose", None)
            or getattr(stream, "close", None)
            or getattr(iterator, "aclose", None)
        )
        if closer is not None:
            result = closer()
            if inspect.isawaitable(result):
                await result


def _charge(
    call: LLMCall,
    chunk: T,
    tokens: Callable[[T], int] | None,
    usage: Callable[[T], object] | None,
    first: bool,
) -> None:
    final = None if usage is None else usage(chunk)
    if final is not None:
        _record_final(call, final)
        return
    out = (
        1 if tokens is None else _count("output_tokens", tokens(chunk), "metered(): tokens(chunk)")
    )
    inp = 0
    if first and call._input_estimate and call._totals[0] == 0:
        inp = call._input_estimate
    call.add_usage(input_tokens=inp, output_tokens=out)


def _record_final(call: LLMCall, final: object) -> None:
    get: Callable[[str], Any]
    if isinstance(final, Mapping):
        get = final.get
    else:

        def get(name: str) -> Any:
            return getattr(final, name, None)

    counts = {name: get(name) or 0 for name in (*_FIELDS, "reasoning_tokens")}
    call.record(
        **counts,
        cost_usd=get("cost_usd"),
        response_model=get("response_model") or get("model"),
    )
