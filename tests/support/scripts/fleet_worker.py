"""One worker of the fleet test (tests/accounting/test_redis_budgets.py): 8 threads spend one key.

    python tests/support/scripts/fleet_worker.py URL PREFIX KEY MODE SEED

MODE "cross": records of random usage (no reservations) until the key's limit refuses the
next call. MODE "reserve": every call reserves its maximum first. Prints what this process
charged and which exceptions it saw, as JSON.
"""

from __future__ import annotations

import json
import random
import sys
import threading

import agentsteps
from agentsteps import Budget, StepBudgetExhausted, llm_call, step
from agentsteps.stores import RedisBudgetStore

THREADS = 8
LIMITS = {"max_tokens": 400_000, "max_usd": 0.5, "max_llm_calls": 600}


def main() -> None:
    url, prefix, key, mode, seed = sys.argv[1:6]
    agentsteps.register_price("fleet-model", input_per_mtok=1.0, output_per_mtok=4.0)
    store = RedisBudgetStore(url, prefix=prefix, timeout=5)
    budget = Budget(**LIMITS, shared_key=key, store=store)  # type: ignore[arg-type]
    lock = threading.Lock()
    totals = {"tokens": 0, "nanos": 0, "calls": 0}
    crossings: dict[str, int] = {}
    refusals = [0]

    @step(name="worker", budget=budget)
    def work(rng: random.Random) -> None:
        while True:
            inp = rng.randint(1, 1_500)
            most = rng.randint(1, 2_000)
            out = rng.randint(0, most)
            reserve = most if mode == "reserve" else None
            with llm_call("fleet-model", input_tokens=inp, max_output_tokens=reserve) as call:
                try:
                    call.record(input_tokens=inp, output_tokens=out)
                finally:
                    # Charged whether or not the record raises: count it either way.
                    usage = call.usage
                    with lock:
                        totals["tokens"] += usage.total_tokens
                        totals["nanos"] += usage.cost_nano_usd
                        totals["calls"] += usage.llm_calls

    def run(n: int) -> None:
        rng = random.Random(f"{seed}-{n}")
        try:
            work(rng)
        except StepBudgetExhausted as exc:
            with lock:
                if "refused a model call" in str(exc):
                    refusals[0] += 1
                else:
                    crossings[exc.limit] = crossings.get(exc.limit, 0) + 1

    threads = [threading.Thread(target=run, args=(n,)) for n in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(json.dumps({**totals, "crossings": crossings, "refusals": refusals[0]}))


if __name__ == "__main__":
    main()
