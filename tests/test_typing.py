"""Decorated functions keep their static types: mypy checks tests/typing under --strict."""

from __future__ import annotations

from pathlib import Path

import pytest

api = pytest.importorskip("mypy.api")


def test_mypy_accepts_typed_usage() -> None:
    """mypy --strict passes on the typing files (assert_type and expected errors included)."""
    path = Path(__file__).parent / "typing"
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
