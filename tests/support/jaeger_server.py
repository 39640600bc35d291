"""
Start the Jaeger v2 binary built by ``.ci/jaeger.sh`` on free loopback ports, and stop it.

Jaeger v2 run with no arguments listens on fixed ports on every interface (4317, 4318, 16686,
and 13133, 8888, 5778, ... for its health check, metrics and sampling). Something else on the
machine may hold those, so `start_jaeger` writes a minimal configuration instead: OTLP over
gRPC and HTTP, in-memory storage, and the query service (UI, HTTP API and its gRPC API), each
on a free port of 127.0.0.1, and no other listener (internal metrics off, no health-check,
zpages, expvar, pprof or sampling extension). Nor does it send anything anywhere: the query
service's own tracing, which exports to localhost:4317 by default, is off. Used by
``tests/tracing/test_jaeger.py`` and by ``docs/_tools/jaeger_screenshot.py``.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import attrs

START_TIMEOUT = 60.0  # it is ready in well under a second; a hang fails after this
READY_LINE = "Everything is ready"  # the OpenTelemetry Collector's log line once all started
# No proxy, whatever the environment says: Jaeger is on loopback.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))

CONFIG = """\
# Jaeger v2 (v1.75.0): in-memory storage, every listener on 127.0.0.1.
service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none  # no Prometheus endpoint (8888 by default)
    logs:
      level: info
extensions:
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: 10000
  jaeger_query:
    storage:
      traces: memstore
    http:
      endpoint: 127.0.0.1:{query_http}  # the UI and the HTTP query API (/api/v3)
    grpc:
      endpoint: 127.0.0.1:{query_grpc}
    # On by default: the query service traces itself and sends those spans over OTLP to
    # localhost:4317, whoever listens there (and stopping waits 10 s for the failed export).
    enable_tracing: false
{ui}receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:{otlp_grpc}
      http:
        endpoint: 127.0.0.1:{otlp_http}
processors:
  batch:
exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
"""


class JaegerStartError(RuntimeError):
    """Jaeger exited, or never became ready; the message ends with its log."""


@attrs.frozen
class Jaeger:
    """A running Jaeger: where to send OTLP and where to query."""

    query_url: str
    otlp_http_url: str
    otlp_grpc_url: str
    config: Path
    log: Path

    def log_tail(self, lines: int = 30) -> str:
        """The end of Jaeger's log, for failure messages."""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def free_port() -> int:
    """A port free on 127.0.0.1 now (the kernel picks it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_config(path: Path, ui_assets: Path | None = None) -> dict[str, int]:
    """Write the configuration with four free ports; return them by role."""
    ports = {
        "query_http": free_port(),
        "query_grpc": free_port(),
        "otlp_grpc": free_port(),
        "otlp_http": free_port(),
    }
    ui = ""
    if ui_assets is not None:
        # A jaeger-ui build: the binary from the Go module only has a placeholder page.
        ui = f"    ui:\n      assets_path: {ui_assets.resolve()}\n"
    path.write_text(CONFIG.format(ui=ui, **ports), encoding="utf-8")
    return ports


def _ready(jaeger: Jaeger) -> bool:
    if READY_LINE not in jaeger.log.read_text(errors="replace"):
        return False
    try:
        with OPENER.open(f"{jaeger.query_url}/api/v3/services", timeout=2) as reply:
            return bool(reply.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@contextlib.contextmanager
def start_jaeger(binary: str, workdir: Path, ui_assets: Path | None = None) -> Iterator[Jaeger]:
    """Run Jaeger from `binary` until the block ends; its config and log go to `workdir`."""
    config = workdir / "jaeger.yaml"
    ports = write_config(config, ui_assets)
    jaeger = Jaeger(
        query_url=f"http://127.0.0.1:{ports['query_http']}",
        otlp_http_url=f"http://127.0.0.1:{ports['otlp_http']}",
        otlp_grpc_url=f"http://127.0.0.1:{ports['otlp_grpc']}",
        config=config,
        log=workdir / "jaeger.log",
    )
    with jaeger.log.open("wb") as log:
        process = subprocess.Popen(
            [binary, "--config", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=workdir,
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not _ready(jaeger):
            if process.poll() is not None:
                msg = f"{binary} exited with {process.returncode}:\n{jaeger.log_tail()}"
                raise JaegerStartError(msg)
            if time.monotonic() > deadline:
                msg = f"{binary} not ready after {START_TIMEOUT:.0f} s:\n{jaeger.log_tail()}"
                raise JaegerStartError(msg)
            time.sleep(0.1)
        yield jaeger
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=20)
