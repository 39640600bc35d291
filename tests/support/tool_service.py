"""
The caller's side of the tool service (``tests/support/scripts/distributed_service.py``).

Shared by the two-process tests (``tests/distributed``) and the Jaeger tests, which start the
service themselves and send what both processes trace to a real backend.
"""

from __future__ import annotations

import json
import selectors
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import attrs
import pytest

import agentsteps

STARTUP_TIMEOUT = 30.0
REQUEST_TIMEOUT = 10.0
# No proxy, whatever the environment says: the service is on loopback.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@attrs.frozen
class Service:
    """A running tool service: its URL and the file its spans go to."""

    url: str
    spans_path: Path


def read_port(proc: subprocess.Popen[str], stderr_path: Path) -> int:
    """The port the service printed, waiting a bounded time for it."""
    assert proc.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        ready = selector.select(timeout=STARTUP_TIMEOUT)
    line = proc.stdout.readline() if ready else ""
    if not line.strip().isdigit():
        proc.kill()
        proc.wait(timeout=10)
        pytest.fail(f"tool service did not start: {stderr_path.read_text()}")
    return int(line)


def call_tool(service: Service, **request: Any) -> tuple[int, dict[str, Any]]:
    """POST one request with the active trace and budget; charge what the tool reports."""
    headers = {"Content-Type": "application/json"}
    agentsteps.inject(headers)
    http_request = urllib.request.Request(
        service.url, data=json.dumps(request).encode(), headers=headers, method="POST"
    )
    try:
        with OPENER.open(http_request, timeout=REQUEST_TIMEOUT) as response:
            status, body, reply_headers = response.status, json.load(response), response.headers
    except urllib.error.HTTPError as error:
        status, body, reply_headers = error.code, json.load(error), error.headers
        error.close()
    agentsteps.record_remote_usage(reply_headers)
    return status, body
