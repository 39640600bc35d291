"""
Two real processes: a caller step calls a tool service over HTTP on 127.0.0.1.

Both processes export their spans to JSON Lines files; the test reads them back and
checks there is one trace, that the callee's spans hang under the caller's step, that
the callee refuses work once the carried budget is spent, and that the caller's totals
include what the callee spent.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import agentsteps
from agentsteps import Budget, StepBudgetExhausted, step
from tests.support import ROOT, SCRIPTS
from tests.support.scripts.distributed_service import tracer_provider
from tests.support.tool_service import Service, call_tool, read_port

SERVICE = SCRIPTS / "distributed_service.py"


@pytest.fixture(scope="module")
def tool_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """Start the tool service in a subprocess; always stop it, killing it if need be."""
    workdir = tmp_path_factory.mktemp("tool_service")
    spans_path = workdir / "service-spans.jsonl"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    with (workdir / "stderr.txt").open("w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, str(SERVICE), str(spans_path)],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env=env,
            cwd=workdir,
        )
    try:
        port = read_port(proc, workdir / "stderr.txt")
        yield Service(url=f"http://127.0.0.1:{port}/summarize", spans_path=spans_path)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        assert proc.stdout is not None
        proc.stdout.close()


def read_spans(path: Path, trace_id: str | None = None) -> list[dict[str, Any]]:
    """Spans written to ``path``, only those of ``trace_id`` if given."""
    spans = [json.loads(line) for line in path.read_text().splitlines()]
    return [s for s in spans if trace_id is None or s["trace_id"] == trace_id]


def only(spans: list[dict[str, Any]], name: str) -> dict[str, Any]:
    """The one span called ``name``."""
    found = [s for s in spans if s["name"] == name]
    assert len(found) == 1, [s["name"] for s in spans]
    return found[0]


@pytest.fixture
def caller_spans(tmp_path: Path) -> Iterator[Path]:
    """Export this process's spans to a JSON Lines file, like the service does."""
    path = tmp_path / "caller-spans.jsonl"
    provider = tracer_provider("planner", path)
    agentsteps.configure(tracer_provider=provider)
    yield path
    provider.shutdown()


def test_one_trace_and_one_budget_across_two_processes(
    tool_service: Service, caller_spans: Path
) -> None:
    """
    The caller's step calls the tool twice. The first call spends 400 tokens and the one
    model call the caller's budget allows; the second carries 0 calls left and the tool
    refuses it. Every span of both processes is in one trace, under the caller's step,
    and the caller's totals include the tool's spend.
    """
    request = {"text": "PR #42", "input_tokens": 300, "output_tokens": 100, "cost_usd": 0.002}

    @step(name="plan", budget=Budget(max_tokens=1_000, max_llm_calls=1))
    def plan() -> list[tuple[int, dict[str, Any]]]:
        return [call_tool(tool_service, **request), call_tool(tool_service, **request)]

    with agentsteps.persona_scope("planner"), agentsteps.run() as collected:
        first, second = plan()

    assert first == (200, {"summary": "summary of PR #42"})
    assert second == (402, {"error": "budget_exhausted", "limit": "max_llm_calls"})

    # The caller's totals include the remote spend, exactly: in the plan step's subtree
    # (what its budget saw) and, through one remote:plan record per report, in the run.
    *remote_records, plan_record = collected.steps
    assert plan_record.status == "completed"
    assert (plan_record.input_tokens, plan_record.output_tokens) == (300, 100)
    assert (plan_record.llm_calls, plan_record.cost_usd) == (1, 0.002)
    assert [r.name for r in remote_records] == ["remote:plan", "remote:plan"]
    assert [r.usage.total_tokens for r in remote_records] == [400, 0]
    assert collected.total.total_tokens == 400
    assert collected.total.cost_nano_usd == 2_000_000

    # One trace across both processes.
    plan_span = only(read_spans(caller_spans), "invoke_workflow plan")
    trace_id = plan_span["trace_id"]
    assert trace_id == plan_record.trace_id
    caller = read_spans(caller_spans, trace_id)
    callee = read_spans(tool_service.spans_path, trace_id)
    # Two remote scopes, one tool step (the second was refused), and the tool's model call.
    assert sorted(s["name"] for s in callee) == [
        "chat tool-model",
        "invoke_workflow remote:plan",
        "invoke_workflow remote:plan",
        "invoke_workflow tool.summarize",
    ]
    assert {s["resource"]["service.name"] for s in caller + callee} == {"planner", "tool-service"}
    pids = {s["resource"]["process.pid"] for s in callee}
    assert pids != {os.getpid()}
    assert len(pids) == 1

    # The callee's spans hang under the caller's step.
    remotes = [s for s in callee if s["name"] == "invoke_workflow remote:plan"]
    assert [r["parent_span_id"] for r in remotes] == [plan_span["span_id"]] * 2
    served, refused = remotes
    tool = only(callee, "invoke_workflow tool.summarize")
    assert tool["parent_span_id"] == served["span_id"]
    assert served["attributes"]["agentsteps.remote.caller_persona"] == "planner"
    assert served["attributes"]["agentsteps.budget.max_tokens"] == 1_000
    assert served["attributes"]["agentsteps.budget.max_llm_calls"] == 1
    assert tool["attributes"]["agentsteps.usage.self.input_tokens"] == 300

    # The second call carried 0 calls left: refused before any work.
    assert refused["attributes"]["agentsteps.budget.max_llm_calls"] == 0
    assert refused["attributes"]["agentsteps.budget.exhausted_limit"] == "max_llm_calls"
    assert refused["status"] == "ERROR"

    # Summed over the whole trace, self figures count the tool's spend once.
    spent = sum(
        s["attributes"].get("agentsteps.usage.self.input_tokens", 0) for s in caller + callee
    )
    assert spent == 300
    assert plan_span["attributes"]["agentsteps.usage.subtree.llm_calls"] == 1


def test_a_tool_running_out_of_the_carried_budget_exhausts_the_caller(
    tool_service: Service, caller_spans: Path
) -> None:
    """
    The tool may only spend what the caller has left (500 tokens); it spends 700, stops
    with HTTP 402 and reports the 700. Charged to the caller, they take the caller's
    step over its own budget: its exhaustion rules apply.
    """
    request = {"text": "PR #7", "input_tokens": 600, "output_tokens": 100, "cost_usd": 0.01}

    @step(name="plan", budget=Budget(max_tokens=500))
    def plan() -> None:
        call_tool(tool_service, **request)
        pytest.fail("the tool's spend should have exhausted the caller's budget")

    with pytest.raises(StepBudgetExhausted) as info:
        plan()
    assert (info.value.step, info.value.limit, info.value.consumed_tokens) == (
        "plan",
        "max_tokens",
        700,
    )

    trace_id = info.value.trace_id
    callee = read_spans(tool_service.spans_path, trace_id)
    remote = only(callee, "invoke_workflow remote:plan")
    tool = only(callee, "invoke_workflow tool.summarize")
    plan_span = only(read_spans(caller_spans, trace_id), "invoke_workflow plan")
    assert remote["parent_span_id"] == plan_span["span_id"]
    assert tool["parent_span_id"] == remote["span_id"]
    assert remote["attributes"]["agentsteps.budget.exhausted_limit"] == "max_tokens"
    assert tool["attributes"]["agentsteps.step.status"] == "failed"
    assert plan_span["attributes"]["agentsteps.budget.exhausted_limit"] == "max_tokens"
    assert plan_span["attributes"]["agentsteps.usage.subtree.input_tokens"] == 600
