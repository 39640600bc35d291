"""
The memory workload: a mixed run of steps, and how much the heap grows over it.

Shared by ``tests/reliability/test_memory.py`` (100,000 steps) and
``benchmarks/memory_flat.py`` (1,000,000).
"""

from __future__ import annotations

import asyncio
import gc
import tracemalloc
from collections.abc import Iterator

from opentelemetry.sdk.trace import TracerProvider

import agentsteps
from agentsteps import Budget, StepBudgetExhausted, persona, record_usage, step

__all__ = ["FLAT_BOUND", "ROUND", "agent", "leaf", "measure_growth", "workload"]

FLAT_BOUND = 256 * 1024
"""Most bytes the traced heap may grow by over the measured steps, whatever their number."""


@step(name="leaf", budget=Budget(max_tokens=100), error_boundary="continue", default="")
def leaf(i: int) -> str:
    """Records usage; one call in ten runs out of budget and is skipped."""
    record_usage("m", 50, 45 + 10 * (i % 10 == 0), cost_usd=0.0001)
    return "ok"


@step(name="strict", budget=Budget(max_llm_calls=0))
def strict() -> None:
    """Always runs out of budget under ``fail``: its exception is caught by the caller."""
    record_usage("m", 1, 1, cost_usd=0)


@step(name="escalating", budget=Budget(max_llm_calls=0), error_boundary="escalate")
def escalating() -> None:
    """Always escalates: the caller catches `StepEscalated`."""
    record_usage("m", 1, 1, cost_usd=0)


@step(name="items")
def items(n: int) -> Iterator[int]:
    """A generator step."""
    for i in range(n):
        record_usage("m", 1, 1, cost_usd=0)
        yield i


@step(name="async_leaf")
async def async_leaf() -> None:
    """An async step."""
    record_usage("m", 1, 1, cost_usd=0)


@persona(name="agent")
def agent(i: int) -> int:
    """One round of the workload: the persona and four steps."""
    leaf(i)
    try:
        strict()
    except StepBudgetExhausted:
        pass
    try:
        escalating()
    except StepBudgetExhausted:
        pass
    return sum(items(2))


ROUND = 5
"""Activations per `agent` round: the persona, leaf, strict, escalating and items."""


async def _async_rounds(n: int) -> None:
    for _ in range(n):
        await async_leaf()


def workload(steps: int) -> None:
    """``steps`` activations of the mixed workload: 90% in rounds of `agent`, 10% async."""
    rounds = steps * 9 // 10 // ROUND
    for i in range(rounds):
        agent(i)
    asyncio.run(_async_rounds(steps - rounds * ROUND))


def measure_growth(steps: int, *, traced: bool, warmup: int = 20_000) -> int:
    """Bytes the heap grew by over ``steps`` activations, after a warm-up."""
    provider = TracerProvider() if traced else None
    agentsteps.configure(tracer_provider=provider)
    try:
        workload(warmup)  # caches, interned strings, the SDK's lazy state
        gc.collect()
        tracemalloc.start()
        try:
            workload(warmup // 4)  # and tracemalloc's own first allocations
            gc.collect()
            before = tracemalloc.take_snapshot()
            workload(steps)
            gc.collect()
            after = tracemalloc.take_snapshot()
        finally:
            tracemalloc.stop()
    finally:
        agentsteps.configure(tracer_provider=None)
        if provider is not None:
            provider.shutdown()
    ignore = [tracemalloc.Filter(False, tracemalloc.__file__)]
    diff = after.filter_traces(ignore).compare_to(before.filter_traces(ignore), "lineno")
    return sum(stat.size_diff for stat in diff)
