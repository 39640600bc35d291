"""Fixtures of the propagation tests."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest


@pytest.fixture
def warnings_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Capture every log record at WARNING and above."""
    with caplog.at_level(logging.WARNING):
        yield caplog
