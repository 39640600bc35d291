"""Usage from the official ``openai`` SDK: chat completions, the Responses API, and their streams.

OpenAI's counts already follow the OpenTelemetry convention: ``prompt_tokens`` (chat) and
``input_tokens`` (Responses) include the cached tokens reported in
``prompt_tokens_details.cached_tokens`` / ``input_tokens_details.cached_tokens``, and the
output counts include ``reasoning_tokens``.
"""

from __future__ import annotations

import logging

from . import ProviderUsage, _count, _field, _has

__all__ = ["OpenAIStreamUsage", "openai_usage", "record_openai"]

logger = logging.getLogger("agentsteps")

_PROVIDER = "openai"


def openai_usage(obj: object) -> ProviderUsage | None:
    """Read the usage of one OpenAI call.

    Accepts a ``ChatCompletion`` (or the ``ParsedChatCompletion`` of the stream helper's
    ``get_final_completion()``), a ``ChatCompletionChunk``, a Responses API ``Response``, a
    Responses stream event that carries one (``response.completed``, ``response.incomplete``,
    ``response.failed``), a chat stream helper ``chunk`` event, a bare ``CompletionUsage`` or
    ``ResponseUsage``, or the ``model_dump()`` dict of any of them.

    Args:
        obj: The SDK object.

    Returns:
        The usage, or `None` when *obj* carries none: a stream chunk before the last (usage
        comes only in the final chunk, and only with ``stream_options={"include_usage": True}``),
        a response still in progress, or any other stream event (text deltas, output items,
        ...). So it can read every event of a stream: ``metered(stream, call,
        usage=openai_usage)``.

    Raises:
        TypeError: If *obj* is none of the above.

    .. versionadded:: 0.1.0
    """
    kind = _field(obj, "type")
    if kind == "chunk" and _has(obj, "chunk"):
        return openai_usage(_field(obj, "chunk"))  # the chat stream helper's ChunkEvent
    if isinstance(kind, str) and kind.startswith("response.") and _has(obj, "response"):
        return openai_usage(_field(obj, "response"))  # response.created ... response.completed
    if _has(obj, "usage"):
        usage = _field(obj, "usage")
        return None if usage is None else _from_usage(usage, _field(obj, "model"))
    if isinstance(kind, str):
        # Any other stream event (response.output_item.added, response.output_text.delta,
        # the chat helper's content.delta, ...): events, unlike usage objects, have a type,
        # and these never carry usage.
        return None
    return _from_usage(obj, None)  # a bare usage object, or not OpenAI's at all


def _from_usage(usage: object, model: object) -> ProviderUsage:
    model_name = None if model is None else str(model)
    if _has(usage, "prompt_tokens"):
        # Chat Completions: CompletionUsage.
        input_tokens = _count(usage, "prompt_tokens")
        output_tokens = _count(usage, "completion_tokens")
        input_details = _field(usage, "prompt_tokens_details")
        output_details = _field(usage, "completion_tokens_details")
    elif _has(usage, "input_tokens_details"):
        # Responses API: ResponseUsage. (Anthropic's usage has input_tokens but no details.)
        input_tokens = _count(usage, "input_tokens")
        output_tokens = _count(usage, "output_tokens")
        input_details = _field(usage, "input_tokens_details")
        output_details = _field(usage, "output_tokens_details")
    else:
        msg = (
            "openai_usage() expects an openai ChatCompletion, ChatCompletionChunk, Response, a "
            "Responses stream event carrying .response, or their usage object, "
            f"got {type(usage).__name__}: {usage!r:.200}"
        )
        raise TypeError(msg)
    cache_read = _count(input_details, "cached_tokens") if input_details is not None else 0
    # Newer SDKs also report cache writes, as part of the prompt like cached_tokens.
    cache_write = _count(input_details, "cache_write_tokens") if input_details is not None else 0
    reasoning = _count(output_details, "reasoning_tokens") if output_details is not None else 0
    # Keep the parts within their totals, so one inconsistent report cannot make the usage
    # unrecordable: the totals are what OpenAI bills.
    cache_read = min(cache_read, input_tokens)
    cache_write = min(cache_write, input_tokens - cache_read)
    reasoning = min(reasoning, output_tokens)
    return ProviderUsage(
        model=model_name,
        provider=_PROVIDER,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
        reasoning_tokens=reasoning,
    )


class OpenAIStreamUsage:
    """Collect the usage of a streamed OpenAI call, event by event.

    Feed it every chunk or event; it keeps the usage that the final one carries. For chat
    completions, request it with ``stream_options={"include_usage": True}``.

    Example:
        >>> collector = OpenAIStreamUsage()
        >>> for chunk in []:  # the stream
        ...     collector.add(chunk)
        >>> collector.usage is None
        True

    .. versionadded:: 0.1.0
    """

    __slots__ = ("_model", "_usage")

    def __init__(self) -> None:
        """Start with no usage seen."""
        self._usage: ProviderUsage | None = None
        self._model: str | None = None

    def add(self, event: object) -> None:
        """Look at one streamed chunk or event; those without usage are ignored.

        Args:
            event: A ``ChatCompletionChunk``, a chat stream helper event, or a Responses
                stream event.
        """
        try:
            found = openai_usage(event)
        except TypeError:
            return  # text deltas and other events that never carry usage
        model = _field(event, "model")
        if isinstance(model, str):
            self._model = model
        if found is not None:
            if found.model is None and self._model is not None:
                found = ProviderUsage(
                    model=self._model,
                    provider=found.provider,
                    input_tokens=found.input_tokens,
                    output_tokens=found.output_tokens,
                    cache_read_tokens=found.cache_read_tokens,
                    cache_write_tokens=found.cache_write_tokens,
                    reasoning_tokens=found.reasoning_tokens,
                )
            self._usage = found

    @property
    def usage(self) -> ProviderUsage | None:
        """The call's usage, or `None` until an event carrying it arrived."""
        return self._usage


def record_openai(obj: object, *, cost_usd: float | None = None) -> ProviderUsage | None:
    """Charge the usage of an OpenAI response to the current step, as one model call.

    Args:
        obj: Anything `openai_usage` accepts.
        cost_usd: The call's cost if known; `None` prices it (registered price, then catalog).

    Returns:
        The usage recorded, or `None` if *obj* carried no usage (nothing is recorded then, and
        a warning is logged on the ``agentsteps`` logger).

    Raises:
        TypeError: If *obj* is not an OpenAI response object.

    .. versionadded:: 0.1.0
    """
    usage = openai_usage(obj)
    if usage is None:
        logger.warning(
            "record_openai() got a %s without usage, so nothing was recorded. For a streamed "
            "chat completion pass stream_options={'include_usage': True} and record the last "
            "chunk (or use OpenAIStreamUsage).",
            type(obj).__name__,
        )
        return None
    usage.record(cost_usd=cost_usd)
    return usage
