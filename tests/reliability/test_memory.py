"""
Memory: steps leave nothing behind, and a `run()` collector holds only its records.

With no collector, memory is measured with tracemalloc after a warm-up and again after
``N`` more steps of a mixed workload (personas, nested sync/async/generator steps with
budgets, exhaustions under every boundary, with and without an SDK tracer provider).
"Flat" means the growth stays under `FLAT_BOUND` bytes whatever ``N`` is: a leak of even
``FLAT_BOUND / N`` bytes per step would exceed it (3 bytes per step at the default
100,000 steps; ``benchmarks/memory_flat.py`` runs 1,000,000). ``AGENTSTEPS_MEMORY_STEPS``
changes ``N`` here too.
"""

from __future__ import annotations

import gc
import os
import threading
import tracemalloc
from collections import Counter

import attrs

import agentsteps
from agentsteps import (
    Budget,
    CompletedPersona,
    CompletedStep,
    Run,
    StepStatus,
    Usage,
    run,
)
from tests.support.memory import FLAT_BOUND, agent, leaf, measure_growth, workload

STEPS = int(os.environ.get("AGENTSTEPS_MEMORY_STEPS", "100000"))


def test_memory_is_flat_without_a_collector() -> None:
    """Many steps with no collector: the heap does not grow with the number of steps."""
    growth = measure_growth(STEPS, traced=False)
    assert growth < FLAT_BOUND, f"{growth} bytes after {STEPS} steps"


def test_memory_is_flat_with_an_sdk_provider() -> None:
    """
    The same with spans made by an SDK provider (no processor): agentsteps keeps no
    reference to ended spans. Fewer steps: the SDK allocates much more per step, which
    makes tracemalloc slow (the bound still catches a leak of 64 bytes per step).
    """
    steps = 4_000
    growth = measure_growth(steps, traced=True, warmup=4_000)
    assert growth < FLAT_BOUND, f"{growth} bytes after {steps} steps"


_PLAIN = (str, int, float, bool, type(None), StepStatus)
_RECORDS = (CompletedStep, CompletedPersona, Usage, Budget)


def _reachable_types(roots: list[object]) -> set[type]:
    """Types of everything reachable from ``roots`` through records and containers."""
    seen: set[int] = set()
    types: set[type] = set()
    todo = list(roots)
    while todo:
        obj = todo.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        types.add(type(obj))
        if isinstance(obj, _RECORDS):
            todo.extend(getattr(obj, a.name) for a in attrs.fields(type(obj)))
        elif isinstance(obj, (list, tuple, dict)):
            todo.extend(gc.get_referents(obj))
    return types


def test_run_collector_holds_exactly_what_it_collected() -> None:
    """
    A collector holds one record per activation, made of plain values only (no frame,
    span, exception or traceback), and gives all its memory back when dropped.
    """
    rounds = 2_000
    gc.collect()
    tracemalloc.start()
    try:
        workload(600)  # warm-up under tracemalloc
        gc.collect()
        baseline = tracemalloc.get_traced_memory()[0]
        with run() as collected:
            for i in range(rounds):
                agent(i)
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - baseline
        steps, personas = collected.steps, collected.personas
        assert len(personas) == rounds
        assert len(steps) == rounds * 4  # leaf, strict, escalating, items
        assert Counter(s.status.value for s in steps) == {
            "completed": rounds + rounds * 9 // 10,  # items, and leaf 9 times in 10
            "skipped": rounds // 10,
            "failed": rounds,
            "escalated": rounds,
        }
        expected = Usage()
        for s in steps:
            expected = expected + s.usage
        assert collected.total == expected
        assert collected.total.llm_calls == rounds * 5  # leaf, strict, escalating, 2 items
        assert _reachable_types([collected._steps, collected._personas]) <= {
            list,
            *_PLAIN,
            *_RECORDS,
        }
        del steps, personas, collected
        gc.collect()
        left = tracemalloc.get_traced_memory()[0] - baseline
    finally:
        tracemalloc.stop()
    assert held > rounds * 5 * 500  # it did hold the records (several hundred bytes each)...
    assert left < FLAT_BOUND  # ...and nothing once dropped


def test_collector_in_threads_gets_every_record() -> None:
    """Threads that copied the collector's context add to it without losing records."""
    threads, per_thread = 8, 500
    with run() as collected:

        def work() -> None:
            for i in range(per_thread):
                leaf(i)

        ctx_threads = [
            threading.Thread(target=agentsteps.run_in_context(work)) for _ in range(threads)
        ]
        for t in ctx_threads:
            t.start()
        for t in ctx_threads:
            t.join()
    assert isinstance(collected, Run)
    assert len(collected.steps) == threads * per_thread
    assert collected.total.llm_calls == threads * per_thread
