"""End-to-end export to a real OTLP backend, Arize Phoenix, over OTLP/HTTP and OTLP/gRPC.

Phoenix runs from its own virtual environment (built by ``.ci/phoenix.sh``) and is found
through AGENTSTEPS_PHOENIX_BIN. Without it the test is skipped, except under CI=true, where
a missing or broken Phoenix fails the run: CI must prove the wire path, not skip it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.util._once import Once

from agentsteps import (
    Budget,
    Usage,
    UsageCaptureProcessor,
    configure_tracing,
    current_step,
    llm_call,
    persona,
    record_usage,
    step,
)
from agentsteps._core import attributes as A
from agentsteps.integrations import record_openai

_IN_CI = os.environ.get("CI", "").strip().lower() == "true"
_BUILD_HINT = 'build it with: export AGENTSTEPS_PHOENIX_BIN="$(bash .ci/phoenix.sh)"'
_START_TIMEOUT = 180.0  # first start runs database migrations; a hang fails after this
_INGEST_TIMEOUT = 60.0  # Phoenix writes spans to its database in the background


# --- the Phoenix server ---------------------------------------------------------------------


@attrs.frozen
class Phoenix:
    """A running Phoenix server on loopback."""

    url: str
    grpc_port: int
    log: Path

    def get(self, path: str, **query: Any) -> Any:
        """GET a JSON document from Phoenix's REST API."""
        target = f"{self.url}{path}"
        if query:
            target += "?" + urllib.parse.urlencode(query)
        with urllib.request.urlopen(target, timeout=10) as response:
            return json.load(response)

    def graphql(self, query: str) -> Any:
        """Ask Phoenix's GraphQL API (what its UI reads); raise on a GraphQL error."""
        request = urllib.request.Request(
            f"{self.url}/graphql",
            data=json.dumps({"query": query}).encode(),
            headers={"content-type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            answer = json.load(response)
        assert not answer.get("errors"), answer
        return answer["data"]


def _problem(message: str) -> None:
    """Fail under CI, skip elsewhere: CI must run this test."""
    if _IN_CI:
        pytest.fail(f"CI=true and {message}; {_BUILD_HINT}", pytrace=False)
    pytest.skip(f"{message}; {_BUILD_HINT}")


def _free_port() -> int:
    """A port free on all interfaces (Phoenix's gRPC server binds all of them)."""
    with socket.socket() as sock:
        sock.bind(("", 0))
        return int(sock.getsockname()[1])


def _log_tail(log: Path) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-30:])


@pytest.fixture(scope="module")
def phoenix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Phoenix]:
    """Start `phoenix serve` on free loopback ports with telemetry off; stop it by its PID."""
    binary = os.environ.get("AGENTSTEPS_PHOENIX_BIN", "").strip()
    if not binary:
        _problem("AGENTSTEPS_PHOENIX_BIN is not set")
    if not os.access(binary, os.X_OK):
        # Set but unusable is a broken setup, never a reason to skip.
        pytest.fail(f"AGENTSTEPS_PHOENIX_BIN={binary!r} is not an executable; {_BUILD_HINT}")
    workdir = tmp_path_factory.mktemp("phoenix")
    http_port, grpc_port = _free_port(), _free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        # Our OTEL_* settings are for this process, not for Phoenix's own instrumentation.
        if not key.startswith(("OTEL_", "PHOENIX_", "PYTHON"))
    }
    env.update(
        PHOENIX_WORKING_DIR=str(workdir),
        PHOENIX_HOST="127.0.0.1",
        PHOENIX_PORT=str(http_port),
        PHOENIX_GRPC_PORT=str(grpc_port),
        PHOENIX_TELEMETRY_ENABLED="false",
        PHOENIX_ALLOW_EXTERNAL_RESOURCES="false",
        PHOENIX_DISABLE_AGENT_ASSISTANT="true",
        PHOENIX_ENABLE_MCP_SERVER="false",
        PHOENIX_AGENTS_DISABLE_BASH="true",
    )
    log = workdir / "phoenix.log"
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            [binary, "serve"],
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=env,
        )
    server = Phoenix(url=f"http://127.0.0.1:{http_port}", grpc_port=grpc_port, log=log)
    try:
        deadline = time.monotonic() + _START_TIMEOUT
        while True:
            if process.poll() is not None:
                pytest.fail(
                    f"phoenix serve exited with {process.returncode}:\n{_log_tail(log)}",
                    pytrace=False,
                )
            try:
                with urllib.request.urlopen(f"{server.url}/healthz", timeout=2) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"phoenix serve never became healthy:\n{_log_tail(log)}", pytrace=False)
            time.sleep(0.5)
        yield server
    finally:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=30)


# --- an agentsteps run to export ------------------------------------------------------------


@persona(name="writer", model="claude-haiku-4-5")
def writer(topic: str) -> dict[str, Any]:
    """A persona that researches (with a nested, over-budget fact check) and fails a draft."""
    notes = research(topic)
    try:
        draft(notes)
    except ValueError:
        notes["draft"] = "failed"
    return notes


@step(name="research", budget=Budget(max_tokens=5_000, max_usd=0.10, max_llm_calls=4))
def research(topic: str) -> dict[str, Any]:
    record_usage(
        input_tokens=1_200,
        output_tokens=300,
        cost_usd=0.0042,
        cache_read_tokens=200,
        cache_write_tokens=64,
        reasoning_tokens=50,
    )
    record_usage(input_tokens=400, output_tokens=80, cost_usd=0.0011)
    return {"topic": topic, "checked": fact_check()}


@step(name="fact_check", budget=Budget(max_tokens=100), error_boundary="continue", default="no")
def fact_check() -> str:
    record_usage(input_tokens=150, output_tokens=10, cost_usd=0.0002)
    return "yes"  # never reached: the usage above is over budget


@step(name="draft", model="claude-sonnet-4-5")
def draft(notes: dict[str, Any]) -> str:
    record_usage(input_tokens=10, output_tokens=0, cost_usd=0.00003)
    raise ValueError("boom")


def _export_run(phoenix: Phoenix, protocol: str, project: str) -> list[ReadableSpan]:
    """Run the persona with OTLP export to Phoenix; return the spans as they left the process."""
    endpoint = (
        phoenix.url if protocol == "http/protobuf" else f"http://127.0.0.1:{phoenix.grpc_port}"
    )
    handle = configure_tracing(
        "agentsteps-phoenix-test",
        endpoint=endpoint,
        protocol=protocol,  # type: ignore[arg-type]
        resource_attributes={"openinference.project.name": project},
        export_timeout=10,
    )
    local = InMemorySpanExporter()
    assert handle.tracer_provider is not None
    handle.tracer_provider.add_span_processor(SimpleSpanProcessor(local))
    assert writer("otlp") == {"topic": "otlp", "checked": "no", "draft": "failed"}
    handle.shutdown()
    assert handle.dropped_spans == 0
    return list(local.get_finished_spans())


def _read_back(phoenix: Phoenix, project: str, count: int) -> list[dict[str, Any]]:
    """Poll Phoenix until `count` spans of `project` are stored; return them."""
    deadline = time.monotonic() + _INGEST_TIMEOUT
    while True:
        try:
            spans = phoenix.get(f"/v1/projects/{project}/spans", limit=100)["data"]
        except urllib.error.HTTPError as exc:
            if exc.code != 404:  # 404: the project appears with its first span
                raise
            spans = []
        if len(spans) >= count or time.monotonic() > deadline:
            return list(spans)
        time.sleep(0.5)


def _frames(stored: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The persona and step spans Phoenix stored, by name (model-call spans left out)."""
    return {span["name"]: span for span in stored if not span["name"].startswith("chat ")}


Exported = dict[str, tuple[list[ReadableSpan], list[dict[str, Any]]]]


_PROTOCOLS = ["http/protobuf", "grpc"]


@pytest.fixture(scope="module")
def exported(phoenix: Phoenix) -> Exported:
    """Export the run once per protocol; keep what was sent and what Phoenix stored."""
    results = {}
    with pytest.MonkeyPatch.context() as monkeypatch:
        for protocol in _PROTOCOLS:
            monkeypatch.setattr(trace, "_TRACER_PROVIDER", None)
            monkeypatch.setattr(trace, "_TRACER_PROVIDER_SET_ONCE", Once())
            for name in list(os.environ):
                if name.startswith("OTEL_"):
                    monkeypatch.delenv(name)
            project = f"agentsteps-{protocol.replace('/', '-')}-{uuid.uuid4().hex[:8]}"
            sent = _export_run(phoenix, protocol, project)
            results[protocol] = (sent, _read_back(phoenix, project, len(sent)))
    return results


# --- what must survive the trip -------------------------------------------------------------


@pytest.mark.parametrize("protocol", _PROTOCOLS)
def test_span_tree_and_status(exported: Exported, protocol: str) -> None:
    """Phoenix stores every span with its name, trace, parent and status as sent."""
    sent, everything = exported[protocol]
    assert (
        sorted(span["name"] for span in everything)
        == sorted(span.name for span in sent)
        == [
            "chat claude-haiku-4-5",  # research's two model calls and fact_check's
            "chat claude-haiku-4-5",
            "chat claude-haiku-4-5",
            "chat claude-sonnet-4-5",  # draft's
            "invoke_agent writer",
            "invoke_workflow draft",
            "invoke_workflow fact_check",
            "invoke_workflow research",
        ]
    )
    by_id = {span["context"]["span_id"]: span for span in everything}
    for span in sent:
        context = span.get_span_context()
        back = by_id[f"{context.span_id:016x}"]
        assert back["context"]["trace_id"] == f"{context.trace_id:032x}"
        expected_parent = f"{span.parent.span_id:016x}" if span.parent else None
        assert back["parent_id"] == expected_parent, span.name
    stored = _frames(everything)
    assert (
        stored["invoke_workflow research"]["parent_id"]
        == stored["invoke_agent writer"]["context"]["span_id"]
    )
    assert (
        stored["invoke_workflow fact_check"]["parent_id"]
        == stored["invoke_workflow research"]["context"]["span_id"]
    )
    assert stored["invoke_agent writer"]["parent_id"] is None
    assert (
        stored["invoke_workflow draft"]["status_code"],
        stored["invoke_workflow draft"]["status_message"],
    ) == ("ERROR", "ValueError: boom")
    for name in ("invoke_agent writer", "invoke_workflow research", "invoke_workflow fact_check"):
        assert stored[name]["status_code"] == "UNSET", name


@pytest.mark.parametrize("protocol", _PROTOCOLS)
def test_every_attribute_round_trips_with_its_type(exported: Exported, protocol: str) -> None:
    """Every attribute sent (tokens, costs, budget limits, names) comes back equal, same type."""
    sent, everything = exported[protocol]
    by_id = {span["context"]["span_id"]: span for span in everything}
    for span in sent:
        assert span.attributes is not None
        back = by_id[f"{span.get_span_context().span_id:016x}"]["attributes"]
        for key, value in span.attributes.items():
            if key == "openinference.span.kind":
                continue  # Phoenix turns it into the span's kind (checked below)
            assert key in back, (span.name, key)
            assert back[key] == value, (span.name, key)
            assert type(back[key]) is type(value), (span.name, key, type(back[key]))


@pytest.mark.parametrize("protocol", _PROTOCOLS)
def test_figures_of_the_run(exported: Exported, protocol: str) -> None:
    """The run's own figures arrive exactly: limits, self and subtree usage, the budget event."""
    stored = _frames(exported[protocol][1])
    research_attributes = stored["invoke_workflow research"]["attributes"]
    expected: dict[str, Any] = {
        A.BUDGET_MAX_TOKENS: 5_000,
        A.BUDGET_MAX_USD: 0.10,
        A.BUDGET_MAX_LLM_CALLS: 4,
        A.SELF_USAGE["input_tokens"]: 1_600,
        A.SELF_USAGE["output_tokens"]: 380,
        A.SELF_USAGE["cache_read_tokens"]: 200,
        A.SELF_USAGE["cache_write_tokens"]: 64,
        A.SELF_USAGE["reasoning_tokens"]: 50,
        A.SELF_USAGE["cost_usd"]: 0.0053,
        A.SELF_USAGE["llm_calls"]: 2,
        A.SUBTREE_USAGE["input_tokens"]: 1_750,
        A.SUBTREE_USAGE["llm_calls"]: 3,
        A.SUBTREE_USAGE["cost_usd"]: 0.0055,
        A.GEN_AI_AGENT_NAME: "writer",
        A.STEP_STATUS: "completed",
    }
    assert {key: research_attributes.get(key) for key in expected} == expected
    assert {key: type(research_attributes[key]) for key in expected} == {
        key: type(value) for key, value in expected.items()
    }
    persona_attributes = stored["invoke_agent writer"]["attributes"]
    assert persona_attributes[A.SUBTREE_USAGE["cost_usd"]] == 0.00553
    assert persona_attributes[A.SUBTREE_USAGE["llm_calls"]] == 4
    fact_check = stored["invoke_workflow fact_check"]
    assert fact_check["attributes"][A.STEP_STATUS] == "skipped"
    assert [event["name"] for event in fact_check["events"]] == [A.EVENT_BUDGET_EXHAUSTED]


@pytest.mark.parametrize("protocol", _PROTOCOLS)
def test_persona_is_an_agent_span_in_phoenix(exported: Exported, protocol: str) -> None:
    """Phoenix maps gen_ai.operation.name=invoke_agent to its AGENT span kind."""
    stored = _frames(exported[protocol][1])
    assert stored["invoke_agent writer"]["span_kind"] == "AGENT"


@pytest.mark.parametrize("protocol", _PROTOCOLS)
def test_steps_are_agent_spans_in_phoenix(exported: Exported, protocol: str) -> None:
    """Step spans show up in Phoenix as AGENT spans, like personas; model calls as LLM."""
    everything = exported[protocol][1]
    kinds = {name: span["span_kind"] for name, span in _frames(everything).items()}
    assert set(kinds.values()) == {"AGENT"}, kinds
    calls = [span for span in everything if span["name"].startswith("chat ")]
    assert [span["span_kind"] for span in calls] == ["LLM"] * 4
    # No provider claim on the persona: Phoenix shows no llm.system/provider for it.
    persona_attributes = _frames(everything)["invoke_agent writer"]["attributes"]
    assert "llm.system" not in persona_attributes, persona_attributes
    assert "llm.provider" not in persona_attributes, persona_attributes


# --- what a user reads in Phoenix: one LLM span per request, the run's cost -------------------


@step(name="priced", model="gpt-4o-mini")
def priced_run(other: trace.Tracer) -> Usage:
    """Four requests to a model Phoenix prices, reported in each way agentsteps supports."""
    chat = {"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o-mini"}
    # 1. A response read with record_openai: a model-call span of its own.
    record_openai(
        {"model": "gpt-4o-mini", "usage": {"prompt_tokens": 12_000, "completion_tokens": 800}}
    )
    # 2. An llm_call block with the provider's figures.
    with llm_call() as call:
        call.record(input_tokens=3_000, output_tokens=400)
    # 3. An llm_call around an instrumented client: the client's span carries the usage.
    with llm_call(), other.start_as_current_span("chat gpt-4o-mini", attributes=chat) as client:
        client.set_attributes(
            {"gen_ai.usage.input_tokens": 5_000, "gen_ai.usage.output_tokens": 1_000}
        )
    # 4. A framework's chat span around an llm_call (Pydantic AI's shape).
    with other.start_as_current_span("chat gpt-4o-mini", attributes=chat) as framework:
        with llm_call() as call:
            call.record(input_tokens=2_000, output_tokens=100)
        framework.set_attributes(
            {"gen_ai.usage.input_tokens": 2_000, "gen_ai.usage.output_tokens": 100}
        )
    return current_step().usage  # type: ignore[union-attr]


def _project_cost(phoenix: Phoenix, project: str) -> tuple[float | None, float | None]:
    """The project's Total Cost and tokens, as Phoenix's UI shows them (GraphQL)."""
    data = phoenix.graphql(
        "{ projects { edges { node { name costSummary { total { cost tokens } } } } } }"
    )
    for edge in data["projects"]["edges"]:
        if edge["node"]["name"] == project:
            total = edge["node"]["costSummary"]["total"]
            return total["cost"], total["tokens"]
    return None, None


def test_one_llm_span_per_request_and_the_runs_cost(phoenix: Phoenix) -> None:
    """Phoenix counts each request once and its Total Cost is the run's cost."""
    project = f"agentsteps-cost-{uuid.uuid4().hex[:8]}"
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setattr(trace, "_TRACER_PROVIDER", None)
        monkeypatch.setattr(trace, "_TRACER_PROVIDER_SET_ONCE", Once())
        for name in list(os.environ):
            if name.startswith("OTEL_"):
                monkeypatch.delenv(name)
        handle = configure_tracing(
            "agentsteps-phoenix-test",
            endpoint=phoenix.url,
            resource_attributes={"openinference.project.name": project},
            export_timeout=10,
        )
        provider = handle.tracer_provider
        assert provider is not None
        provider.add_span_processor(UsageCaptureProcessor())  # type: ignore[attr-defined]
        local = InMemorySpanExporter()
        provider.add_span_processor(SimpleSpanProcessor(local))  # type: ignore[attr-defined]
        usage = priced_run(provider.get_tracer("another-instrumentation"))
        handle.shutdown()
    assert usage.llm_calls == 4  # charged once per request, whoever reported it
    assert usage.total_tokens == 12_800 + 3_400 + 6_000 + 2_100
    assert usage.unpriced_calls == 0
    stored = _read_back(phoenix, project, len(local.get_finished_spans()))
    llm = [span for span in stored if span["span_kind"] == "LLM"]
    assert len(llm) == 4, [(span["name"], span["span_kind"]) for span in stored]
    deadline = time.monotonic() + _INGEST_TIMEOUT
    while True:
        cost, tokens = _project_cost(phoenix, project)
        if cost is not None or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert tokens == usage.total_tokens
    assert cost == pytest.approx(usage.cost_usd, rel=1e-9, abs=1e-12)
    assert usage.cost_usd == pytest.approx((22_000 * 0.15 + 2_300 * 0.60) / 1e6)
