"""Decorated functions keep their static types: mypy --strict and pyright check tests/typing."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import ROOT

api = pytest.importorskip("mypy.api")


def test_mypy_accepts_typed_usage() -> None:
    """mypy --strict passes on the typing files (assert_type and expected errors included)."""
    path = ROOT / "tests" / "typing"
    stdout, stderr, status = api.run(
        [
            "--strict",
            "--warn-unused-ignores",
            "--no-incremental",
            "--cache-dir=/dev/null",
            str(path),
        ]
    )
    assert status == 0, stdout + stderr


def test_pyright_accepts_typed_usage() -> None:
    """pyright agrees (assert_type included): both checkers users run see the same types."""
    pyright = shutil.which("pyright", path=str(Path(sys.executable).parent)) or shutil.which(
        "pyright"
    )
    if pyright is None:
        if os.environ.get("CI"):
            pytest.fail("pyright is not installed: .ci/run installs it with the [test] extra")
        pytest.skip("pyright is not installed (pip install pyright)")
    path = ROOT / "tests" / "typing"
    done = subprocess.run(
        [pyright, str(path)], capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
