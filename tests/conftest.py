"""Shared fixtures: a fresh library configuration and an in-memory span exporter per test."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator

import pytest
from opentelemetry.metrics import _internal as _metrics_api
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import agentsteps
from agentsteps._core.context import CURRENT
from agentsteps._hooks.registry import REGISTRY

# genai-prices is a dependency of agentsteps, so the catalog is always there; the marker
# stays so that a broken install shows as skipped catalog tests rather than errors.
HAS_CATALOG = importlib.util.find_spec("genai_prices") is not None
requires_catalog = pytest.mark.skipif(
    not HAS_CATALOG, reason="the genai-prices catalog is not installed (it needs Python 3.11+)"
)

# Checked by mypy (test_typing.py), not imported: it holds deliberate type errors.
collect_ignore = ["typing"]


class Spans:
    """The spans a test produced, with lookups by name."""

    def __init__(self, exporter: InMemorySpanExporter, provider: TracerProvider) -> None:
        self.exporter = exporter
        self.provider = provider

    @property
    def all(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    @property
    def frames(self) -> list[ReadableSpan]:
        """The spans other than model calls (each record_usage makes one of those)."""
        return [s for s in self.all if (s.attributes or {}).get("agentsteps.kind") != "llm_call"]

    def named(self, name: str) -> ReadableSpan:
        found = [s for s in self.all if s.name == name]
        assert len(found) == 1, f"expected one span {name!r}, got {[s.name for s in self.all]}"
        return found[0]

    def step(self, step_name: str) -> ReadableSpan:
        return self.named(f"invoke_workflow {step_name}")


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


PriceSetter = Callable[[str, float, float], None]


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


@pytest.fixture
def no_leaked_hooks() -> Iterator[None]:
    """
    Run the test inside `scoped_hooks`, then check no hook is left registered anywhere.

    The hook test modules use it for every test (``pytestmark``); one copy here rather
    than one per module.
    """
    with agentsteps.scoped_hooks():
        yield
    assert not any(REGISTRY.values()), "a test left hooks registered"
