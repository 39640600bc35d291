"""Usage from the official ``anthropic`` SDK: messages and message streams.

Anthropic's ``input_tokens`` counts only the input after the last cache breakpoint: it
excludes ``cache_read_input_tokens`` and ``cache_creation_input_tokens``. The readers here add
them back, so `ProviderUsage.input_tokens` follows the OpenTelemetry convention (all input).
``output_tokens`` already includes thinking tokens.
"""

from __future__ import annotations

from . import ProviderUsage, _count, _field, _has

__all__ = ["AnthropicStreamUsage", "anthropic_usage", "record_anthropic"]

_PROVIDER = "anthropic"


def anthropic_usage(obj: object) -> ProviderUsage | None:
    """Read the usage of one Anthropic call, or of one stream event.

    Accepts a ``Message`` (also the ``ParsedMessage``/``BetaMessage`` variants, and the final
    message of a stream helper's ``get_final_message()``), a bare ``Usage``, the
    ``model_dump()`` dict of any of them, and every stream event: ``message_start`` and the
    stream helper's ``message_stop`` give their message's usage, ``message_delta`` gives the
    usage it carries (cumulative output counts; input counts only where the API sends them,
    else 0, and no model name), and every other event (``content_block_delta``, ``ping``,
    ...) gives `None`.

    A raw stream (``stream=True``) spreads one call's usage over ``message_start`` (input
    and cache counts) and ``message_delta`` (output counts), so read it whole with
    `AnthropicStreamUsage`, or with ``metered(stream, call, usage=anthropic_usage)``, which
    combines the events of each stream for you.

    Args:
        obj: The SDK object.

    Returns:
        The usage, with cache reads and writes added into ``input_tokens``, or `None` for a
        stream event that carries none.

    Raises:
        TypeError: If *obj* is none of the above.

    .. versionadded:: 0.1.0
    """
    kind = _field(obj, "type")
    if kind in {"message_stop", "message_start"} and _has(obj, "message"):
        return anthropic_usage(_field(obj, "message"))
    if kind == "message_delta":
        usage = _field(obj, "usage")
        return None if usage is None else _from_usage(usage, None)
    if _has(obj, "usage"):
        return _from_usage(_field(obj, "usage"), _field(obj, "model"))
    if isinstance(kind, str) and kind != "message":
        return None  # content blocks, pings, a raw message_stop: events without usage
    return _from_usage(obj, None)


def _from_usage(usage: object, model: object) -> ProviderUsage:
    if not _has(usage, "input_tokens") or not _has(usage, "output_tokens"):
        msg = (
            "anthropic_usage() expects an anthropic Message, a message_stop event, or a Usage, "
            f"got {type(usage).__name__}: {usage!r:.200}"
        )
        raise TypeError(msg)
    cache_read = _count(usage, "cache_read_input_tokens")
    cache_write = _count(usage, "cache_creation_input_tokens")
    output_tokens = _count(usage, "output_tokens")
    return ProviderUsage(
        model=None if model is None else str(model),
        provider=_PROVIDER,
        input_tokens=_count(usage, "input_tokens") + cache_read + cache_write,
        output_tokens=output_tokens,
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
        reasoning_tokens=min(_thinking_tokens(usage), output_tokens),
    )


def _thinking_tokens(usage: object) -> int:
    """Thinking tokens, which newer SDKs break out of ``output_tokens``; 0 where they don't."""
    details = _field(usage, "output_tokens_details")
    return 0 if details is None else _count(details, "thinking_tokens")


class AnthropicStreamUsage:
    """Collect the usage of a streamed Anthropic call, event by event.

    A raw stream (``client.messages.create(..., stream=True)``) reports the input and cache
    counts in ``message_start`` and cumulative output counts in each ``message_delta``. Feed
    every event to `add`; other events are ignored. The stream helper's events
    (``client.messages.stream(...)``) work too.

    Example:
        >>> collector = AnthropicStreamUsage()
        >>> for event in []:  # the stream
        ...     collector.add(event)
        >>> collector.usage is None
        True

    .. versionadded:: 0.1.0
    """

    __slots__ = ("_cache_read", "_cache_write", "_input", "_model", "_output", "_reasoning")

    def __init__(self) -> None:
        """Start with no usage seen."""
        self._model: str | None = None
        self._input: int | None = None  # Anthropic's meaning: excluding cache reads and writes
        self._cache_read = 0
        self._cache_write = 0
        self._output = 0
        self._reasoning = 0

    def add(self, event: object) -> None:
        """Look at one stream event.

        Args:
            event: A raw stream event or a stream helper event.
        """
        kind = _field(event, "type")
        if kind in {"message_start", "message_stop"}:
            message = _field(event, "message")
            if message is None:
                return  # a raw message_stop carries nothing
            model = _field(message, "model")
            if model is not None:
                self._model = str(model)
            usage = _field(message, "usage")
            if usage is not None:
                self._take(usage)
        elif kind == "message_delta":
            usage = _field(event, "usage")
            if usage is not None:
                self._take(usage)

    def _take(self, usage: object) -> None:
        # Delta counts are cumulative, and a null field means "unchanged", as in the SDK's
        # own stream accumulator.
        if _field(usage, "input_tokens") is not None:
            self._input = _count(usage, "input_tokens")
        if _field(usage, "cache_read_input_tokens") is not None:
            self._cache_read = _count(usage, "cache_read_input_tokens")
        if _field(usage, "cache_creation_input_tokens") is not None:
            self._cache_write = _count(usage, "cache_creation_input_tokens")
        if _field(usage, "output_tokens") is not None:
            self._output = _count(usage, "output_tokens")
        if _field(usage, "output_tokens_details") is not None:
            self._reasoning = _thinking_tokens(usage)

    @property
    def usage(self) -> ProviderUsage | None:
        """The usage so far, or `None` before ``message_start`` arrived."""
        if self._input is None:
            return None
        return ProviderUsage(
            model=self._model,
            provider=_PROVIDER,
            input_tokens=self._input + self._cache_read + self._cache_write,
            output_tokens=self._output,
            cache_read_tokens=self._cache_read,
            cache_write_tokens=self._cache_write,
            reasoning_tokens=min(self._reasoning, self._output),
        )


def record_anthropic(obj: object, *, cost_usd: float | None = None) -> ProviderUsage:
    """Charge the usage of an Anthropic message to the current step, as one model call.

    Args:
        obj: Anything `anthropic_usage` accepts.
        cost_usd: The call's cost if known; `None` prices it (registered price, then catalog).

    Returns:
        The usage recorded.

    Raises:
        TypeError: If *obj* is not an Anthropic message or usage object (a stream event
            without the whole call's usage included).

    .. versionadded:: 0.1.0
    """
    usage = anthropic_usage(obj)
    if usage is None or _field(obj, "type") == "message_delta":
        msg = (
            f"record_anthropic() needs a whole call's usage, got a {_field(obj, 'type')} "
            "stream event; feed the stream's events to AnthropicStreamUsage.add() and record "
            "its .usage, or read the stream with metered(..., usage=anthropic_usage)"
        )
        raise TypeError(msg)
    usage.record(cost_usd=cost_usd)
    return usage
