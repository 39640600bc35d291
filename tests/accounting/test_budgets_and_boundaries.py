"""Hierarchical budgets, StepBudgetExhausted, and the three error boundaries."""

from __future__ import annotations

import asyncio
import pickle
import re
from collections.abc import Iterator

import pytest

import agentsteps
from agentsteps import (
    Budget,
    StepBudgetExhausted,
    StepEscalated,
    StepStatus,
    current_step,
    persona,
    record_usage,
    step,
    step_scope,
)


def spend(tokens_in: int = 0, tokens_out: int = 0, usd: float = 0.0) -> None:
    """A helper that is not a step: usage it records belongs to the caller's step."""
    record_usage(model="m", input_tokens=tokens_in, output_tokens=tokens_out, cost_usd=usd)


class TestPortedFromSeed:
    def test_original_runtime_case(self) -> None:
        """Port of the original runtime's test: the second record exhausts a continue step."""
        checks: list[tuple[int, int, float]] = []

        @step(
            model="claude-haiku-4-5",
            budget=Budget(max_tokens=100, max_usd=0.05),
            error_boundary="continue",
        )
        def summarize() -> str:
            record_usage(
                model="claude-haiku-4-5", input_tokens=10, output_tokens=20, cost_usd=0.001
            )
            u = current_step().usage  # type: ignore[union-attr]
            checks.append((u.input_tokens, u.output_tokens, u.cost_usd))
            record_usage(model="claude-haiku-4-5", input_tokens=50, output_tokens=50, cost_usd=0)
            return "unreachable"

        with agentsteps.run() as r:
            assert summarize() is None
        assert checks == [(10, 20, 0.001)]
        (rec,) = r.steps
        assert rec.status is StepStatus.SKIPPED
        assert rec.llm_calls == 2
        assert (rec.input_tokens, rec.output_tokens) == (60, 70)
        assert rec.cost_usd == 0.001
        assert rec.error == (
            "StepBudgetExhausted: step 'TestPortedFromSeed.test_original_runtime_case.<locals>."
            "summarize' exceeded max_tokens budget (130 > 100 tokens)"
        )


class TestLimits:
    def test_reaching_limit_exactly_is_allowed(self) -> None:
        """Limits are strict: equal is fine, one more trips."""

        @step(budget=Budget(max_tokens=100, max_llm_calls=2, max_usd=0.02))
        def exact() -> str:
            spend(50, 50, 0.02)
            spend(0, 0, 0)
            return "ok"

        assert exact() == "ok"

    def test_zero_usd_budget_trips_on_any_cost(self) -> None:
        """max_usd=0: any positive cost trips it."""

        @step(name="free", budget=Budget(max_usd=0))
        def free() -> None:
            spend(1, 1, 0)
            spend(1, 1, 0.000001)

        with pytest.raises(
            StepBudgetExhausted,
            match=re.escape("step 'free' exceeded max_usd budget ($0.0000 > $0.0000)"),
        ):
            free()

    @pytest.mark.parametrize(
        ("budget", "records", "message", "limit"),
        [
            (
                Budget(max_usd=0.05),
                [(10, 10, 0.03), (10, 10, 0.0312)],
                "step 's' exceeded max_usd budget ($0.0612 > $0.0500)",
                "max_usd",
            ),
            (
                Budget(max_tokens=100),
                [(60, 50, 0.0)],
                "step 's' exceeded max_tokens budget (110 > 100 tokens)",
                "max_tokens",
            ),
            (
                Budget(max_llm_calls=2),
                [(1, 1, 0.0)] * 3,
                "step 's' exceeded max_llm_calls budget (3 > 2 calls)",
                "max_llm_calls",
            ),
        ],
    )
    def test_message_and_attributes_per_limit(
        self,
        budget: Budget,
        records: list[tuple[int, int, float]],
        message: str,
        limit: str,
    ) -> None:
        """The message is right for each limit and the exception carries its numbers."""

        @persona(name="rev")
        def p() -> None:
            s()

        @step(name="s", budget=budget)
        def s() -> None:
            for r in records:
                spend(*r)

        with pytest.raises(StepBudgetExhausted, match=re.escape(message)) as info:
            p()
        exc = info.value
        assert exc.step == "s"
        assert exc.persona == "rev"
        assert exc.limit == limit
        assert exc.limit_value == getattr(budget, limit)
        assert exc.consumed_tokens == sum(a + b for a, b, _ in records)
        assert exc.consumed_usd == pytest.approx(sum(c for *_, c in records))
        assert exc.llm_calls == len(records)
        assert exc.error_boundary == "fail"
        assert exc.escalated is False
        assert exc.function.endswith("<locals>.s")

    def test_tripping_usage_is_still_recorded(self) -> None:
        """The record that crossed the limit is in the totals (the seed dropped it)."""

        @step(name="s", budget=Budget(max_tokens=10))
        def s() -> None:
            spend(5, 5)
            spend(100, 100)

        with agentsteps.run() as r, pytest.raises(StepBudgetExhausted):
            s()
        assert r.steps[0].subtree_usage.total_tokens == 210
        assert r.total.total_tokens == 210

    def test_exception_pickles(self) -> None:
        """StepBudgetExhausted and StepEscalated survive a pickle round trip."""
        exc = StepEscalated(
            step="s",
            function="f",
            persona=None,
            limit="max_usd",
            limit_value=0.05,
            consumed_tokens=3,
            consumed_usd=0.0612,
            llm_calls=2,
            error_boundary="escalate",
            trace_id="ab" * 16,
            span_id="cd" * 8,
        )
        back = pickle.loads(pickle.dumps(exc))
        assert type(back) is StepEscalated
        assert str(back) == str(exc) == "step 's' exceeded max_usd budget ($0.0612 > $0.0500)"
        assert back.escalated is True
        assert back.trace_id == exc.trace_id

    def test_exception_names_module_agentsteps(self) -> None:
        """Tracebacks show agentsteps.StepBudgetExhausted."""
        assert StepBudgetExhausted.__module__ == "agentsteps"


class TestHierarchy:
    def test_parent_budget_covers_children(self) -> None:
        """A parent's budget is exhausted by usage recorded in a nested step."""

        @step(name="parent", budget=Budget(max_tokens=100))
        def parent() -> None:
            for _ in range(3):
                child()

        @step(name="child")
        def child() -> None:
            spend(20, 20)

        with agentsteps.run() as r, pytest.raises(StepBudgetExhausted) as info:
            parent()
        assert info.value.step == "parent"
        by_status = [(s.name, s.status) for s in r.steps]
        # The third child's record tripped the parent: the exhaustion passed through it.
        assert by_status == [
            ("child", StepStatus.COMPLETED),
            ("child", StepStatus.COMPLETED),
            ("child", StepStatus.FAILED),
            ("parent", StepStatus.FAILED),
        ]
        parent_rec = r.steps[-1]
        assert parent_rec.usage.total_tokens == 0
        assert parent_rec.subtree_usage.total_tokens == 120

    def test_parent_exhaustion_passes_through_child_continue(self) -> None:
        """A child's continue boundary does not swallow its parent's exhaustion."""

        @step(
            name="parent",
            budget=Budget(max_usd=0.01),
            error_boundary="continue",
            default="parent-default",
        )
        def parent() -> str:
            child()
            return "parent-done"

        @step(name="child", error_boundary="continue", default="child-default")
        def child() -> str:
            spend(1, 1, 0.02)
            return "child-done"

        with agentsteps.run() as r:
            assert parent() == "parent-default"
        assert {s.name: s.status for s in r.steps} == {
            "child": StepStatus.FAILED,
            "parent": StepStatus.SKIPPED,
        }

    def test_outermost_exhaustion_wins(self) -> None:
        """When one record trips a child and its parent, the parent's boundary decides."""

        @step(name="parent", budget=Budget(max_tokens=10))
        def parent() -> None:
            child()

        @step(name="child", budget=Budget(max_tokens=5), error_boundary="continue")
        def child() -> None:
            spend(20, 0)

        with pytest.raises(StepBudgetExhausted) as info:
            parent()
        assert info.value.step == "parent"

    def test_budget_trips_once(self) -> None:
        """After tripping, further records are charged but do not raise again."""
        raised = []

        @step(name="s", budget=Budget(max_llm_calls=1), error_boundary="continue")
        def s() -> str:
            spend(1, 1)
            try:
                spend(1, 1)
            except StepBudgetExhausted as exc:
                raised.append(exc)
            spend(1, 1)
            return "finished"

        with agentsteps.run() as r:
            assert s() == "finished"
        assert len(raised) == 1
        assert r.steps[0].llm_calls == 3


class TestBoundaries:
    @staticmethod
    def _make(boundary: str, where: str) -> object:
        """A step whose own budget trips in its body, in a helper, or in a nested step."""

        def helper() -> None:
            spend(60, 60)

        @step(name="nested")
        def nested() -> None:
            helper()

        @step(
            name="guarded",
            budget=Budget(max_tokens=100),
            error_boundary=boundary,  # type: ignore[arg-type]
            **({"default": "fallback"} if boundary == "continue" else {}),
        )
        def guarded() -> str:
            if where == "body":
                spend(60, 60)
            elif where == "helper":
                helper()
            else:
                nested()
            return "done"

        return guarded

    @pytest.mark.parametrize("where", ["body", "helper", "nested"])
    def test_fail(self, where: str) -> None:
        """fail: StepBudgetExhausted propagates; status failed."""
        guarded = self._make("fail", where)
        with agentsteps.run() as r, pytest.raises(StepBudgetExhausted) as info:
            guarded()  # type: ignore[operator]
        assert type(info.value) is StepBudgetExhausted
        assert r.steps[-1].name == "guarded"
        assert r.steps[-1].status is StepStatus.FAILED

    @pytest.mark.parametrize("where", ["body", "helper", "nested"])
    def test_continue(self, where: str) -> None:
        """continue: the step returns its default; status skipped; the caller goes on."""
        guarded = self._make("continue", where)
        with agentsteps.run() as r:
            assert guarded() == "fallback"  # type: ignore[operator]
        assert r.steps[-1].status is StepStatus.SKIPPED
        if where == "nested":
            assert r.steps[0].name == "nested"
            assert r.steps[0].status is StepStatus.FAILED

    @pytest.mark.parametrize("where", ["body", "helper", "nested"])
    def test_escalate(self, where: str) -> None:
        """escalate: StepEscalated with escalated=True and the original as __cause__."""
        guarded = self._make("escalate", where)
        with agentsteps.run() as r, pytest.raises(StepEscalated) as info:
            guarded()  # type: ignore[operator]
        exc = info.value
        assert exc.escalated is True
        assert isinstance(exc, StepBudgetExhausted)
        assert type(exc.__cause__) is StepBudgetExhausted
        assert exc.error_boundary == "escalate"
        assert str(exc) == "step 'guarded' exceeded max_tokens budget (120 > 100 tokens)"
        assert r.steps[-1].status is StepStatus.ESCALATED

    def test_persona_hands_off_on_escalation(self) -> None:
        """A persona catches StepEscalated and hands the work to a stronger model."""

        @step(name="draft", model="small", budget=Budget(max_tokens=10), error_boundary="escalate")
        def draft() -> str:
            spend(20, 0)
            return "small draft"

        @step(name="draft_strong", model="big")
        def draft_strong() -> str:
            spend(20, 0)
            return "big draft"

        @persona(name="author")
        def author() -> str:
            try:
                return draft()
            except StepEscalated:
                return draft_strong()

        with agentsteps.run() as r:
            assert author() == "big draft"
        assert [(s.name, s.status, s.model) for s in r.steps] == [
            ("draft", StepStatus.ESCALATED, "m"),
            ("draft_strong", StepStatus.COMPLETED, "m"),
        ]
        assert r.personas[0].status is StepStatus.COMPLETED

    def test_other_exceptions_fail_unchanged(self) -> None:
        """Any other exception fails the step and propagates unchanged (the seed said completed)."""
        err = RuntimeError("tool crashed")

        @step(name="s", error_boundary="continue")
        def s() -> None:
            raise err

        with agentsteps.run() as r, pytest.raises(RuntimeError) as info:
            s()
        assert info.value is err
        assert r.steps[0].status is StepStatus.FAILED
        assert r.steps[0].error == "RuntimeError: tool crashed"

    def test_keyboard_interrupt_cancels(self) -> None:
        """KeyboardInterrupt ends the step cancelled and is re-raised."""

        @step(name="s")
        def s() -> None:
            raise KeyboardInterrupt

        with agentsteps.run() as r, pytest.raises(KeyboardInterrupt):
            s()
        assert r.steps[0].status is StepStatus.CANCELLED
        assert current_step() is None

    def test_cancelled_error_cancels(self) -> None:
        """asyncio cancellation at an await ends the step cancelled."""

        @step(name="slow")
        async def slow() -> None:
            await asyncio.sleep(10)

        async def main() -> None:
            task = asyncio.create_task(slow())
            await asyncio.sleep(0.01)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

        with agentsteps.run() as r:
            asyncio.run(main())
        assert r.steps[0].status is StepStatus.CANCELLED

    def test_generator_continue_stops_iteration(self) -> None:
        """A generator step that overruns under continue just stops yielding."""

        @step(name="stream", budget=Budget(max_llm_calls=3), error_boundary="continue")
        def stream() -> Iterator[int]:
            for i in range(10):
                spend(1, 1)
                yield i

        with agentsteps.run() as r:
            assert list(stream()) == [0, 1, 2]
        assert r.steps[0].status is StepStatus.SKIPPED

    def test_step_scope_continue_swallows(self) -> None:
        """step_scope with continue ends the block early and execution resumes after it."""
        after = []
        with step_scope("plan", budget=Budget(max_tokens=1), error_boundary="continue"):
            spend(5, 5)
            after.append("not reached")
        after.append("after")
        assert after == ["after"]

    def test_step_scope_escalate(self) -> None:
        """step_scope with escalate raises StepEscalated."""
        with (
            pytest.raises(StepEscalated),
            step_scope("plan", budget=Budget(max_tokens=1), error_boundary="escalate"),
        ):
            spend(5, 5)


class TestRecordUsage:
    def test_outside_any_step_is_a_noop(self) -> None:
        """Outside a step record_usage returns None and charges nothing."""
        assert spend(10, 10, 1.0) is None  # type: ignore[func-returns-value]

    def test_inside_persona_without_step_is_a_noop(self) -> None:
        """A persona is not a budget holder: without a step nothing is charged."""

        @persona(name="p")
        def p() -> None:
            spend(10, 10, 1.0)

        with agentsteps.run() as r:
            p()
        assert r.personas[0].subtree_usage.llm_calls == 0

    @pytest.mark.parametrize(
        ("kwargs", "exc", "message"),
        [
            (
                {"input_tokens": -1},
                ValueError,
                "record_usage(): 'input_tokens' must be >= 0 (got -1)",
            ),
            (
                {"output_tokens": 1.5},
                TypeError,
                "record_usage(): 'output_tokens' must be an int (got 1.5 of type float)",
            ),
            (
                {"input_tokens": True},
                TypeError,
                "record_usage(): 'input_tokens' must be an int (got True of type bool)",
            ),
            (
                {"cost_usd": -0.5},
                ValueError,
                "record_usage(): 'cost_usd' must be a finite number >= 0 (got -0.5)",
            ),
            (
                {"cost_usd": float("nan")},
                ValueError,
                "record_usage(): 'cost_usd' must be a finite number >= 0 (got nan)",
            ),
            (
                {"cost_usd": "0.01"},
                TypeError,
                "record_usage(): 'cost_usd' must be a number of US dollars or None "
                "(got '0.01' of type str)",
            ),
            (
                {"model": 4},
                TypeError,
                "record_usage(): 'model' must be a str or None (got 4 of type int)",
            ),
            (
                {"input_tokens": 10, "cache_read_tokens": 8, "cache_write_tokens": 5},
                ValueError,
                "record_usage(): cached tokens (cache_read_tokens=8 + cache_write_tokens=5) "
                "exceed 'input_tokens' (10); input_tokens includes cached tokens",
            ),
            (
                {"output_tokens": 3, "reasoning_tokens": 4},
                ValueError,
                "record_usage(): 'reasoning_tokens' (4) exceeds 'output_tokens' (3)",
            ),
            ({"llm_calls": -1}, ValueError, "record_usage(): 'llm_calls' must be >= 0 (got -1)"),
        ],
    )
    def test_bad_input(self, kwargs: dict[str, object], exc: type[Exception], message: str) -> None:
        """Bad arguments raise, inside or outside a step, naming the argument."""
        with pytest.raises(exc, match=re.escape(message)):
            record_usage(**kwargs)  # type: ignore[arg-type]
        with pytest.raises(exc, match=re.escape(message)), step_scope("s"):
            record_usage(**kwargs)  # type: ignore[arg-type]

    def test_cached_and_reasoning_tokens_are_tracked(self) -> None:
        """Cache and reasoning breakdowns accumulate like the totals."""
        with agentsteps.run() as r, step_scope("s"):
            record_usage(
                model="m",
                input_tokens=100,
                output_tokens=50,
                cache_read_tokens=60,
                cache_write_tokens=20,
                reasoning_tokens=30,
                cost_usd=0.01,
            )
        u = r.steps[0].usage
        assert (u.cache_read_tokens, u.cache_write_tokens, u.reasoning_tokens) == (60, 20, 30)
        assert u.cost_nano_usd == 10_000_000


def test_record_usage_rejects_empty_model() -> None:
    """An empty model name is refused like @step(model="") is, not recorded as a model."""
    with pytest.raises(
        ValueError,
        match=re.escape("record_usage(): 'model' must be a non-empty str or None (got '')"),
    ):
        record_usage(model="", input_tokens=1)
