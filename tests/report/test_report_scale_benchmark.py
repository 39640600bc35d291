"""Smoke test of benchmarks/report_scale.py: it runs and reports. Timings are never asserted."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support import ROOT


def test_report_scale_runs_and_prints_the_table(tmp_path: Path) -> None:
    """Two small sizes: every command measured, the loop folded to one row."""
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "report_scale.py"),
            "--sizes",
            "50,100",
            "--repeat",
            "1",
            "--keep",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    table = proc.stdout
    for command in ("run", "report", "report --json", "report --html"):
        assert f"| `agentsteps {command}` | " in table
    assert "| 50 steps | 100 steps |" in table
    text = (tmp_path / "100" / "report.txt").read_text(encoding="utf-8")
    assert "leaf \u00d7100" in text
    assert "(persona)" in text
