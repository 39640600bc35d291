"""Export to Jaeger v2 and read the run back through its query API (/api/v3/traces).

The integration test runs only when AGENTSTEPS_JAEGER_URL points at a Jaeger query service,
e.g. ``AGENTSTEPS_JAEGER_URL=http://localhost:16686`` with the container from docs/jaeger.md.
OTLP goes to AGENTSTEPS_JAEGER_OTLP_ENDPOINT, by default port 4318 on the same host. The
query helper itself (camelCase parameters first, snake_case on HTTP 400) is tested always,
against a loopback stand-in.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from agentsteps import Budget, configure_tracing, persona, record_usage, step
from agentsteps._core import attributes as A

# --- the query client -----------------------------------------------------------------------

_CAMEL = ("query.serviceName", "query.startTimeMin", "query.startTimeMax")
_SNAKE = ("query.service_name", "query.start_time_min", "query.start_time_max")


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def find_traces(base_url: str, service: str, start: datetime, end: datetime) -> list[Any]:
    """Return the OTLP JSON ``resourceSpans`` Jaeger holds for `service` between two times.

    Newer Jaeger releases take camelCase query parameters and deprecate snake_case; older
    ones know only snake_case and answer 400 to the rest, so camelCase is tried first. No
    trace yet (404) is an empty list.
    """
    for names in (_CAMEL, _SNAKE):
        values = (service, _rfc3339(start), _rfc3339(end))
        query = urllib.parse.urlencode(dict(zip(names, values, strict=True)))
        try:
            with urllib.request.urlopen(f"{base_url}/api/v3/traces?{query}", timeout=10) as reply:
                body = reply.read().decode("utf-8")
        except urllib.error.HTTPError as exc:
            if exc.code == 400 and names is _CAMEL:
                continue
            if exc.code == 404:
                return []
            raise
        return _resource_spans(body)
    raise AssertionError("unreachable")  # pragma: no cover


def _resource_spans(body: str) -> list[Any]:
    """Collect resourceSpans from one JSON document or a stream of them (one per line)."""
    try:
        documents = [json.loads(body)]
    except json.JSONDecodeError:
        documents = [json.loads(line) for line in body.splitlines() if line.strip()]
    found: list[Any] = []
    for document in documents:
        found.extend(document.get("result", {}).get("resourceSpans", []))
    return found


def _hex_id(value: str, width: int) -> str:
    """An OTLP JSON id as lowercase hex: OTLP JSON uses hex, protojson gateways base64."""
    if len(value) == width:
        try:
            int(value, 16)
            return value.lower()
        except ValueError:
            pass
    try:
        return base64.b64decode(value, validate=True).hex()
    except (binascii.Error, ValueError):
        return value


def _any_value(value: dict[str, Any]) -> Any:
    """Decode an OTLP JSON AnyValue; int64 values arrive as strings."""
    if "intValue" in value:
        return int(value["intValue"])
    if "doubleValue" in value:
        return float(value["doubleValue"])
    if "boolValue" in value:
        return bool(value["boolValue"])
    if "stringValue" in value:
        return value["stringValue"]
    if "arrayValue" in value:
        return [_any_value(item) for item in value["arrayValue"].get("values", [])]
    return None


def flat_spans(resource_spans: list[Any]) -> list[dict[str, Any]]:
    """Flatten OTLP JSON into dicts: name, trace_id, span_id, parent_id, status, attributes."""
    spans = []
    for resource in resource_spans:
        resource_attributes = {
            kv["key"]: _any_value(kv["value"])
            for kv in resource.get("resource", {}).get("attributes", [])
        }
        for scope in resource.get("scopeSpans", []):
            for span in scope.get("spans", []):
                parent = span.get("parentSpanId") or ""
                spans.append(
                    {
                        "name": span["name"],
                        "trace_id": _hex_id(span["traceId"], 32),
                        "span_id": _hex_id(span["spanId"], 16),
                        "parent_id": _hex_id(parent, 16) if parent else None,
                        "status": span.get("status", {}),
                        "attributes": {
                            kv["key"]: _any_value(kv["value"]) for kv in span.get("attributes", [])
                        },
                        "resource": resource_attributes,
                    }
                )
    return spans


# --- the query client against a loopback stand-in -------------------------------------------

_SAMPLE = {
    "result": {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": "svc"}}]
                },
                "scopeSpans": [
                    {
                        "spans": [
                            {
                                "traceId": "5553d7212d346fb0139ef136cd90be05",
                                "spanId": base64.b64encode(
                                    bytes.fromhex("7e9aac9ecf91bc53")
                                ).decode(),
                                "parentSpanId": "",
                                "name": "invoke_agent writer",
                                "status": {"code": 2, "message": "ValueError: boom"},
                                "attributes": [
                                    {"key": "n", "value": {"intValue": "5000"}},
                                    {"key": "usd", "value": {"doubleValue": 0.1}},
                                    {"key": "whole", "value": {"doubleValue": 2}},
                                    {"key": "ok", "value": {"boolValue": True}},
                                    {"key": "s", "value": {"stringValue": "x"}},
                                ],
                            }
                        ]
                    }
                ],
            }
        ]
    }
}


@pytest.fixture
def stand_in() -> Iterator[tuple[str, list[str], dict[str, Any]]]:
    """A loopback server answering /api/v3/traces; `accept` picks which parameters it takes."""
    seen: list[str] = []
    behaviour: dict[str, Any] = {"accept": "camel", "body": json.dumps(_SAMPLE)}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.path)
            query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
            wanted = _CAMEL if behaviour["accept"] == "camel" else _SNAKE
            if behaviour["accept"] == "none" or set(query) != set(wanted):
                self.send_response(400)
                self.end_headers()
                return
            body = behaviour["body"].encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", seen, behaviour
    server.shutdown()
    server.server_close()


_NOW = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)


class TestQueryClient:
    def test_camel_case_first(self, stand_in: tuple[str, list[str], dict[str, Any]]) -> None:
        """A Jaeger that takes camelCase parameters is asked once, with RFC 3339 times."""
        url, seen, _ = stand_in
        spans = flat_spans(find_traces(url, "svc", _NOW, _NOW + timedelta(minutes=1)))
        assert len(seen) == 1
        assert "query.serviceName=svc" in seen[0]
        assert "query.startTimeMin=2026-11-24T03%3A00%3A00.000000Z" in seen[0]
        assert [span["name"] for span in spans] == ["invoke_agent writer"]

    def test_falls_back_to_snake_case(
        self, stand_in: tuple[str, list[str], dict[str, Any]]
    ) -> None:
        """An older Jaeger that answers 400 to camelCase is asked again in snake_case."""
        url, seen, behaviour = stand_in
        behaviour["accept"] = "snake"
        assert len(find_traces(url, "svc", _NOW, _NOW)) == 1
        assert ["query.serviceName=" in seen[0], "query.service_name=" in seen[1]] == [True, True]

    def test_gives_up_when_both_are_refused(
        self, stand_in: tuple[str, list[str], dict[str, Any]]
    ) -> None:
        """If snake_case is refused too, the HTTP error surfaces."""
        url, _, behaviour = stand_in
        behaviour["accept"] = "none"
        with pytest.raises(urllib.error.HTTPError, match="HTTP Error 400"):
            find_traces(url, "svc", _NOW, _NOW)

    def test_streamed_chunks(self, stand_in: tuple[str, list[str], dict[str, Any]]) -> None:
        """A streamed answer (one JSON document per line) is read chunk by chunk."""
        url, _, behaviour = stand_in
        behaviour["body"] = json.dumps(_SAMPLE) + "\n" + json.dumps(_SAMPLE) + "\n"
        assert len(find_traces(url, "svc", _NOW, _NOW)) == 2

    def test_decoding(self) -> None:
        """Ids in hex or base64 become hex; intValue strings become ints; doubles stay floats."""
        (span,) = flat_spans(_SAMPLE["result"]["resourceSpans"])
        assert span["trace_id"] == "5553d7212d346fb0139ef136cd90be05"
        assert span["span_id"] == "7e9aac9ecf91bc53"
        assert span["parent_id"] is None
        assert span["attributes"] == {"n": 5000, "usd": 0.1, "whole": 2.0, "ok": True, "s": "x"}
        assert type(span["attributes"]["whole"]) is float
        assert span["status"] == {"code": 2, "message": "ValueError: boom"}
        assert span["resource"] == {"service.name": "svc"}


# --- the real thing -------------------------------------------------------------------------

_JAEGER_URL = os.environ.get("AGENTSTEPS_JAEGER_URL", "").strip().rstrip("/")


def _otlp_endpoint() -> str:
    explicit = os.environ.get("AGENTSTEPS_JAEGER_OTLP_ENDPOINT", "").strip()
    if explicit:
        return explicit
    host = urllib.parse.urlsplit(_JAEGER_URL).hostname or "localhost"
    return f"http://{host}:4318"


@pytest.mark.skipif(
    not _JAEGER_URL,
    reason="AGENTSTEPS_JAEGER_URL is not set (start Jaeger as in docs/jaeger.md, then "
    "AGENTSTEPS_JAEGER_URL=http://localhost:16686)",
)
def test_run_lands_in_jaeger() -> None:
    """A run exported over OTLP/HTTP reads back from Jaeger with its tree, status and figures."""
    service = f"agentsteps-jaeger-test-{uuid.uuid4().hex[:8]}"
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    handle = configure_tracing(endpoint=_otlp_endpoint(), tracer_provider=provider)

    @step(name="research", budget=Budget(max_tokens=5_000, max_usd=0.10, max_llm_calls=4))
    def research() -> str:
        record_usage(model="m-1", input_tokens=1_200, output_tokens=300, cost_usd=0.0042)
        return "notes"

    @step(name="draft")
    def draft() -> None:
        raise ValueError("boom")

    @persona(name="writer")
    def writer() -> str:
        notes = research()
        try:
            draft()
        except ValueError:
            pass
        return notes

    start = datetime.now(UTC) - timedelta(minutes=1)
    assert writer() == "notes"
    handle.shutdown()
    assert handle.dropped_spans == 0, "is Jaeger's OTLP/HTTP port reachable?"

    deadline = time.monotonic() + 60
    while True:
        end = datetime.now(UTC) + timedelta(minutes=1)
        spans = {
            span["name"]: span for span in flat_spans(find_traces(_JAEGER_URL, service, start, end))
        }
        if len(spans) >= 4 or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert sorted(spans) == [
        "chat m-1",  # research's model call, as record_usage reported it
        "invoke_agent writer",
        "invoke_workflow draft",
        "invoke_workflow research",
    ]
    assert spans["chat m-1"]["parent_id"] == spans["invoke_workflow research"]["span_id"]
    assert spans["chat m-1"]["attributes"][A.GEN_AI_USAGE_INPUT_TOKENS] == 1_200
    writer_span = spans["invoke_agent writer"]
    assert writer_span["parent_id"] is None
    assert spans["invoke_workflow research"]["parent_id"] == writer_span["span_id"]
    assert spans["invoke_workflow draft"]["parent_id"] == writer_span["span_id"]
    assert len({span["trace_id"] for span in spans.values()}) == 1
    assert spans["invoke_workflow draft"]["status"].get("message") == "ValueError: boom"
    assert spans["invoke_workflow draft"]["status"].get("code") in (2, "STATUS_CODE_ERROR")
    research_attributes = spans["invoke_workflow research"]["attributes"]
    expected = {
        A.BUDGET_MAX_TOKENS: 5_000,
        A.BUDGET_MAX_USD: 0.10,
        A.BUDGET_MAX_LLM_CALLS: 4,
        A.SELF_USAGE["input_tokens"]: 1_200,
        A.SELF_USAGE["output_tokens"]: 300,
        A.SELF_USAGE["cost_usd"]: 0.0042,
        A.GEN_AI_AGENT_NAME: "writer",
    }
    assert {key: research_attributes.get(key) for key in expected} == expected
    assert {key: type(research_attributes[key]) for key in expected} == {
        key: type(value) for key, value in expected.items()
    }
    assert writer_span["resource"]["service.name"] == service
