"""
Cancellation and interruption: every interrupted step leaves a record and an ended span.

``CancelledError`` at an await, ``KeyboardInterrupt`` (raised or delivered by SIGINT),
a generator step dropped without ``close()`` and collected, an async generator step left
open when its event loop stops or dropped near the end of it: each ends its step with the
right status, ends its span, delivers its usage (cleanup code included) to the run, and
puts the active step and OpenTelemetry context back as they were.
"""

from __future__ import annotations

import asyncio
import gc
import signal
import sys
from collections.abc import AsyncGenerator, AsyncIterator, Coroutine, Iterator, Sequence
from typing import cast

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan

from agentsteps import (
    ActiveStep,
    CompletedStep,
    current_step,
    llm_call,
    persona,
    record_usage,
    run,
    step,
    step_scope,
)
from agentsteps._core.context import CURRENT
from agentsteps._core.generators import StepGenerator
from tests.support import Spans


def one_call() -> None:
    """Record one call of 2 tokens."""
    record_usage("m", 1, 1, cost_usd=0.001)


def statuses(steps: Sequence[CompletedStep]) -> dict[str, str]:
    """Step name -> status."""
    return {s.name: s.status.value for s in steps}


def span_statuses(spans: Spans) -> dict[str, object]:
    """Span name -> its agentsteps status attribute."""
    out: dict[str, object] = {}
    for span in spans.frames:
        attributes = span.attributes or {}
        out[span.name] = attributes.get("agentsteps.step.status") or attributes.get(
            "agentsteps.persona.status"
        )
    return out


def assert_nothing_current() -> None:
    """No step and no span is current."""
    assert CURRENT.get() is None
    assert not trace.get_current_span().get_span_context().is_valid


def parent_of(span: ReadableSpan, spans: Spans) -> str | None:
    """Name of the span's parent span, if any."""
    if span.parent is None:
        return None
    (parent,) = [s for s in spans.all if s.context and s.context.span_id == span.parent.span_id]
    return parent.name


class TestCancelledError:
    """A task cancelled while a step awaits."""

    def test_cancel_at_an_await(self, spans: Spans) -> None:
        """Both steps end ``cancelled``; the outer step is current again in its handler."""
        seen: list[ActiveStep | None] = []

        @step(name="slow")
        async def slow(started: asyncio.Event) -> None:
            one_call()
            started.set()
            await asyncio.Event().wait()

        @step(name="outer")
        async def outer(started: asyncio.Event) -> None:
            try:
                await slow(started)
            except asyncio.CancelledError:
                seen.append(current_step())
                raise

        async def main() -> None:
            started = asyncio.Event()
            task = asyncio.create_task(outer(started))
            await started.wait()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert_nothing_current()

        with run() as collected:
            asyncio.run(main())
        assert statuses(collected.steps) == {"slow": "cancelled", "outer": "cancelled"}
        assert [s.name if s else None for s in seen] == ["outer"]
        assert collected.total.llm_calls == 1
        assert span_statuses(spans) == {
            "invoke_workflow slow": "cancelled",
            "invoke_workflow outer": "cancelled",
        }
        assert spans.step("slow").attributes["error.type"] == "CancelledError"  # type: ignore[index]
        assert_nothing_current()

    @pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio.timeout is 3.11+")
    def test_timeout_inside_a_step(self, spans: Spans) -> None:
        """A timeout cancels the inner step only; the outer one carries on and completes."""

        @step(name="slow")
        async def slow() -> None:
            one_call()
            await asyncio.sleep(3600)

        @step(name="outer")
        async def outer() -> str | None:
            try:
                async with asyncio.timeout(0):  # type: ignore[attr-defined,unused-ignore]
                    await slow()
            except TimeoutError:
                one_call()
            me = current_step()
            return None if me is None else me.name

        with run() as collected:
            assert asyncio.run(outer()) == "outer"
        assert statuses(collected.steps) == {"slow": "cancelled", "outer": "completed"}
        (record,) = [s for s in collected.steps if s.name == "outer"]
        assert (record.usage.llm_calls, record.subtree_usage.llm_calls) == (1, 2)
        assert parent_of(spans.step("slow"), spans) == "invoke_workflow outer"
        assert_nothing_current()


class TestKeyboardInterrupt:
    """Ctrl-C in synchronous steps."""

    def test_raised_in_a_nested_sync_step(self, spans: Spans) -> None:
        """Every step and persona on the stack ends ``cancelled``; the stack is emptied."""

        @step(name="inner")
        def inner() -> None:
            one_call()
            raise KeyboardInterrupt

        @persona(name="agent")
        def agent() -> None:
            with step_scope("block"):
                inner()

        @step(name="outer")
        def outer() -> None:
            agent()

        with run() as collected, pytest.raises(KeyboardInterrupt):
            outer()
        assert statuses(collected.steps) == {
            "inner": "cancelled",
            "block": "cancelled",
            "outer": "cancelled",
        }
        assert [p.status.value for p in collected.personas] == ["cancelled"]
        assert len(spans.frames) == 4
        assert set(span_statuses(spans).values()) == {"cancelled"}
        assert collected.total.llm_calls == 1
        assert_nothing_current()

    def test_delivered_by_sigint(self, spans: Spans) -> None:
        """A real SIGINT in the middle of a step ends it ``cancelled``."""

        @step(name="waiting")
        def waiting() -> None:
            one_call()
            signal.raise_signal(signal.SIGINT)
            pytest.fail("the signal handler should have raised")  # pragma: no cover

        previous = signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            with run() as collected, pytest.raises(KeyboardInterrupt):
                waiting()
        finally:
            signal.signal(signal.SIGINT, previous)
        assert statuses(collected.steps) == {"waiting": "cancelled"}
        assert span_statuses(spans) == {"invoke_workflow waiting": "cancelled"}
        assert_nothing_current()


class TestAbandonedGenerators:
    """A generator step dropped without close()."""

    @staticmethod
    @step(name="stream")
    def stream() -> Iterator[int]:
        try:
            for i in range(10):
                one_call()
                yield i
        finally:
            one_call()  # cleanup code: runs inside the step, and is charged to it

    def test_dropped(self, spans: Spans) -> None:
        """Dropped after one item: ``abandoned``, cleanup usage charged, span ended."""
        with run() as collected, step_scope("caller"):
            items = self.stream()
            assert next(items) == 0
            del items
            assert current_step().name == "caller"  # type: ignore[union-attr]
        (record,) = [s for s in collected.steps if s.name == "stream"]
        assert record.status.value == "abandoned"
        assert record.usage.llm_calls == 2
        assert parent_of(spans.step("stream"), spans) == "invoke_workflow caller"
        assert span_statuses(spans)["invoke_workflow stream"] == "abandoned"
        assert_nothing_current()

    def test_collected_while_this_thread_holds_the_ledger_lock(self) -> None:
        """
        The collector can end an abandoned step at any allocation, also one made while
        this thread holds the ledger lock (reading or charging a ledger). That must not
        deadlock. Run in a worker thread, so a regression fails instead of hanging.
        """
        import threading

        from agentsteps._accounting.ledger import LEDGER_LOCK

        outcome: list[object] = []

        def scenario() -> None:
            with run() as collected:
                items = self.stream()
                next(items)
                with LEDGER_LOCK:
                    del items  # finalised here, as a collection inside a charge would
                outcome.extend(s.status.value for s in collected.steps)

        worker = threading.Thread(target=scenario, daemon=True)
        worker.start()
        worker.join(timeout=30)
        assert not worker.is_alive(), "ending an abandoned step deadlocked on the ledger lock"
        assert outcome == ["abandoned"]

    def test_collected_inside_a_hook_handler(self) -> None:
        """Ended by the collector while a hook handler runs (where hooks are silenced, to
        stop handlers triggering handlers), a persona still fires its own ``persona_end``."""
        from agentsteps import on_persona, on_step, scoped_hooks

        @persona(name="narrator")
        def narrator() -> Iterator[int]:
            yield 1
            yield 2

        ended: list[str | None] = []
        held: list[object] = []

        def drop(event: object) -> None:
            held.clear()  # the last reference: finalised right here, inside the handler

        with scoped_hooks():
            on_persona("narr*", "persona_end")(lambda e: ended.append(e.persona))
            on_step("*", "later", "post_step")(drop)
            items = narrator()
            next(items)
            held.append(items)
            del items

            @step(name="later")
            def later() -> None:
                pass

            later()
        assert ended == ["narrator"]
        assert CURRENT.get() is None

    def test_body_finalised_before_its_step(self, spans: Spans) -> None:
        """
        Objects of one garbage cycle are finalised in no set order: the body's own
        generator may be closed before the step wrapping it. Its cleanup then runs where
        the body is not current; the scopes it had open end ``cancelled`` but leave the
        running step, its span and its usage alone.
        """

        @step(name="gen")
        def gen() -> Iterator[int]:
            with step_scope("inner"), llm_call(model="m"):
                yield 1
                yield 2

        @step(name="bystander")
        def bystander(items: StepGenerator) -> tuple[str | None, int]:
            items._gen.close()  # type: ignore[union-attr]  # the collector, taking the body first
            one_call()
            span_id = trace.get_current_span().get_span_context().span_id
            return current_step().name, span_id  # type: ignore[union-attr]

        with run() as collected:
            items = gen()
            next(items)
            name, span_id = bystander(cast("StepGenerator", items))
            assert CURRENT.get() is None
            del items
        assert name == "bystander"
        assert span_id == spans.step("bystander").context.span_id  # type: ignore[union-attr]
        by_name = {s.name: s for s in collected.steps}
        assert by_name["bystander"].usage.llm_calls == 1
        assert by_name["inner"].status.value == "cancelled"
        assert by_name["gen"].status.value == "abandoned"
        assert by_name["gen"].subtree_usage.llm_calls == 0
        assert_nothing_current()

    def test_collected_in_a_cycle_while_another_step_runs(self, spans: Spans) -> None:
        """
        Finalised by the cycle collector while an unrelated step is current: the step
        ends ``abandoned`` and the unrelated step (and its span) is current again after.
        """
        gc.disable()
        try:
            with run() as collected:
                items = self.stream()
                next(items)
                cycle: list[object] = [items]
                cycle.append(cycle)
                del items, cycle
                with step_scope("bystander") as bystander:
                    gc.collect()
                    assert current_step() is bystander
                    assert trace.get_current_span() is bystander._span
        finally:
            gc.enable()
        assert statuses(collected.steps) == {"stream": "abandoned", "bystander": "completed"}
        (record,) = [s for s in collected.steps if s.name == "stream"]
        assert record.usage.llm_calls == 2
        (bystander_record,) = [s for s in collected.steps if s.name == "bystander"]
        assert bystander_record.subtree_usage.llm_calls == 0  # nothing leaked into it
        assert parent_of(spans.step("stream"), spans) is None
        assert_nothing_current()


class TestAsyncGeneratorsAtLoopEnd:
    """An async generator step still open when its event loop stops."""

    @staticmethod
    @step(name="astream")
    async def astream() -> AsyncIterator[int]:
        try:
            for i in range(10):
                one_call()
                yield i
        finally:
            one_call()  # cleanup code: must run inside the step, and be charged to it

    def check(self, steps: Sequence[CompletedStep], spans: Spans, status: str) -> None:
        """One record with ``status``, cleanup usage included, its span ended."""
        (record,) = steps
        assert (record.name, record.status.value) == ("astream", status)
        assert record.usage.llm_calls == 2
        assert span_statuses(spans) == {"invoke_workflow astream": status}
        assert_nothing_current()

    def test_still_referenced_when_the_loop_stops(self, spans: Spans) -> None:
        """
        asyncio.run closes it at shutdown: ``cancelled``, and its cleanup code runs inside
        the step. Regression: the body's own generator was registered with the loop too,
        and closed outside the step, so the cleanup's usage was charged to nothing.
        """
        kept: list[object] = []
        registered: list[str] = []

        async def main() -> None:
            # Watch what registers with the loop (asyncio.run restores the hooks after).
            loop_hooks = sys.get_asyncgen_hooks()

            def firstiter(agen: AsyncGenerator[object, object]) -> None:
                registered.append(type(agen).__name__)
                assert loop_hooks.firstiter is not None
                loop_hooks.firstiter(agen)

            sys.set_asyncgen_hooks(firstiter=firstiter, finalizer=loop_hooks.finalizer)
            items = self.astream()
            assert await items.__anext__() == 0
            kept.append(items)

        with run() as collected:
            asyncio.run(main())
        assert registered == ["StepAsyncGenerator"]  # the body's own generator is hidden
        self.check(collected.steps, spans, "cancelled")

    def test_dropped_as_the_loop_stops(self, spans: Spans) -> None:
        """
        Dropped by the last line of the main coroutine: ``abandoned``, still recorded.
        Regression: the loop cancelled the closing task before it started, and the step
        was never ended (no record, span left open).
        """

        async def main() -> None:
            items = self.astream()
            assert await items.__anext__() == 0

        with run() as collected:
            asyncio.run(main())
        gc.collect()
        self.check(collected.steps, spans, "abandoned")

    def test_dropped_while_the_loop_runs(self, spans: Spans) -> None:
        """The loop closes it soon after: ``abandoned``; the dropping step stays current."""

        @step(name="caller")
        async def caller() -> str | None:
            items = self.astream()
            await items.__anext__()
            del items
            for _ in range(3):
                await asyncio.sleep(0)
            me = current_step()
            return None if me is None else me.name

        with run() as collected:
            assert asyncio.run(caller()) == "caller"
        assert statuses(collected.steps) == {"astream": "abandoned", "caller": "completed"}
        (record,) = [s for s in collected.steps if s.name == "astream"]
        assert record.usage.llm_calls == 2
        assert parent_of(spans.step("astream"), spans) == "invoke_workflow caller"
        assert_nothing_current()

    def test_dropped_without_an_event_loop(self, spans: Spans) -> None:
        """Driven by hand (no loop hooks) and dropped: ended at once, cleanup run in it."""
        items = self.astream()
        with run() as collected:
            first = cast("Coroutine[object, object, int]", items.__anext__())
            with pytest.raises(StopIteration) as stop:
                first.send(None)
            assert stop.value.value == 0
            del first, items
        self.check(collected.steps, spans, "abandoned")
