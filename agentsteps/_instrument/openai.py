"""`instrument_openai`: every request of the official ``openai`` SDK as an `llm_call`."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..integrations import ProviderUsage, openai_usage
from .registry import InstrumentationHandle, Options, Registry
from .request import Adapter, ModelRequest

if TYPE_CHECKING:
    from .seam import SDKTypes

__all__ = ["instrument_openai"]

_REGISTRY = Registry("openai")

# Request path -> GenAI operation. Longest first: "/chat/completions" ends in "/completions".
_OPERATIONS = (
    ("/chat/completions", "chat"),
    ("/responses", "chat"),
    ("/completions", "text_completion"),
    ("/embeddings", "embeddings"),
)
# The field that caps output, per path, used when the request sets none.
_OUTPUT_FIELD = {
    "/chat/completions": "max_completion_tokens",
    "/responses": "max_output_tokens",
    "/completions": "max_tokens",
}


def _get(obj: object, name: str) -> Any:
    if isinstance(obj, dict):
        return obj.get(name)
    return getattr(obj, name, None)


class OpenAIAdapter(Adapter):
    """Chat Completions, Responses, Completions and Embeddings requests."""

    provider = "openai"
    input_fields: tuple[str, ...] = ("instructions", "messages", "input", "prompt", "tools")

    def operation(self, path: str) -> str | None:
        for suffix, operation in _OPERATIONS:
            if path.endswith(suffix):
                return operation
        return None

    def prepare(
        self, operation: str, path: str, body: dict[str, Any], stream: bool, cap: int | None
    ) -> bool:
        suffix = next((s for s, _ in _OPERATIONS if path.endswith(s)), "")
        if cap is not None and suffix in _OUTPUT_FIELD:
            # Lower what the request asks for; the field it already uses wins.
            chat = suffix == "/chat/completions"
            fields = ("max_completion_tokens", "max_tokens") if chat else ()
            field = next((f for f in fields if body.get(f) is not None), _OUTPUT_FIELD[suffix])
            asked = body.get(field)
            body[field] = cap if not isinstance(asked, int) else min(asked, cap)
        if stream and suffix == "/chat/completions":
            stream_options = body.get("stream_options")
            if not isinstance(stream_options, dict) or "include_usage" not in stream_options:
                # Without it a chat stream reports no usage at all: it would cost $0.
                body["stream_options"] = {**(stream_options or {}), "include_usage": True}
                return True
        return False

    def usage(self, obj: object) -> ProviderUsage | None:
        if obj is None:
            return None
        return openai_usage(obj)

    def finish_reasons(self, obj: object) -> list[str]:
        choices = _get(obj, "choices")
        if isinstance(choices, list):
            return [str(r) for c in choices if (r := _get(c, "finish_reason")) is not None]
        status = _get(obj, "status")
        return [str(status)] if isinstance(status, str) else []

    def meter(self, request: ModelRequest) -> Callable[[object], bool]:
        def on_event(event: object) -> bool:
            kind = _get(event, "type")
            if isinstance(kind, str):
                # A Responses stream: text arrives in *.delta events, usage at the end.
                if kind.endswith(".delta"):
                    request.add_output()
                    return True
                response = _get(event, "response")
                if response is not None:
                    if isinstance(_get(response, "id"), str):
                        request.response_id = _get(response, "id")
                    usage = openai_usage(response)
                    if usage is not None:
                        request.reasons = self.finish_reasons(response)
                        request.record(usage)
                return True
            # A chat (or completions) chunk.
            if isinstance(_get(event, "id"), str):
                request.response_id = _get(event, "id")
            choices = _get(event, "choices")
            if choices:
                request.reasons.extend(self.finish_reasons(event))
            if _get(event, "usage") is not None:
                usage = openai_usage(event)
                if usage is not None:
                    request.record(usage)
                # The usage-only chunk we asked for: the caller did not.
                return not (request.strip_usage and not choices)
            if choices:
                request.add_output()
            return True

        return on_event


def _seams() -> list[tuple[type, str, Any]]:
    from openai import _base_client

    # Here, not at the top: seam.py imports wrapt, which only the SDK extras install.
    from .seam import async_wrapper, sync_wrapper

    types = _types()
    adapter = OpenAIAdapter()
    return [
        (_base_client.SyncAPIClient, "request", sync_wrapper(_REGISTRY, adapter, types)),
        (_base_client.AsyncAPIClient, "request", async_wrapper(_REGISTRY, adapter, types)),
    ]


def _types() -> SDKTypes:
    from openai import _legacy_response, _response, _streaming

    # Here, not at the top: seam.py imports wrapt, which only the SDK extras install.
    from .seam import SDKTypes

    return SDKTypes(
        raw_responses=(_legacy_response.LegacyAPIResponse, _response.BaseAPIResponse),
        streams=(_streaming.Stream, _streaming.AsyncStream),
    )


def instrument_openai(
    client: object | None = None, *, limit_output: bool = False
) -> InstrumentationHandle:
    """
    Make every request of the ``openai`` SDK made inside a step an `llm_call`.

    With no ``client``, every OpenAI client (sync and async, ``AzureOpenAI`` too, made
    before or after this call) is instrumented; with one, only that client. Each request
    to ``/chat/completions``, ``/responses``, ``/completions`` or ``/embeddings`` made
    inside a step is then:

    - checked against every enclosing budget *before it is sent*: a spent budget raises
      `StepBudgetExhausted` from the SDK call and nothing is sent (never retried);
    - charged the usage in the response (cached and reasoning tokens included), priced
      like `record_usage`, an overrun raising from the SDK call;
    - for streams (``stream=True`` and the ``.stream()`` helpers), charged per chunk
      and cut at the chunk that crosses a limit; chat streams are asked for
      ``stream_options={"include_usage": True}`` when the caller did not set it (that
      extra usage-only chunk is then not handed to the caller);
    - one GenAI CLIENT span (``chat {model}``) when tracing is on.

    Outside any step requests are sent unchanged and nothing is charged. A response
    without usage counts as one call with unknown tokens, with a warning on the
    ``agentsteps`` logger (once per step name).

    Args:
        client: An ``openai.OpenAI`` / ``openai.AsyncOpenAI`` client (or a subclass),
            or None for every client.
        limit_output: Lower each request's ``max_completion_tokens`` (chat; or the
            ``max_tokens`` it set), ``max_output_tokens`` (Responses) or ``max_tokens``
            (completions) to what the budget can still afford after the input estimate
            (`LLMCall.max_output_tokens`), setting it when the request did not.

    Returns:
        A handle: `InstrumentationHandle.uninstrument` undoes it; it is also a context
        manager. Instrumenting the same target again returns the same handle.

    Raises:
        TypeError: ``client`` is not an OpenAI client.
        ImportError: The ``openai`` package is not installed.

    .. versionadded:: 0.1.0
    """
    _check_flag(limit_output, "instrument_openai()")
    if client is not None:
        from openai import _base_client

        if not isinstance(client, _base_client.SyncAPIClient | _base_client.AsyncAPIClient):
            msg = (
                f"instrument_openai(): 'client' must be an openai.OpenAI or openai.AsyncOpenAI "
                f"client (got {client!r:.80} of type {type(client).__name__}); pass the client "
                "you make requests with, or no client to instrument every OpenAI client"
            )
            raise TypeError(msg)
    return _REGISTRY.add(client, Options(limit_output=limit_output), _seams)


def _check_flag(value: object, what: str) -> None:
    if not isinstance(value, bool):
        msg = f"{what}: 'limit_output' must be True or False (got {value!r})"
        raise TypeError(msg)
