"""The examples run, offline and deterministic, and say what the docs say they say."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import EXAMPLES, ROOT


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(PYTHONPATH=str(ROOT), NO_COLOR="1", PYTHONIOENCODING="utf-8")
    done = subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        encoding="utf-8",
        cwd=cwd,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done


def test_every_example_is_tested() -> None:
    """Each example file has a test here, so none of them can rot unnoticed."""
    tested = {"code_review.py", "parallel_review.py", "streaming_notes.py"}
    assert {p.name for p in EXAMPLES.glob("*.py")} == tested


@pytest.fixture(scope="module")
def output(tmp_path_factory: pytest.TempPathFactory) -> str:
    """What `python examples/code_review.py` prints (run once for the module)."""
    cwd = tmp_path_factory.mktemp("code_review")
    return run(str(EXAMPLES / "code_review.py"), cwd=cwd).stdout


class TestCodeReview:
    """examples/code_review.py: three personas, continue, escalate and a threshold hook."""

    def test_narrative(self, output: str) -> None:
        """The story: a skipped step, a threshold warning, an escalation to the strong model."""
        lines = output.splitlines()
        for expected in (
            "[author] plan_change: 3-step plan",
            "[author] write_tests: out of budget, skipped; carrying on without new tests",
            "[reviewer] warning: review_patch is at 84% of its budget",
            "[merger] escalating: handing the merge to scripted-pro",
            "done: merged",
        ):
            assert expected in lines

    def test_report(self, output: str) -> None:
        """The report at the end shows the three personas, each step's status and model."""
        report = output[output.index("agentsteps report:") :]
        assert report.startswith(
            "agentsteps report: 3 personas, 6 steps (4 completed, 1 escalated, 1 skipped), "
            "7 LLM calls"
        )
        rows = [line.split() for line in report.splitlines()]
        assert ["├─", "write_patch", "completed", "scripted-mini"] in [r[:4] for r in rows]
        assert ["└─", "write_tests", "skipped", "scripted-mini"] in [r[:4] for r in rows]
        assert ["├─", "resolve_conflicts", "escalated", "scripted-mini"] in [r[:4] for r in rows]
        assert ["└─", "resolve_conflicts", "completed", "scripted-pro"] in [r[:4] for r in rows]

    def test_same_numbers_every_run(self, output: str, tmp_path: Path) -> None:
        """Scripted models make the figures deterministic: a second run reports the same."""

        def figures(text: str) -> list[list[str]]:
            # Every column but the duration, which is the one thing that varies.
            table = text[text.index("agentsteps report:") :].splitlines()[1:]
            return [line.split()[:-1] for line in table]

        again = run(str(EXAMPLES / "code_review.py"), cwd=tmp_path).stdout
        assert figures(again) == figures(output)

    def test_under_the_command(self, tmp_path: Path) -> None:
        """`agentsteps run examples/code_review.py` prints the narrative, the report once,
        and leaves a trace that renders as the same report and as an HTML waterfall."""
        done = run("-m", "agentsteps", "run", str(EXAMPLES / "code_review.py"), cwd=tmp_path)
        assert "agentsteps report:" not in done.stdout  # the script left it to the command
        assert "[merger] escalating: handing the merge to scripted-pro" in done.stdout
        assert done.stderr.count("agentsteps report: 3 personas, 6 steps") == 1
        assert "agentsteps run code_review.py" in done.stderr
        trace = tmp_path / "agentsteps-trace.jsonl"
        saved = run("-m", "agentsteps", "report", "--json", str(trace), cwd=tmp_path)
        data = json.loads(saved.stdout)
        assert data["steps"] == 6
        assert data["statuses"] == {"completed": 4, "escalated": 1, "skipped": 1}
        run("-m", "agentsteps", "report", str(trace), "--html", "run.html", cwd=tmp_path)
        assert (tmp_path / "run.html").stat().st_size > 0


def test_parallel_review(tmp_path: Path) -> None:
    """Concurrent steps: all in flight at once, one refused and skipped, the parent's spend
    is the sum of its children's."""
    out = run(str(EXAMPLES / "parallel_review.py"), cwd=tmp_path).stdout
    assert "review_pr: 4 reviews, at most 4 in flight at once; 3 LLM calls" in out
    assert "client/generated_pb2.py: skipped: too big to review within budget" in out
    assert "exactly the sum of its 4 children (True)" in out
    assert "└─ review client/generated_pb2.py  skipped" in out


def test_streaming_notes(tmp_path: Path) -> None:
    """A generator step streams notes until its budget stops it, quietly (skipped)."""
    out = run(str(EXAMPLES / "streaming_notes.py"), cwd=tmp_path).stdout
    assert out.startswith("Release notes (streamed):\n- RetryPolicy.run takes a timeout")
    lines = out.splitlines()
    assert lines[3] == "- TimeoutError names the attempts made, so slow servers no "
    assert lines[4] == "(stopped by the budget in note 3 of 6: 177 of 175 tokens; status skipped)"
    assert "release_notes  skipped" in out
