"""Smoke tests of the benchmark harness: it runs and reports. Timings are never asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import ROOT

BENCH = ROOT / "benchmarks" / "bench.py"


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, object]]:
    """One `--quick --no-peers` run of the harness: its markdown report and JSON results."""
    tmp = tmp_path_factory.mktemp("bench")
    report, data = tmp / "report.md", tmp / "bench.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(BENCH),
            "--quick",
            "--no-peers",
            "--report",
            str(report),
            "--json",
            str(data),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return report.read_text(), json.loads(data.read_text())


def test_report_covers_every_case_and_target(quick_run: tuple[str, dict[str, object]]) -> None:
    """The report has the targets table and a section for each case (a) to (g)."""
    text, _ = quick_run
    assert "#### Targets" in text
    for case in (
        "(a) sync call",
        "(b) async call",
        "(c) nesting depth 10",
        "(d) 1000 concurrent",
        "(e) generator step",
        "(f) record_usage",
        "(g) memory",
    ):
        assert case in text, case
    assert "- Versions: " in text
    assert "- Machine: " in text


def test_agentsteps_and_baselines_are_measured(quick_run: tuple[str, dict[str, object]]) -> None:
    """Both groups ran @step beside its baselines, and the SDK variants really made spans."""
    _, data = quick_run
    results = data["results"]
    assert isinstance(results, dict)
    assert set(results) == {"off", "sdk"}
    assert set(results["off"]["cases"]["sync"]["samples_ns"]) == {"bare", "otel-noop", "step-off"}
    assert set(results["sdk"]["cases"]["sync"]["samples_ns"]) == {"bare", "otel-sdk", "step-sdk"}
    assert results["sdk"]["spans_exported"]["step-sdk"] > 0
    assert results["sdk"]["spans_exported"]["otel-sdk"] > 0
    assert results["off"]["skipped"] == {}
    assert results["sdk"]["skipped"] == {}


def test_every_target_is_judged(quick_run: tuple[str, dict[str, object]]) -> None:
    """Every agentsteps target gets PASS or FAIL (which one is not asserted); peers SKIP."""
    _, data = quick_run
    targets = data["targets"]
    assert isinstance(targets, list)
    for target in targets:
        expected = {"SKIP"} if "fastest peer" in target["name"] else {"PASS", "FAIL"}
        assert target["status"] in expected, target


def test_results_file_keeps_hand_written_text(tmp_path: Path) -> None:
    """--write-results replaces only the generated block of RESULTS.md."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import _report
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    path = tmp_path / "RESULTS.md"
    path.write_text(f"# Title\n\nintro\n\n{_report.BEGIN}\nold numbers\n{_report.END}\n\nprofile\n")
    _report.update_results_file(path, "new numbers")
    text = path.read_text()
    assert "old numbers" not in text
    assert text.startswith("# Title\n\nintro\n\n")
    assert text.endswith("\n\nprofile\n")
    assert "new numbers" in text


def test_metrics_cost_benchmark_runs() -> None:
    """benchmarks/metrics_cost.py --quick answers both of its questions (figures unchecked)."""
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "metrics_cost.py"),
            "--quick",
            "--baseline",
            "HEAD",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1. no meter provider, no SDK: this tree / baseline" in proc.stdout
    assert "x a span" in proc.stdout
