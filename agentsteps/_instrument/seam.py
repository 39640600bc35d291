"""The wrapper around an SDK client's ``request`` method, and the metered stream it returns."""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable
from typing import Any

import attrs
import wrapt

from .registry import Registry
from .request import OWNED, Adapter, ModelRequest, tracing_or_step

__all__ = ["SDKTypes", "async_wrapper", "sync_wrapper", "wrap_stream"]

Meter = Callable[[object], bool]
# The header both SDKs mark raw-response requests with (their RAW_RESPONSE_HEADER).
_RAW_HEADER = "X-Stainless-Raw-Response"


@attrs.frozen
class SDKTypes:
    """The SDK classes a ``request`` call may return."""

    raw_responses: tuple[type, ...]  # with_raw_response / with_streaming_response
    streams: tuple[type, ...]


def _bind(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, bool] | None:
    """The request options and the stream flag of ``request(cast_to, options, *, stream)``."""
    if len(args) >= 2:
        options = args[1]
    elif "options" in kwargs:
        options = kwargs["options"]
    else:
        return None
    return options, bool(kwargs.get("stream", False))


def _with_options(
    args: tuple[Any, ...], kwargs: dict[str, Any], options: Any
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    if len(args) >= 2:
        return (args[0], options, *args[2:]), kwargs
    return args, {**kwargs, "options": options}


def _begin(
    registry: Registry,
    adapter: Adapter,
    instance: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> tuple[ModelRequest, tuple[Any, ...], dict[str, Any], bool] | None:
    """Open the request's call (pre-flight) or return None to let it through untouched."""
    if not registry.active or OWNED.get():
        return None
    opts = registry.options_for(instance)
    if opts is None or not tracing_or_step():
        return None
    bound = _bind(args, kwargs)
    if bound is None:
        return None
    options, stream = bound
    if str(getattr(options, "method", "")).lower() != "post":
        return None
    path = str(getattr(options, "url", "")).split("?", 1)[0].rstrip("/")
    operation = adapter.operation(path)
    if operation is None:
        return None
    body = getattr(options, "json_data", None)
    request = ModelRequest(adapter, operation)
    new_body = request.open(
        path,
        body if isinstance(body, dict) else None,
        stream,
        opts,
        getattr(instance, "base_url", None),
    )
    if new_body is not None:
        options = copy.copy(options)
        options.json_data = new_body
        args, kwargs = _with_options(args, kwargs, options)
    return request, args, kwargs, stream


def _after(request: ModelRequest, result: Any, stream: bool, types: SDKTypes) -> Any:
    """Charge a whole response now, or hand back a proxy that charges it as it is read."""
    try:
        if isinstance(result, types.raw_responses):
            mode = _raw_mode(result)
            if not stream and mode is not None and mode != "stream":
                # with_raw_response: the body is read already; charge it without waiting
                # for the caller to parse it.
                request.finish_response(_json_body(result))
                return result
            request.detach()
            return _RawResponse(result, request, types)
        if isinstance(result, types.streams):
            request.detach()
            return wrap_stream(result, request)
    except BaseException as exc:
        request.fail(exc)
        raise
    request.finish_response(result)
    return result


def _json_body(result: Any) -> object:
    try:
        return result.http_response.json()
    except Exception:
        return None  # not JSON: charged as a call without usage


def _raw_mode(result: Any) -> str | None:
    """
    ``"stream"`` for ``with_streaming_response`` (the body is read later); another value
    (``"true"``, or ``"raw"`` in newer Anthropic SDKs) for ``with_raw_response``.
    """
    try:
        return result.http_response.request.headers.get(_RAW_HEADER)  # type: ignore[no-any-return]
    except Exception:
        return None


def sync_wrapper(registry: Registry, adapter: Adapter, types: SDKTypes) -> Any:
    """The wrapper for a sync client's ``request``."""

    def request_wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        begun = _begin(registry, adapter, instance, args, kwargs)
        if begun is None:
            return wrapped(*args, **kwargs)
        request, args, kwargs, stream = begun
        token = OWNED.set(True)
        try:
            result = wrapped(*args, **kwargs)
        except BaseException as exc:
            request.fail(exc)
            raise
        finally:
            OWNED.reset(token)
        return _after(request, result, stream, types)

    return request_wrapper


def async_wrapper(registry: Registry, adapter: Adapter, types: SDKTypes) -> Any:
    """The wrapper for an async client's ``request``."""

    async def request_wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        begun = _begin(registry, adapter, instance, args, kwargs)
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
        return _after(request, result, stream, types)

    return request_wrapper


def wrap_stream(stream: Any, request: ModelRequest, is_async: bool | None = None) -> Any:
    """``stream``, charged event by event as the caller reads it (``is_async``: guess)."""
    meter = request.adapter.meter(request)
    if is_async is None:
        is_async = hasattr(stream, "__anext__")
    if is_async:
        return _AsyncMeteredStream(stream, request, meter)
    return _MeteredStream(stream, request, meter)


def _close(stream: Any) -> Any:
    """Close ``stream`` if it can be (LiteLLM's stream wrapper has no close); may be a coroutine."""
    closer = getattr(stream, "close", None)
    return None if closer is None else closer()


async def _aclose(stream: Any) -> None:
    closer = getattr(stream, "aclose", None) or getattr(stream, "close", None)
    if closer is not None:
        result = closer()
        if inspect.isawaitable(result):
            await result


class _ClosingResponse(wrapt.ObjectProxy[Any]):
    """The stream's HTTP response: the SDK's stream helpers close it directly."""

    def __init__(self, response: Any, request: ModelRequest) -> None:
        super().__init__(response)
        self._self_request = request

    def close(self) -> None:
        try:
            self.__wrapped__.close()
        finally:
            self._self_request.end_stream(cancelled=True)

    async def aclose(self) -> None:
        try:
            await self.__wrapped__.aclose()
        finally:
            self._self_request.end_stream(cancelled=True)


class _MeteredProxy(wrapt.ObjectProxy[Any]):
    """What the sync and async metered streams share: the request, the meter, the response."""

    def __init__(self, stream: Any, request: ModelRequest, meter: Meter) -> None:
        super().__init__(stream)
        self._self_request = request
        self._self_meter = meter
        response = getattr(stream, "response", None)
        self._self_response = None if response is None else _ClosingResponse(response, request)

    @property
    def response(self) -> Any:
        if self._self_response is None:
            return self.__wrapped__.response
        return self._self_response


class _MeteredStream(_MeteredProxy):
    """A sync SDK stream whose events are charged one by one as the caller reads them."""

    def __iter__(self) -> _MeteredStream:
        return self

    def __next__(self) -> Any:
        request = self._self_request
        while True:
            try:
                event = self.__wrapped__.__next__()
            except StopIteration:
                request.end_stream()
                raise
            except BaseException as exc:
                request.fail(exc)
                raise
            try:
                hand_on = self._self_meter(event)
            except BaseException as exc:
                # The chunk that crossed a limit: stop the provider generating, and end.
                try:
                    _close(self.__wrapped__)
                finally:
                    request.fail(exc)
                raise
            if hand_on:
                return event

    def close(self) -> None:
        try:
            _close(self.__wrapped__)
        finally:
            self._self_request.end_stream(cancelled=True)

    def __enter__(self) -> _MeteredStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class _AsyncMeteredStream(_MeteredProxy):
    """An async SDK stream whose events are charged one by one as the caller reads them."""

    def __aiter__(self) -> _AsyncMeteredStream:
        return self

    async def __anext__(self) -> Any:
        request = self._self_request
        while True:
            try:
                event = await self.__wrapped__.__anext__()
            except StopAsyncIteration:
                request.end_stream()
                raise
            except BaseException as exc:
                # Cancellation too: what was charged so far stays, the span ends once.
                request.fail(exc)
                raise
            try:
                hand_on = self._self_meter(event)
            except BaseException as exc:
                try:
                    await _aclose(self.__wrapped__)
                finally:
                    request.fail(exc)
                raise
            if hand_on:
                return event

    async def close(self) -> None:
        try:
            await _aclose(self.__wrapped__)
        finally:
            self._self_request.end_stream(cancelled=True)

    async def __aenter__(self) -> _AsyncMeteredStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


class _RawResponse(wrapt.ObjectProxy[Any]):
    """A raw response (``with_raw_response``/``with_streaming_response``), charged when parsed."""

    def __init__(self, response: Any, request: ModelRequest, types: SDKTypes) -> None:
        super().__init__(response)
        self._self_request = request
        self._self_types = types
        self._self_parsed: Any = None

    def parse(self, *args: Any, **kwargs: Any) -> Any:
        result = self.__wrapped__.parse(*args, **kwargs)
        if hasattr(result, "__await__"):
            return self._aparse(result)
        return self._take(result)

    async def _aparse(self, pending: Any) -> Any:
        return self._take(await pending)

    def _take(self, result: Any) -> Any:
        request = self._self_request
        if request.done:
            return self._self_parsed if self._self_parsed is not None else result
        if isinstance(result, self._self_types.streams):
            if self._self_parsed is None:
                self._self_parsed = wrap_stream(result, request)
            return self._self_parsed
        request.finish_response(result)
        return result

    def close(self) -> Any:
        result = self.__wrapped__.close()
        if not self._self_request.done and self._self_parsed is None:
            self._self_request.end_stream(cancelled=True)
        return result
