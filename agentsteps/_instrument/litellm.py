"""`instrument_litellm`: every ``litellm.completion`` / ``acompletion`` call as an `llm_call`."""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from ..integrations import ProviderUsage
from .openai import OpenAIAdapter, _check_flag
from .registry import InstrumentationHandle, Options, Registry
from .request import OWNED, ModelRequest, tracing_or_step

__all__ = ["instrument_litellm"]

_REGISTRY = Registry("litellm")
# completion()'s first two parameters, which callers often pass by position.
_POSITIONAL = ("model", "messages")


def _get(obj: object, name: str) -> Any:
    if isinstance(obj, dict):
        return obj.get(name)
    return getattr(obj, name, None)


def _count(obj: object, name: str) -> int:
    value = _get(obj, name)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


class LiteLLMAdapter(OpenAIAdapter):
    """LiteLLM's OpenAI-shaped calls, whatever provider answers them."""

    input_fields = ("messages", "tools", "functions")

    def __init__(self, provider: str | None) -> None:
        self.provider = provider or "litellm"

    def prepare(
        self, operation: str, path: str, body: dict[str, Any], stream: bool, cap: int | None
    ) -> bool:
        if cap is not None:
            # LiteLLM translates max_tokens for every provider; keep the field the caller used.
            fields = ("max_completion_tokens", "max_tokens")
            field = next((f for f in fields if body.get(f) is not None), "max_tokens")
            asked = body.get(field)
            body[field] = cap if not isinstance(asked, int) else min(asked, cap)
        if stream:
            stream_options = body.get("stream_options")
            if not isinstance(stream_options, dict) or "include_usage" not in stream_options:
                # LiteLLM reports a stream's usage (any provider's) only when asked.
                body["stream_options"] = {**(stream_options or {}), "include_usage": True}
                return True
        return False

    def usage(self, obj: object) -> ProviderUsage | None:
        usage = _get(obj, "usage")
        if usage is None:
            return None
        # LiteLLM's prompt_tokens already counts cache reads and writes (GenAI convention).
        inp = _count(usage, "prompt_tokens")
        out = _count(usage, "completion_tokens")
        details = _get(usage, "prompt_tokens_details")
        read = _count(usage, "cache_read_input_tokens") or _count(details, "cached_tokens")
        write = _count(usage, "cache_creation_input_tokens") or _count(
            details, "cache_creation_tokens"
        )
        reasoning = _count(_get(usage, "completion_tokens_details"), "reasoning_tokens")
        read = min(read, inp)
        model = _get(obj, "model")
        return ProviderUsage(
            model=model if isinstance(model, str) else None,
            provider=self.provider,
            input_tokens=inp,
            output_tokens=out,
            cache_read_tokens=read,
            cache_write_tokens=min(write, inp - read),
            reasoning_tokens=min(reasoning, out),
        )

    def meter(self, request: ModelRequest) -> Callable[[object], bool]:
        def on_event(chunk: object) -> bool:
            if isinstance(_get(chunk, "id"), str):
                request.response_id = _get(chunk, "id")
            choices = _get(chunk, "choices")
            if choices:
                request.reasons.extend(self.finish_reasons(chunk))
            usage = self.usage(chunk)
            if usage is not None:
                request.record(usage)
                return not (request.strip_usage and not choices)
            if choices:
                request.add_output()
            return True

        return on_event


def _resolve(body: dict[str, Any]) -> tuple[str | None, str | None]:
    """The provider and bare model name LiteLLM will call, as far as it can tell."""
    model = body.get("model")
    if not isinstance(model, str):
        return None, None
    try:
        import litellm

        bare, provider, _, _ = litellm.get_llm_provider(
            model,
            custom_llm_provider=body.get("custom_llm_provider"),
            api_base=body.get("api_base"),
        )
    except Exception:
        return None, model
    return provider, bare


def _begin(
    args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[ModelRequest, tuple[Any, ...], dict[str, Any], bool] | None:
    if not _REGISTRY.active or OWNED.get():
        return None
    opts = _REGISTRY.options_for(None)
    if opts is None or not tracing_or_step():
        return None
    if len(args) > len(_POSITIONAL):
        return None  # an unusual call: let it through rather than guess
    body = dict(zip(_POSITIONAL, args, strict=False)) | kwargs
    provider, bare = _resolve(body)
    request = ModelRequest(LiteLLMAdapter(provider), "chat")
    stream = bool(body.get("stream"))
    seen = dict(body, model=bare) if bare is not None else body
    api_base = body.get("api_base")
    address = None
    if isinstance(api_base, str):
        parts = urlsplit(api_base)
        address = types.SimpleNamespace(host=parts.hostname, port=parts.port)
    new_body = request.open("", seen, stream, opts, address)
    if new_body is not None:
        if bare is not None:
            new_body["model"] = body["model"]  # LiteLLM needs its "provider/" prefix back
        return request, (), new_body, stream
    return request, args, kwargs, stream


def _after(request: ModelRequest, result: Any, stream: bool, is_async: bool) -> Any:
    # Here, not at the top: seam.py imports wrapt, which only the SDK extras install.
    from .seam import wrap_stream

    if stream and hasattr(result, "__next__" if not is_async else "__anext__"):
        request.detach()
        return wrap_stream(result, request, is_async=is_async)
    request.finish_response(result)
    return result


def _completion(
    wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    begun = _begin(args, kwargs)
    if begun is None:
        return wrapped(*args, **kwargs)
    request, args, kwargs, stream = begun
    token = OWNED.set(True)  # LiteLLM calling the openai SDK: charged here, not there
    try:
        result = wrapped(*args, **kwargs)
    except BaseException as exc:
        request.fail(exc)
        raise
    finally:
        OWNED.reset(token)
    return _after(request, result, stream, is_async=False)


async def _acompletion(
    wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    begun = _begin(args, kwargs)
    if begun is None:
        return await wrapped(*args, **kwargs)
    request, args, kwargs, stream = begun
    token = OWNED.set(True)
    try:
        result = await wrapped(*args, **kwargs)
    except BaseException as exc:
        request.fail(exc)
        raise
    finally:
        OWNED.reset(token)
    return _after(request, result, stream, is_async=True)


def _seams() -> list[tuple[Any, str, Any]]:
    import litellm
    import litellm.main

    # Both namespaces: `litellm.completion(...)` and LiteLLM's own calls through
    # litellm.main (acompletion runs completion; the Router calls litellm.acompletion).
    return [
        (litellm.main, "completion", _completion),
        (litellm.main, "acompletion", _acompletion),
        (litellm, "completion", _completion),
        (litellm, "acompletion", _acompletion),
    ]


def instrument_litellm(*, limit_output: bool = False) -> InstrumentationHandle:
    """
    Make every ``litellm.completion`` / ``litellm.acompletion`` call made inside a step an
    `llm_call`, whichever provider LiteLLM sends it to.

    Each call is checked against every enclosing budget before LiteLLM sends anything
    (`StepBudgetExhausted` is raised from the call, never wrapped by LiteLLM), and charged
    the usage in LiteLLM's response (its ``prompt_tokens`` include cache reads and writes,
    which are priced as such). Streams (``stream=True``) are charged per chunk and cut at
    the chunk that crosses a limit; LiteLLM is asked for
    ``stream_options={"include_usage": True}`` when the caller did not set it (that extra
    usage-only chunk is then not handed to the caller).

    When LiteLLM calls the ``openai`` SDK and `instrument_openai` is also on, the request
    is charged once, here.

    Only calls made through ``litellm.completion`` / ``litellm.acompletion`` (or LiteLLM's
    Router) after this call are seen: a ``from litellm import completion`` made *before*
    it keeps the original function.

    Args:
        limit_output: Lower each call's ``max_tokens`` (or the ``max_completion_tokens``
            it set) to what the budget can still afford after the input estimate, setting
            ``max_tokens`` when the call did not.

    Returns:
        A handle: `InstrumentationHandle.uninstrument` undoes it; it is also a context
        manager.

    Raises:
        ImportError: The ``litellm`` package is not installed.

    .. versionadded:: 0.1.0
    """
    _check_flag(limit_output, "instrument_litellm()")
    import litellm  # noqa: F401  - fail here, not at the first call, when it is missing

    return _REGISTRY.add(None, Options(limit_output=limit_output), _seams)
