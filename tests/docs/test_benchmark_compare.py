"""
Smoke test of benchmarks/compare.py: an old-vs-new run of HEAD against this checkout works
end to end, and each side measured the tree it was given. Timings are never asserted.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import BENCHMARKS, ROOT

COMPARE = BENCHMARKS / "compare.py"


def _has_git_history() -> bool:
    try:
        proc = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--verify", "--quiet", "HEAD^{commit}"],
            capture_output=True,
            timeout=30,
            check=False,
        )
    except OSError:
        return False
    return proc.returncode == 0


@pytest.fixture(scope="module")
def comparison(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, object]]:
    """One `--quick --pairs 1` comparison of HEAD (exported) against this checkout."""
    if not _has_git_history():
        if os.environ.get("CI"):
            pytest.fail("compare.py needs the repository's git history; CI clones have it")
        pytest.skip("no git history here: compare.py exports the base with git archive")
    tmp = tmp_path_factory.mktemp("compare")
    report, data = tmp / "report.md", tmp / "compare.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(COMPARE),
            "--base",
            "HEAD",
            "--quick",
            "--pairs",
            "1",
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


def test_every_hot_path_ratio_is_judged(comparison: tuple[str, dict[str, object]]) -> None:
    """Each of the ten hot-path ratios has both sides' figures and PASS or FAIL (not which)."""
    text, data = comparison
    rows = data["rows"]
    assert isinstance(rows, list)
    assert [row["key"] for row in rows] == [
        "sync",
        "async",
        "nest10",
        "usage",
        "usage-priced",
        "off-sync",
        "off-async",
        "off-nest10",
        "off-usage",
        "off-usage-priced",
    ]
    for row in rows:
        assert row["verdict"] in {"PASS", "FAIL"}, row
        assert len(row["old"]) == len(row["new"]) == len(row["new_over_old"]) == 1, row
        assert row["old"][0] > 0
        assert row["new"][0] > 0
        assert f"| {row['title']} | {row['ratio']} |" in text
    assert "| hot-path ratio | figure | old | new | new / old (median) |" in text


def test_each_side_measures_its_own_tree(comparison: tuple[str, dict[str, object]]) -> None:
    """Old processes import the exported base, new ones a copy of this checkout's package."""
    text, data = comparison
    runs = data["runs"]
    assert isinstance(runs, list)
    assert [(run["group"], run["side"]) for run in runs] == [
        ("off", "old"),
        ("off", "new"),
        ("sdk", "old"),
        ("sdk", "new"),
    ]
    for run in runs:
        origin = Path(run["agentsteps_file"])
        assert run["skipped"] == {}, run
        # Both are temporary copies side by side: base/ for old, head/ for new.
        tree = "base" if run["side"] == "old" else "head"
        assert origin.parts[-3:] == (tree, "agentsteps", "__init__.py"), origin
        assert ROOT not in origin.parents
    assert "- Old (base): `HEAD` = " in text
    assert "- New (head): this checkout's working tree (" in text


def test_unknown_base_is_refused() -> None:
    """A base that is neither a ref nor a checkout fails at once, naming the option and fix."""
    proc = subprocess.run(
        [sys.executable, str(COMPARE), "--base", "no-such-ref-xyz", "--quick"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 1
    assert "--base: 'no-such-ref-xyz' is neither a directory holding agentsteps/" in proc.stderr
    assert "give a ref (a commit, branch or tag" in proc.stderr
