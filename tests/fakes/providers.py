"""
A loopback fake of the OpenAI and Anthropic HTTP APIs, answering in their exact JSON and SSE shapes.

The official SDKs (and every framework built on them) parse these answers as they parse the real
services' answers, so tests can drive real agent loops offline and count what was sent::

    with FakeProvider(always_call_tool("lookup", {"q": "x"}, usage=Usage(1000, 500))) as fake:
        client = openai.OpenAI(base_url=fake.openai_base_url, api_key="test")
        ...
        assert len(fake.requests) == 3

Routes (by path suffix, so any base URL prefix works):

- ``POST .../chat/completions``: OpenAI Chat Completions, JSON or ``stream: true`` SSE ending in
  ``data: [DONE]``; the usage-only chunk (empty ``choices``) only when
  ``stream_options.include_usage`` is true, as the real service does.
- ``POST .../responses``: OpenAI Responses, JSON or SSE (``response.created`` ...
  ``response.completed``).
- ``POST .../messages``: Anthropic Messages, JSON or SSE (``message_start`` ... ``message_stop``).
- ``GET .../models``: a model list in the OpenAI or Anthropic shape (by the request's headers).

`Usage` follows the OpenTelemetry GenAI convention: ``input_tokens`` counts every input token,
cached ones included. Each API reports it its own way: OpenAI's ``prompt_tokens`` /
``input_tokens`` are that total (``cached_tokens`` a part of it; OpenAI has no cache-write
count), Anthropic's ``input_tokens`` excludes ``cache_read_input_tokens`` and
``cache_creation_input_tokens``. What each answer reported is logged with its request
(`Request.usage`), so a test compares totals with what the server really said.

A request's max output (``max_tokens`` / ``max_completion_tokens`` / ``max_output_tokens``) caps
the reported output tokens, with the API's "length" stop reason, as a real model would stop.
"""

from __future__ import annotations

import itertools
import json
import math
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import attrs


@attrs.frozen
class Usage:
    """Token usage of one answer, in the GenAI convention (input includes cached tokens)."""

    input_tokens: int = 1000
    output_tokens: int = 500
    cache_read_tokens: int = 0
    """Input tokens read from the prompt cache (part of ``input_tokens``)."""
    cache_write_tokens: int = 0
    """Input tokens written to the prompt cache (part of ``input_tokens``; Anthropic only)."""
    reasoning_tokens: int = 0
    """Output tokens spent reasoning (part of ``output_tokens``; OpenAI only)."""

    def __attrs_post_init__(self) -> None:
        if self.cache_read_tokens + self.cache_write_tokens > self.input_tokens:
            raise ValueError(
                f"Usage: cache_read_tokens + cache_write_tokens "
                f"({self.cache_read_tokens} + {self.cache_write_tokens}) must not exceed "
                f"input_tokens ({self.input_tokens}): cached tokens are part of the input"
            )
        if self.reasoning_tokens > self.output_tokens:
            raise ValueError(
                f"Usage: reasoning_tokens ({self.reasoning_tokens}) must not exceed "
                f"output_tokens ({self.output_tokens}): reasoning is part of the output"
            )

    @property
    def total_tokens(self) -> int:
        """Input plus output tokens."""
        return self.input_tokens + self.output_tokens

    def capped(self, max_output: int | None) -> Usage:
        """This usage with the output cut to ``max_output`` (a request's max output tokens)."""
        if max_output is None or self.output_tokens <= max_output:
            return self
        return attrs.evolve(
            self,
            output_tokens=max_output,
            reasoning_tokens=min(self.reasoning_tokens, max_output),
        )


@attrs.frozen
class ToolCall:
    """A function/tool call the fake model asks for."""

    name: str
    arguments: dict[str, Any] = attrs.field(factory=dict)


@attrs.frozen
class ErrorReply:
    """An HTTP error in the provider's own error JSON."""

    status: int = 500
    message: str = "The server had an error while processing your request."
    type: str | None = None
    """The provider's error type; defaults by status (``rate_limit_error``, ``api_error``...)."""


@attrs.frozen
class Reply:
    """One scripted answer: text and/or tool calls, with its usage; or an error."""

    text: str = "Done."
    tool_calls: tuple[ToolCall, ...] = attrs.field(default=(), converter=tuple)
    usage: Usage = Usage()
    error: ErrorReply | None = None


@attrs.frozen
class Request:
    """One request the fake received, and the usage its answer reported (None on errors)."""

    method: str
    path: str
    headers: dict[str, str]
    """Header names lower-cased."""
    body: Any
    """The parsed JSON body (None for a GET; the raw text if it is not JSON)."""
    usage: Usage | None

    @property
    def max_output_tokens(self) -> int | None:
        """The request's max output tokens, whichever field the API names it by."""
        return _max_output(self.body)


Script = Callable[[Request, int], Reply]
"""A reply policy: called with each request and its 0-based index among the POSTs."""


def always_call_tool(name: str, arguments: dict[str, Any], usage: Usage = Usage()) -> Script:
    """A model that calls tool ``name`` with ``arguments`` on every request: a loop never ends."""
    reply = Reply(text="", tool_calls=(ToolCall(name, arguments),), usage=usage)
    return lambda _request, _index: reply


def tool_calls_then_text(
    name: str, arguments: dict[str, Any], calls: int, usage: Usage = Usage(), text: str = "Done."
) -> Script:
    """A model that calls tool ``name`` on its first ``calls`` requests, then answers ``text``."""
    tool = Reply(text="", tool_calls=(ToolCall(name, arguments),), usage=usage)
    final = Reply(text=text, usage=usage)
    return lambda _request, index: tool if index < calls else final


def _max_output(body: Any) -> int | None:
    if not isinstance(body, dict):
        return None
    for key in ("max_completion_tokens", "max_output_tokens", "max_tokens"):
        value = body.get(key)
        if isinstance(value, int):
            return value
    return None


class FakeProvider:
    """The fake server: a context manager that serves on 127.0.0.1 on a free port.

    Args:
        replies: a `Script`, or a sequence of `Reply` answered in order (the last one repeats).
            By default every request gets ``Reply()``.
        usage: the usage of the default reply (ignored when ``replies`` is given).
    """

    def __init__(
        self, replies: Script | Sequence[Reply] | None = None, *, usage: Usage | None = None
    ) -> None:
        self._script = _as_script(replies, usage)
        self._lock = threading.Lock()
        self._requests: list[Request] = []
        self._posts = 0
        self._ids = itertools.count(1)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ------------------------------------------------------------------------
    def start(self) -> FakeProvider:
        """Start serving (`__enter__` does it)."""
        fake = self

        class Handler(_Handler):
            provider = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="fake-provider", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket (`__exit__` does it)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeProvider:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # --- what tests read and set -----------------------------------------------------------
    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (the Anthropic SDK's base URL)."""
        if self._server is None:
            raise RuntimeError("FakeProvider.url: the server is not started; use `with`")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def openai_base_url(self) -> str:
        """The OpenAI SDK's base URL: ``http://127.0.0.1:PORT/v1``."""
        return self.url + "/v1"

    @property
    def anthropic_base_url(self) -> str:
        """The Anthropic SDK's base URL (it appends ``/v1/messages`` itself)."""
        return self.url

    @property
    def requests(self) -> list[Request]:
        """A snapshot of the requests received so far, in arrival order."""
        with self._lock:
            return list(self._requests)

    @property
    def model_requests(self) -> list[Request]:
        """The POSTs (model calls) received so far; GETs such as ``/v1/models`` left out."""
        return [r for r in self.requests if r.method == "POST"]

    def total_usage(self) -> Usage:
        """The sum of the usage every answer so far reported."""
        sent = [r.usage for r in self.requests if r.usage is not None]
        return Usage(
            input_tokens=sum(u.input_tokens for u in sent),
            output_tokens=sum(u.output_tokens for u in sent),
            cache_read_tokens=sum(u.cache_read_tokens for u in sent),
            cache_write_tokens=sum(u.cache_write_tokens for u in sent),
            reasoning_tokens=sum(u.reasoning_tokens for u in sent),
        )

    def set_replies(self, replies: Script | Sequence[Reply]) -> None:
        """Change the script from now on (the POST index keeps counting)."""
        with self._lock:
            self._script = _as_script(replies, None)

    # --- used by the handler ---------------------------------------------------------------
    def _answer(self, method: str, path: str, headers: dict[str, str], body: Any) -> Reply:
        with self._lock:
            index, script = self._posts, self._script
            if method == "POST":
                self._posts += 1
        if method != "POST":
            return Reply()
        return script(Request(method, path, headers, body, None), index)

    def _log(self, request: Request) -> None:
        with self._lock:
            self._requests.append(request)

    def _next_id(self) -> int:
        with self._lock:
            return next(self._ids)


def _as_script(replies: Script | Sequence[Reply] | None, usage: Usage | None) -> Script:
    if replies is None:
        default = Reply(usage=usage or Usage())
        return lambda _request, _index: default
    if callable(replies):
        return replies
    scripted = list(replies)
    if not scripted:
        raise ValueError("FakeProvider(replies=[]): give at least one Reply, or None")
    return lambda _request, index: scripted[min(index, len(scripted) - 1)]


def documented_estimate(**fields: Any) -> int:
    """
    The instrumentation's documented input estimate, written out independently of its code:
    characters of the prompt fields' compact JSON / 4, rounded up.
    """
    return math.ceil(len(json.dumps(fields, ensure_ascii=False, separators=(",", ":"))) / 4)


# --- HTTP ---------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    provider: FakeProvider
    protocol_version = "HTTP/1.1"  # keep-alive, as the SDKs' httpx pools expect
    # Headers and body go out as separate writes: without TCP_NODELAY the second waits for
    # the client's delayed ACK, about 40 ms a request on loopback.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the test's output is not the place for an access log."""

    def do_GET(self) -> None:
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.provider._log(Request("GET", self.path, headers, None, None))
        if not self.path.rstrip("/").endswith("/models"):
            self._send_json(404, {"error": {"message": f"no route {self.path}", "type": "x"}})
            return
        if "anthropic-version" in headers:
            data = [
                {"type": "model", "id": m, "display_name": m, "created_at": "2025-01-01T00:00:00Z"}
                for m in _MODELS
            ]
            self._send_json(
                200,
                {"data": data, "has_more": False, "first_id": _MODELS[0], "last_id": _MODELS[-1]},
            )
        else:
            data = [{"id": m, "object": "model", "created": 0, "owned_by": "fake"} for m in _MODELS]
            self._send_json(200, {"object": "list", "data": data})

    def do_POST(self) -> None:
        headers = {k.lower(): v for k, v in self.headers.items()}
        raw = self.rfile.read(int(self.headers.get("content-length") or 0))
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        path = self.path.split("?", 1)[0].rstrip("/")
        api = next((a for suffix, a in _ROUTES if path.endswith(suffix)), None)
        if api is None:
            self.provider._log(Request("POST", self.path, headers, body, None))
            self._send_json(404, {"error": {"message": f"no route {self.path}", "type": "x"}})
            return
        reply = self.provider._answer("POST", self.path, headers, body)
        if reply.error is not None:
            self.provider._log(Request("POST", self.path, headers, body, None))
            self._send_json(reply.error.status, _error_body(api, reply.error))
            return
        max_output = _max_output(body)
        usage = reply.usage.capped(max_output)
        self.provider._log(Request("POST", self.path, headers, body, usage))
        answer = _Answer(
            n=self.provider._next_id(),
            model=str(body.get("model", "fake-model")) if isinstance(body, dict) else "fake-model",
            reply=reply,
            usage=usage,
            truncated=usage != reply.usage,
        )
        stream = isinstance(body, dict) and body.get("stream") is True
        if api == "chat":
            if stream:
                include = bool((body.get("stream_options") or {}).get("include_usage"))
                self._send_sse(_chat_chunks(answer, include_usage=include))
            else:
                self._send_json(200, _chat_completion(answer))
        elif api == "responses":
            if stream:
                self._send_sse(_responses_events(answer))
            else:
                self._send_json(200, _response(answer, status="completed"))
        elif stream:
            self._send_sse(_anthropic_events(answer))
        else:
            self._send_json(200, _anthropic_message(answer))

    def _send_json(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.send_header("x-request-id", "req_fake")
        self.send_header("request-id", "req_fake")
        self.end_headers()
        self.wfile.write(data)

    def _send_sse(self, events: Iterator[tuple[str | None, Any]]) -> None:
        parts = []
        for event, data in events:
            text = data if isinstance(data, str) else json.dumps(data)
            parts.append((f"event: {event}\n" if event else "") + f"data: {text}\n\n")
        payload = "".join(parts).encode()
        self.send_response(200)
        self.send_header("content-type", "text/event-stream; charset=utf-8")
        self.send_header("content-length", str(len(payload)))
        self.send_header("cache-control", "no-cache")
        self.send_header("x-request-id", "req_fake")
        self.send_header("request-id", "req_fake")
        self.end_headers()
        self.wfile.write(payload)


_ROUTES = (("/chat/completions", "chat"), ("/responses", "responses"), ("/messages", "messages"))
_MODELS = ("gpt-4o-mini", "gpt-4o", "claude-sonnet-4-5", "claude-3-5-haiku-latest")

_OPENAI_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    404: "invalid_request_error",
    429: "rate_limit_exceeded",
}
_ANTHROPIC_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}


def _error_body(api: str, error: ErrorReply) -> dict[str, Any]:
    if api == "messages":
        kind = error.type or _ANTHROPIC_ERROR_TYPES.get(error.status, "api_error")
        return {"type": "error", "error": {"type": kind, "message": error.message}}
    kind = error.type or _OPENAI_ERROR_TYPES.get(error.status, "server_error")
    return {"error": {"message": error.message, "type": kind, "param": None, "code": None}}


@attrs.frozen
class _Answer:
    n: int
    model: str
    reply: Reply
    usage: Usage
    truncated: bool

    @property
    def created(self) -> int:
        return int(time.time())

    def call_id(self, i: int) -> str:
        return f"call_{self.n}_{i}"

    def arguments(self, call: ToolCall) -> str:
        return json.dumps(call.arguments, separators=(",", ":"))

    def halves(self) -> list[str]:
        """The text in two deltas (one if it is short), as a stream would carry it."""
        text = self.reply.text
        cut = len(text) // 2
        return [p for p in (text[:cut], text[cut:]) if p]


# --- OpenAI Chat Completions --------------------------------------------------------------


def _chat_usage(usage: Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cache_read_tokens, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": usage.reasoning_tokens,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _chat_finish(a: _Answer) -> str:
    if a.truncated:
        return "length"
    return "tool_calls" if a.reply.tool_calls else "stop"


def _chat_completion(a: _Answer) -> dict[str, Any]:
    message: dict[str, Any] = {
        "role": "assistant",
        "content": a.reply.text or None,
        "refusal": None,
        "annotations": [],
    }
    if a.reply.tool_calls:
        message["tool_calls"] = [
            {
                "id": a.call_id(i),
                "type": "function",
                "function": {"name": call.name, "arguments": a.arguments(call)},
            }
            for i, call in enumerate(a.reply.tool_calls)
        ]
    return {
        "id": f"chatcmpl-fake{a.n}",
        "object": "chat.completion",
        "created": a.created,
        "model": a.model,
        "choices": [
            {"index": 0, "message": message, "logprobs": None, "finish_reason": _chat_finish(a)}
        ],
        "usage": _chat_usage(a.usage),
        "service_tier": "default",
        "system_fingerprint": "fp_fake",
    }


def _chat_chunks(a: _Answer, *, include_usage: bool) -> Iterator[tuple[str | None, Any]]:
    base = {
        "id": f"chatcmpl-fake{a.n}",
        "object": "chat.completion.chunk",
        "created": a.created,
        "model": a.model,
        "service_tier": "default",
        "system_fingerprint": "fp_fake",
    }
    # With include_usage, the real service sends "usage": null on every chunk but the last.
    extra: dict[str, Any] = {"usage": None} if include_usage else {}

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return {**base, "choices": [choice], **extra}

    yield None, chunk({"role": "assistant", "content": "", "refusal": None})
    for part in a.halves():
        yield None, chunk({"content": part})
    for i, call in enumerate(a.reply.tool_calls):
        head = {"id": a.call_id(i), "type": "function"}
        yield (
            None,
            chunk(
                {
                    "tool_calls": [
                        {"index": i, **head, "function": {"name": call.name, "arguments": ""}}
                    ]
                }
            ),
        )
        yield (
            None,
            chunk({"tool_calls": [{"index": i, "function": {"arguments": a.arguments(call)}}]}),
        )
    yield None, chunk({}, _chat_finish(a))
    if include_usage:
        yield None, {**base, "choices": [], "usage": _chat_usage(a.usage)}
    yield None, "[DONE]"


# --- OpenAI Responses ---------------------------------------------------------------------


def _responses_output(a: _Answer) -> list[dict[str, Any]]:
    output: list[dict[str, Any]] = []
    if a.reply.text:
        output.append(_output_message(a, a.reply.text, "completed"))
    for i, call in enumerate(a.reply.tool_calls):
        output.append(_function_call(a, i, call, a.arguments(call), "completed"))
    return output


def _output_message(a: _Answer, text: str | None, status: str) -> dict[str, Any]:
    content = [] if text is None else [_output_text(text)]
    return {
        "type": "message",
        "id": f"msg_fake{a.n}",
        "status": status,
        "role": "assistant",
        "content": content,
    }


def _output_text(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _function_call(
    a: _Answer, i: int, call: ToolCall, arguments: str, status: str
) -> dict[str, Any]:
    return {
        "type": "function_call",
        "id": f"fc_fake{a.n}_{i}",
        "call_id": a.call_id(i),
        "name": call.name,
        "arguments": arguments,
        "status": status,
    }


def _response(
    a: _Answer, *, status: str, output: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    done = status != "in_progress"
    return {
        "id": f"resp_fake{a.n}",
        "object": "response",
        "created_at": a.created,
        "status": "incomplete" if done and a.truncated else status,
        "model": a.model,
        "output": _responses_output(a) if output is None else output,
        "output_text": None,
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if done and a.truncated else None,
        "instructions": None,
        "metadata": {},
        "temperature": 1.0,
        "top_p": 1.0,
        "max_output_tokens": None,
        "previous_response_id": None,
        "reasoning": {"effort": None, "summary": None},
        "store": True,
        "text": {"format": {"type": "text"}, "verbosity": "medium"},
        "truncation": "disabled",
        "user": None,
        "usage": (
            {
                "input_tokens": a.usage.input_tokens,
                "input_tokens_details": {"cached_tokens": a.usage.cache_read_tokens},
                "output_tokens": a.usage.output_tokens,
                "output_tokens_details": {"reasoning_tokens": a.usage.reasoning_tokens},
                "total_tokens": a.usage.total_tokens,
            }
            if done
            else None
        ),
    }


def _responses_events(a: _Answer) -> Iterator[tuple[str | None, Any]]:
    seq = itertools.count()

    def event(kind: str, **fields: Any) -> tuple[str, dict[str, Any]]:
        return kind, {"type": kind, "sequence_number": next(seq), **fields}

    yield event("response.created", response=_response(a, status="in_progress", output=[]))
    yield event("response.in_progress", response=_response(a, status="in_progress", output=[]))
    index = 0
    if a.reply.text:
        item_id = f"msg_fake{a.n}"
        where = {"item_id": item_id, "output_index": index, "content_index": 0}
        yield event(
            "response.output_item.added",
            output_index=index,
            item=_output_message(a, None, "in_progress"),
        )
        yield event("response.content_part.added", **where, part=_output_text(""))
        for part in a.halves():
            yield event("response.output_text.delta", **where, delta=part, logprobs=[])
        yield event("response.output_text.done", **where, text=a.reply.text, logprobs=[])
        yield event("response.content_part.done", **where, part=_output_text(a.reply.text))
        yield event(
            "response.output_item.done",
            output_index=index,
            item=_output_message(a, a.reply.text, "completed"),
        )
        index += 1
    for i, call in enumerate(a.reply.tool_calls):
        item = _function_call(a, i, call, "", "in_progress")
        yield event("response.output_item.added", output_index=index, item=item)
        where = {"item_id": item["id"], "output_index": index}
        yield event("response.function_call_arguments.delta", **where, delta=a.arguments(call))
        yield event(
            "response.function_call_arguments.done",
            **where,
            arguments=a.arguments(call),
            name=call.name,
        )
        yield event(
            "response.output_item.done",
            output_index=index,
            item=_function_call(a, i, call, a.arguments(call), "completed"),
        )
        index += 1
    final = "response.incomplete" if a.truncated else "response.completed"
    yield event(final, response=_response(a, status="completed"))


# --- Anthropic Messages -------------------------------------------------------------------


def _anthropic_usage(usage: Usage, output_tokens: int) -> dict[str, Any]:
    uncached = usage.input_tokens - usage.cache_read_tokens - usage.cache_write_tokens
    return {
        "input_tokens": uncached,
        "output_tokens": output_tokens,
        "cache_read_input_tokens": usage.cache_read_tokens,
        "cache_creation_input_tokens": usage.cache_write_tokens,
        "service_tier": "standard",
    }


def _stop_reason(a: _Answer) -> str:
    if a.truncated:
        return "max_tokens"
    return "tool_use" if a.reply.tool_calls else "end_turn"


def _tool_use(a: _Answer, i: int, call: ToolCall, arguments: dict[str, Any]) -> dict[str, Any]:
    return {"type": "tool_use", "id": f"toolu_fake{a.n}_{i}", "name": call.name, "input": arguments}


def _anthropic_message(a: _Answer) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if a.reply.text:
        content.append({"type": "text", "text": a.reply.text})
    content += [_tool_use(a, i, call, call.arguments) for i, call in enumerate(a.reply.tool_calls)]
    return {
        "id": f"msg_fake{a.n}",
        "type": "message",
        "role": "assistant",
        "model": a.model,
        "content": content,
        "stop_reason": _stop_reason(a),
        "stop_sequence": None,
        "usage": _anthropic_usage(a.usage, a.usage.output_tokens),
    }


def _anthropic_events(a: _Answer) -> Iterator[tuple[str | None, Any]]:
    # message_start carries the input side (and a token of output so far); message_delta
    # carries the final, cumulative output count only - as the real API sends them.
    start = {**_anthropic_message(a), "content": [], "stop_reason": None}
    start["usage"] = _anthropic_usage(a.usage, min(1, a.usage.output_tokens))
    yield "message_start", {"type": "message_start", "message": start}
    yield "ping", {"type": "ping"}
    index = 0
    if a.reply.text:
        block = {"type": "text", "text": ""}
        yield (
            "content_block_start",
            {"type": "content_block_start", "index": index, "content_block": block},
        )
        for part in a.halves():
            delta = {"type": "text_delta", "text": part}
            yield (
                "content_block_delta",
                {"type": "content_block_delta", "index": index, "delta": delta},
            )
        yield "content_block_stop", {"type": "content_block_stop", "index": index}
        index += 1
    for i, call in enumerate(a.reply.tool_calls):
        block = _tool_use(a, i, call, {})
        yield (
            "content_block_start",
            {"type": "content_block_start", "index": index, "content_block": block},
        )
        delta = {"type": "input_json_delta", "partial_json": a.arguments(call)}
        yield "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}
        yield "content_block_stop", {"type": "content_block_stop", "index": index}
        index += 1
    yield (
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": _stop_reason(a), "stop_sequence": None},
            "usage": {"output_tokens": a.usage.output_tokens},
        },
    )
    yield "message_stop", {"type": "message_stop"}


__all__ = [
    "ErrorReply",
    "FakeProvider",
    "Reply",
    "Request",
    "Script",
    "ToolCall",
    "Usage",
    "always_call_tool",
    "tool_calls_then_text",
]
