"""Fixtures of the hook tests: each runs in its own hook scope and must leave none registered."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import agentsteps
from agentsteps._hooks.registry import REGISTRY


@pytest.fixture(autouse=True)
def no_leaked_hooks() -> Iterator[None]:
    """Run the test inside `scoped_hooks`, then check no hook is left registered anywhere."""
    with agentsteps.scoped_hooks():
        yield
    assert not any(REGISTRY.values()), "a test left hooks registered"
