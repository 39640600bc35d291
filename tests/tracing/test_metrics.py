"""agentsteps' OpenTelemetry metrics, read back from an in-memory metric reader."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.metrics.view import View

import agentsteps
from agentsteps import Budget, llm_call, persona, record_usage, run, step
from agentsteps._core import instruments as M
from agentsteps._metrics.setup import configure_metrics, metrics_exporter_from_env


@pytest.fixture
def reader() -> Iterator[InMemoryMetricReader]:
    memory = InMemoryMetricReader()
    agentsteps.configure(meter_provider=MeterProvider(metric_readers=[memory]))
    yield memory
    agentsteps.reset_defaults()


def points(reader: InMemoryMetricReader, name: str) -> list[tuple[dict[str, Any], Any]]:
    """(attributes, point) of every data point of metric ``name``."""
    data = reader.get_metrics_data()
    found = []
    for resource in data.resource_metrics if data else []:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name == name:
                    found.extend((dict(p.attributes or {}), p) for p in metric.data.data_points)
    return found


def total(reader: InMemoryMetricReader, name: str, **match: str) -> float:
    return sum(
        p.value
        for attributes, p in points(reader, name)
        if all(attributes.get(k.replace("__", ".")) == v for k, v in match.items())
    )


@step(model="gpt-4o-mini", budget=Budget(max_tokens=100), error_boundary="continue")
def small() -> None:
    record_usage(input_tokens=80, output_tokens=30)


@step(model="gpt-4o-mini")
def big() -> None:
    with llm_call() as call:
        call.record(input_tokens=1000, output_tokens=200)
    record_usage(model="claude-haiku-4-5", input_tokens=10, output_tokens=5, cost_usd=0.5)


@persona(name="planner")
def agent() -> None:
    small()
    big()


def test_no_meter_provider_records_nothing_and_creates_nothing() -> None:
    """Without a provider anywhere, the lookup answers None and no instrument exists."""
    agentsteps.reset_defaults()
    assert M.get_instruments() is None
    agentsteps.configure(meter_provider=None)
    agent()
    assert M.STATE.instruments is None and M.STATE.global_instruments is None


def test_spend_counters_sum_to_the_run(reader: InMemoryMetricReader) -> None:
    """Cost, tokens and calls, by step, persona, model and status, add up to the run's."""
    with run() as records:
        agent()
    cost = total(reader, M.COST)
    assert cost == pytest.approx(records.total.cost_nano_usd / 1e9, rel=1e-12)
    assert records.total.input_tokens == 1090
    assert total(reader, M.TOKENS, gen_ai__token__type="input") == 1090
    assert total(reader, M.TOKENS, gen_ai__token__type="output") == 235
    assert total(reader, M.LLM_CALLS) == 3
    by_model = {
        (
            a["agentsteps.step.name"],
            a["gen_ai.response.model"],
            a["agentsteps.step.status"],
        ): p.value
        for a, p in points(reader, M.COST)
    }
    assert set(by_model) == {
        ("small", "gpt-4o-mini", "skipped"),
        ("big", "gpt-4o-mini", "completed"),
        ("big", "claude-haiku-4-5", "completed"),
    }
    assert by_model["big", "claude-haiku-4-5", "completed"] == pytest.approx(0.5)
    assert {a["agentsteps.persona.name"] for a, _ in points(reader, M.COST)} == {"planner"}


def test_exhaustion_and_utilization(reader: InMemoryMetricReader) -> None:
    """One exhaustion for the skipped step; its utilization is used/limit at its end."""
    agent()
    [(attributes, point)] = points(reader, M.BUDGET_EXHAUSTED)
    assert attributes == {
        "agentsteps.step.name": "small",
        "agentsteps.budget.limit": "max_tokens",
        "agentsteps.step.error_boundary": "continue",
    }
    assert point.value == 1
    [(attributes, point)] = points(reader, M.BUDGET_UTILIZATION)
    assert attributes == {"agentsteps.step.name": "small", "agentsteps.budget.limit": "max_tokens"}
    assert (point.count, point.sum) == (1, pytest.approx(1.1))


def test_genai_metrics_per_model_call(reader: InMemoryMetricReader) -> None:
    """One token point per type per model call; a duration for the timed llm_call only."""
    agent()
    usage = points(reader, M.GEN_AI_TOKEN_USAGE)
    inputs = [p for a, p in usage if a["gen_ai.token.type"] == "input"]
    assert sum(p.count for p in inputs) == 3
    assert sum(p.sum for p in inputs) == 1090
    assert list(inputs[0].explicit_bounds) == list(M.TOKEN_BUCKETS)
    attributes = next(a for a, _ in usage if a.get("gen_ai.request.model") == "claude-haiku-4-5")
    assert attributes["gen_ai.provider.name"] == "anthropic"
    assert attributes["gen_ai.operation.name"] == "chat"
    [(attributes, point)] = points(reader, M.GEN_AI_OPERATION_DURATION)
    assert point.count == 1
    assert list(point.explicit_bounds) == list(M.DURATION_BUCKETS)
    assert "error.type" not in attributes


def test_record_inside_llm_call_is_part_of_that_call(reader: InMemoryMetricReader) -> None:
    """A record_usage made inside an llm_call is one model call with it, not two."""

    @step(model="gpt-4o-mini")
    def one() -> None:
        with llm_call():
            record_usage(input_tokens=7, output_tokens=3)

    one()
    usage = points(reader, M.GEN_AI_TOKEN_USAGE)
    assert [(a["gen_ai.token.type"], p.count, p.sum) for a, p in usage] == [
        ("input", 1, 7),
        ("output", 1, 3),
    ]


def test_failed_call_has_error_type(reader: InMemoryMetricReader) -> None:
    """A model call that raised before reporting usage: a duration with error.type."""

    @step(model="gpt-4o-mini")
    def broken() -> None:
        with llm_call():
            raise TimeoutError("slow")

    with pytest.raises(TimeoutError):
        broken()
    [(attributes, _)] = points(reader, M.GEN_AI_OPERATION_DURATION)
    assert attributes["error.type"] == "TimeoutError"
    assert points(reader, M.GEN_AI_TOKEN_USAGE) == []


def test_views_drop_dimensions() -> None:
    """The documented way to drop a dimension: a View keeping only some attribute keys."""
    memory = InMemoryMetricReader()
    provider = MeterProvider(
        metric_readers=[memory],
        views=[View(instrument_name="agentsteps.cost", attribute_keys={"agentsteps.persona.name"})],
    )
    agentsteps.configure(meter_provider=provider)
    try:
        agent()
        assert [a for a, _ in points(memory, M.COST)] == [{"agentsteps.persona.name": "planner"}]
    finally:
        agentsteps.reset_defaults()


def test_shared_budgets_report_their_fleet_wide_spend(reader: InMemoryMetricReader) -> None:
    """Every shared charge feeds the gauge with the store's figure for the key."""

    @step(model="m", budget=Budget(max_usd=1.0, shared_key="team-b"))
    def spend(usd: float) -> None:
        record_usage(input_tokens=10, output_tokens=5, cost_usd=usd)

    spend(0.25)
    spend(0.5)
    spent = [(a, p.value) for a, p in points(reader, M.SHARED_SPENT)]
    assert spent == [({"agentsteps.budget.key": "team-b"}, 0.75)]


def test_reset_forgets_the_shared_keys_seen(reader: InMemoryMetricReader) -> None:
    """After reset_defaults the gauge reports no key until a shared budget charges again."""
    M.note_shared_spent("team-a", 1_250_000_000)
    assert [(a, p.value) for a, p in points(reader, M.SHARED_SPENT)] == [
        ({"agentsteps.budget.key": "team-a"}, 1.25)
    ]
    agentsteps.reset_defaults()
    memory = InMemoryMetricReader()
    agentsteps.configure(meter_provider=MeterProvider(metric_readers=[memory]))
    agent()  # creates the instruments on the new provider
    assert points(memory, M.SHARED_SPENT) == []


def test_a_failing_reader_does_not_break_the_step(
    reader: InMemoryMetricReader, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Metrics never change a step's outcome: an error recording them is logged."""
    instruments = M.get_instruments()
    assert instruments is not None

    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("reader down")

    monkeypatch.setattr(instruments, "utilization", type("H", (), {"record": staticmethod(boom)})())
    with caplog.at_level(logging.WARNING, logger="agentsteps"):
        assert small() is None  # skipped by its boundary, as without metrics
    assert "could not record the metrics of 'small'" in caplog.text


def test_spend_totals_are_exact_and_cumulative(reader: InMemoryMetricReader) -> None:
    """The cost is the sum of integer nano-dollars, and each collection reports the total."""
    for _ in range(3):
        big()
    first = total(reader, M.COST)
    assert first == 3 * 500_270_000 / 1e9  # gpt-4o-mini: $0.15/$0.60 per M, + $0.5 given
    assert total(reader, M.COST) == first  # read again, nothing new: the same total
    big()
    assert total(reader, M.LLM_CALLS) == 8


def test_configure_refuses_a_non_provider() -> None:
    with pytest.raises(TypeError) as info:
        agentsteps.configure(meter_provider="prometheus")
    assert str(info.value) == (
        "configure(): 'meter_provider' must be an opentelemetry.metrics.MeterProvider or None "
        "(got 'prometheus' of type str)"
    )


def test_exporter_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OTEL_METRICS_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", raising=False)
    assert metrics_exporter_from_env() is None
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    assert metrics_exporter_from_env() == "otlp"
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "prometheus")
    assert metrics_exporter_from_env() == "prometheus"
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "none")
    assert metrics_exporter_from_env() is None


def test_configure_metrics_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "statsd")
    with pytest.raises(ValueError, match=r"'exporter' must be one of .* \(got 'statsd'\)"):
        configure_metrics()
    with pytest.raises(ValueError, match=r"'export_interval' must be > 0 seconds"):
        configure_metrics("console", export_interval=0)
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    handle = configure_metrics("console")
    assert not handle.enabled
    handle.shutdown()


def test_configure_metrics_console(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The console exporter prints agentsteps' metrics at shutdown."""
    # Keep the global slot free for the rest of the session: configure() is used instead.
    from opentelemetry.metrics import _internal

    monkeypatch.setattr(_internal, "_METER_PROVIDER", MeterProvider())
    monkeypatch.setattr(sys, "stdout", sys.stdout)
    handle = configure_metrics("console", export_interval=60)
    try:
        assert handle.enabled and not handle.installed_global
        assert M.STATE.provider is handle.meter_provider
        agent()
        handle.shutdown()
        # agentsteps no longer records into the provider that was shut down.
        assert M.STATE.provider is None
    finally:
        handle.shutdown()
        agentsteps.reset_defaults()
    assert '"name": "agentsteps.cost"' in capsys.readouterr().out


def test_threads_and_async_steps_add_up(reader: InMemoryMetricReader) -> None:
    """Steps ending on many threads at once, and async steps: the totals are exact."""
    import asyncio

    from agentsteps import ContextThreadPoolExecutor

    @step(name="sync_call", model="gpt-4o-mini")
    def sync_call(i: int) -> None:
        record_usage(input_tokens=i, output_tokens=1, cost_usd=0.000_001)

    @step(name="async_call", model="gpt-4o-mini")
    async def async_call(i: int) -> None:
        await asyncio.sleep(0)
        record_usage(input_tokens=i, output_tokens=1, cost_usd=0.000_001)

    async def gather() -> None:
        await asyncio.gather(*(async_call(i) for i in range(200)))

    with ContextThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(sync_call, range(400)))
    asyncio.run(gather())
    assert total(reader, M.LLM_CALLS) == 600
    assert total(reader, M.TOKENS, gen_ai__token__type="input") == sum(range(400)) + sum(range(200))
    # Each series is its exact integer total of nano-dollars, divided once.
    assert total(reader, M.COST, agentsteps__step__name="sync_call") == 400_000 / 1e9
    assert total(reader, M.COST, agentsteps__step__name="async_call") == 200_000 / 1e9
    [(attributes, _)] = [
        (a, p) for a, p in points(reader, M.LLM_CALLS) if a["agentsteps.step.name"] == "async_call"
    ]
    assert attributes["agentsteps.step.status"] == "completed"
