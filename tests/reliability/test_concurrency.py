"""
Concurrency: thousands of tasks and many threads charging the same steps at once.

A shared step's totals must be the exact sum of what was recorded into it, and each
budget must trip exactly once, at the record that crossed it, reporting the figures at
that crossing. When one task's record trips a budget and its siblings are cancelled,
every sibling step ends ``cancelled`` and no span is left open.
"""

from __future__ import annotations

import asyncio
import builtins
import re
import sys
import threading
import time
from collections import Counter
from typing import Any

import pytest

from agentsteps import (
    Budget,
    CompletedStep,
    ContextThreadPoolExecutor,
    StepBudgetExhausted,
    StepEscalated,
    Usage,
    current_step,
    record_usage,
    run,
    step,
    step_scope,
)
from agentsteps._core import boundary as _boundary
from agentsteps._core import recording as _recording
from agentsteps._core.context import CURRENT
from agentsteps._core.recording import charge
from tests.support import Spans

# One record: 3 tokens, 1 call, $0.000123 (123,000 nano-dollars, exactly).
RECORD = Usage(input_tokens=2, output_tokens=1, llm_calls=1, cost_nano_usd=123_000)


def record_one() -> None:
    """Record one `RECORD`."""
    record_usage("m", 2, 1, cost_usd=0.000123)


def times(n: int) -> Usage:
    """``n`` records' worth of usage."""
    total = Usage()
    for _ in range(n):
        total = total + RECORD
    return total


def nanos(exc: StepBudgetExhausted) -> int:
    """The exception's dollars as nano-dollars."""
    return round(exc.consumed_usd * 1_000_000_000)


class TestSharedTotals:
    """10,000 tasks and 16 threads charge three shared steps at once."""

    TASKS_PER_BRANCH = 5_000
    THREADS = 16
    RECORDS_PER_THREAD = 500
    BRANCH_LIMIT = 300  # tokens: "branch_a" trips at its 101st record (303 tokens)
    # The root can only cross after branch_a has: 45,000 > all of branch_b, all threads
    # and branch_a up to its limit. So no single record trips both.
    ROOT_LIMIT = 45_000  # tokens: trips at the 15,001st record (45,003 tokens)

    def test_tasks_and_threads(self, spans: Spans) -> None:
        """Totals are exact sums; each budget trips once, at the crossing record."""
        caught: list[StepBudgetExhausted] = []
        caught_lock = threading.Lock()
        go = threading.Event()

        def thread_worker() -> None:
            go.wait()
            for _ in range(self.RECORDS_PER_THREAD):
                try:
                    record_one()
                except StepBudgetExhausted as exc:
                    with caught_lock:
                        caught.append(exc)
                time.sleep(0)  # let the event loop's thread in between records

        @step(name="leaf")
        async def leaf() -> None:
            await asyncio.sleep(0)
            record_one()

        async def direct() -> None:
            await asyncio.sleep(0)
            record_one()

        @step(name="branch_a", budget=Budget(max_tokens=self.BRANCH_LIMIT))
        async def branch_a() -> list[BaseException | None]:
            tasks = [asyncio.create_task(leaf()) for _ in range(self.TASKS_PER_BRANCH)]
            go.set()
            return await asyncio.gather(*tasks, return_exceptions=True)

        @step(name="branch_b")
        async def branch_b() -> list[BaseException | None]:
            tasks = [asyncio.create_task(direct()) for _ in range(self.TASKS_PER_BRANCH)]
            return await asyncio.gather(*tasks, return_exceptions=True)

        @step(name="root", budget=Budget(max_tokens=self.ROOT_LIMIT))
        async def root() -> tuple[Usage, Usage]:
            with ContextThreadPoolExecutor(max_workers=self.THREADS) as pool:
                futures = [
                    asyncio.wrap_future(pool.submit(thread_worker)) for _ in range(self.THREADS)
                ]
                a, b = await asyncio.gather(branch_a(), branch_b())
                await asyncio.gather(*futures)
            for result in [*a, *b]:
                if isinstance(result, StepBudgetExhausted):
                    caught.append(result)
                else:
                    assert result is None
            me = current_step()
            assert me is not None
            return me.usage, me.subtree_usage

        with run() as collected:
            own, subtree = asyncio.run(root())

        n_tasks = 2 * self.TASKS_PER_BRANCH
        n_threads = self.THREADS * self.RECORDS_PER_THREAD
        assert subtree == times(n_tasks + n_threads)
        assert own == times(n_threads)
        records = {s.name: s for s in collected.steps if s.name != "leaf"}
        assert records["branch_a"].subtree_usage == times(self.TASKS_PER_BRANCH)
        assert records["branch_b"].usage == times(self.TASKS_PER_BRANCH)
        assert records["root"].subtree_usage == subtree
        assert collected.total == subtree

        # Each budget tripped exactly once, at the first record past its limit.
        assert Counter(exc.step for exc in caught) == {"root": 1, "branch_a": 1}
        by_step = {exc.step: exc for exc in caught}
        branch_calls = self.BRANCH_LIMIT // 3 + 1
        root_calls = self.ROOT_LIMIT // 3 + 1
        assert (by_step["branch_a"].consumed_tokens, by_step["branch_a"].llm_calls) == (
            3 * branch_calls,
            branch_calls,
        )
        assert nanos(by_step["branch_a"]) == 123_000 * branch_calls
        assert (by_step["root"].consumed_tokens, by_step["root"].llm_calls) == (
            3 * root_calls,
            root_calls,
        )
        assert nanos(by_step["root"]) == 123_000 * root_calls

        # Every leaf has one record and one ended span; the exhaustions were caught by
        # the code around them, so the steps themselves completed.
        leaves = [s for s in collected.steps if s.name == "leaf"]
        assert len(leaves) == self.TASKS_PER_BRANCH
        assert sum(s.usage == RECORD for s in leaves) == self.TASKS_PER_BRANCH
        assert {r.status.value for r in records.values()} == {"completed"}
        statuses = Counter(s.status.value for s in leaves)
        assert statuses["failed"] in (1, 2)  # branch_a's trip; root's if a leaf made it
        assert statuses["failed"] + statuses["completed"] == self.TASKS_PER_BRANCH
        assert len(spans.frames) == self.TASKS_PER_BRANCH + 3
        assert CURRENT.get() is None

    @pytest.mark.parametrize("limit", ["max_tokens", "max_usd", "max_llm_calls"])
    def test_threads_trip_once_at_the_crossing(self, limit: str) -> None:
        """16 threads hammering one step: exactly one record raises, at the crossing."""
        threads, per_thread, crossing = 16, 400, 3_001  # the 3,001st record crosses
        budget = {
            "max_tokens": Budget(max_tokens=3 * (crossing - 1)),
            "max_usd": Budget(max_usd=0.000123 * (crossing - 1)),
            "max_llm_calls": Budget(max_llm_calls=crossing - 1),
        }[limit]
        caught: list[StepBudgetExhausted] = []
        barrier = threading.Barrier(threads)

        def worker() -> None:
            barrier.wait()
            for _ in range(per_thread):
                try:
                    record_one()
                except StepBudgetExhausted as exc:
                    caught.append(exc)  # list.append is atomic

        with step_scope("shared", budget=budget) as shared:
            with ContextThreadPoolExecutor(max_workers=threads) as pool:
                for future in [pool.submit(worker) for _ in range(threads)]:
                    future.result()
            assert shared.subtree_usage == times(threads * per_thread)
        assert len(caught) == 1
        (exc,) = caught
        assert exc.limit == limit
        assert (exc.consumed_tokens, exc.llm_calls, nanos(exc)) == (
            3 * crossing,
            crossing,
            123_000 * crossing,
        )


class TestExhaustionFigures:
    """The figures an exhaustion reports are those at the crossing."""

    def test_figures_are_read_at_the_crossing(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """
        Usage another thread charges between the crossing and the raise is not reported
        as part of the crossing. Regression: the error used to re-read the ledger after
        the lock was released.
        """
        build_error = _boundary.exhaustion_error

        def late_thread_then_build(*args: Any) -> StepBudgetExhausted:
            # What another thread can do in the window before the error is built.
            charge(CURRENT.get(), Usage(input_tokens=500, llm_calls=1), "m")  # type: ignore[arg-type]
            return build_error(*args)

        monkeypatch.setattr(_recording, "exhaustion_error", late_thread_then_build)
        with (
            pytest.raises(
                StepBudgetExhausted,
                match=re.escape("step 'plan' exceeded max_tokens budget (12 > 10 tokens)"),
            ) as info,
            step_scope("plan", budget=Budget(max_tokens=10)) as plan,
        ):
            record_usage("m", 12, 0, cost_usd=0)
        assert (info.value.consumed_tokens, info.value.llm_calls) == (12, 1)
        assert plan.subtree_usage.total_tokens == 512  # the late usage is charged all the same


class TestCancellingSiblings:
    """One task trips the parent's budget; its siblings are cancelled."""

    WORKERS = 20
    LIMIT = 50  # calls: the 51st record trips the parent

    @staticmethod
    @step(name="worker")
    async def worker() -> None:
        for _ in range(1_000):
            record_usage("m", 1, 0, cost_usd=0)
            await asyncio.sleep(0)

    @pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio.TaskGroup is 3.11+")
    def test_task_group(self, spans: Spans) -> None:
        """
        TaskGroup cancels the siblings: each ends ``cancelled``, every span ends. The
        parent sees its exhaustion inside an ExceptionGroup holding nothing else, so its
        ``continue`` boundary still applies: it ends ``skipped`` and returns its default.
        """

        @step(name="parent", budget=Budget(max_llm_calls=self.LIMIT), error_boundary="continue")
        async def parent() -> None:
            async with asyncio.TaskGroup() as group:  # type: ignore[attr-defined,unused-ignore]
                for _ in range(self.WORKERS):
                    group.create_task(self.worker())

        with run() as collected:
            assert asyncio.run(parent()) is None  # the default of a skipped step
        self.check(collected.steps, spans, parent_status="skipped")

    @pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio.TaskGroup is 3.11+")
    def test_task_group_escalates_and_fails(self, spans: Spans) -> None:
        """Under escalate the grouped exhaustion becomes StepEscalated; under fail the group
        itself propagates, unchanged."""

        @step(name="parent", budget=Budget(max_llm_calls=self.LIMIT), error_boundary="escalate")
        async def escalating() -> None:
            async with asyncio.TaskGroup() as group:  # type: ignore[attr-defined,unused-ignore]
                for _ in range(self.WORKERS):
                    group.create_task(self.worker())

        with pytest.raises(StepEscalated) as info:
            asyncio.run(escalating())
        assert (info.value.step, info.value.llm_calls) == ("parent", self.LIMIT + 1)
        assert isinstance(info.value.__cause__, getattr(builtins, "ExceptionGroup", Exception))

        @step(name="parent", budget=Budget(max_llm_calls=self.LIMIT))
        async def failing() -> None:
            async with asyncio.TaskGroup() as group:  # type: ignore[attr-defined,unused-ignore]
                for _ in range(self.WORKERS):
                    group.create_task(self.worker())

        exception_group = getattr(builtins, "ExceptionGroup", Exception)
        with run() as collected, pytest.raises(exception_group) as group_info:
            asyncio.run(failing())
        (exc,) = group_info.value.exceptions  # type: ignore[attr-defined,unused-ignore]
        assert isinstance(exc, StepBudgetExhausted)
        assert (exc.step, exc.llm_calls) == ("parent", self.LIMIT + 1)
        assert [s.status.value for s in collected.steps if s.name == "parent"] == ["failed"]

    def test_gather_then_cancel(self, spans: Spans) -> None:
        """
        With gather, the parent cancels the siblings itself and re-raises its own
        exhaustion: siblings ``cancelled``, parent ``skipped`` by its boundary.
        """

        @step(name="parent", budget=Budget(max_llm_calls=self.LIMIT), error_boundary="continue")
        async def parent() -> str:
            tasks = [asyncio.create_task(self.worker()) for _ in range(self.WORKERS)]
            try:
                await asyncio.gather(*tasks)
            except StepBudgetExhausted:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                raise
            return "finished"

        with run() as collected:
            assert asyncio.run(parent()) is None  # the default of a skipped step
        self.check(collected.steps, spans, parent_status="skipped")

    def check(self, steps: list[CompletedStep], spans: Spans, parent_status: str) -> None:
        """One failed worker, the rest cancelled, every span ended, usage exact."""
        workers = [s for s in steps if s.name == "worker"]
        (parent,) = [s for s in steps if s.name == "parent"]
        assert Counter(s.status.value for s in workers) == {
            "failed": 1,
            "cancelled": self.WORKERS - 1,
        }
        assert parent.status.value == parent_status
        # Siblings already scheduled in the loop iteration of the trip record once more
        # before their cancellation lands: charged, but no second exhaustion (one failed).
        assert parent.llm_calls > self.LIMIT
        assert parent.llm_calls == sum(s.usage.llm_calls for s in workers)
        assert len(spans.frames) == self.WORKERS + 1
        assert Counter(
            (s.attributes or {})["agentsteps.step.status"] for s in spans.frames
        ) == Counter(s.status.value for s in steps)
        assert CURRENT.get() is None
