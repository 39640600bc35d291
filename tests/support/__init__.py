"""
What the tests share besides fixtures: the `Spans` view, the catalog marker, the repository's paths.

Test modules import from here, never from a ``conftest.py`` (``tests/test_layout.py`` checks):
conftest files hold only fixtures and hooks. Helpers that start an external server live beside
this module (`jaeger_server`, `redis_server`); programs the tests run as separate processes live
in ``tests/support/scripts/``.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

ROOT = Path(__file__).resolve().parents[2]
"""The repository's root: what subprocesses get as PYTHONPATH, and where docs/ and examples/ are."""
DOCS = ROOT / "docs"
EXAMPLES = ROOT / "examples"
BENCHMARKS = ROOT / "benchmarks"
SCRIPTS = Path(__file__).resolve().parent / "scripts"
"""The programs tests run in a process of their own (a tool service, a fleet worker, ...)."""

# genai-prices is a dependency of agentsteps, so the catalog is always there; the marker
# stays so that a broken install shows as skipped catalog tests rather than errors.
HAS_CATALOG = importlib.util.find_spec("genai_prices") is not None
requires_catalog = pytest.mark.skipif(
    not HAS_CATALOG, reason="the genai-prices catalog is not installed (it needs Python 3.11+)"
)

PriceSetter = Callable[[str, float, float], None]
"""The `prices` fixture: register a model's USD per million input and output tokens."""


class Spans:
    """The spans a test produced, with lookups by name (the `spans` fixture)."""

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


__all__ = [
    "BENCHMARKS",
    "DOCS",
    "EXAMPLES",
    "HAS_CATALOG",
    "ROOT",
    "SCRIPTS",
    "PriceSetter",
    "Spans",
    "requires_catalog",
]
