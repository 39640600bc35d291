"""Budget hooks: thresholds latched per activation, hierarchical, and budget_exhausted."""

from __future__ import annotations

import asyncio
import sys

import pytest

from agentsteps import (
    Budget,
    ContextThreadPoolExecutor,
    HookContext,
    HookEvent,
    StepBudgetExhausted,
    Usage,
    configure,
    llm_call,
    on_persona,
    on_step,
    persona_scope,
    record_usage,
    step,
    step_scope,
)
from agentsteps._core.recording import charge


def tokens(n: int) -> None:
    """Record one call of ``n`` tokens (half in, half out)."""
    record_usage(model="m", input_tokens=n - n // 2, output_tokens=n // 2, cost_usd=0)


class TestThresholds:
    def test_50_and_80_fire_once_each(self) -> None:
        """Thresholds at 50 and 80 on one step each fire exactly once, across many usages."""
        fired: list[tuple[float | None, float | None, int]] = []

        @on_step("*", "draft", HookEvent.BUDGET_THRESHOLD, threshold_pct=50)
        def half(event: HookContext) -> None:
            fired.append((event.threshold_pct, event.budget_pct, event.usage.total_tokens))

        @on_step("*", "draft", HookEvent.BUDGET_THRESHOLD, threshold_pct=80)
        def most(event: HookContext) -> None:
            fired.append((event.threshold_pct, event.budget_pct, event.usage.total_tokens))

        @step(name="draft", budget=Budget(max_tokens=1000))
        def draft() -> None:
            for _ in range(24):  # 30 tokens each: 720 in all, then 2 more calls to 780
                tokens(30)
            tokens(30)
            tokens(30)
            tokens(20)  # exactly 800: reaching a threshold counts

        draft()
        assert fired == [(50.0, 51.0, 510), (80.0, 80.0, 800)]

    def test_once_per_activation(self) -> None:
        """Each activation of the step has its own latch."""
        fired: list[float | None] = []
        on_step("*", "s", "budget_threshold", 50)(lambda e: fired.append(e.budget_pct))

        @step(name="s", budget=Budget(max_tokens=10))
        def s() -> None:
            tokens(6)
            tokens(2)

        s()
        s()
        assert fired == [60.0, 60.0]

    def test_many_thresholds_same_record(self) -> None:
        """One record crossing several thresholds fires each, in registration order."""
        fired: list[float | None] = []

        def note(event: HookContext) -> None:
            fired.append(event.threshold_pct)

        for pct in (90, 25, 50):
            on_persona("*", "budget_threshold", pct)(lambda e: fired.append(e.threshold_pct))
        with step_scope("s", budget={"max_tokens": 10}):
            tokens(10)
        assert fired == [90.0, 25.0, 50.0]

    def test_threshold_100_at_exact_limit(self) -> None:
        """At exactly the limit the budget is not exhausted, but a 100% threshold fires."""
        seen: list[str] = []
        on_persona("*", "budget_threshold", 100)(lambda e: seen.append("100%"))
        on_persona("*", "budget_exhausted")(lambda e: seen.append("exhausted"))
        with step_scope("s", budget={"max_tokens": 10}):
            tokens(10)
        assert seen == ["100%"]

    def test_highest_limit_counts(self) -> None:
        """budget_pct is the highest share over the limits the step sets (tokens, usd, calls)."""
        pcts: list[float | None] = []
        on_persona("*", "budget_threshold", 40)(lambda e: pcts.append(e.budget_pct))
        budget = Budget(max_tokens=1000, max_usd=1.0, max_llm_calls=10)
        with step_scope("tokens", budget=budget):
            record_usage(model="m", input_tokens=500, output_tokens=0, cost_usd=0.1)
        with step_scope("usd", budget=budget):
            record_usage(model="m", input_tokens=10, output_tokens=0, cost_usd=0.75)
        with step_scope("calls", budget=budget):
            record_usage(model="m", input_tokens=1, output_tokens=0, cost_usd=0, llm_calls=6)
        assert pcts == [50.0, 75.0, 60.0]

    def test_no_limit_never_fires(self) -> None:
        """A step without limits has no percentage: its thresholds never fire."""
        fired: list[str] = []
        on_persona("*", "budget_threshold", 1)(lambda e: fired.append("x"))
        with step_scope("free"):
            tokens(10_000)
        assert fired == []

    def test_zero_limit(self) -> None:
        """max_usd=0: any spend is over 100% (infinite share), so thresholds fire."""
        seen: list[float | None] = []
        on_persona("*", "budget_threshold", 100)(lambda e: seen.append(e.budget_pct))
        with step_scope("s", budget={"max_usd": 0}, error_boundary="continue"):
            record_usage(model="m", input_tokens=1, output_tokens=0, cost_usd=0.01)
        assert seen == [float("inf")]

    def test_persona_routed(self) -> None:
        """An on_persona threshold fires for steps under a matching persona only."""
        fired: list[str | None] = []

        @on_persona("review*", "budget_threshold", threshold_pct=80)
        def warn(event: HookContext) -> None:
            fired.append(event.step_name)

        for who in ("writer", "reviewer"):
            with persona_scope(who), step_scope(f"{who}-step", budget={"max_tokens": 10}):
                tokens(9)
        assert fired == ["reviewer-step"]

    def test_registered_late_fires_on_next_record(self) -> None:
        """A threshold registered when usage is already past it fires at the next record."""
        fired: list[float | None] = []
        with step_scope("s", budget={"max_tokens": 100}):
            tokens(60)
            on_persona("*", "budget_threshold", 50)(lambda e: fired.append(e.budget_pct))
            tokens(1)
            tokens(1)
        assert fired == [61.0]

    def test_concurrent_records_fire_once(self) -> None:
        """Records from many threads cross a threshold once: the latch is atomic."""
        fired: list[float | None] = []
        on_persona("*", "budget_threshold", 50)(lambda e: fired.append(e.threshold_pct))
        with (
            step_scope("fan-out", budget={"max_tokens": 400}),
            ContextThreadPoolExecutor(max_workers=8) as pool,
        ):
            for future in [pool.submit(tokens, 2) for _ in range(200)]:
                future.result()
        assert fired == [50.0]

    def test_concurrent_crossing_reports_the_crossing_figures(self) -> None:
        """8 threads: the handler sees the figures of the record that crossed, exactly."""
        fired: list[tuple[float | None, int]] = []
        on_persona("*", "budget_threshold", 5)(
            lambda e: fired.append((e.budget_pct, e.usage.total_tokens))
        )
        interval = sys.getswitchinterval()
        sys.setswitchinterval(1e-6)  # switch threads often, so records interleave
        try:
            for _ in range(30):
                with (
                    step_scope("fan-out", budget={"max_tokens": 2_000}),
                    ContextThreadPoolExecutor(max_workers=8) as pool,
                ):
                    for future in [pool.submit(tokens, 2) for _ in range(400)]:
                        future.result()
        finally:
            sys.setswitchinterval(interval)
        # 100 tokens of 2,000 is 5.0%: the record that crossed saw exactly that.
        assert fired == [(5.0, 100)] * 30


class TestHierarchy:
    def test_parent_threshold_from_child_usage(self) -> None:
        """A parent's budget counts its children: its threshold fires on their usage."""
        fired: list[tuple[str | None, float | None]] = []
        on_step("*", "parent", "budget_threshold", 50)(
            lambda e: fired.append((e.step_name, e.budget_pct))
        )
        on_step("*", "child", "budget_threshold", 50)(
            lambda e: fired.append((e.step_name, e.budget_pct))
        )

        @step(name="child", budget=Budget(max_tokens=100))
        def child() -> None:
            tokens(30)

        @step(name="parent", budget=Budget(max_tokens=100))
        def parent() -> None:
            child()  # 30% of both
            child()  # parent at 60%
            child()

        parent()
        assert fired == [("parent", 60.0)]

    def test_innermost_first(self) -> None:
        """When one record crosses thresholds at several levels, the innermost fires first."""
        fired: list[str | None] = []
        on_persona("*", "budget_threshold", 50)(lambda e: fired.append(e.step_name))
        with (
            step_scope("outer", budget={"max_tokens": 20}),
            step_scope("middle"),
            step_scope("inner", budget={"max_tokens": 10}),
        ):
            tokens(10)
        assert fired == ["inner", "outer"]

    def test_async_children(self) -> None:
        """Usage from concurrent child tasks reaches the parent's threshold once."""
        fired: list[float | None] = []
        on_step("*", "parent", "budget_threshold", 75)(lambda e: fired.append(e.threshold_pct))

        @step(name="child")
        async def child() -> None:
            for _ in range(5):
                tokens(2)
                await asyncio.sleep(0)

        @step(name="parent", budget=Budget(max_tokens=100))
        async def parent() -> None:
            await asyncio.gather(*(child() for _ in range(10)))

        asyncio.run(parent())
        assert fired == [75.0]


class TestModelCalls:
    def test_llm_call_usage(self) -> None:
        """Usage reported through llm_call reaches thresholds like record_usage's."""
        fired: list[tuple[str | None, float | None]] = []

        def note(event: HookContext) -> None:
            fired.append((event.step_name, event.budget_pct))

        on_persona("*", "budget_threshold", 75)(note)
        with step_scope("review", model="m", budget={"max_tokens": 1000}):
            for _ in range(2):
                with llm_call() as call:
                    call.record(input_tokens=300, output_tokens=100, cost_usd=0)
        assert fired == [("review", 80.0)]

    def test_llm_call_in_handler_not_charged(self) -> None:
        """A model call a handler makes is charged to no step (the stack is hidden)."""

        def ask_reviewer(event: HookContext) -> None:
            with llm_call(model="big") as call:
                call.record(input_tokens=5000, output_tokens=5000, cost_usd=1.0)

        on_persona("*", "budget_threshold", 50)(ask_reviewer)
        with step_scope("review", model="m", budget={"max_tokens": 100}) as review:
            tokens(60)
        assert review.subtree_usage.total_tokens == 60


class TestExhausted:
    def test_fires_once(self) -> None:
        """budget_exhausted fires once per activation, whatever the boundary swallows."""
        seen: list[str | None] = []
        on_persona("*", "budget_exhausted")(lambda e: seen.append(e.limit))

        @step(name="s", budget=Budget(max_llm_calls=1), error_boundary="continue")
        def s() -> None:
            tokens(1)
            tokens(1)

        s()
        s()
        assert seen == ["max_llm_calls", "max_llm_calls"]

    def test_every_exhausted_level(self) -> None:
        """A record that exhausts a child and its parent fires for both; the parent's raises."""
        seen: list[tuple[str | None, bool]] = []
        on_persona("*", "budget_exhausted")(
            lambda e: seen.append((e.step_name, e.exception is not None))
        )
        with (
            pytest.raises(StepBudgetExhausted, match="'outer' exceeded"),
            step_scope("outer", budget={"max_tokens": 5}),
            step_scope("inner", budget={"max_tokens": 5}),
        ):
            tokens(6)
        assert seen == [("inner", False), ("outer", True)]

    def test_observed_usage(self) -> None:
        """Usage observed from another library's span fires budget_exhausted at once, with no
        exception yet: the step raises it at its exit."""
        seen: list[tuple[str | None, BaseException | None]] = []
        during: list[list[tuple[str | None, BaseException | None]]] = []
        on_persona("*", "budget_exhausted")(lambda e: seen.append((e.limit, e.exception)))

        def observe() -> None:
            with step_scope("s", budget={"max_tokens": 5}) as s:
                charge(s, Usage(input_tokens=6, llm_calls=1), "m", raise_now=False)
                during.append(list(seen))

        with pytest.raises(StepBudgetExhausted):
            observe()
        assert during == [[("max_tokens", None)]]
        assert len(seen) == 1

    def test_preflight_refusal(self) -> None:
        """A model call refused before it is made fires budget_exhausted with the refusal."""
        seen: list[tuple[str | None, str | None, BaseException | None]] = []
        on_step("*", "ask", "budget_exhausted")(
            lambda e: seen.append((e.step_name, e.limit, e.exception))
        )

        @step(name="ask", model="m", budget=Budget(max_llm_calls=1), error_boundary="continue")
        def ask() -> str:
            tokens(2)
            with llm_call():
                raise AssertionError("the call must not be made")

        assert ask() is None
        assert len(seen) == 1
        name, limit, exc = seen[0]
        assert (name, limit) == ("ask", "max_llm_calls")
        assert isinstance(exc, StepBudgetExhausted)
        assert str(exc).startswith("step 'ask' refused a model call before making it")

    def test_refusal_then_overrun_fires_once(self) -> None:
        """A refusal the body catches, then a real overrun: one event, and the overrun still
        raises (the refusal did not latch the budget itself)."""
        seen: list[str | None] = []
        on_persona("*", "budget_exhausted")(lambda e: seen.append(e.limit))

        @step(name="s", model="m", budget=Budget(max_tokens=10))
        def s() -> None:
            tokens(10)
            with pytest.raises(StepBudgetExhausted, match="refused"):  # noqa: SIM117
                with llm_call():
                    pass
            tokens(1)

        with pytest.raises(StepBudgetExhausted, match=r"'s' exceeded max_tokens budget"):
            s()
        assert seen == ["max_tokens"]

    def test_refusal_strict_handler_error_wins(self) -> None:
        """In strict mode a failing budget_exhausted handler's error reaches the caller."""

        def boom(event: HookContext) -> None:
            raise RuntimeError("pager down")

        on_persona("*", "budget_exhausted")(boom)

        @step(name="s", model="m", budget=Budget(max_llm_calls=0))
        def s() -> None:
            with llm_call():
                pass

        configure(strict_hooks=True)  # the autouse fixture resets it
        with pytest.raises(RuntimeError, match="pager down"):
            s()
