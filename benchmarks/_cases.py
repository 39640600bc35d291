"""The benchmark cases: for each, a timed runner built from one variant's decorator."""

from __future__ import annotations

import asyncio
import gc
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from _impls import Impl

__all__ = ["CASES", "Case", "Runner", "measure_memory"]

# A runner does `n` operations of its case and returns the nanoseconds they took. Only the
# loop is timed: building the decorated function, entering enclosing steps or starting an
# event loop happen outside it.
Runner = Callable[[int], int]

_perf = time.perf_counter_ns
_NEST_DEPTH = 10
_GATHER_WIDTH = 1000
_GEN_ITEMS = 100
_IDLE_HOOKS = 1000


@dataclass(frozen=True)
class Case:
    """A case: how to build its runner, and how many units one operation counts for."""

    key: str
    title: str
    unit: str
    units_per_op: int
    build: Callable[[Impl, asyncio.AbstractEventLoop], Runner | None]
    # The case whose rounds this one's chunks join, when a figure divides one by the other:
    # chunks timed moments apart see the same load. Other cases keep rounds of their own, so
    # that state a variant leaves behind in one case cannot slow another.
    shares_rounds_with: str | None = None


def _sync(impl: Impl, loop: asyncio.AbstractEventLoop) -> Runner:
    @impl.decorate
    def work(x: int) -> int:
        return x + 1

    def run(n: int) -> int:
        f = work
        t0 = _perf()
        for _ in range(n):
            f(1)
        return _perf() - t0

    return run


def _async(impl: Impl, loop: asyncio.AbstractEventLoop) -> Runner:
    @impl.decorate
    async def awork(x: int) -> int:
        return x + 1

    async def timed(n: int) -> int:
        f = awork
        t0 = _perf()
        for _ in range(n):
            await f(1)
        return _perf() - t0

    return lambda n: loop.run_until_complete(timed(n))


def _nested(impl: Impl, loop: asyncio.AbstractEventLoop) -> Runner:
    # The closure refers to the decorated name, so each level is its own span.
    @impl.decorate
    def level(depth: int) -> int:
        return level(depth - 1) if depth > 1 else depth

    def run(n: int) -> int:
        f = level
        t0 = _perf()
        for _ in range(n):
            f(_NEST_DEPTH)
        return _perf() - t0

    return run


def _gather(impl: Impl, loop: asyncio.AbstractEventLoop) -> Runner:
    @impl.decorate
    async def awork(x: int) -> int:
        return x + 1

    async def timed(n: int) -> int:
        gather = asyncio.gather
        t0 = _perf()
        for _ in range(n):
            await gather(*[awork(i) for i in range(_GATHER_WIDTH)])
        return _perf() - t0

    return lambda n: loop.run_until_complete(timed(n))


def _generator(impl: Impl, loop: asyncio.AbstractEventLoop) -> Runner:
    @impl.decorate
    def items(count: int) -> Any:
        yield from range(count)

    def run(n: int) -> int:
        g = items
        t0 = _perf()
        for _ in range(n):
            for _item in g(_GEN_ITEMS):
                pass
        return _perf() - t0

    return run


def _idle_hooks(impl: Impl, loop: asyncio.AbstractEventLoop) -> Runner | None:
    """Case (a) with 1,000 hooks registered for other steps: what routing costs a step."""
    api = impl.api
    if api is None:
        return None

    @impl.decorate
    def work(x: int) -> int:
        return x + 1

    def idle(event: Any) -> None:
        pass

    def run(n: int) -> int:
        # Registered per chunk, so that the other cases run with no hooks at all; half on
        # each seam a sync step passes, so both take their hooked path.
        with api.scoped_hooks():
            for i in range(_IDLE_HOOKS):
                api.on_step("*", f"other_{i}", "pre_step" if i % 2 else "post_step")(idle)
            f = work
            f(1)  # routes once, as every later call of a real program finds it routed
            t0 = _perf()
            for _ in range(n):
                f(1)
            return _perf() - t0  # before the block unregisters the hooks

    return run


def _usage(priced: bool) -> Callable[[Impl, asyncio.AbstractEventLoop], Runner | None]:
    def build(impl: Impl, loop: asyncio.AbstractEventLoop) -> Runner | None:
        api = impl.api
        if api is None:
            return None
        record_usage = api.record_usage
        # Limits far beyond what a run can reach: every check runs, none trips.
        budget = api.Budget(max_tokens=10**15, max_usd=10.0**9, max_llm_calls=10**12)

        if priced:
            # cost_usd=None: the library prices the call from its table.
            def charge() -> None:
                record_usage("gpt-4o-mini", input_tokens=1000, output_tokens=200)
        else:

            def charge() -> None:
                record_usage("gpt-4o-mini", input_tokens=1000, output_tokens=200, cost_usd=0.0003)

        @api.step(budget=budget)
        def inner(n: int) -> int:
            c = charge
            t0 = _perf()
            for _ in range(n):
                c()
            return _perf() - t0

        @api.step
        def middle(n: int) -> int:
            return inner(n)  # type: ignore[no-any-return]

        @api.step
        def outer(n: int) -> int:
            return middle(n)  # type: ignore[no-any-return]

        return outer  # type: ignore[no-any-return]

    return build


CASES: dict[str, Case] = {
    case.key: case
    for case in (
        Case("sync", "(a) sync call", "call", 1, _sync),
        Case("async", "(b) async call", "call", 1, _async),
        Case("nest10", f"(c) nesting depth {_NEST_DEPTH}", "span", _NEST_DEPTH, _nested),
        Case(
            "gather1000",
            f"(d) {_GATHER_WIDTH} concurrent async calls (asyncio.gather)",
            "call",
            _GATHER_WIDTH,
            _gather,
        ),
        Case(
            "gen100", f"(e) generator step yielding {_GEN_ITEMS} items", "generator", 1, _generator
        ),
        Case(
            "hooks1000",
            f"(h) sync call with {_IDLE_HOOKS} registered hooks for other steps",
            "call",
            1,
            _idle_hooks,
        ),
        Case(
            "usage",
            "(f) record_usage(cost_usd=...) in a budgeted step under two steps",
            "record_usage",
            1,
            _usage(priced=False),
            shares_rounds_with="sync",
        ),
        Case(
            "usage-priced",
            "(f) record_usage priced from the table, same nesting",
            "record_usage",
            1,
            _usage(priced=True),
            shares_rounds_with="sync",
        ),
    )
}


def measure_memory(impl: Impl, first: int, total: int) -> dict[str, Any]:
    """
    Traced memory still allocated after `first` and after `total` sync calls.

    No collector is active. Both readings follow a flush and a full collection, so only what
    the calls retain is counted, not spans waiting in an exporter queue or garbage.
    """

    @impl.decorate
    def work(x: int) -> int:
        return x + 1

    def settle() -> int:
        impl.flush()
        gc.collect()
        return tracemalloc.get_traced_memory()[0]

    t0 = time.perf_counter()
    gc.collect()
    tracemalloc.start()
    try:
        for _ in range(first):
            work(1)
        at_first = settle()
        for _ in range(total - first):
            work(1)
        at_total = settle()
    finally:
        tracemalloc.stop()
    return {
        "first_calls": first,
        "total_calls": total,
        "bytes_at_first": at_first,
        "bytes_at_total": at_total,
        "growth_bytes": at_total - at_first,
        "seconds": time.perf_counter() - t0,
    }
