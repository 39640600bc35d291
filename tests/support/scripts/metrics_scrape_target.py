"""
A running example for tests/tracing/test_prometheus.py: examples/code_review.py's run, then the
process stays up (its metrics served on OTEL_EXPORTER_PROMETHEUS_PORT) until the test,
having had Prometheus scrape it, writes a line to its stdin.
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path


def main() -> None:
    example = Path(__file__).resolve().parents[3] / "examples" / "code_review.py"
    runpy.run_path(str(example), run_name="__main__")
    print("READY", flush=True)
    sys.stdin.readline()


if __name__ == "__main__":
    main()
