"""
agentsteps' metrics in a real Prometheus (Debian's ``prometheus`` package).

``agentsteps run`` runs examples/code_review.py with ``OTEL_METRICS_EXPORTER=prometheus``;
a Prometheus server this test starts on free loopback ports, with its own configuration
and a temporary storage directory, scrapes it; the test then asks Prometheus' HTTP API
for the totals and compares them with the run report of the same run.

Without a ``prometheus`` binary on PATH (or in AGENTSTEPS_PROMETHEUS_BIN) the test is
skipped, except under CI=true, where a missing Prometheus fails the run (.ci/run
installs it).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import SCRIPTS

_IN_CI = os.environ.get("CI", "").strip().lower() == "true"


def _binary() -> str:
    found = os.environ.get("AGENTSTEPS_PROMETHEUS_BIN") or shutil.which("prometheus")
    if found is None:
        message = "no prometheus binary (apt-get install prometheus, as .ci/run does)"
        if _IN_CI:
            pytest.fail(f"CI=true and {message}", pytrace=False)
        pytest.skip(message)
    return found


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _query(port: int, promql: str) -> list[dict[str, Any]]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(url, timeout=5) as response:
        body = json.load(response)
    assert body["status"] == "success", body
    return body["data"]["result"]  # type: ignore[no-any-return]


def _scalar(port: int, promql: str) -> float | None:
    result = _query(port, promql)
    return None if not result else float(result[0]["value"][1])


@pytest.fixture
def target(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], int, Path]]:
    """The example under ``agentsteps run``, serving its metrics, until stdin gets a line."""
    port = _free_port()
    report = tmp_path / "report.json"
    env = {
        **os.environ,
        "OTEL_METRICS_EXPORTER": "prometheus",
        "OTEL_EXPORTER_PROMETHEUS_HOST": "127.0.0.1",
        "OTEL_EXPORTER_PROMETHEUS_PORT": str(port),
        "OTEL_TRACES_EXPORTER": "none",
        "OTEL_SERVICE_NAME": "code-review",
    }
    env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "agentsteps", "run", "--json", "-o", str(report),
         str(SCRIPTS / "metrics_scrape_target.py")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        for line in process.stdout:
            if line.strip() == "READY":
                break
        else:
            pytest.fail(f"the example ended before serving its metrics: {process.stderr}")
        yield process, port, report
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for pipe in (process.stdin, process.stdout, process.stderr):
            if pipe is not None and not pipe.closed:
                pipe.close()


@pytest.fixture
def prometheus(tmp_path: Path, target: tuple[subprocess.Popen[str], int, Path]) -> Iterator[int]:
    """Prometheus on a free loopback port, scraping the example every second."""
    binary = _binary()
    port = _free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: agentsteps\n    static_configs:\n"
        f"      - targets: ['127.0.0.1:{target[1]}']\n"
    )
    log = (tmp_path / "prometheus.log").open("w")
    server = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if server.poll() is not None:
                pytest.fail(f"prometheus exited: {(tmp_path / 'prometheus.log').read_text()}")
            try:
                if _scalar(port, 'up{job="agentsteps"}') == 1.0:
                    break
            except OSError:
                pass
            time.sleep(0.3)
        else:
            pytest.fail(f"prometheus never scraped: {(tmp_path / 'prometheus.log').read_text()}")
        yield port
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def test_prometheus_totals_equal_the_run_report(
    target: tuple[subprocess.Popen[str], int, Path], prometheus: int
) -> None:
    """Cost, tokens and exhaustions as Prometheus has them are the run report's figures."""
    process, _, report_path = target
    cost = _scalar(prometheus, "sum(agentsteps_cost_USD_total)")
    tokens = {
        row["metric"]["gen_ai_token_type"]: float(row["value"][1])
        for row in _query(prometheus, "sum by (gen_ai_token_type) (agentsteps_tokens_total)")
    }
    calls = _scalar(prometheus, "sum(agentsteps_llm_calls_total)")
    exhausted = {
        row["metric"]["agentsteps_step_name"]: float(row["value"][1])
        for row in _query(
            prometheus, "sum by (agentsteps_step_name) (agentsteps_budget_exhausted_total)"
        )
    }
    skipped_by_persona = _query(
        prometheus,
        "sum by (agentsteps_persona_name) "
        '(agentsteps_cost_USD_total{agentsteps_step_status="skipped"})',
    )
    genai_input = _scalar(
        prometheus, 'sum(gen_ai_client_token_usage_sum{gen_ai_token_type="input"})'
    )

    assert process.stdin is not None
    process.stdin.write("done\n")
    process.stdin.close()
    assert process.wait(timeout=60) == 0, process.stderr.read() if process.stderr else ""
    report = json.loads(report_path.read_text())
    total = report["total"]
    steps = [node for node in _nodes(report) if node.get("kind") == "step"]

    assert cost == pytest.approx(total["cost_usd"], rel=1e-9, abs=1e-12)
    assert tokens == {"input": total["input_tokens"], "output": total["output_tokens"]}
    assert calls == total["llm_calls"]
    # GenAI histogram: every model call's input tokens, the same total.
    assert genai_input == total["input_tokens"]
    # One exhaustion per step whose own budget ran out: the skipped one and the escalated.
    over = {n["name"] for n in steps if n.get("status") in ("skipped", "escalated")}
    assert over == {"write_tests", "resolve_conflicts"}
    assert exhausted == dict.fromkeys(over, 1.0)
    assert [row["metric"]["agentsteps_persona_name"] for row in skipped_by_persona] == ["author"]


def _nodes(report: dict[str, Any]) -> Iterator[dict[str, Any]]:
    stack = list(report.get("roots", report.get("children", [])))
    while stack:
        node = stack.pop()
        yield node
        stack.extend(node.get("children", []))
