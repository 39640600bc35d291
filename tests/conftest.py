"""Shared fixtures: a fresh library configuration and an in-memory span exporter per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.metrics import _internal as _metrics_api
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import agentsteps
from agentsteps._core.context import CURRENT
from tests.support import PriceSetter, Spans

# tests/core/test_typing.py runs mypy and pyright on it; never imported: it holds deliberate
# type errors.
collect_ignore = ["typing"]


@pytest.fixture(autouse=True)
def _fresh_library() -> Iterator[None]:
    agentsteps.reset_defaults()
    # `agentsteps run` in-process, with OTLP variables set, installs a global meter
    # provider (once per process, as the API allows): put the API's slot back after it.
    saved = (_metrics_api._METER_PROVIDER, _metrics_api._METER_PROVIDER_SET_ONCE)
    yield
    _metrics_api._METER_PROVIDER, _metrics_api._METER_PROVIDER_SET_ONCE = saved
    agentsteps.reset_defaults()
    assert CURRENT.get() is None, "a test left a frame on the active stack"


@pytest.fixture
def prices() -> PriceSetter:
    """Register test prices (USD per million tokens); the autouse reset removes them."""

    def set_price(model: str, input_per_mtok: float, output_per_mtok: float) -> None:
        agentsteps.register_price(
            model, input_per_mtok=input_per_mtok, output_per_mtok=output_per_mtok
        )

    return set_price


@pytest.fixture
def spans() -> Iterator[Spans]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    agentsteps.configure(tracer_provider=provider)
    yield Spans(exporter, provider)
    provider.shutdown()
