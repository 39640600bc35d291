"""One model request made through an instrumented SDK client, as one `llm_call`."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from typing import Any

from opentelemetry import context as otel_context

from .._core.config import get_tracer
from .._core.context import CURRENT
from .._core.locks import new_lock
from .._llm.call import CALL, LLMCall, llm_call
from ..integrations import ProviderUsage
from .registry import Options

__all__ = [
    "OWNED",
    "Adapter",
    "ModelRequest",
    "estimate_input",
    "reset_warnings",
    "warn_uncharged",
]

logger = logging.getLogger("agentsteps")

# Set while an instrumented request is being sent, so that an instrumentation beneath it
# (LiteLLM calling the openai SDK, a client instrumented alone and with every client) lets
# the request through instead of charging it a second time.
OWNED: ContextVar[bool] = ContextVar("agentsteps.instrument.owned", default=False)

# Semantic-convention attributes only the instrumentation writes.
_RESPONSE_ID = "gen_ai.response.id"
_FINISH_REASONS = "gen_ai.response.finish_reasons"
_SERVER_ADDRESS = "server.address"
_SERVER_PORT = "server.port"
_REQUEST_ATTRIBUTES = {
    "temperature": "gen_ai.request.temperature",
    "top_p": "gen_ai.request.top_p",
    "top_k": "gen_ai.request.top_k",
    "frequency_penalty": "gen_ai.request.frequency_penalty",
    "presence_penalty": "gen_ai.request.presence_penalty",
    "seed": "gen_ai.request.seed",
}
_UNSET = frozenset({"Omit", "NotGiven"})
_MAX_TOKEN_FIELDS = ("max_tokens", "max_completion_tokens", "max_output_tokens")

_warned: set[tuple[str, str]] = set()
_warned_lock = new_lock()  # fork-safe: see _core/locks.py


def warn_uncharged(step_name: str, what: str, fix: str) -> None:
    """Log once per step name and problem that model traffic could not be charged exactly."""
    key = (step_name, what)
    with _warned_lock:
        if key in _warned:
            return
        _warned.add(key)
    logger.warning(
        "step %r: %s, so it was charged as one model call with only the tokens counted "
        "locally (none for a whole response, the input estimate and one per chunk for a "
        "stream). %s",
        step_name,
        what,
        fix,
    )


def reset_warnings() -> None:
    """Forget which warnings were given (`reset_defaults` calls it)."""
    with _warned_lock:
        _warned.clear()


def estimate_input(body: Mapping[str, Any], fields: tuple[str, ...]) -> int:
    """
    The input tokens a request will send, estimated as characters / 4 (rounded up).

    The characters are those of the JSON of the request's input-bearing fields (``fields``:
    messages, system prompt, tools...), which is close to the tokenizers' ~4 characters per
    token for English and code, and costs no tokenizer.
    """
    parts = {name: body[name] for name in fields if body.get(name) is not None}
    if not parts:
        return 0
    try:
        text = json.dumps(parts, ensure_ascii=False, separators=(",", ":"), default=str)
    except (TypeError, ValueError):
        return 0
    return math.ceil(len(text) / 4)


class Adapter:
    """What one provider's requests and responses look like (one subclass per SDK)."""

    provider = ""
    # The body fields that carry the prompt, for the input estimate.
    input_fields: tuple[str, ...] = ()

    def operation(self, path: str) -> str | None:
        """The GenAI operation of a request to ``path``, or None: not a model request."""
        raise NotImplementedError

    def prepare(
        self, operation: str, path: str, body: dict[str, Any], stream: bool, cap: int | None
    ) -> bool:
        """Adjust ``body`` (a copy) before sending; True: strip a usage chunk we asked for."""
        raise NotImplementedError

    def usage(self, obj: object) -> ProviderUsage | None:
        """The usage of a parsed response or its JSON dict, or None when it has none."""
        raise NotImplementedError

    def finish_reasons(self, obj: object) -> list[str]:
        """The response's finish reasons, for the span."""
        raise NotImplementedError

    def meter(self, request: ModelRequest) -> Callable[[object], bool]:
        """A per-stream function charging one event; returns whether to hand the event on."""
        raise NotImplementedError


def _get(obj: object, name: str) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


class ModelRequest:
    """
    The life of one request: opened (pre-flight) before it is sent, finished on its answer.

    Streams finish when they are exhausted or closed; a request that raised charges nothing.
    """

    __slots__ = (
        "adapter",
        "call",
        "done",
        "operation",
        "reasons",
        "response_id",
        "step_name",
        "strip_usage",
    )

    def __init__(self, adapter: Adapter, operation: str) -> None:
        self.adapter = adapter
        self.operation = operation
        self.call: LLMCall | None = None
        self.strip_usage = False
        self.done = False
        self.step_name: str | None = None
        # What a stream's events said, written on the span when it ends.
        self.reasons: list[str] = []
        self.response_id: str | None = None

    # -- before ---------------------------------------------------------------------------

    def open(
        self,
        path: str,
        body: dict[str, Any] | None,
        stream: bool,
        options: Options,
        base_url: object,
    ) -> dict[str, Any] | None:
        """
        Open the `llm_call` (the pre-flight check may raise here, before anything is sent).

        Returns the body to send instead of ``body`` (None: send it unchanged).
        """
        frame = CURRENT.get()
        in_step = frame is not None and frame._step is not None
        model = None
        estimate = None
        if body is not None:
            # The SDKs' "not given" sentinels (Omit, NotGiven) are dropped when the body is
            # serialized: read (and send) the body without them.
            body = {k: v for k, v in body.items() if type(v).__name__ not in _UNSET}
            raw_model = body.get("model")
            model = raw_model if isinstance(raw_model, str) and raw_model.strip() else None
            estimate = estimate_input(body, self.adapter.input_fields)
        if frame is not None and frame._step is not None:
            self.step_name = frame._step.name
        # No model in the body: llm_call falls back to the step's model.
        call = llm_call(
            model, self.adapter.provider, operation=self.operation, input_tokens=estimate
        )
        call.__enter__()  # StepBudgetExhausted: raised before the SDK sends anything
        self.call = call
        new_body = None
        if body is not None and in_step:
            cap = call.max_output_tokens if options.limit_output else None
            new_body = dict(body)
            self.strip_usage = self.adapter.prepare(self.operation, path, new_body, stream, cap)
            if new_body == body:
                new_body = None
        self._request_attributes(new_body if new_body is not None else body, base_url)
        return new_body

    def _request_attributes(self, body: Mapping[str, Any] | None, base_url: object) -> None:
        span = self._span()
        if span is None:
            return
        attributes: dict[str, Any] = {}
        host = getattr(base_url, "host", None)
        if isinstance(host, str) and host:
            attributes[_SERVER_ADDRESS] = host
            port = getattr(base_url, "port", None)
            if isinstance(port, int):
                attributes[_SERVER_PORT] = port
        if body is not None:
            for field in _MAX_TOKEN_FIELDS:
                value = body.get(field)
                if isinstance(value, int) and not isinstance(value, bool):
                    attributes["gen_ai.request.max_tokens"] = value
            for field, name in _REQUEST_ATTRIBUTES.items():
                value = body.get(field)
                if isinstance(value, int | float) and not isinstance(value, bool):
                    attributes[name] = value
        if attributes:
            span.set_attributes(attributes)

    def _span(self) -> Any:
        span = self.call._span if self.call is not None else None
        if span is None or not span.is_recording():
            return None
        return span

    def detach(self) -> None:
        """Leave the call open but no longer current: a stream is read later, elsewhere."""
        call = self.call
        if call is None:
            return
        if CALL.get() is call:
            try:
                CALL.reset(call._ctx_token)
            except ValueError:
                CALL.set(None)
        token = call._otel_token
        if token is not None and otel_context.get_current() is call._otel_context:
            otel_context.detach(token)
            call._otel_token = None

    # -- after ----------------------------------------------------------------------------

    def record(self, usage: ProviderUsage) -> None:
        """Charge the provider's figures for the call (an overrun raises here)."""
        call = self.call
        if call is None or self.done:
            return
        call.record(
            usage.input_tokens,
            usage.output_tokens,
            cache_read_tokens=usage.cache_read_tokens,
            cache_write_tokens=usage.cache_write_tokens,
            reasoning_tokens=usage.reasoning_tokens,
            response_model=usage.model,
        )

    def describe(self, obj: object) -> None:
        """Write the response's id and finish reasons on the span."""
        span = self._span()
        if span is None:
            return
        attributes: dict[str, Any] = {}
        response_id = _get(obj, "id")
        if isinstance(response_id, str):
            attributes[_RESPONSE_ID] = response_id
        try:
            reasons = self.adapter.finish_reasons(obj)
        except Exception:
            reasons = []
        if reasons:
            attributes[_FINISH_REASONS] = reasons
        if attributes:
            span.set_attributes(attributes)

    def finish_response(self, obj: object) -> None:
        """Charge a whole (non-streamed) response and end the call."""
        try:
            try:
                usage = self.adapter.usage(obj)
            except (TypeError, ValueError):
                usage = None
            self.describe(obj)
            if usage is None:
                self.no_usage(
                    "got a response without token usage",
                    "Use a server that reports usage in its responses.",
                )
            else:
                self.record(usage)
        except BaseException as exc:
            self.fail(exc)
            raise
        self.end()

    def add_output(self) -> None:
        """Charge one streamed piece of output (and, with the first, the input estimate)."""
        call = self.call
        if call is None or self.done:
            return
        estimate = call._input_estimate
        inp = estimate if estimate and call._totals[0] == 0 else 0
        call.add_usage(input_tokens=inp, output_tokens=1)

    def end_stream(self, *, cancelled: bool = False) -> None:
        """End a streamed call: exhausted, or closed early (``cancelled``)."""
        if self.done:
            return
        call = self.call
        if not cancelled and call is not None and not call._recorded:
            self.no_usage(
                "streamed no token usage",
                "For OpenAI chat streams, leave stream_options.include_usage unset (it is "
                "then asked for) or set it to True.",
            )
        span = self._span()
        if span is not None:
            if self.response_id is not None:
                span.set_attribute(_RESPONSE_ID, self.response_id)
            if self.reasons:
                span.set_attribute(_FINISH_REASONS, self.reasons)
        self.end()

    def no_usage(self, what: str, fix: str) -> None:
        """Warn (once per step name) that the call's tokens are unknown."""
        if self.step_name is None:
            return
        model = self.call.model if self.call is not None else None
        warn_uncharged(
            self.step_name,
            f"a {self.adapter.provider} {self.operation} request (model {model!r}) {what}",
            fix,
        )

    def end(self) -> None:
        """End the call normally (one call is counted even when no usage was given)."""
        if self.done:
            return
        self.done = True
        call = self.call
        if call is not None:
            call.__exit__(None, None, None)

    def fail(self, exc: BaseException) -> None:
        """End the call with ``exc``: usage reported so far stays, the span is an error."""
        if self.done:
            return
        self.done = True
        call = self.call
        if call is not None:
            call.__exit__(type(exc), exc, exc.__traceback__)


def tracing_or_step() -> bool:
    """Whether a request needs the slow path: inside a step, or with tracing on."""
    return CURRENT.get() is not None or get_tracer() is not None
