"""Export to a real Jaeger v2 and read the runs back through its query API v3.

Jaeger is the binary ``.ci/jaeger.sh`` builds from the Go module proxy, found through
AGENTSTEPS_JAEGER_BIN and started by these tests on free loopback ports
(``tests/support/jaeger_server.py``). Without it the Jaeger tests are skipped, except under CI=true,
where a missing or broken Jaeger fails the run: CI must prove the wire path, not skip it.

What they prove, for ``agentsteps run examples/code_review.py`` sent over OTLP/HTTP and again
over OTLP/gRPC, configured by the standard ``OTEL_*`` variables only: one trace; every span
the run made is stored with its parent, kind, status and events; every attribute arrives with
its value and its type; the service name and the resource attributes are the variables'.
And for a caller and a callee service in two processes: one trace spanning both services.
The query helper itself (camelCase parameters first, snake_case on HTTP 400) is tested
always, against a loopback stand-in.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NoReturn

import attrs
import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

import agentsteps
from agentsteps import Budget, configure_tracing, persona_scope, step
from agentsteps._core import attributes as A
from tests.support import EXAMPLES, SCRIPTS
from tests.support.jaeger_server import Jaeger, JaegerStartError, start_jaeger
from tests.support.tool_service import Service, call_tool, read_port

# --- the query client -----------------------------------------------------------------------

# The last parameter is the search depth (how many traces at most): Jaeger's in-memory store
# refuses a search without one. v1.75.0 knows only the snake_case names (and num_traces);
# newer releases prefer camelCase (and call it searchDepth).
_CAMEL = ("query.serviceName", "query.startTimeMin", "query.startTimeMax", "query.searchDepth")
_SNAKE = ("query.service_name", "query.start_time_min", "query.start_time_max", "query.num_traces")
_SEARCH_DEPTH = "100"
# No proxy, whatever the environment says: Jaeger is on loopback.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def find_traces(base_url: str, service: str, start: datetime, end: datetime) -> list[Any]:
    """Return the OTLP JSON ``resourceSpans`` Jaeger holds for `service` between two times.

    Newer Jaeger releases take camelCase query parameters and deprecate snake_case; older
    ones know only snake_case and answer 400 to the rest, so camelCase is tried first. No
    trace yet (404) is an empty list.
    """
    for names in (_CAMEL, _SNAKE):
        values = (service, _rfc3339(start), _rfc3339(end), _SEARCH_DEPTH)
        query = urllib.parse.urlencode(dict(zip(names, values, strict=True)))
        try:
            with OPENER.open(f"{base_url}/api/v3/traces?{query}", timeout=10) as reply:
                body = reply.read().decode("utf-8")
        except urllib.error.HTTPError as exc:
            if exc.code == 400 and names is _CAMEL:
                continue
            if exc.code == 404:
                return []
            raise
        return _resource_spans(body)
    raise AssertionError("unreachable")  # pragma: no cover


def get_trace(base_url: str, trace_id: str) -> list[Any]:
    """Return the OTLP JSON ``resourceSpans`` of one trace; not there (yet) is empty."""
    try:
        with OPENER.open(f"{base_url}/api/v3/traces/{trace_id}", timeout=10) as reply:
            return _resource_spans(reply.read().decode("utf-8"))
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return []
        raise


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
    """Flatten OTLP JSON into dicts: ids, name, kind, status, attributes, events, resource."""
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
                        "kind": span.get("kind", 0),  # protojson leaves out zero values
                        "events": [
                            {
                                "name": event["name"],
                                "time": int(event.get("timeUnixNano", 0)),
                                "attributes": {
                                    kv["key"]: _any_value(kv["value"])
                                    for kv in event.get("attributes", [])
                                },
                            }
                            for event in span.get("events", [])
                        ],
                        "scope": scope.get("scope", {}).get("name"),
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
        assert "query.searchDepth=100" in seen[0]
        assert [span["name"] for span in spans] == ["invoke_agent writer"]

    def test_falls_back_to_snake_case(
        self, stand_in: tuple[str, list[str], dict[str, Any]]
    ) -> None:
        """An older Jaeger that answers 400 to camelCase is asked again in snake_case."""
        url, seen, behaviour = stand_in
        behaviour["accept"] = "snake"
        assert len(find_traces(url, "svc", _NOW, _NOW)) == 1
        assert ["query.serviceName=" in seen[0], "query.service_name=" in seen[1]] == [True, True]
        assert "query.num_traces=100" in seen[1]

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


# --- a real Jaeger --------------------------------------------------------------------------

EXAMPLE = EXAMPLES / "code_review.py"
RUNNER = SCRIPTS / "run_with_span_copy.py"
SERVICE = SCRIPTS / "distributed_service.py"
_IN_CI = os.environ.get("CI", "").strip().lower() == "true"
_BUILD_HINT = 'build it with: export AGENTSTEPS_JAEGER_BIN="$(bash .ci/jaeger.sh)"'
_RUN_TIMEOUT = 120.0  # one run of the example takes about a second
_INGEST_TIMEOUT = 30.0  # Jaeger batches spans into storage within a fraction of a second
_PROTOCOLS = ["http/protobuf", "grpc"]
# Passed to the example (which ignores them) so that agentsteps.run.args is a non-empty
# string array: arrays must arrive as arrays.
_SCRIPT_ARGS = ["--pr", "42"]
# OTLP JSON enums: what the JSONL copy names, Jaeger numbers.
_KINDS = {"INTERNAL": 1, "SERVER": 2, "CLIENT": 3, "PRODUCER": 4, "CONSUMER": 5}
_STATUS_CODES = {"UNSET": 0, "OK": 1, "ERROR": 2}


def _problem(message: str) -> NoReturn:
    """Fail under CI, skip elsewhere: CI must run these tests."""
    if _IN_CI:
        pytest.fail(f"CI=true and {message}; {_BUILD_HINT}", pytrace=False)
    pytest.skip(f"{message}; {_BUILD_HINT}")


@pytest.fixture(scope="session")
def jaeger(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Jaeger]:
    """Jaeger v2 on free loopback ports for the whole session; stopped at the end."""
    binary = os.environ.get("AGENTSTEPS_JAEGER_BIN", "").strip()
    if not binary:
        _problem("AGENTSTEPS_JAEGER_BIN is not set")
    if not os.access(binary, os.X_OK):
        # Set but unusable is a broken setup, never a reason to skip.
        pytest.fail(f"AGENTSTEPS_JAEGER_BIN={binary!r} is not an executable; {_BUILD_HINT}")
    try:
        with start_jaeger(binary, tmp_path_factory.mktemp("jaeger")) as server:
            yield server
    except JaegerStartError as exc:
        pytest.fail(str(exc), pytrace=False)


def _environment(**otel: str) -> dict[str, str]:
    """This process's environment less its OTEL_* settings, plus the given ones."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("OTEL_")}
    env.update(otel)
    return env


def _poll_trace(jaeger: Jaeger, trace_id: str, count: int) -> list[dict[str, Any]]:
    """The trace's spans once Jaeger holds `count` of them (or what it holds at the timeout)."""
    deadline = time.monotonic() + _INGEST_TIMEOUT
    while True:
        spans = flat_spans(get_trace(jaeger.query_url, trace_id))
        if len(spans) >= count or time.monotonic() > deadline:
            return spans
        time.sleep(0.2)


@attrs.frozen
class Sent:
    """One run of the example: the spans as they left the process, and as Jaeger has them."""

    service: str
    resource_attributes: str
    sent: list[dict[str, Any]]
    stored: list[dict[str, Any]]
    found: list[dict[str, Any]]

    def stored_by_id(self) -> dict[str, dict[str, Any]]:
        return {span["span_id"]: span for span in self.stored}


@pytest.fixture(scope="module")
def runs(jaeger: Jaeger, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Sent]:
    """`agentsteps run examples/code_review.py` once per protocol, set up by OTEL_* only."""
    results = {}
    for protocol in _PROTOCOLS:
        short = "grpc" if protocol == "grpc" else "http"
        workdir = tmp_path_factory.mktemp(f"code-review-{short}")
        service = f"code-review-{short}"
        resource_attributes = f"deployment.environment.name=ci,team=agents,otlp.protocol={short}"
        env = _environment(
            OTEL_SERVICE_NAME=service,
            OTEL_RESOURCE_ATTRIBUTES=resource_attributes,
            OTEL_EXPORTER_OTLP_ENDPOINT=(
                jaeger.otlp_grpc_url if protocol == "grpc" else jaeger.otlp_http_url
            ),
            OTEL_EXPORTER_OTLP_PROTOCOL=protocol,
        )
        copy = workdir / "sent.jsonl"
        start = datetime.now(UTC) - timedelta(minutes=1)
        command = [sys.executable, str(RUNNER), str(copy), "--no-report", str(EXAMPLE)]
        done = subprocess.run(
            [*command, *_SCRIPT_ARGS],
            cwd=workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=_RUN_TIMEOUT,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert "dropped" not in done.stderr, done.stderr  # the export's one warning
        sent = [json.loads(line) for line in copy.read_text(encoding="utf-8").splitlines()]
        assert sent, (
            f"{RUNNER.name} kept no copy: does `agentsteps run` still build its tracer "
            "provider from agentsteps._report.cli.TracerProvider?"
        )
        (trace_id,) = {span["trace_id"] for span in sent}
        stored = _poll_trace(jaeger, trace_id, len(sent))
        end = datetime.now(UTC) + timedelta(minutes=1)
        found = flat_spans(find_traces(jaeger.query_url, service, start, end))
        results[protocol] = Sent(service, resource_attributes, sent, stored, found)
    return results


def _by_name(spans: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [span for span in spans if span["name"] == name]


@pytest.mark.parametrize("protocol", _PROTOCOLS)
def test_the_run_is_one_trace(runs: dict[str, Sent], protocol: str) -> None:
    """Searching Jaeger by the service finds one trace: the run's, with all of its spans."""
    run = runs[protocol]
    (trace_id,) = {span["trace_id"] for span in run.sent}
    assert {span["trace_id"] for span in run.found} == {trace_id}
    assert sorted(span["span_id"] for span in run.found) == sorted(
        span["span_id"] for span in run.sent
    )
    assert {span["trace_id"] for span in run.stored} == {trace_id}


@pytest.mark.parametrize("protocol", _PROTOCOLS)
def test_every_span_is_there_with_its_parent(runs: dict[str, Sent], protocol: str) -> None:
    """Each span the run made is stored once, with its name and its parent."""
    run = runs[protocol]
    assert len(run.stored) == len(run.sent)
    assert {span["span_id"]: (span["name"], span["parent_id"]) for span in run.stored} == {
        span["span_id"]: (span["name"], span["parent_span_id"]) for span in run.sent
    }
    # The example's shape, so a run that made no spans cannot pass the comparison above.
    names = [span["name"] for span in run.sent]
    assert names.count("invoke_workflow resolve_conflicts") == 2
    assert {name for name in names if not name.startswith("chat ")} == {
        "agentsteps run code_review.py",
        "invoke_agent author",
        "invoke_agent reviewer",
        "invoke_agent merger",
        "invoke_workflow plan_change",
        "invoke_workflow write_patch",
        "invoke_workflow write_tests",
        "invoke_workflow review_patch",
        "invoke_workflow resolve_conflicts",
    }
    assert len(_by_name(run.sent, "chat scripted-mini")) == 6
    (root,) = [span for span in run.stored if span["parent_id"] is None]
    assert root["name"] == "agentsteps run code_review.py"


def _typed(value: Any) -> Any:
    """A value with the types of its parts, so that 1 and 1.0 (or True) differ."""
    if isinstance(value, list):
        return ("list", [_typed(item) for item in value])
    return (type(value).__name__, value)


@pytest.mark.parametrize("protocol", _PROTOCOLS)
def test_every_attribute_arrives_with_its_type(runs: dict[str, Sent], protocol: str) -> None:
    """Every attribute, agentsteps.* and gen_ai.* alike, has the value and type it was sent with.

    Ints stay ints (OTLP JSON writes them as strings), floats stay floats even when whole,
    string arrays stay arrays; Jaeger adds and drops nothing.
    """
    run = runs[protocol]
    stored = run.stored_by_id()
    kinds: set[str] = set()
    for span in run.sent:
        back = stored[span["span_id"]]["attributes"]
        assert {key: _typed(value) for key, value in back.items()} == {
            key: _typed(value) for key, value in span["attributes"].items()
        }, span["name"]
        kinds.update(type(value).__name__ for value in span["attributes"].values())
    assert kinds >= {"int", "float", "str", "list"}
    (root,) = _by_name(run.stored, "agentsteps run code_review.py")
    assert root["attributes"]["agentsteps.run.args"] == _SCRIPT_ARGS
    (plan,) = _by_name(run.stored, "invoke_workflow plan_change")
    assert type(plan["attributes"][A.BUDGET_MAX_TOKENS]) is int
    assert type(plan["attributes"][A.SELF_USAGE["cost_usd"]]) is float
    assert plan["attributes"][A.GEN_AI_AGENT_NAME] == "author"
    assert plan["attributes"][A.GEN_AI_OPERATION_NAME] == "invoke_workflow"


def _event_order(event: dict[str, Any]) -> tuple[int, str]:
    return event["time"], event["name"]


@pytest.mark.parametrize("protocol", _PROTOCOLS)
def test_kinds_statuses_and_events(runs: dict[str, Sent], protocol: str) -> None:
    """Span kinds, statuses (with their descriptions) and events arrive as sent."""
    run = runs[protocol]
    stored = run.stored_by_id()
    for span in run.sent:
        back = stored[span["span_id"]]
        assert back["kind"] == _KINDS[span["kind"]], span["name"]
        code = _STATUS_CODES[span["status"]["code"]]
        assert back["status"].get("code", 0) == code, span["name"]
        assert back["status"].get("message") == span["status"]["description"], span["name"]
        # Jaeger does not keep the order events were added in: compare them in time order.
        assert sorted(back["events"], key=_event_order) == sorted(
            (
                {
                    "name": event["name"],
                    "time": event["time_unix_nano"],
                    "attributes": event["attributes"],
                }
                for event in span["events"]
            ),
            key=_event_order,
        ), span["name"]
    # Model calls are CLIENT spans, personas and steps INTERNAL.
    assert {span["kind"] for span in run.stored if span["name"].startswith("chat ")} == {3}
    assert {span["kind"] for span in run.stored if span["name"].startswith("invoke_")} == {1}
    # write_tests ran out of budget on its model call: the call is the ERROR, with the
    # reason; the step, skipped by its error boundary, is not an error.
    (write_tests,) = _by_name(run.stored, "invoke_workflow write_tests")
    assert write_tests["attributes"][A.STEP_STATUS] == "skipped"
    assert write_tests["status"].get("code", 0) == 0
    (failed_call,) = [span for span in run.stored if span["parent_id"] == write_tests["span_id"]]
    assert failed_call["name"] == "chat scripted-mini"
    assert failed_call["status"]["code"] == 2
    assert failed_call["status"]["message"].startswith(
        "StepBudgetExhausted: step 'write_tests' exceeded max_tokens budget"
    )
    escalated, completed = sorted(
        _by_name(run.stored, "invoke_workflow resolve_conflicts"),
        key=lambda span: span["attributes"][A.STEP_STATUS] != "escalated",
    )
    assert escalated["attributes"][A.STEP_STATUS] == "escalated"
    assert escalated["status"]["code"] == 2
    assert escalated["status"]["message"].startswith("StepEscalated: ")
    assert completed["status"].get("code", 0) == 0


@pytest.mark.parametrize("protocol", _PROTOCOLS)
def test_service_name_and_resource(jaeger: Jaeger, runs: dict[str, Sent], protocol: str) -> None:
    """The service is OTEL_SERVICE_NAME; OTEL_RESOURCE_ATTRIBUTES are on every span's resource."""
    run = runs[protocol]
    stored = run.stored_by_id()
    for span in run.sent:
        assert stored[span["span_id"]]["resource"] == span["resource"], span["name"]
    (resource,) = {json.dumps(span["resource"], sort_keys=True) for span in run.stored}
    attributes = json.loads(resource)
    assert attributes["service.name"] == run.service
    expected = dict(pair.split("=", 1) for pair in run.resource_attributes.split(","))
    assert {key: attributes[key] for key in expected} == expected
    assert attributes["telemetry.sdk.language"] == "python"
    with OPENER.open(f"{jaeger.query_url}/api/v3/services", timeout=10) as reply:
        assert run.service in json.load(reply)["services"]


def test_one_trace_across_two_services(jaeger: Jaeger, tmp_path: Path) -> None:
    """A caller's step calls a tool service in another process: Jaeger shows one trace.

    The caller (this process, service "planner") exports over OTLP/HTTP; the tool service
    ("tool-service") over OTLP/gRPC, set up by the OTEL_* variables. The callee's
    ``remote_parent`` span hangs under the caller's step, the tool's step under it.
    """
    env = _environment(
        OTEL_EXPORTER_OTLP_ENDPOINT=jaeger.otlp_grpc_url, OTEL_EXPORTER_OTLP_PROTOCOL="grpc"
    )
    with (tmp_path / "stderr.txt").open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, str(SERVICE), str(tmp_path / "callee.jsonl"), "--otlp"],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env=env,
            cwd=tmp_path,
        )
    try:
        tool = Service(
            url=f"http://127.0.0.1:{read_port(process, tmp_path / 'stderr.txt')}/summarize",
            spans_path=tmp_path / "callee.jsonl",
        )
        provider = TracerProvider(resource=Resource.create({"service.name": "planner"}))
        handle = configure_tracing(
            endpoint=jaeger.otlp_http_url, tracer_provider=provider, export_timeout=10
        )

        @step(name="plan", budget=Budget(max_tokens=1_000))
        def plan() -> tuple[int, dict[str, Any]]:
            return call_tool(
                tool, text="PR #42", input_tokens=300, output_tokens=100, cost_usd=0.002
            )

        with persona_scope("planner"), agentsteps.run() as collected:
            assert plan() == (200, {"summary": "summary of PR #42"})
        handle.shutdown()
        assert handle.dropped_spans == 0
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        assert process.stdout is not None
        process.stdout.close()

    (plan_record,) = [record for record in collected.steps if record.name == "plan"]
    assert plan_record.trace_id is not None
    # The tool's record_usage is a model call of its own (a zero-duration CLIENT span).
    spans = _poll_trace(jaeger, plan_record.trace_id, 5)
    by_name = {span["name"]: span for span in spans}
    assert len(spans) == 5
    assert sorted(by_name) == [
        "chat tool-model",
        "invoke_agent planner",
        "invoke_workflow plan",
        "invoke_workflow remote:plan",
        "invoke_workflow tool.summarize",
    ]
    assert {span["trace_id"] for span in spans} == {plan_record.trace_id}
    services = {name: span["resource"]["service.name"] for name, span in by_name.items()}
    assert services == {
        "chat tool-model": "tool-service",
        "invoke_agent planner": "planner",
        "invoke_workflow plan": "planner",
        "invoke_workflow remote:plan": "tool-service",
        "invoke_workflow tool.summarize": "tool-service",
    }
    plan_span = by_name["invoke_workflow plan"]
    remote = by_name["invoke_workflow remote:plan"]
    assert by_name["invoke_agent planner"]["parent_id"] is None
    assert plan_span["parent_id"] == by_name["invoke_agent planner"]["span_id"]
    assert remote["parent_id"] == plan_span["span_id"]
    assert by_name["invoke_workflow tool.summarize"]["parent_id"] == remote["span_id"]
    tool_span = by_name["invoke_workflow tool.summarize"]
    assert by_name["chat tool-model"]["parent_id"] == tool_span["span_id"]
    assert remote["attributes"]["agentsteps.remote.caller_persona"] == "planner"
    assert plan_span["attributes"][A.SUBTREE_USAGE["input_tokens"]] == 300
