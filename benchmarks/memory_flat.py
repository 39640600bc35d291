"""
Memory stays flat over 1,000,000 steps with no collector (tracemalloc), as a script.

The default test suite runs the same measurement over 100,000 steps
(``tests/reliability/test_memory.py``); this runs it at full size, which takes about a
minute under tracemalloc. Exits 1 if the heap grew by ``FLAT_BOUND`` bytes or more.

    python benchmarks/memory_flat.py [STEPS]
"""

from __future__ import annotations

import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from tests.support.memory import FLAT_BOUND, measure_growth


def main() -> int:
    """Measure, print one line, and exit 0 when flat."""
    steps = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    start = time.perf_counter()
    growth = measure_growth(steps, traced=False)
    elapsed = time.perf_counter() - start
    flat = growth < FLAT_BOUND
    verdict = "flat" if flat else "GROWING"
    print(
        f"{steps:,} steps: heap grew {growth:,} bytes (bound {FLAT_BOUND:,}): "
        f"{verdict} ({elapsed:.0f} s)"
    )
    return 0 if flat else 1


if __name__ == "__main__":
    sys.exit(main())
