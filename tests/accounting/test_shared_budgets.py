"""Shared budgets: one limit for every step with the same key, in any thread or process.

Each semantic test runs against the in-process store and a real redis-server (see
tests/support/redis_server.py), with a clock the test moves instead of sleeping.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

import agentsteps
from agentsteps import (
    Budget,
    BudgetStoreUnavailable,
    StepBudgetExhausted,
    UnpricedModelError,
    llm_call,
    record_usage,
    step,
)
from agentsteps.stores import (
    Amounts,
    BudgetStore,
    InProcessBudgetStore,
    Limits,
    RedisBudgetStore,
)
from tests.support import PriceSetter, Spans
from tests.support.forking import fork_and_wait
from tests.support.redis_server import RedisServer

MINUTE = timedelta(minutes=1)
T0 = 1_800_000_000.0  # a multiple of 60 s: windows of a minute start here


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest, clock: Clock) -> Iterator[BudgetStore]:
    if request.param == "memory":
        yield InProcessBudgetStore(clock=clock)
        return
    server: RedisServer = request.getfixturevalue("redis_server")
    prefix = f"test:{uuid.uuid4().hex}"
    redis_store = RedisBudgetStore(server.url, prefix=prefix, clock=clock)
    yield redis_store
    redis_store.client.close()


def key() -> str:
    return f"tenant-{uuid.uuid4().hex[:8]}"


# -- validation ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"shared_key": ""}, ValueError, "Budget: 'shared_key' must be a non-empty str (got '')"),
        (
            {"shared_key": 42},
            TypeError,
            "Budget: 'shared_key' must be a str or None (got 42 of type int)",
        ),
        (
            {"period": MINUTE},
            ValueError,
            "Budget: 'period', 'store' and 'on_store_error' apply to shared budgets only; "
            "pass shared_key='...' too (got shared_key=None)",
        ),
        (
            {"shared_key": "t", "period": 60},
            TypeError,
            "Budget: 'period' must be a datetime.timedelta or None (got 60 of type int); "
            "e.g. period=timedelta(days=1)",
        ),
        (
            {"shared_key": "t", "period": timedelta(seconds=-1)},
            ValueError,
            "Budget: 'period' must be a positive timedelta of at least 1 ms "
            "(got datetime.timedelta(days=-1, seconds=86399)); use None for a budget that "
            "never resets",
        ),
        (
            {"shared_key": "t", "store": "redis://localhost"},
            TypeError,
            "Budget: 'store' must be a BudgetStore (agentsteps.stores.InProcessBudgetStore, "
            "RedisBudgetStore, or an object with their methods) or None "
            "(got 'redis://localhost' of type str)",
        ),
        (
            {"shared_key": "t", "on_store_error": "open"},
            ValueError,
            "Budget: 'on_store_error' must be 'fail_closed' or 'fail_open' (got 'open')",
        ),
    ],
)
def test_budget_validates_shared_arguments(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error) as caught:
        Budget(max_usd=1, **kwargs)
    assert str(caught.value) == message


def test_configure_budget_store_checks_its_type() -> None:
    with pytest.raises(TypeError) as caught:
        agentsteps.configure(budget_store=3)
    assert str(caught.value) == (
        "configure(): 'budget_store' must be a BudgetStore (agentsteps.stores."
        "InProcessBudgetStore or RedisBudgetStore) or None (got 3 of type int)"
    )


def test_repr_shows_the_shared_key_only_when_set() -> None:
    assert repr(Budget(max_tokens=5)) == "Budget(max_tokens=5, max_usd=None, max_llm_calls=None)"
    assert repr(Budget(max_tokens=5, shared_key="t", on_store_error="fail_open")) == (
        "Budget(max_tokens=5, max_usd=None, max_llm_calls=None, shared_key='t', "
        "period=None, on_store_error='fail_open')"
    )


# -- the fleet-wide limit ------------------------------------------------------------------


def test_steps_share_one_limit_and_one_crossing(store: BudgetStore) -> None:
    k = key()
    budget = Budget(max_tokens=100, shared_key=k, period=MINUTE, store=store)

    @step(name="work", budget=budget)
    def work(tokens: int) -> None:
        record_usage(model="m", input_tokens=tokens, cost_usd=0)

    work(60)  # each step alone is under 100: only the shared figures can cross
    with pytest.raises(StepBudgetExhausted) as caught:
        work(60)
    exc = caught.value
    assert (exc.limit, exc.shared_key, exc.consumed_tokens, exc.llm_calls) == (
        "max_tokens",
        k,
        120,
        2,
    )
    assert str(exc) == (
        f"step 'work' exceeded the fleet-wide max_tokens budget of shared key {k!r} "
        "(120 > 100 tokens)"
    )
    # The crossing was told once: a later record over the limit is charged, not raised.
    work(5)
    figures = store.get(k, MINUTE)
    assert figures is not None
    assert figures.spent == Amounts(tokens=125, nanos=0, calls=3)
    assert figures.limits == Limits(tokens=100)


def test_next_model_call_is_refused_before_it_is_sent(store: BudgetStore) -> None:
    k = key()
    budget = Budget(max_llm_calls=2, shared_key=k, store=store)
    sent = []

    @step(name="ask", budget=budget)
    def ask() -> None:
        with llm_call("m", input_tokens=3) as call:
            sent.append(1)
            call.record(input_tokens=3, output_tokens=1, cost_usd=0)

    ask()
    ask()
    with pytest.raises(StepBudgetExhausted) as caught:
        ask()
    assert len(sent) == 2
    assert str(caught.value) == (
        "step 'ask' refused a model call before making it: its max_llm_calls budget cannot "
        f"afford it (2 of 2 calls made or reserved fleet-wide under shared key {k!r})"
    )
    assert caught.value.shared_key == k
    figures = store.get(k)
    assert figures is not None and figures.spent.calls == 2


def test_threads_cross_once(store: BudgetStore) -> None:
    k = key()
    budget = Budget(max_tokens=1_000, shared_key=k, store=store)
    crossings: list[StepBudgetExhausted] = []
    charged = [0] * 8

    @step(name="work", budget=budget)
    def work(i: int) -> None:
        for _ in range(40):
            charged[i] += 7  # before: the crossing record raises, charged all the same
            record_usage(model="m", input_tokens=7, cost_usd=0)

    def run(i: int) -> None:
        try:
            work(i)
        except StepBudgetExhausted as exc:
            crossings.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(crossings) == 1
    figures = store.get(k)
    assert figures is not None and figures.spent.tokens == sum(charged)


def test_a_period_rolls_over(store: BudgetStore, clock: Clock) -> None:
    k = key()
    budget = Budget(max_llm_calls=1, shared_key=k, period=MINUTE, store=store)

    @step(name="ask", budget=budget)
    def ask() -> None:
        with llm_call("m") as call:
            call.record(input_tokens=1, output_tokens=1, cost_usd=0)

    ask()
    with pytest.raises(StepBudgetExhausted):
        ask()
    clock.now += 59.999
    with pytest.raises(StepBudgetExhausted):
        ask()
    clock.now = T0 + 60  # the next window: spending resumes
    ask()
    figures = store.get(k, MINUTE)
    assert figures is not None
    assert (figures.spent.calls, figures.period_end) == (1, T0 + 120)


def test_dollars_are_exact_nanos(store: BudgetStore, prices: PriceSetter) -> None:
    prices("fleet-m", 1.0, 2.0)  # $1 / $2 per million tokens
    k = key()
    budget = Budget(max_usd=0.001, shared_key=k, store=store)

    @step(name="ask", budget=budget)
    def ask() -> None:
        record_usage(model="fleet-m", input_tokens=300, output_tokens=100)

    ask()  # 300 * 1000 + 100 * 2000 = 500_000 nanos
    ask()  # $0.001 exactly: reaching a limit is allowed
    with pytest.raises(StepBudgetExhausted) as caught:
        ask()
    assert caught.value.limit == "max_usd"
    assert caught.value.consumed_usd == 0.0015
    figures = store.get(k)
    assert figures is not None and figures.spent.nanos == 1_500_000


def test_unpriced_usage_under_a_shared_dollar_limit_raises(store: BudgetStore) -> None:
    @step(name="ask", budget=Budget(max_usd=1, shared_key=key(), store=store))
    def ask() -> None:
        record_usage(model="no-such-model-xyz", input_tokens=10, output_tokens=1)

    with pytest.raises(UnpricedModelError):
        ask()


def test_configured_store_is_the_default(store: BudgetStore) -> None:
    agentsteps.configure(budget_store=store)
    k = key()

    @step(name="work", budget=Budget(max_tokens=10, shared_key=k))
    def work() -> None:
        record_usage(model="m", input_tokens=4, cost_usd=0)

    work()
    figures = store.get(k)
    assert figures is not None and figures.spent.tokens == 4


def test_charge_ids_are_idempotent(store: BudgetStore) -> None:
    k = key()
    first = store.charge(k, None, Limits(tokens=10), Amounts(11, 0, 1), charge_id="same")
    again = store.charge(k, None, Limits(tokens=10), Amounts(11, 0, 1), charge_id="same")
    assert (first.crossed, first.duplicate) == (("max_tokens",), False)
    assert (again.crossed, again.duplicate) == ((), True)
    assert again.figures.spent == Amounts(11, 0, 1)


def test_a_retry_lands_in_the_period_it_was_spent_in(store: BudgetStore, clock: Clock) -> None:
    k = key()
    store.charge(k, MINUTE, Limits(), Amounts(5, 0, 1), charge_id="late", at=T0 + 1)
    clock.now = T0 + 61
    store.charge(k, MINUTE, Limits(), Amounts(5, 0, 1), charge_id="late", at=T0 + 1)
    assert store.get(k, MINUTE) is None  # nothing in the new window
    clock.now = T0 + 1
    figures = store.get(k, MINUTE)
    assert figures is not None and figures.spent.tokens == 5


# -- reservations --------------------------------------------------------------------------


def test_reservation_holds_then_settles(store: BudgetStore, prices: PriceSetter) -> None:
    prices("fleet-m", 1.0, 2.0)
    k = key()
    budget = Budget(max_tokens=1_000, max_usd=1, shared_key=k, store=store)
    seen: list[Any] = []

    @step(name="ask", budget=budget)
    def ask() -> None:
        with llm_call("fleet-m", input_tokens=100, max_output_tokens=200) as call:
            seen.append(store.get(k))
            call.record(input_tokens=100, output_tokens=50)
            seen.append(store.get(k))
        seen.append(store.get(k))

    ask()
    held, settled, released = seen
    assert held.reserved == Amounts(300, 100 * 1000 + 200 * 2000, 1)
    assert held.spent == Amounts(0, 0, 0)
    # The record drew its usage from the reservation; the rest is held until the call ends.
    assert settled.spent == Amounts(150, 100_000 + 100_000, 1)
    assert settled.reserved == Amounts(150, 300_000, 0)
    assert released.reserved == Amounts(0, 0, 0)


def test_a_reservation_that_does_not_fit_is_refused(store: BudgetStore) -> None:
    k = key()
    budget = Budget(max_tokens=1_000, shared_key=k, store=store)

    @step(name="ask", budget=budget)
    def ask(out: int) -> None:
        with llm_call("m", input_tokens=100, max_output_tokens=out) as call:
            call.record(input_tokens=100, output_tokens=out, cost_usd=0)

    ask(800)  # 900 spent: 100 left
    with pytest.raises(StepBudgetExhausted) as caught:
        ask(50)  # would need 150
    assert str(caught.value) == (
        "step 'ask' refused a model call before making it: its max_tokens budget cannot "
        f"afford it (900 of 1000 tokens used or reserved fleet-wide under shared key {k!r}, "
        "and the call's reservation (100 input + 50 max output tokens) does not fit)"
    )
    figures = store.get(k)
    assert figures is not None and figures.reserved == Amounts(0, 0, 0)
    ask(0)  # 100 tokens fit exactly


def test_a_crashed_workers_reservation_expires(store: BudgetStore, clock: Clock) -> None:
    k = key()
    limits = Limits(tokens=100)
    held = store.reserve(
        k, None, limits, Amounts(100, 0, 1), reservation="crashed", ttl=timedelta(seconds=30)
    )
    assert held.granted
    refused = store.reserve(k, None, limits, Amounts(1, 0, 1), reservation="r2", ttl=MINUTE)
    assert (refused.granted, refused.refused_limit) == (False, "max_tokens")
    clock.now += 30
    again = store.reserve(k, None, limits, Amounts(1, 0, 1), reservation="r3", ttl=MINUTE)
    assert again.granted
    assert again.figures.reserved == Amounts(1, 0, 1)


def test_reserving_fleet_never_spends_beyond_the_limit(store: BudgetStore) -> None:
    k = key()
    budget = Budget(max_tokens=5_000, shared_key=k, store=store)
    refused = []

    @step(name="ask", budget=budget)
    def ask() -> None:
        while True:
            with llm_call("m", input_tokens=40, max_output_tokens=60) as call:
                call.record(input_tokens=40, output_tokens=60, cost_usd=0)

    def run() -> None:
        try:
            ask()
        except StepBudgetExhausted as exc:
            refused.append(exc)

    threads = [threading.Thread(target=run) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    figures = store.get(k)
    assert figures is not None
    assert figures.spent.tokens == 5_000  # exactly 50 calls of 100: never beyond
    assert all("refused a model call" in str(e) for e in refused) and len(refused) == 6


# -- visible -------------------------------------------------------------------------------


def test_fleet_figures_are_on_the_step_span(store: BudgetStore, spans: Spans) -> None:
    k = key()

    @step(name="work", budget=Budget(max_tokens=100, shared_key=k, period=MINUTE, store=store))
    def work() -> None:
        record_usage(model="m", input_tokens=30, output_tokens=2, cost_usd=0.5)

    work()
    work()
    attributes = [dict(s.attributes or {}) for s in spans.all if s.name == "invoke_workflow work"]
    last = attributes[-1]
    assert last["agentsteps.budget.shared.key"] == k
    assert last["agentsteps.budget.shared.tokens"] == 64
    assert last["agentsteps.budget.shared.usd"] == 1.0
    assert last["agentsteps.budget.shared.llm_calls"] == 2
    assert last["agentsteps.budget.shared.reserved_tokens"] == 0
    assert last["agentsteps.budget.shared.period_end"] == "2027-01-15T08:01:00+00:00"


# -- the failure policy, with a store that answers or not ---------------------------------


class Flaky:
    """A real in-process store behind a switch that makes it unreachable."""

    def __init__(self) -> None:
        self.inner = InProcessBudgetStore()
        self.up = True

    def _check(self) -> None:
        if not self.up:
            raise BudgetStoreUnavailable("*", "Flaky()", "ConnectionError: down")

    def now(self) -> float:
        return self.inner.now()

    def charge(self, *args: Any, **kwargs: Any) -> Any:
        self._check()
        return self.inner.charge(*args, **kwargs)

    def reserve(self, *args: Any, **kwargs: Any) -> Any:
        self._check()
        return self.inner.reserve(*args, **kwargs)

    def release(self, *args: Any, **kwargs: Any) -> None:
        self._check()
        self.inner.release(*args, **kwargs)

    def get(self, *args: Any, **kwargs: Any) -> Any:
        self._check()
        return self.inner.get(*args, **kwargs)

    def list(self) -> Any:
        self._check()
        return self.inner.list()


def test_fail_closed_refuses_before_the_request_and_loses_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from agentsteps._core.shared import pending_charges

    flaky = Flaky()
    k = key()
    sent = []

    @step(name="ask", budget=Budget(max_tokens=1_000, shared_key=k, store=flaky))
    def ask() -> None:
        with llm_call("m") as call:
            sent.append(1)
            flaky.up = False  # the store goes away while the request is in flight
            call.record(input_tokens=10, output_tokens=1, cost_usd=0)

    ask()  # its usage could not reach the store: queued, not lost
    assert pending_charges(flaky) == 1
    with pytest.raises(BudgetStoreUnavailable) as caught:
        ask()
    assert len(sent) == 1
    assert str(caught.value) == (
        f"the budget store Flaky() of shared key {k!r} is unavailable (ConnectionError: "
        "down); the model call was not sent. Fix: bring the store back, or let calls go on "
        "while it is away with Budget(..., on_store_error='fail_open')"
    )
    assert caught.value.shared_key == k
    assert [r.getMessage() for r in caplog.records if "unavailable" in r.getMessage()] == [
        "agentsteps: budget store Flaky() is unavailable (ConnectionError: down): model "
        "calls are refused; usage is kept and added when it answers again"
    ]
    flaky.up = True
    assert flaky.inner.get(k) is None  # nothing reached the store yet

    @step(name="quiet", budget=Budget(max_tokens=1_000, shared_key=k, store=flaky))
    def quiet() -> None:
        with llm_call("m") as call:
            call.record(input_tokens=5, output_tokens=0, cost_usd=0)

    quiet()  # the queued charge goes first, then this one
    figures = flaky.inner.get(k)
    assert figures is not None and figures.spent == Amounts(16, 0, 2)
    assert pending_charges(flaky) == 0


def test_fail_open_goes_on_warns_once_and_reconciles(caplog: pytest.LogCaptureFixture) -> None:
    from agentsteps._core.shared import pending_charges

    flaky = Flaky()
    k = key()

    budget = Budget(max_tokens=1_000, shared_key=k, store=flaky, on_store_error="fail_open")

    @step(name="ask", budget=budget)
    def ask() -> None:
        with llm_call("m", max_output_tokens=10) as call:
            call.record(input_tokens=10, output_tokens=1, cost_usd=0)

    ask()
    flaky.up = False
    for _ in range(3):
        ask()  # the store is away: calls go on
    assert pending_charges(flaky) == 3
    warnings = [r for r in caplog.records if "unavailable" in r.getMessage()]
    assert len(warnings) == 1
    flaky.up = True
    ask()
    figures = flaky.inner.get(k)
    assert figures is not None
    assert figures.spent == Amounts(55, 0, 5)
    assert figures.reserved == Amounts(0, 0, 0)
    assert pending_charges(flaky) == 0


def test_import_does_not_need_redis() -> None:
    """`import agentsteps` (and its stores) never imports redis: it is an extra."""
    import subprocess
    import sys

    code = (
        "import sys, agentsteps, agentsteps.stores\n"
        "agentsteps.stores.InProcessBudgetStore()\n"
        "print('redis' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.split() == ["False"]


def test_a_threshold_hook_fires_once_fleet_wide(store: BudgetStore) -> None:
    from agentsteps import on_step, scoped_hooks

    k = key()
    budget = Budget(max_tokens=100, shared_key=k, store=store)
    fired: list[tuple[str, float | None]] = []

    @step(name="work", budget=budget)
    def work(tokens: int) -> None:
        record_usage(model="m", input_tokens=tokens, cost_usd=0)

    with scoped_hooks():

        @on_step("*", "work", "budget_threshold", threshold_pct=50)
        def half(event: Any) -> None:
            fired.append((event.step_name, event.budget_pct))

        work(30)  # 30%: no step alone ever reaches 50
        work(30)  # 60% fleet-wide: fires, once
        work(30)
        threads = [threading.Thread(target=work, args=(1,)) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert fired == [("work", 60.0)]


def test_an_outer_local_refusal_dominates_an_inner_shared_one(store: BudgetStore) -> None:
    @step(name="inner", budget=Budget(max_llm_calls=0, shared_key=key(), store=store))
    def inner() -> None:
        with llm_call("m"):
            pass

    @step(name="outer", budget=Budget(max_llm_calls=0))
    def outer() -> None:
        inner()

    with pytest.raises(StepBudgetExhausted) as caught:
        outer()
    assert (caught.value.step, caught.value.shared_key) == ("outer", None)


def test_an_outer_shared_refusal_dominates_an_inner_local_one(store: BudgetStore) -> None:
    k = key()

    @step(name="inner", budget=Budget(max_llm_calls=0))
    def inner() -> None:
        with llm_call("m"):
            pass

    @step(name="outer", budget=Budget(max_llm_calls=0, shared_key=k, store=store))
    def outer() -> None:
        inner()

    with pytest.raises(StepBudgetExhausted) as caught:
        outer()
    assert (caught.value.step, caught.value.shared_key) == ("outer", k)


def test_the_crossing_steps_boundary_and_exhausted_hook_apply(store: BudgetStore) -> None:
    from agentsteps import on_step, scoped_hooks

    k = key()
    budget = Budget(max_tokens=10, shared_key=k, store=store)
    heard: list[tuple[str, str | None]] = []

    @step(name="work", budget=budget, error_boundary="continue", default="skipped")
    def work() -> str:
        record_usage(model="m", input_tokens=6, cost_usd=0)
        return "done"

    with scoped_hooks():

        @on_step("*", "work", "budget_exhausted")
        def exhausted(event: Any) -> None:
            heard.append((event.step_name, event.limit))

        assert work() == "done"
        assert work() == "skipped"  # crossed fleet-wide: its boundary turned it into a default
        assert work() == "done"  # a record past the limit: charged, not raised again
    assert heard == [("work", "max_tokens")]


def test_a_store_raising_anything_loses_no_usage() -> None:
    """A custom store's own error counts as the store being away, not as a lost record."""
    from agentsteps._core.shared import pending_charges

    class Broken(Flaky):
        def _check(self) -> None:
            if not self.up:
                raise OSError("disk on fire")

    broken = Broken()
    k = key()

    @step(name="work", budget=Budget(max_tokens=100, shared_key=k, store=broken))
    def work() -> int:
        broken.up = False
        record_usage(model="m", input_tokens=7, cost_usd=0)
        return 1

    assert work() == 1
    assert pending_charges(broken) == 1
    broken.up = True
    from agentsteps._core.shared import flush

    flush(broken)
    figures = broken.inner.get(k)
    assert figures is not None and figures.spent == Amounts(7, 0, 1)


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs os.fork")
def test_a_forked_worker_charges_while_a_thread_held_the_store() -> None:
    """A prefork worker forked while another thread was inside the store still charges."""
    store = InProcessBudgetStore()
    k = key()
    budget = Budget(max_tokens=100, shared_key=k, store=store)

    @step(name="work", budget=budget)
    def work() -> None:
        record_usage(model="m", input_tokens=3, cost_usd=0)

    def child() -> None:
        work()
        figures = store.get(k)
        assert figures is not None and figures.spent.tokens == 3, figures

    inside, release = threading.Event(), threading.Event()

    def hold() -> None:
        with store._lock:
            inside.set()
            release.wait()

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        assert inside.wait(10)
        code = fork_and_wait(child)
    finally:
        release.set()
        thread.join()
    assert code == 0


def test_instrumented_sdk_is_refused_under_a_spent_shared_key(store: BudgetStore) -> None:
    """instrument_openai() opens an llm_call per request: the shared pre-flight refuses."""
    openai = pytest.importorskip("openai")
    from tests.fakes.providers import FakeProvider
    from tests.fakes.providers import Usage as FakeUsage

    k = key()
    budget = Budget(max_llm_calls=3, shared_key=k, store=store)
    messages = [{"role": "user", "content": "Look it up."}]
    with (
        FakeProvider(usage=FakeUsage(10, 5)) as fake,
        agentsteps.instrument_openai(),
        openai.OpenAI(base_url=fake.openai_base_url, api_key="test", max_retries=0) as client,
    ):

        @step(name="worker", model="gpt-4o-mini", budget=budget)
        def worker(calls: int) -> None:
            for _ in range(calls):
                client.chat.completions.create(model="gpt-4o-mini", messages=messages)

        worker(2)  # one worker
        with pytest.raises(StepBudgetExhausted) as caught:
            worker(5)  # another: one call left fleet-wide, then refused before sending
        assert len(fake.model_requests) == 3
    assert caught.value.shared_key == k
    assert "refused a model call before making it" in str(caught.value)
    figures = store.get(k)
    assert figures is not None and figures.spent == Amounts(45, figures.spent.nanos, 3)
