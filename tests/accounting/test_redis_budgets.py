"""Shared budgets on a real redis-server: a fleet of processes, and the server dying.

The server is Debian's redis-server, started on a free loopback port by the tests
(tests/support/redis_server.py); under CI a missing redis-server fails these tests.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from agentsteps import (
    Budget,
    BudgetStoreUnavailable,
    StepBudgetExhausted,
    llm_call,
    record_usage,
    step,
)
from agentsteps._accounting.budget import usd_to_nanos
from agentsteps._core.shared import pending_charges
from agentsteps.stores import Amounts, RedisBudgetStore
from tests.support import ROOT, SCRIPTS
from tests.support.redis_server import RedisServer
from tests.support.scripts.fleet_worker import LIMITS

WORKER = SCRIPTS / "fleet_worker.py"


def run_fleet(server: RedisServer, mode: str) -> tuple[list[dict[str, Any]], Any, str, str]:
    prefix, key = f"fleet:{uuid.uuid4().hex}", "tenant-42"
    workers = [
        subprocess.Popen(
            [sys.executable, str(WORKER), server.url, prefix, key, mode, str(n)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        for n in range(4)
    ]
    results = []
    for worker in workers:
        out, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err
        results.append(json.loads(out))
    store = RedisBudgetStore(server.url, prefix=prefix)
    figures = store.get(key)
    raw = store.client.hgetall(next(iter(store.client.scan_iter(match=f"{prefix}:*}}:ever:0"))))
    store.client.close()
    return results, figures, prefix, raw


def test_a_fleet_adds_up_exactly_and_crosses_each_limit_once(
    redis_server: RedisServer,
) -> None:
    results, figures, _, raw = run_fleet(redis_server, "cross")
    assert figures is not None
    # The store's totals are exactly the sum of what every process charged.
    assert figures.spent == Amounts(
        sum(r["tokens"] for r in results),
        sum(r["nanos"] for r in results),
        sum(r["calls"] for r in results),
    )
    crossings: dict[str, int] = {}
    for r in results:
        for limit, n in r["crossings"].items():
            crossings[limit] = crossings.get(limit, 0) + n
    # Each limit's crossing is told to one charge at most, fleet-wide; the first limit
    # spent is told to exactly one; every other thread is refused before its next call.
    assert crossings and all(n == 1 for n in crossings.values())
    assert sum(crossings.values()) + sum(r["refusals"] for r in results) == 32
    flagged = {b"xt": "max_tokens", b"xn": "max_usd", b"xc": "max_llm_calls"}
    assert set(crossings) <= {flagged[f] for f in flagged if f in raw}
    limits = (LIMITS["max_tokens"], usd_to_nanos(LIMITS["max_usd"]), LIMITS["max_llm_calls"])
    assert any(s > lim for s, lim in zip(figures.spent.as_tuple(), limits, strict=True))


def test_a_reserving_fleet_never_spends_beyond_its_limits(
    redis_server: RedisServer,
) -> None:
    results, figures, _, _ = run_fleet(redis_server, "reserve")
    assert figures is not None
    assert figures.spent == Amounts(
        sum(r["tokens"] for r in results),
        sum(r["nanos"] for r in results),
        sum(r["calls"] for r in results),
    )
    limits = (LIMITS["max_tokens"], usd_to_nanos(LIMITS["max_usd"]), LIMITS["max_llm_calls"])
    assert all(s <= lim for s, lim in zip(figures.spent.as_tuple(), limits, strict=True))
    assert figures.reserved == Amounts(0, 0, 0)
    assert all(r["crossings"] == {} for r in results)
    assert sum(r["refusals"] for r in results) == 32


@pytest.fixture
def own_server() -> Iterator[RedisServer]:
    """A server of this test's own, which it kills; append-only so a restart keeps data."""
    server = RedisServer(persistent=True)
    server.start()
    yield server
    server.close()


def test_server_killed_fail_closed_raises_before_the_request(own_server: RedisServer) -> None:
    store = RedisBudgetStore(own_server.url, timeout=0.2)
    sent = []

    @step(name="ask", budget=Budget(max_tokens=10_000, shared_key="k", store=store))
    def ask() -> None:
        with llm_call("m", input_tokens=5) as call:
            sent.append(1)
            call.record(input_tokens=5, output_tokens=5, cost_usd=0)

    ask()
    own_server.stop()
    for _ in range(3):
        with pytest.raises(BudgetStoreUnavailable) as caught:
            ask()
        assert caught.value.shared_key == "k"
        assert "the model call was not sent" in str(caught.value)
    assert len(sent) == 1
    own_server.start()
    ask()
    figures = store.get("k")
    assert figures is not None and figures.spent == Amounts(20, 0, 2)
    store.client.close()


def test_server_killed_fail_open_loses_no_usage(own_server: RedisServer) -> None:
    store = RedisBudgetStore(own_server.url, timeout=0.2)
    budget = Budget(max_tokens=10_000, shared_key="k", store=store, on_store_error="fail_open")
    calls = [0]

    @step(name="ask", budget=budget)
    def ask() -> None:
        with llm_call("m", input_tokens=5, max_output_tokens=10) as call:
            call.record(input_tokens=5, output_tokens=5, cost_usd=0)
            calls[0] += 1

    def spend() -> None:
        for _ in range(5):
            ask()

    spend()
    own_server.stop()
    threads = [threading.Thread(target=spend) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert pending_charges(store) == 20
    own_server.start()
    spend()
    assert pending_charges(store) == 0
    figures = store.get("k")
    assert calls[0] == 30
    assert figures is not None and figures.spent == Amounts(300, 0, 30)
    store.client.close()


def test_exhaustion_error_pickles_with_its_shared_key(
    redis_server: RedisServer,
) -> None:
    import pickle

    store = RedisBudgetStore(redis_server.url, prefix=f"t:{uuid.uuid4().hex}")

    @step(name="ask", budget=Budget(max_llm_calls=0, shared_key="p", store=store))
    def ask() -> None:
        record_usage(model="m", input_tokens=1, output_tokens=1, cost_usd=0)

    with pytest.raises(StepBudgetExhausted) as caught:
        ask()
    again = pickle.loads(pickle.dumps(caught.value))
    assert (again.shared_key, str(again)) == ("p", str(caught.value))
    assert str(again) == (
        "step 'ask' exceeded the fleet-wide max_llm_calls budget of shared key 'p' (1 > 0 calls)"
    )
    store.client.close()


def test_budgets_command_lists_keys_with_their_figures(
    redis_server: RedisServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from datetime import timedelta

    from agentsteps._report.cli import main
    from agentsteps.stores import Limits

    prefix = f"cli:{uuid.uuid4().hex}"
    store = RedisBudgetStore(redis_server.url, prefix=prefix, clock=lambda: 1_800_000_030.0)
    day = timedelta(days=1)
    limits = Limits(tokens=10_000, nanos=50_000_000_000, calls=None)
    store.charge("tenant-42", day, limits, Amounts(1_234, 12_300_000, 3), charge_id="a")
    store.reserve(
        "tenant-42", day, limits, Amounts(500, 1_000_000, 1), reservation="r", ttl=day * 365
    )
    store.charge("tenant-7", None, Limits(calls=5), Amounts(10, 0, 1), charge_id="b")
    store.client.close()

    assert main(["budgets", "--store", redis_server.url, "--prefix", prefix]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "KEY        PERIOD END (UTC)     TOKENS                 USD                            "
        "CALLS",
        "tenant-42  2027-01-16 00:00:00  1,234 / 10,000 (+500)  $0.0123 / $50.0000 (+$0.0010)  "
        "3 / - (+1)",
        "tenant-7   never                10 / -                 $0.0000 / -                    "
        "1 / 5",
    ]
    assert main(["budgets", "--store", redis_server.url, "--prefix", prefix, "--json"]) == 0
    first = json.loads(capsys.readouterr().out.splitlines()[0])
    assert first == {
        "key": "tenant-42",
        "period_end": "2027-01-16T00:00:00Z",
        "limits": {"tokens": 10_000, "nanos": 50_000_000_000, "calls": None},
        "spent": {"tokens": 1_234, "nanos": 12_300_000, "calls": 3},
        "reserved": {"tokens": 500, "nanos": 1_000_000, "calls": 1},
    }


def test_budgets_command_errors_name_the_fix(capsys: pytest.CaptureFixture[str]) -> None:
    from agentsteps._report.cli import main
    from tests.support.redis_server import free_port

    assert main(["budgets"]) == 2
    assert capsys.readouterr().err == (
        "agentsteps budgets: error: no store given: pass --store redis://HOST:PORT/DB or set "
        "$AGENTSTEPS_BUDGET_STORE\n"
    )
    assert main(["budgets", "--store", f"redis://127.0.0.1:{free_port()}/0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("agentsteps budgets: error: the store redis://127.0.0.1:")
    assert "cannot be reached (ConnectionError" in err


def test_keys_expire_after_their_period(redis_server: RedisServer) -> None:
    import time
    from datetime import timedelta

    from agentsteps.stores import Limits

    prefix = f"ttl:{uuid.uuid4().hex}"
    store = RedisBudgetStore(redis_server.url, prefix=prefix)
    hour = timedelta(hours=1)
    result = store.charge("k", hour, Limits(tokens=5), Amounts(1, 0, 1), charge_id="c")
    store.reserve("k", hour, Limits(tokens=5), Amounts(1, 0, 1), reservation="r", ttl=hour)
    names = sorted(n.decode() for n in store.client.scan_iter(match=f"{prefix}:*"))
    assert [n.rsplit(":", 1)[-1] for n in names][1:] == ["ids", "res"]
    assert result.figures.period_end is not None
    until_end_ms = (result.figures.period_end - time.time()) * 1000
    for name in names:
        ttl = store.client.pttl(name)
        # The period's end plus five minutes' grace (for late retries and the listing).
        assert until_end_ms < ttl <= until_end_ms + 5 * 60 * 1000 + 1000
    store.client.close()


def test_redis_store_arguments_are_checked() -> None:
    with pytest.raises(TypeError) as caught:
        RedisBudgetStore(42)
    assert str(caught.value) == (
        "RedisBudgetStore: 'url_or_client' must be a redis:// URL, a redis.Redis client or a "
        "redis.asyncio.Redis client (got 42 of type int)"
    )
    with pytest.raises(ValueError, match=r"^RedisBudgetStore: 'timeout' must be a number of "):
        RedisBudgetStore("redis://127.0.0.1:1/0", timeout=0)
    with pytest.raises(ValueError, match=r"^RedisBudgetStore: 'prefix' must be a non-empty str"):
        RedisBudgetStore("redis://127.0.0.1:1/0", prefix="")


def test_an_asyncio_client_charges_the_same_server(
    redis_server: RedisServer,
) -> None:
    """An async application's redis.asyncio client works: the store talks to its server."""
    import asyncio
    from datetime import timedelta

    import redis.asyncio

    from agentsteps import Budget, StepBudgetExhausted, record_usage, step

    key = f"async-{uuid.uuid4().hex}"
    aclient = redis.asyncio.Redis(host="127.0.0.1", port=redis_server.port, db=0)
    store = RedisBudgetStore(aclient)

    @step(budget=Budget(max_tokens=100, shared_key=key, period=timedelta(hours=1), store=store))
    async def agent() -> None:
        record_usage("m", 60, 0, cost_usd=0.0)

    asyncio.run(agent())
    with pytest.raises(StepBudgetExhausted) as caught:
        asyncio.run(agent())
    assert caught.value.shared_key == key
    # The figures are in the server the asyncio client points at, read by a plain client.
    assert RedisBudgetStore(redis_server.url).get(key, timedelta(hours=1)).spent.tokens == 120
    asyncio.run(aclient.aclose())
