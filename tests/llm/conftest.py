"""Fixtures of the model-call tests."""

from __future__ import annotations

import pytest

from agentsteps import UsageCaptureProcessor
from tests.support import Spans


@pytest.fixture
def capture(spans: Spans) -> Spans:
    """The test's tracer provider (the `spans` fixture) with a UsageCaptureProcessor added."""
    spans.provider.add_span_processor(UsageCaptureProcessor())
    return spans
