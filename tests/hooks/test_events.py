"""Each hook event fires at the right time with the right payload, for every kind of step."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

import agentsteps
from agentsteps import (
    ActiveStep,
    Budget,
    HookContext,
    HookEvent,
    StepBudgetExhausted,
    StepEscalated,
    StepStatus,
    current_persona,
    current_step,
    on_persona,
    on_step,
    persona,
    persona_scope,
    record_usage,
    run,
    step,
    step_scope,
)
from agentsteps._accounting.usage import ZERO_USAGE
from tests.support import Spans

KINDS = ["sync", "async", "gen", "agen"]


class Recorder:
    """Registers one handler per event (pattern '*') and logs what each one saw."""

    def __init__(self, threshold_pct: float = 50) -> None:
        self.log: list[str] = []
        self.events: dict[str, list[HookContext]] = {}
        self.seen_stack: list[Any] = []
        for event in HookEvent:
            threshold = threshold_pct if event is HookEvent.BUDGET_THRESHOLD else None
            on_persona("*", event, threshold)(self._handler)

    def _handler(self, event: HookContext) -> None:
        self.log.append(event.event.value)
        self.events.setdefault(event.event.value, []).append(event)
        self.seen_stack.append((current_step(), current_persona()))

    def one(self, event: str) -> HookContext:
        found = self.events.get(event, [])
        assert len(found) == 1, f"{event}: {len(found)} firings"
        return found[0]


def make_step(
    kind: str,
    log: list[str],
    *,
    fail: BaseException | None = None,
    budget: Budget | None = None,
    boundary: str = "fail",
    tokens: int = 60,
) -> tuple[Callable[..., Any], list[ActiveStep]]:
    """A step named 'work' of the given kind, and a runner that drives it to its end."""
    frames: list[ActiveStep] = []

    def body() -> None:
        log.append("body")
        frame = current_step()
        assert frame is not None
        frames.append(frame)
        record_usage(model="m", input_tokens=tokens // 2, output_tokens=tokens // 2, cost_usd=0)
        if fail is not None:
            raise fail

    deco = step(name="work", budget=budget, error_boundary=boundary)  # type: ignore[call-overload]
    if kind == "sync":

        @deco
        def work(x: int, y: int = 0) -> int:
            body()
            return x + y

        return work, frames
    if kind == "async":

        @deco
        async def awork(x: int, y: int = 0) -> int:
            await asyncio.sleep(0)
            body()
            return x + y

        return lambda *a, **k: asyncio.run(awork(*a, **k)), frames
    if kind == "gen":

        @deco
        def gwork(x: int, y: int = 0) -> Iterator[int]:
            body()
            yield x
            return x + y

        def drive(*a: Any, **k: Any) -> Any:
            gen = gwork(*a, **k)
            while True:
                try:
                    next(gen)
                except StopIteration as stop:
                    return stop.value

        return drive, frames

    @deco
    async def agwork(x: int, y: int = 0) -> AsyncIterator[int]:
        body()
        yield x

    async def adrive(*a: Any, **k: Any) -> None:
        async for _ in agwork(*a, **k):
            pass

    return lambda *a, **k: asyncio.run(adrive(*a, **k)), frames


@pytest.mark.parametrize("kind", KINDS)
class TestLifecycle:
    def test_success(self, kind: str, spans: Spans) -> None:
        """persona_start, pre_step, (body), budget_threshold, post_step, persona_end."""
        rec = Recorder()
        call, frames = make_step(kind, rec.log, budget=Budget(max_tokens=100))
        with persona_scope("reviewer") as persona_frame:
            result = call(1, y=2)
        assert rec.log == [
            "persona_start",
            "pre_step",
            "body",
            "budget_threshold",
            "post_step",
            "persona_end",
        ]
        step_span = spans.step("work")
        step_ids = (f"{step_span.context.trace_id:032x}", f"{step_span.context.span_id:016x}")
        (frame,) = frames

        pre = rec.one("pre_step")
        assert pre.event is HookEvent.PRE_STEP
        assert (pre.persona, pre.step_name, pre.step) == ("reviewer", "work", frame)
        assert pre.function.endswith("work")
        assert (pre.args, dict(pre.kwargs)) == ((1,), {"y": 2})
        assert pre.usage == ZERO_USAGE
        assert (pre.budget, pre.budget_pct) == (Budget(max_tokens=100), 0.0)
        assert (pre.trace_id, pre.span_id) == step_ids
        assert (pre.output, pre.exception, pre.status) == (None, None, None)

        threshold = rec.one("budget_threshold")
        assert (threshold.threshold_pct, threshold.budget_pct) == (50.0, 60.0)
        assert threshold.usage.total_tokens == 60
        assert threshold.step is frame

        post = rec.one("post_step")
        assert post.output == (None if kind == "agen" else 3)
        assert result == (None if kind == "agen" else 3)
        assert (post.usage.total_tokens, post.budget_pct) == (60, 60.0)
        assert (post.trace_id, post.span_id) == step_ids
        assert post.step is frame

        start, end = rec.one("persona_start"), rec.one("persona_end")
        for event in (start, end):
            assert (event.persona, event.step, event.step_name) == ("reviewer", None, None)
            assert (event.budget, event.budget_pct) == (None, None)
            assert (event.trace_id, event.span_id) == (
                persona_frame.trace_id,
                persona_frame.span_id,
            )
        assert start.usage == ZERO_USAGE
        assert end.usage.total_tokens == 60
        assert (end.status, end.exception) == (StepStatus.COMPLETED, None)
        # Handlers always run with the step stack hidden.
        assert rec.seen_stack == [(None, None)] * (len(rec.log) - 1)

    def test_failure(self, kind: str) -> None:
        """An exception leaving the step fires step_error, then persona_end with it."""
        rec = Recorder()
        boom = ValueError("boom")
        call, frames = make_step(kind, rec.log, fail=boom, budget=Budget(max_tokens=100))
        with pytest.raises(ValueError, match="boom"), persona_scope("reviewer"):
            call(1)
        assert rec.log == [
            "persona_start",
            "pre_step",
            "body",
            "budget_threshold",
            "step_error",
            "persona_end",
        ]
        error = rec.one("step_error")
        assert (error.status, error.exception, error.step) == (StepStatus.FAILED, boom, frames[0])
        assert error.usage.total_tokens == 60
        end = rec.one("persona_end")
        assert (end.status, end.exception) == (StepStatus.FAILED, boom)

    def test_escalated(self, kind: str) -> None:
        """An escalating step fires budget_exhausted, step_error, then escalated."""
        rec = Recorder()
        call, _ = make_step(kind, rec.log, budget=Budget(max_tokens=50), boundary="escalate")
        with pytest.raises(StepEscalated) as caught:
            call(1)
        assert rec.log == [
            "pre_step",
            "body",
            "budget_threshold",
            "budget_exhausted",
            "step_error",
            "escalated",
        ]
        exhausted = rec.one("budget_exhausted")
        assert exhausted.limit == "max_tokens"
        assert exhausted.budget_pct == 120.0
        assert isinstance(exhausted.exception, StepBudgetExhausted)
        assert caught.value.__cause__ is exhausted.exception
        for name in ("step_error", "escalated"):
            event = rec.one(name)
            assert (event.status, event.exception) == (StepStatus.ESCALATED, caught.value)
            assert event.persona is None

    def test_exhausted_fail(self, kind: str) -> None:
        """Under 'fail', budget_exhausted carries the very exception the caller gets."""
        rec = Recorder()
        call, _ = make_step(kind, rec.log, budget=Budget(max_tokens=50))
        with pytest.raises(StepBudgetExhausted) as caught:
            call(1)
        assert rec.one("budget_exhausted").exception is caught.value
        assert rec.one("step_error").exception is caught.value
        assert "escalated" not in rec.log

    def test_exhausted_continue(self, kind: str) -> None:
        """Under 'continue' nothing leaves the step: budget_exhausted only, no step_error."""
        rec = Recorder()
        call, _ = make_step(kind, rec.log, budget=Budget(max_tokens=50), boundary="continue")
        assert call(1) is None
        assert rec.log == ["pre_step", "body", "budget_threshold", "budget_exhausted"]


class TestPayloads:
    def test_cancelled_step_error(self) -> None:
        """A cancelled async step fires step_error with status cancelled."""
        rec = Recorder()

        @step(name="slow")
        async def slow() -> None:
            await asyncio.sleep(10)

        async def main() -> None:
            task = asyncio.ensure_future(slow())
            await asyncio.sleep(0)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

        asyncio.run(main())
        error = rec.one("step_error")
        assert error.status is StepStatus.CANCELLED
        assert isinstance(error.exception, asyncio.CancelledError)

    @pytest.mark.parametrize("kind", ["sync", "async", "async scope"])
    def test_exhaustion_at_exit_is_raised_with_its_traceback(self, kind: str) -> None:
        """
        An exhaustion first raised at the step's exit (a strict budget_exhausted handler
        failed at the crossing) reaches step_error handlers while it is being handled,
        with its traceback, in sync and async steps alike. Regression: the awaited path
        ran the handlers before raising it.
        """
        agentsteps.configure(strict_hooks=True)
        on_step("*", "work", "budget_exhausted")(lambda e: 1 / 0)
        on_step("*", "work", "post_step")(lambda e: None)  # async steps await their hooks
        seen: list[tuple[BaseException | None, bool, bool]] = []
        on_step("*", "work", "step_error")(
            lambda e: seen.append(
                (e.exception, e.exception.__traceback__ is not None, sys.exc_info()[1] is not None)
            )
        )

        def overspend() -> None:
            try:
                record_usage(model="m", input_tokens=6, output_tokens=0, cost_usd=0)
            except ZeroDivisionError:
                pass  # the handler's error; the exhaustion is still owed

        @step(name="work", budget=Budget(max_tokens=1))
        def work() -> None:
            overspend()

        @step(name="work", budget=Budget(max_tokens=1))
        async def awork() -> None:
            overspend()

        async def scope() -> None:
            async with step_scope("work", budget=Budget(max_tokens=1)):
                overspend()

        call = {
            "sync": work,
            "async": lambda: asyncio.run(awork()),
            "async scope": lambda: asyncio.run(scope()),
        }[kind]
        with pytest.raises(StepBudgetExhausted, match="'work' exceeded") as caught:
            call()
        assert seen == [(caught.value, True, True)]

    def test_step_scope(self) -> None:
        """A step_scope has no arguments and no return value: () and {} in, None out."""
        rec = Recorder()
        with step_scope("block", budget={"max_llm_calls": 4}) as frame:
            record_usage(model="m", input_tokens=1, output_tokens=1, cost_usd=0)
        pre, post = rec.one("pre_step"), rec.one("post_step")
        assert (pre.args, dict(pre.kwargs), pre.step) == ((), {}, frame)
        assert (post.output, post.budget_pct) == (None, 25.0)

    def test_async_step_scope(self) -> None:
        """'async with step_scope' fires the same events."""
        rec = Recorder()

        async def main() -> None:
            async with step_scope("block"):
                rec.log.append("body")
            with pytest.raises(KeyError):
                async with step_scope("block"):
                    raise KeyError("k")

        asyncio.run(main())
        assert rec.log == ["pre_step", "body", "post_step", "pre_step", "step_error"]

    def test_budget_pct_without_limits(self) -> None:
        """A step that sets no limit has budget_pct None (and a Budget() counts as none)."""
        rec = Recorder()
        with step_scope("free"):
            pass
        with step_scope("unlimited", budget=Budget()):
            pass
        assert [e.budget_pct for e in rec.events["post_step"]] == [None, None]

    def test_nested_persona_in_step(self) -> None:
        """A persona's events carry the persona's own name, even inside a step."""
        rec = Recorder()

        @persona(name="helper")
        def helper() -> str:
            return "ok"

        with persona_scope("lead"), step_scope("outer"):
            helper()
        assert [e.persona for e in rec.events["persona_start"]] == ["lead", "helper"]
        assert rec.events["persona_start"][1].function.endswith("helper")

    def test_context_is_read_only(self) -> None:
        """Handlers cannot assign fields; they act through deny/replace_*."""
        errors: list[BaseException] = []

        def handler(event: HookContext) -> None:
            for field in ("persona", "output"):
                try:
                    setattr(event, field, "changed")
                except AttributeError as exc:
                    errors.append(exc)

        on_persona("*", "post_step")(handler)
        with step_scope("s"):
            pass
        assert len(errors) == 2
        assert type(errors[0]).__name__ == "FrozenAttributeError"


class TestSpanEvents:
    def test_each_firing_adds_an_event(self, spans: Spans) -> None:
        """Every firing adds 'agentsteps.hook' (event, handler) on the step's or persona's span."""

        def gate(event: HookContext) -> None:
            pass

        def watch(event: HookContext) -> None:
            pass

        on_persona("*", "pre_step")(gate)
        on_persona("*", "post_step")(watch)
        on_persona("*", "budget_threshold", 10)(watch)
        on_persona("*", "persona_end")(watch)
        with persona_scope("p"), step_scope("s", budget={"max_tokens": 10}):
            record_usage(model="m", input_tokens=5, output_tokens=0, cost_usd=0)
        prefix = f"{__name__}.TestSpanEvents.test_each_firing_adds_an_event.<locals>"
        step_events = [(e.name, dict(e.attributes or {})) for e in spans.step("s").events]
        assert step_events == [
            (
                "agentsteps.hook",
                {"agentsteps.hook.event": event, "agentsteps.hook.handler": f"{prefix}.{name}"},
            )
            for event, name in [
                ("pre_step", "gate"),
                ("budget_threshold", "watch"),
                ("post_step", "watch"),
            ]
        ]
        persona_events = [dict(e.attributes or {}) for e in spans.named("invoke_agent p").events]
        assert persona_events == [
            {"agentsteps.hook.event": "persona_end", "agentsteps.hook.handler": f"{prefix}.watch"}
        ]

    def test_parent_threshold_event_on_parent_span(self, spans: Spans) -> None:
        """A parent's threshold firing lands on the parent's span, not the child's."""
        on_step("*", "parent", "budget_threshold", 50)(lambda e: None)
        with step_scope("parent", budget={"max_tokens": 10}), step_scope("child"):
            record_usage(model="m", input_tokens=6, output_tokens=0, cost_usd=0)
        assert [e.name for e in spans.step("parent").events] == ["agentsteps.hook"]
        assert list(spans.step("child").events) == []


class TestHiddenStack:
    def test_usage_in_handler_not_charged(self) -> None:
        """record_usage inside a handler charges nothing to the step that triggered it."""

        def costly(event: HookContext) -> None:
            record_usage(model="m", input_tokens=1000, output_tokens=1000, cost_usd=1.0)

        for event in ("pre_step", "post_step", "step_error"):
            on_persona("*", event)(costly)
        on_persona("*", "budget_threshold", 1)(costly)
        with run() as r, persona_scope("p"), step_scope("s", budget={"max_tokens": 20}):
            record_usage(model="m", input_tokens=5, output_tokens=5, cost_usd=0)
        (record,) = r.steps
        assert record.status is StepStatus.COMPLETED
        assert record.subtree_usage.total_tokens == 10
        assert r.personas[0].subtree_usage.total_tokens == 10

    def test_no_hooks_inside_handlers(self) -> None:
        """Steps run by a handler fire no hooks (no recursion), but do run and are collected."""
        seen: list[str | None] = []

        def reviewer(event: HookContext) -> None:
            seen.append(event.step_name)
            with step_scope("review"):
                pass

        on_persona("*", "pre_step")(reviewer)
        with run() as r, step_scope("work"):
            pass
        assert seen == ["work"]
        assert [s.name for s in r.steps] == ["review", "work"]
        assert r.steps[0].parent is None  # the handler's step is not nested in 'work'

    def test_stack_restored_after_handler(self) -> None:
        """A handler that leaves a scope open cannot corrupt the step stack."""
        leaked: list[Any] = []

        def sloppy(event: HookContext) -> None:
            scope = step_scope("leaked")
            leaked.append(scope.__enter__())

        on_persona("*", "pre_step")(sloppy)
        with step_scope("work") as work:
            assert current_step() is work
        assert current_step() is None
        assert leaked[0].name == "leaked"
