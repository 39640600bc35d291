"""`agentsteps run` exports metrics over OTLP with the spans, to a loopback receiver."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2

from tests.support import ROOT


@pytest.fixture
def receiver() -> Iterator[tuple[int, dict[str, list[bytes]]]]:
    """A loopback OTLP/HTTP receiver keeping every POST's body by path."""
    bodies: dict[str, list[bytes]] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            bodies.setdefault(self.path, []).append(body)
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], bodies
    server.shutdown()
    server.server_close()


def _sums(requests: list[bytes]) -> dict[str, float]:
    """Each sum metric's total over its points, from the last export (cumulative)."""
    last = metrics_service_pb2.ExportMetricsServiceRequest.FromString(requests[-1])
    totals: dict[str, float] = {}
    for resource in last.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.HasField("sum"):
                    totals[metric.name] = sum(
                        p.as_double if p.HasField("as_double") else p.as_int
                        for p in metric.sum.data_points
                    )
    return totals


def test_agentsteps_run_sends_metrics_with_the_spans(
    tmp_path: Path, receiver: tuple[int, dict[str, list[bytes]]]
) -> None:
    port, bodies = receiver
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://127.0.0.1:{port}"
    report = tmp_path / "report.json"
    proc = subprocess.run(
        [sys.executable, "-m", "agentsteps", "run", "--json", "-o", str(report),
         str(ROOT / "examples" / "code_review.py")],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert set(bodies) == {"/v1/traces", "/v1/metrics"}
    total = json.loads(report.read_text())["total"]
    sums = _sums(bodies["/v1/metrics"])
    assert sums["agentsteps.cost"] == pytest.approx(total["cost_usd"], rel=1e-9)
    assert sums["agentsteps.tokens"] == total["input_tokens"] + total["output_tokens"]
    assert sums["agentsteps.llm_calls"] == total["llm_calls"]
    assert sums["agentsteps.budget.exhausted"] == 2  # write_tests skipped, one escalation


def test_metrics_setup_error_is_reported(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["OTEL_METRICS_EXPORTER"] = "prometheus"
    env["OTEL_EXPORTER_PROMETHEUS_PORT"] = "not-a-port"
    proc = subprocess.run(
        [sys.executable, "-m", "agentsteps", "run", str(ROOT / "examples" / "code_review.py")],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "agentsteps run: error: cannot set up metrics: OTEL_EXPORTER_PROMETHEUS_PORT must be a "
        "port number (got 'not-a-port')"
    )
