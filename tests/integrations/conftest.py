"""Fixtures of the integration tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes import FakeProvider, Usage, fake_provider

__all__ = ["fake", "fake_provider"]  # fake_provider: the fixture tests/fakes defines


@pytest.fixture
def fake() -> Iterator[FakeProvider]:
    """A started fake provider whose every reply reports 1,000 input and 500 output tokens."""
    with FakeProvider(usage=Usage(1000, 500)) as server:
        yield server
