"""`instrument_anthropic`: every Messages request of the ``anthropic`` SDK as an `llm_call`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..integrations import AnthropicStreamUsage, ProviderUsage, anthropic_usage
from .openai import _check_flag
from .registry import InstrumentationHandle, Options, Registry
from .request import Adapter, ModelRequest

__all__ = ["instrument_anthropic"]

_REGISTRY = Registry("anthropic")


def _get(obj: object, name: str) -> Any:
    if isinstance(obj, dict):
        return obj.get(name)
    return getattr(obj, name, None)


class AnthropicAdapter(Adapter):
    """Messages requests (``/v1/messages``, beta ones included)."""

    provider = "anthropic"
    input_fields = ("system", "messages", "tools")

    def operation(self, path: str) -> str | None:
        return "chat" if path.endswith("/messages") else None

    def prepare(
        self, operation: str, path: str, body: dict[str, Any], stream: bool, cap: int | None
    ) -> bool:
        if cap is not None:
            asked = body.get("max_tokens")  # required by the API: always there
            body["max_tokens"] = cap if not isinstance(asked, int) else min(asked, cap)
        return False

    def usage(self, obj: object) -> ProviderUsage | None:
        if obj is None or _get(obj, "usage") is None:
            return None
        return anthropic_usage(obj)

    def finish_reasons(self, obj: object) -> list[str]:
        reason = _get(obj, "stop_reason")
        return [str(reason)] if reason is not None else []

    def meter(self, request: ModelRequest) -> Callable[[object], bool]:
        collector = AnthropicStreamUsage()

        def on_event(event: object) -> bool:
            kind = _get(event, "type")
            if kind == "content_block_delta":
                request.add_output()
                return True
            if kind in {"message_start", "message_delta"}:
                collector.add(event)
                if kind == "message_start":
                    message = _get(event, "message")
                    if isinstance(_get(message, "id"), str):
                        request.response_id = _get(message, "id")
                else:
                    reason = _get(_get(event, "delta"), "stop_reason")
                    if reason is not None:
                        request.reasons = [str(reason)]
                # Input and cache counts come first, cumulative output counts after.
                usage = collector.usage
                if usage is not None:
                    request.record(usage)
            return True

        return on_event


def _seams() -> list[tuple[type, str, Any]]:
    from anthropic import _base_client, _response, _streaming

    # Here, not at the top: seam.py imports wrapt, which only the SDK extras install.
    from .seam import SDKTypes, async_wrapper, sync_wrapper

    types = SDKTypes(
        raw_responses=(_response.BaseAPIResponse,),
        streams=(_streaming.Stream, _streaming.AsyncStream),
    )
    adapter = AnthropicAdapter()
    return [
        (_base_client.SyncAPIClient, "request", sync_wrapper(_REGISTRY, adapter, types)),
        (_base_client.AsyncAPIClient, "request", async_wrapper(_REGISTRY, adapter, types)),
    ]


def instrument_anthropic(
    client: object | None = None, *, limit_output: bool = False
) -> InstrumentationHandle:
    """
    Make every Messages request of the ``anthropic`` SDK made inside a step an `llm_call`.

    Like `instrument_openai`, for ``anthropic.Anthropic`` / ``AsyncAnthropic`` clients
    (and their Bedrock and Vertex variants): each ``/v1/messages`` request made inside a
    step is checked before it is sent, charged the usage in the response (cache reads and
    writes added into the input tokens, per the GenAI convention, and priced as such),
    streams (``stream=True`` and ``messages.stream()``) are charged per event and cut at
    the event that crosses a limit.

    Args:
        client: An Anthropic client, or None for every client.
        limit_output: Lower each request's ``max_tokens`` to what the budget can still
            afford after the input estimate.

    Returns:
        A handle: `InstrumentationHandle.uninstrument` undoes it; it is also a context
        manager.

    Raises:
        TypeError: ``client`` is not an Anthropic client.
        ImportError: The ``anthropic`` package is not installed.

    .. versionadded:: 0.1.0
    """
    _check_flag(limit_output, "instrument_anthropic()")
    if client is not None:
        from anthropic import _base_client

        if not isinstance(client, _base_client.SyncAPIClient | _base_client.AsyncAPIClient):
            msg = (
                "instrument_anthropic(): 'client' must be an anthropic.Anthropic or "
                f"anthropic.AsyncAnthropic client (got {client!r:.80} of type "
                f"{type(client).__name__}); pass the client you make requests with, or no "
                "client to instrument every Anthropic client"
            )
            raise TypeError(msg)
    return _REGISTRY.add(client, Options(limit_output=limit_output), _seams)
