"""Budget validation: bad limits fail at decoration time with messages naming the argument."""

from __future__ import annotations

import math
import re

import pytest

from agentsteps import Budget, current_step, step


class TestBudgetValue:
    def test_defaults_are_unlimited(self) -> None:
        """A Budget with no limits is unlimited."""
        assert Budget().is_unlimited
        assert not Budget(max_usd=0).is_unlimited

    def test_zero_usd_is_a_valid_limit(self) -> None:
        """max_usd=0 means nothing may be spent; it is not an error."""
        assert Budget(max_usd=0).max_usd == 0

    def test_is_frozen(self) -> None:
        """Budgets are immutable values."""
        b = Budget(max_tokens=1)
        with pytest.raises(AttributeError):
            b.max_tokens = 2  # type: ignore[misc]

    @pytest.mark.parametrize(
        ("kwargs", "exc", "message"),
        [
            ({"max_tokens": -1}, ValueError, "Budget: 'max_tokens' must be >= 0 (got -1)"),
            ({"max_usd": -0.01}, ValueError, "Budget: 'max_usd' must be >= 0 (got -0.01)"),
            ({"max_usd": math.nan}, ValueError, "Budget: 'max_usd' must be finite (got nan)"),
            ({"max_usd": math.inf}, ValueError, "Budget: 'max_usd' must be finite (got inf)"),
            (
                {"max_tokens": True},
                TypeError,
                "Budget: 'max_tokens' must be an int or None (got True of type bool)",
            ),
            (
                {"max_usd": "0.05"},
                TypeError,
                "Budget: 'max_usd' must be a number or None (got '0.05' of type str)",
            ),
            (
                {"max_tokens": 10.5},
                TypeError,
                "Budget: 'max_tokens' must be a whole number of tokens, as an int "
                "(got 10.5 of type float)",
            ),
            (
                {"max_llm_calls": -3},
                ValueError,
                "Budget: 'max_llm_calls' must be >= 0 (got -3)",
            ),
        ],
    )
    def test_bad_limits(
        self, kwargs: dict[str, object], exc: type[Exception], message: str
    ) -> None:
        """Each bad limit raises the exact error naming the argument and value."""
        with pytest.raises(exc, match=re.escape(message)):
            Budget(**kwargs)  # type: ignore[arg-type]


class TestBudgetOnStep:
    def test_dict_form_is_accepted(self) -> None:
        """budget= accepts a dict with the Budget keys."""

        @step(budget={"max_tokens": 2000, "max_usd": 0.05})
        def summarize() -> Budget | None:
            return current_step().budget  # type: ignore[union-attr]

        assert summarize() == Budget(max_tokens=2000, max_usd=0.05)

    @pytest.mark.parametrize(
        ("budget", "exc", "message"),
        [
            (
                {"max_token": 5},
                ValueError,
                "step 'summarize': unknown budget key(s) 'max_token'; valid keys are "
                "'max_tokens', 'max_usd', 'max_llm_calls'",
            ),
            (
                {"max_tokens": -5},
                ValueError,
                "step 'summarize': budget 'max_tokens' must be >= 0 (got -5)",
            ),
            (
                {"max_usd": float("nan")},
                ValueError,
                "step 'summarize': budget 'max_usd' must be finite (got nan)",
            ),
            (
                {"max_llm_calls": False},
                TypeError,
                "step 'summarize': budget 'max_llm_calls' must be an int or None "
                "(got False of type bool)",
            ),
            (
                100,
                TypeError,
                "step 'summarize': 'budget' must be a Budget, a dict with keys 'max_tokens', "
                "'max_usd', 'max_llm_calls', or None (got 100 of type int)",
            ),
        ],
    )
    def test_bad_budget_fails_at_decoration(
        self, budget: object, exc: type[Exception], message: str
    ) -> None:
        """A bad budget raises when the decorator is applied, naming the step."""
        with pytest.raises(exc, match=re.escape(message)):

            @step(name="summarize", budget=budget)  # type: ignore[arg-type]
            def summarize() -> None: ...
