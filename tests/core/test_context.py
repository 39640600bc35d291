"""The active stack is context-local: tasks, copied contexts and threads each see their own."""

from __future__ import annotations

import asyncio
import contextvars
import threading

import agentsteps
from agentsteps import (
    Budget,
    ContextThreadPoolExecutor,
    current_persona,
    current_step,
    persona,
    record_usage,
    run_in_context,
    step,
    step_scope,
)


class TestAsyncio:
    def test_thousand_concurrent_tasks_no_cross_talk(self) -> None:
        """1,000 tasks each in its own step see only their own step and usage."""

        @step(name="worker")
        async def worker(i: int) -> tuple[int, int, int]:
            record_usage(model="m", input_tokens=i, output_tokens=1, cost_usd=0)
            await asyncio.sleep(0)
            me = current_step()
            assert me is not None
            await asyncio.sleep(0)
            record_usage(model="m", input_tokens=i, output_tokens=1, cost_usd=0)
            return i, me.usage.input_tokens, id(me)

        @persona(name="boss")
        async def boss() -> list[tuple[int, int, int]]:
            return await asyncio.gather(*(worker(i) for i in range(1000)))

        with agentsteps.run() as r:
            results = asyncio.run(boss())
        assert all(inp == 2 * i for i, inp, _ in results)
        assert len({frame_id for *_, frame_id in results}) == 1000
        assert len(r.steps) == 1000
        assert all(s.persona == "boss" for s in r.steps)
        assert r.personas[0].subtree_usage.input_tokens == 2 * sum(range(1000))

    def test_child_task_charges_parent_step(self) -> None:
        """A task created inside a step copies the context: its usage reaches the step."""

        async def child() -> None:
            record_usage(model="m", input_tokens=5, output_tokens=5, cost_usd=0)

        @step(name="parent")
        async def parent() -> int:
            await asyncio.gather(*(asyncio.create_task(child()) for _ in range(4)))
            return current_step().usage.total_tokens  # type: ignore[union-attr]

        assert asyncio.run(parent()) == 40

    def test_task_steps_do_not_leak_to_creator(self) -> None:
        """A step pushed inside a task is invisible to the code that created the task."""

        async def in_task(started: asyncio.Event, release: asyncio.Event) -> None:
            with step_scope("task-step"):
                started.set()
                await release.wait()

        async def main() -> str | None:
            started, release = asyncio.Event(), asyncio.Event()
            t = asyncio.create_task(in_task(started, release))
            await started.wait()
            seen = current_step()
            release.set()
            await t
            return None if seen is None else seen.name

        assert asyncio.run(main()) is None


class TestCopiedContexts:
    def test_copy_context_sees_snapshot(self) -> None:
        """copy_context() captures the stack; later pushes in the original are not seen."""
        with step_scope("outer"):
            ctx = contextvars.copy_context()
            with step_scope("inner"):
                seen = ctx.run(lambda: current_step().name)  # type: ignore[union-attr]
        assert seen == "outer"


class TestThreads:
    def test_executor_carries_context_and_charges(self) -> None:
        """ContextThreadPoolExecutor tasks run under the submitter's step and charge it."""

        @step(name="child")
        def child(i: int) -> tuple[str | None, str | None]:
            record_usage(model="m", input_tokens=1, output_tokens=1, cost_usd=0)
            s, p = current_step(), current_persona()
            return (s.parent.name if s and s.parent else None, p.name if p else None)

        @step(name="fan_out", budget=Budget(max_llm_calls=100))
        def fan_out() -> list[tuple[str | None, str | None]]:
            with ContextThreadPoolExecutor(max_workers=8) as pool:
                results = list(pool.map(child, range(50)))
            assert current_step().subtree_usage.llm_calls == 50  # type: ignore[union-attr]
            return results

        @persona(name="p")
        def p() -> list[tuple[str | None, str | None]]:
            return fan_out()

        with agentsteps.run() as r:
            assert p() == [("fan_out", "p")] * 50
        assert len(r.steps) == 51

    def test_plain_thread_has_empty_stack(self) -> None:
        """Without the helper a thread starts with no active step (Python's default)."""
        seen: list[object] = []
        with step_scope("s"):
            t = threading.Thread(target=lambda: seen.append(current_step()))
            t.start()
            t.join()
        assert seen == [None]

    def test_run_in_context(self) -> None:
        """run_in_context binds a callable to the current stack for any thread API."""
        seen: list[str | None] = []

        def look() -> None:
            s = current_step()
            seen.append(None if s is None else s.name)

        with step_scope("s"):
            threads = [threading.Thread(target=run_in_context(look)) for _ in range(3)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        assert seen == ["s", "s", "s"]

    def test_threads_record_exact_totals(self) -> None:
        """16 threads recording into one step: the total is the exact sum."""
        with step_scope("shared") as shared:
            with ContextThreadPoolExecutor(max_workers=16) as pool:
                futures = [
                    pool.submit(record_usage, "m", 3, 2, cost_usd=0.000_000_7) for _ in range(4000)
                ]
                for f in futures:
                    f.result()
            u = shared.usage
        assert (u.input_tokens, u.output_tokens, u.llm_calls) == (12_000, 8_000, 4000)
        assert u.cost_nano_usd == 4000 * 700
