"""
Exporter trouble: slow, failing or raising telemetry never changes what steps do.

The same workload (a persona calling steps that record usage, some of which run out of
budget and fall back to their default) runs once untraced, as the reference, and then
against exporters that raise, report failure, or block, behind the SDK's simple and
batch span processors, and against span processors that raise. Every time, each step
returns the same value and the run report holds the same records with the same usage.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterator, Sequence

import pytest
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)

import agentsteps
from agentsteps import Budget, StepBudgetExhausted, llm_call, persona, record_usage, run, step
from agentsteps._core.context import CURRENT

STEPS = 300


@step(name="leaf", budget=Budget(max_tokens=16), error_boundary="continue", default="skipped")
def leaf(i: int) -> str:
    """Spends 8 to 20 tokens: 4 calls in 13 run out of budget and return the default."""
    record_usage("m", 4, 4 + i % 13, cost_usd=0.0001 * (i % 7))
    return f"leaf {i}"


@persona(name="agent")
def agent(n: int) -> list[str]:
    """Calls ``leaf`` ``n`` times."""
    return [leaf(i) for i in range(n)]


Report = list[tuple[object, ...]]


def workload(n: int = STEPS) -> tuple[list[str], Report]:
    """What the steps returned, and the run report in a comparable form."""
    with run() as collected:
        results = agent(n)
    report: Report = [
        (s.name, s.status.value, s.usage, s.subtree_usage, s.error) for s in collected.steps
    ]
    report += [(p.name, p.status.value, p.subtree_usage) for p in collected.personas]
    report.append(("total", collected.total))
    return results, report


@pytest.fixture(scope="module")
def reference() -> tuple[list[str], Report]:
    """The workload untraced."""
    agentsteps.reset_defaults()
    return workload()


class Failing(SpanExporter):
    """Raises, or reports failure, on every export."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.calls = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.calls += 1
        if self.mode == "raise":
            raise ConnectionError("collector is down")
        return SpanExportResult.FAILURE


class Blocked(SpanExporter):
    """Blocks in export until released, like a collector that stopped answering."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.exported: list[ReadableSpan] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.entered.set()
        self.release.wait(120)
        self.exported.extend(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self.release.set()


@pytest.fixture
def provider() -> Iterator[TracerProvider]:
    """A tracer provider agentsteps uses, shut down after the test."""
    tracer_provider = TracerProvider()
    agentsteps.configure(tracer_provider=tracer_provider)
    yield tracer_provider
    tracer_provider.shutdown()


@pytest.mark.parametrize("mode", ["raise", "failure"])
@pytest.mark.parametrize("processor", ["simple", "batch"])
def test_failing_exporter(
    mode: str,
    processor: str,
    provider: TracerProvider,
    reference: tuple[list[str], Report],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An exporter that raises or fails: same results, same report, every span exported."""
    exporter = Failing(mode)
    if processor == "simple":
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    else:
        provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=1))
    with caplog.at_level(logging.CRITICAL):  # the SDK logs each failed export
        assert workload() == reference
        provider.force_flush()
    assert exporter.calls > 0
    assert CURRENT.get() is None


def test_blocked_exporter_does_not_block_steps(
    provider: TracerProvider, reference: tuple[list[str], Report], caplog: pytest.LogCaptureFixture
) -> None:
    """
    Behind a batch processor, an exporter stuck in export holds up no step: the whole
    workload finishes while it is still stuck. Spans beyond the processor's queue are
    dropped by the processor (its documented limit); the run report loses nothing.
    """
    exporter = Blocked()
    processor = BatchSpanProcessor(
        exporter, max_queue_size=16, max_export_batch_size=4, schedule_delay_millis=1
    )
    provider.add_span_processor(processor)
    workload(1)  # one span, so the worker thread enters export and gets stuck there
    assert exporter.entered.wait(60)
    outcome: list[tuple[list[str], Report]] = []
    worker = threading.Thread(target=lambda: outcome.append(workload()), daemon=True)
    with caplog.at_level(logging.CRITICAL):  # "Queue full, dropping span"
        worker.start()
        worker.join(120)
        assert not worker.is_alive(), "steps waited for the stuck exporter"
        assert not exporter.release.is_set()  # still stuck when the steps were done
        exporter.release.set()
        processor.force_flush()
    assert outcome == [reference]
    assert 0 < len(exporter.exported) < STEPS + 2  # the processor dropped spans...
    assert CURRENT.get() is None  # ...and nothing else was lost


class Raising(SpanProcessor):
    """A span processor whose on_start or on_end raises (the SDK lets that through)."""

    def __init__(self, where: str) -> None:
        self.where = where

    def on_start(self, span: Span, parent_context: object = None) -> None:
        if self.where == "start":
            raise RuntimeError("processor broke")

    def on_end(self, span: ReadableSpan) -> None:
        if self.where == "end":
            raise RuntimeError("processor broke")


@pytest.mark.parametrize("where", ["start", "end"])
def test_raising_span_processor(
    where: str,
    provider: TracerProvider,
    reference: tuple[list[str], Report],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """
    A span processor that raises changes no result and loses no record; each failure is
    logged as a warning on the ``agentsteps`` logger. Regression: the processor's error
    replaced the step's result and the step's record was never delivered.
    """
    provider.add_span_processor(Raising(where))
    with caplog.at_level(logging.WARNING, logger="agentsteps"):
        assert workload() == reference
    records = [r for r in caplog.records if r.name == "agentsteps"]
    # Once per cause, with the traceback; then counts, not one warning per span.
    first = {
        "start": "could not start the span of 'agent'; it runs untraced; later failures "
        "with the same cause (RuntimeError: processor broke) are counted, not logged each time",
        # The first span to end is the zero-duration span of leaf's recorded model call.
        "end": "could not end the span of a recorded model call; later failures with the "
        "same cause (RuntimeError: processor broke) are counted, not logged each time",
    }[where]
    assert [r.getMessage() for r in records if r.exc_info] == [first]
    assert [r.getMessage() for r in records if not r.exc_info] == [
        f"could not {where} a span: {n} failures so far with the same cause "
        "(RuntimeError: processor broke)"
        for n in (10, 100)
    ]
    assert CURRENT.get() is None


def test_raising_span_processor_keeps_the_steps_exception(provider: TracerProvider) -> None:
    """An exhaustion under ``fail`` still reaches the caller unchanged."""
    provider.add_span_processor(Raising("end"))

    @step(name="plan", budget=Budget(max_llm_calls=0))
    def plan() -> None:
        record_usage("m", 1, 1, cost_usd=0)

    with (
        run() as collected,
        pytest.raises(
            StepBudgetExhausted,
            match=re.escape("step 'plan' exceeded max_llm_calls budget (1 > 0 calls)"),
        ),
    ):
        plan()
    assert [(s.name, s.status.value, s.llm_calls) for s in collected.steps] == [
        ("plan", "failed", 1)
    ]


@pytest.mark.parametrize("where", ["start", "end"])
def test_raising_span_processor_around_a_model_call(
    where: str, provider: TracerProvider, caplog: pytest.LogCaptureFixture
) -> None:
    """A model call's span is guarded the same way: same result, usage charged, a warning."""
    provider.add_span_processor(Raising(where))

    @step(name="ask")
    def ask() -> str:
        with llm_call(model="m") as call:
            call.record(10, 5, cost_usd=0.001)
            return "answer"

    with caplog.at_level(logging.WARNING, logger="agentsteps"), run() as collected:
        assert ask() == "answer"
    (record,) = collected.steps
    assert (record.status.value, record.usage.total_tokens, record.usage.llm_calls) == (
        "completed",
        15,
        1,
    )
    expected = {
        # The step's span failed first, with the same cause: the call's is counted.
        "start": "could not start the span of 'ask'; it runs untraced",
        "end": "could not end the span of a model call",
    }[where]
    assert any(r.getMessage().startswith(expected) for r in caplog.records)


def test_dropped_spans_counts_what_the_batch_queue_dropped(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """
    A full batch queue drops spans with only a log line from the SDK; the handle's
    `dropped_spans` counts them too. Regression: 5,000-6,000 spans lost, 2,560 reported.
    """
    from agentsteps import configure_tracing

    for name, value in {
        "OTEL_BSP_MAX_QUEUE_SIZE": "2",
        "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "1",
    }.items():
        monkeypatch.setenv(name, value)
    exporting, release = threading.Event(), threading.Event()
    received: list[int] = []

    class Stuck(SpanExporter):
        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            received.append(len(spans))
            exporting.set()
            release.wait()
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    handle = configure_tracing(
        exporter="otlp", endpoint="http://127.0.0.1:9/v1/traces", tracer_provider=provider
    )
    handle._guard.inner = Stuck()  # type: ignore[union-attr]
    tracer = provider.get_tracer("test")
    tracer.start_span("first").end()
    assert exporting.wait(10)  # the worker is stuck in export: the queue fills
    with caplog.at_level(logging.CRITICAL):  # the SDK logs "Queue full" per span
        for _ in range(49):
            tracer.start_span("more").end()
    release.set()
    handle.shutdown()
    exported = sum(received)
    assert exported < 50
    assert handle.dropped_spans == 50 - exported
