"""Usage with no known price under a dollar budget fails closed: UnpricedModelError."""

from __future__ import annotations

import logging
import pickle
import re
import subprocess
import sys
from typing import Any

import pytest
from opentelemetry.trace import SpanKind

import agentsteps
from agentsteps import (
    AgentStepsError,
    Budget,
    StepBudgetExhausted,
    UnpricedModelError,
    UsageCaptureProcessor,
    current_step,
    llm_call,
    record_usage,
    step,
)
from agentsteps.integrations import record_openai
from tests.support import Spans

MESSAGE = (
    "no price is known for model 'my-finetune', and step 'summarize' has a max_usd budget "
    "that cannot count it; nothing was charged. Fix: agentsteps.register_price('my-finetune', "
    "input_per_mtok=..., output_per_mtok=...), or pass cost_usd=... with the usage; or count "
    "unpriced calls as $0 with agentsteps.configure(unpriced='warn')"
)


def _unpriced_then_usage(**budget: Any) -> tuple[BaseException | None, agentsteps.Usage]:
    """Record unpriced usage in a step with ``budget``; return the error and what was charged."""

    @step(name="summarize", budget=Budget(**budget) if budget else None)
    def summarize() -> tuple[BaseException | None, agentsteps.Usage]:
        try:
            record_usage(model="my-finetune", input_tokens=100_000, output_tokens=100_000)
        except UnpricedModelError as exc:
            return exc, current_step().usage  # type: ignore[union-attr]
        return None, current_step().usage  # type: ignore[union-attr]

    return summarize()


class TestRecordUsage:
    def test_raises_and_charges_nothing(self) -> None:
        error, usage = _unpriced_then_usage(max_usd=0.01)
        assert type(error) is UnpricedModelError
        assert isinstance(error, AgentStepsError) and isinstance(error, LookupError)
        assert str(error) == MESSAGE
        assert (error.model, error.step, error.budget_step) == (
            "my-finetune",
            "summarize",
            "summarize",
        )
        assert (usage.total_tokens, usage.llm_calls, usage.unpriced_calls) == (0, 0, 0)

    def test_propagates_out_of_the_step(self) -> None:
        @step(name="summarize", budget=Budget(max_usd=0.01))
        def summarize() -> None:
            record_usage(model="my-finetune", input_tokens=100_000, output_tokens=100_000)

        with pytest.raises(UnpricedModelError, match=re.escape(MESSAGE)):
            summarize()

    def test_a_step_under_a_dollar_budget(self) -> None:
        """The limit may be on an enclosing step: the message names both."""

        @step(name="inner")
        def inner() -> None:
            record_usage(model=None, input_tokens=10, output_tokens=1)

        @step(name="outer", budget=Budget(max_usd=1))
        def outer() -> None:
            inner()

        with pytest.raises(UnpricedModelError) as caught:
            outer()
        assert str(caught.value).startswith(
            "usage without a model name has no price, and step 'inner' (under 'outer') has a "
            "max_usd budget that cannot count it; nothing was charged. Fix: pass model=... "
            "(and register its price) or cost_usd=..."
        )
        assert caught.value.budget_step == "outer"

    def test_the_issue_case_is_priced_now(self) -> None:
        """gpt-4o is in the bundled catalog: the $0.01 budget trips instead of charging $0."""

        @step(budget=Budget(max_usd=0.01))
        def summarize() -> None:
            record_usage(model="gpt-4o", input_tokens=100_000, output_tokens=100_000)

        with pytest.raises(StepBudgetExhausted, match=r"max_usd budget \(\$1\.2500 > \$0\.0100\)"):
            summarize()

    @pytest.mark.parametrize(
        "record",
        [
            {"cost_usd": 0.002},
            {"input_tokens": 0, "output_tokens": 0},
        ],
    )
    def test_a_known_cost_or_no_tokens_passes(self, record: dict[str, Any]) -> None:
        @step(budget=Budget(max_usd=0.01))
        def summarize() -> int:
            record_usage(**{"model": "my-finetune", "input_tokens": 5, "output_tokens": 5} | record)
            return current_step().usage.llm_calls  # type: ignore[union-attr]

        assert summarize() == 1

    def test_a_registered_price_passes(self) -> None:
        agentsteps.register_price("my-finetune", input_per_mtok=1, output_per_mtok=2)
        error, usage = _unpriced_then_usage(max_usd=1)
        assert error is None
        assert usage.cost_usd == pytest.approx(0.3)

    def test_without_a_dollar_limit_logs_once(self, caplog: pytest.LogCaptureFixture) -> None:
        with caplog.at_level(logging.WARNING, logger="agentsteps"):
            error, usage = _unpriced_then_usage(max_tokens=1_000_000)
            _unpriced_then_usage()
        assert error is None
        assert (usage.total_tokens, usage.unpriced_calls, usage.cost_usd) == (200_000, 1, 0)
        assert caplog.text.count("No price known for model 'my-finetune'") == 1
        assert "agentsteps[prices]" not in caplog.text
        assert "cost_usd=" in caplog.text


class TestConfigure:
    @pytest.mark.parametrize(("mode", "logged"), [("warn", 1), ("ignore", 0)])
    def test_opt_out(self, mode: str, logged: int, caplog: pytest.LogCaptureFixture) -> None:
        agentsteps.configure(unpriced=mode)
        with caplog.at_level(logging.WARNING, logger="agentsteps"):
            error, usage = _unpriced_then_usage(max_usd=0.01)
        assert error is None
        assert (usage.total_tokens, usage.unpriced_calls, usage.cost_usd) == (200_000, 1, 0)
        assert caplog.text.count("No price known for model 'my-finetune'") == logged

    def test_reset_defaults_restores_error(self) -> None:
        agentsteps.configure(unpriced="ignore")
        agentsteps.reset_defaults()
        assert type(_unpriced_then_usage(max_usd=0.01)[0]) is UnpricedModelError

    def test_bad_values(self) -> None:
        with pytest.raises(
            ValueError,
            match=re.escape(
                "configure(): 'unpriced' must be 'error', 'warn' or 'ignore' (got 'raise')"
            ),
        ):
            agentsteps.configure(unpriced="raise")
        with pytest.raises(
            TypeError,
            match=re.escape(
                "configure(): 'unpriced' must be 'error', 'warn' or 'ignore' "
                "(got False of type bool)"
            ),
        ):
            agentsteps.configure(unpriced=False)


class TestModelCalls:
    def test_llm_call_record(self) -> None:
        @step(name="summarize", budget=Budget(max_usd=0.01))
        def summarize() -> tuple[str, agentsteps.Usage]:
            with llm_call("my-finetune") as call:
                try:
                    call.record(input_tokens=100_000, output_tokens=10)
                except UnpricedModelError as exc:
                    caught = str(exc)
                call.record(input_tokens=100_000, output_tokens=10, cost_usd=0.001)
            return caught, current_step().usage  # type: ignore[union-attr]

        caught, usage = summarize()
        assert caught == MESSAGE
        assert (usage.input_tokens, usage.llm_calls, usage.unpriced_calls) == (100_000, 1, 0)
        assert usage.cost_usd == pytest.approx(0.001)

    def test_add_usage(self) -> None:
        @step(name="summarize", budget=Budget(max_usd=0.01))
        def summarize() -> None:
            with llm_call("my-finetune") as call:
                call.add_usage(output_tokens=1)

        with pytest.raises(UnpricedModelError, match=re.escape(MESSAGE)):
            summarize()

    def test_record_openai(self) -> None:
        completion = {
            "model": "my-finetune",
            "usage": {"prompt_tokens": 100, "completion_tokens": 5},
        }

        @step(name="summarize", budget=Budget(max_usd=0.01))
        def summarize() -> None:
            record_openai(completion)

        with pytest.raises(UnpricedModelError, match=re.escape(MESSAGE)):
            summarize()

    def test_captured_inside_llm_call_raises_at_block_end(self, spans: Spans) -> None:
        """An instrumented client cannot be raised into: the llm_call block raises instead."""
        spans.provider.add_span_processor(UsageCaptureProcessor())
        tracer = spans.provider.get_tracer("some-instrumentation")
        reached: list[str] = []

        @step(name="summarize", budget=Budget(max_usd=0.01))
        def summarize() -> None:
            with llm_call("my-finetune"):
                with tracer.start_as_current_span("chat my-finetune", kind=SpanKind.CLIENT) as s:
                    s.set_attributes(
                        {"gen_ai.usage.input_tokens": 100, "gen_ai.usage.output_tokens": 5}
                    )
                reached.append("after the client returned")

        with agentsteps.run() as r, pytest.raises(UnpricedModelError, match=re.escape(MESSAGE)):
            summarize()
        assert reached == ["after the client returned"]
        assert r.steps[0].usage.total_tokens == 0


def test_pickles() -> None:
    error = UnpricedModelError("m", "a", "b")
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is UnpricedModelError
    assert (again.model, again.step, again.budget_step, str(again)) == (
        "m",
        "a",
        "b",
        str(error),
    )


def test_import_does_not_load_the_catalog() -> None:
    """The catalog is a dependency, but loaded on the first priced record, not at import."""
    code = (
        "import sys, agentsteps\n"
        "assert 'genai_prices' not in sys.modules, 'imported with agentsteps'\n"
        "thread = agentsteps.preload_prices()\n"
        "thread.join()\n"
        "assert 'genai_prices' in sys.modules\n"
        "assert agentsteps.preload_prices() is None  # loaded already\n"
        "print('ok')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "ok\n", "")
