"""
Usage charged by a task that outlived its step is counted once, where the records say.

A fire-and-forget ``create_task`` (or ``gather`` whose siblings were not cancelled after
a trip) can keep recording after its step ended. The ended step's record is already
taken, so the usage goes to the innermost step still running, as that step's own usage:
every record keeps ``subtree == self + children``, `Run.total` counts the usage once, and
one warning names the task.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import pytest

from agentsteps import ContextThreadPoolExecutor, Usage, record_usage, run, step


def by_name(steps: Any) -> dict[str, Any]:
    return {s.name: s for s in steps}


def late_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "after step" in r.getMessage()]


def test_a_task_that_outlives_its_step(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> Any:
        ended = asyncio.Event()
        done = asyncio.Event()

        async def orphan() -> None:
            await ended.wait()
            record_usage("m", 7, 3, cost_usd=0.0)  # the child has ended
            record_usage("m", 7, 3, cost_usd=0.0)  # logged once, not twice
            done.set()

        @step(name="child")
        async def child() -> None:
            record_usage("m", 5, 5, cost_usd=0.0)
            asyncio.create_task(orphan(), name="fire-and-forget")  # noqa: RUF006

        @step(name="parent")
        async def parent() -> None:
            await child()
            ended.set()
            await done.wait()

        with run() as r:
            await parent()
        return r

    with caplog.at_level(logging.WARNING, logger="agentsteps"):
        r = asyncio.run(main())
    steps = by_name(r.steps)
    child, parent = steps["child"], steps["parent"]
    assert child.usage.total_tokens == child.subtree_usage.total_tokens == 10
    assert parent.usage.total_tokens == 20  # the orphan's, as the parent's own
    assert parent.subtree_usage == parent.usage + child.subtree_usage
    assert r.total.total_tokens == 30
    assert late_warnings(caplog) == [
        "agentsteps: task 'fire-and-forget' recorded usage after step 'child' ended; it was "
        "charged to step 'parent', the innermost step still running, and counted in its own "
        "usage. Await or cancel the tasks a step starts before it returns. Logged once per "
        "step."
    ]


def test_a_thread_after_every_step_ended(caplog: pytest.LogCaptureFixture) -> None:
    ended = threading.Event()
    pool = ContextThreadPoolExecutor(max_workers=1, thread_name_prefix="worker")

    def late() -> None:
        ended.wait()
        record_usage("m", 1, 1, cost_usd=0.0)

    @step(name="only")
    def only() -> Any:
        record_usage("m", 2, 2, cost_usd=0.0)
        return pool.submit(late)

    with caplog.at_level(logging.WARNING, logger="agentsteps"), run() as r:
        future = only()
        ended.set()
        future.result()
    pool.shutdown()
    assert [s.usage for s in r.steps] == [Usage(input_tokens=2, output_tokens=2, llm_calls=1)]
    [message] = late_warnings(caplog)
    assert message.startswith("agentsteps: thread 'worker_0' recorded usage after step 'only'")
    assert "counted in no record: every step around it has ended" in message
