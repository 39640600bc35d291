"""CompletedStep records and the run() collector; nothing is kept when nobody collects."""

from __future__ import annotations

import gc
import json
import tracemalloc

import agentsteps
from agentsteps import Budget, StepStatus, persona, record_usage, step


@step(name="unit", budget=Budget(max_tokens=1000))
def unit() -> None:
    record_usage(model="m", input_tokens=3, output_tokens=4, cost_usd=0.0001)


class TestRun:
    def test_collects_steps_and_personas(self) -> None:
        """run() sees every step and persona completed inside it, with totals."""

        @persona(name="p")
        def p() -> None:
            unit()
            unit()

        with agentsteps.run() as r:
            p()
        assert [s.name for s in r.steps] == ["unit", "unit"]
        assert [x.name for x in r.personas] == ["p"]
        assert r.total.total_tokens == 14
        assert r.total.cost_nano_usd == 200_000
        rec = r.steps[0]
        assert rec.status is StepStatus.COMPLETED
        assert rec.duration >= 0
        assert rec.budget_pct == 0.7
        assert rec.parent_id == r.personas[0].persona_id
        assert rec.step_id != r.steps[1].step_id

    def test_to_dict_is_json_ready(self) -> None:
        """run.to_dict() serialises to JSON."""
        with agentsteps.run() as r:
            unit()
        data = json.loads(json.dumps(r.to_dict()))
        assert data["total"]["total_tokens"] == 7
        assert data["steps"][0]["status"] == "completed"
        assert data["steps"][0]["budget"] == {
            "max_tokens": 1000,
            "max_usd": None,
            "max_llm_calls": None,
        }

    def test_nested_runs_both_collect(self) -> None:
        """A step completing inside nested runs is delivered to each."""
        with agentsteps.run() as outer:
            unit()
            with agentsteps.run() as inner:
                unit()
        assert len(outer.steps) == 2
        assert len(inner.steps) == 1

    def test_steps_outside_the_block_are_not_collected(self) -> None:
        """Only steps that run inside the block are collected."""
        unit()
        with agentsteps.run() as r:
            pass
        unit()
        assert r.steps == []


class TestMemory:
    def test_no_growth_without_collector(self) -> None:
        """With no run() open, finished steps leave nothing behind."""
        for _ in range(2000):
            unit()
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.take_snapshot()
            for _ in range(20_000):
                unit()
            gc.collect()
            after = tracemalloc.take_snapshot()
        finally:
            tracemalloc.stop()
        growth = sum(
            stat.size_diff
            for stat in after.compare_to(before, "filename")
            if "agentsteps" in stat.traceback[0].filename
        )
        assert growth < 20_000, f"agentsteps retained {growth} bytes over 20,000 steps"

    def test_collector_holds_exactly_what_it_collected(self) -> None:
        """A run() holds one record per completed step, no more."""
        with agentsteps.run() as r:
            for _ in range(500):
                unit()
        assert len(r.steps) == 500


def test_subtree_usage_beside_usage() -> None:
    """usage is the step's own; subtree_usage (and the flat shortcuts) include its children."""

    @step(name="child")
    def child() -> None:
        record_usage("m", input_tokens=10, output_tokens=1, cost_usd=0.5)

    @step(name="parent")
    def parent() -> None:
        record_usage("m", input_tokens=3, output_tokens=2, cost_usd=0.25)
        child()

    with agentsteps.run() as collected:
        parent()
    record = next(s for s in collected.steps if s.name == "parent")
    assert (record.usage.input_tokens, record.usage.llm_calls) == (3, 1)
    assert (record.subtree_usage.input_tokens, record.subtree_usage.llm_calls) == (13, 2)
    shortcuts = (record.input_tokens, record.output_tokens, record.cost_usd, record.llm_calls)
    assert shortcuts == (13, 3, 0.75, 2)
