"""
What one charge costs with a shared budget on Redis (loopback), as a ratio to a local one.

Each operation is one ``record_usage(...)`` in an open step: with a local `Budget` (all
three limits), with the same limits shared in an `InProcessBudgetStore`, and shared in a
`RedisBudgetStore` on a redis-server this script starts on a free loopback port (Debian's
``redis-server``; the test helper in tests/support/redis_server.py). No tracing. Ratios are
medians of per-round ratios, the variants interleaved, so a slow moment on a shared
machine touches all of them.

    python benchmarks/shared_charge.py [ROUNDS] [OPS_PER_ROUND]
"""

from __future__ import annotations

import pathlib
import statistics
import sys
import time
from collections.abc import Callable

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from agentsteps import Budget, record_usage, step_scope
from agentsteps.stores import InProcessBudgetStore, RedisBudgetStore
from tests.support.redis_server import RedisServer

_LIMITS = {"max_tokens": 10**12, "max_usd": 10.0**6, "max_llm_calls": 10**12}


def runner(budget: Budget) -> Callable[[int], float]:
    """Nanoseconds per ``record_usage`` in a step with ``budget``, over ``n`` records."""

    def run(n: int) -> float:
        with step_scope("bench", budget=budget):
            t0 = time.perf_counter_ns()
            for _ in range(n):
                record_usage(model="m", input_tokens=10, output_tokens=5, cost_usd=0.0001)
            return (time.perf_counter_ns() - t0) / n

    return run


def main() -> int:
    """Measure, print a small markdown table."""
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 15
    ops = int(sys.argv[2]) if len(sys.argv) > 2 else 2_000
    server = RedisServer()
    server.start()
    try:
        redis_store = RedisBudgetStore(server.url, prefix="bench")
        variants = {
            "local Budget": runner(Budget(**_LIMITS)),  # type: ignore[arg-type]
            "shared, in-process store": runner(
                Budget(**_LIMITS, shared_key="bench", store=InProcessBudgetStore())  # type: ignore[arg-type]
            ),
            "shared, Redis on loopback": runner(
                Budget(**_LIMITS, shared_key="bench", store=redis_store)  # type: ignore[arg-type]
            ),
        }
        for run in variants.values():
            run(ops // 10)  # warm up: imports, the script's load into Redis
        samples: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(rounds):
            for name, run in variants.items():
                samples[name].append(run(ops))
        redis_store.client.close()
    finally:
        server.close()
    local = samples["local Budget"]
    print(f"{rounds} rounds x {ops} records, Python {sys.version.split()[0]}\n")
    print("| charge | median per record | ratio to local |")
    print("|---|---:|---:|")
    for name, values in samples.items():
        ratio = statistics.median(v / base for v, base in zip(values, local, strict=True))
        print(f"| {name} | {statistics.median(values) / 1000:.1f} µs | {ratio:.1f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
