"""Budgets: the limits a step may spend, validated before anything runs."""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import attrs

from ..stores._types import BudgetStore

if TYPE_CHECKING:  # usage.py imports this module: the annotation only
    from .usage import Usage

__all__ = [
    "INT64_MAX",
    "MAX_USD",
    "Budget",
    "ErrorBoundary",
    "coerce_boundary",
    "coerce_budget",
    "percent_used",
    "shown",
    "used_pct",
]

NANOS_PER_USD = 1_000_000_000
"""Costs are kept as integer nano-dollars so that sums over any tree are exact."""


INT64_MAX = 2**63 - 1
"""The largest count accepted anywhere: OpenTelemetry attributes (and OTLP) carry int64."""
MAX_USD = INT64_MAX / NANOS_PER_USD
"""The largest dollar amount accepted: about $9.2 billion, int64 nano-dollars."""


def usd_to_nanos(usd: float) -> int:
    """Round a dollar amount (at most `MAX_USD`) to the nearest nano-dollar."""
    # min(): MAX_USD as a float rounds up to one nano-dollar past int64.
    return min(round(usd * NANOS_PER_USD), INT64_MAX)


def percent_used(used: int, limit: int) -> float:
    """
    ``used`` as a percentage of ``limit``: the one place a share of a limit is worked out.

    Both are integers (tokens, calls, nano-dollars), so the figure is as exact as a float
    division can be, the same wherever it is shown. A limit of 0 is 0% used until anything
    is spent, then infinitely over.
    """
    if limit == 0:
        return 0.0 if used == 0 else math.inf
    return 100.0 * used / limit


def used_pct(
    tokens: int,
    nanos: int,
    calls: int,
    max_tokens: int | None,
    max_nanos: int | None,
    max_calls: int | None,
) -> float:
    """The highest share of any set limit used, in percent (0.0 when none is set)."""
    pct = 0.0
    if max_tokens is not None:
        pct = percent_used(tokens, max_tokens)
    if max_nanos is not None:
        pct = max(pct, percent_used(nanos, max_nanos))
    if max_calls is not None:
        pct = max(pct, percent_used(calls, max_calls))
    return pct


def shown(value: object) -> str:
    """``repr(value)`` for a message, also for an int too long to print (4,300+ digits)."""
    if type(value) is int and not -(10**36) < value < 10**36:
        return f"an int of {value.bit_length()} bits"
    try:
        text = repr(value)
    except Exception:  # a foreign object whose __repr__ raises
        return f"a {type(value).__name__}"
    return text if len(text) <= 60 else f"{text[:57]}..."


def _check_limit(prefix: str, name: str, value: object, *, integer: bool) -> None:
    if value is None:
        return
    # bool is an int subclass; True as a token limit is a mistake, not "1".
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        kind = "an int" if integer else "a number"
        got = f"{shown(value)} of type {type(value).__name__}"
        msg = f"{prefix}{name!r} must be {kind} or None (got {got})"
        raise TypeError(msg)
    if integer and not isinstance(value, int):
        # Even 2.0: a float limit would be stored, compared and exported as a float.
        msg = (
            f"{prefix}{name!r} must be a whole number of {_UNITS[name]}, as an int "
            f"(got {value!r} of type {type(value).__name__})"
        )
        raise TypeError(msg)
    # Ints are not passed to math.isfinite: it converts them, and overflows past 1e308.
    if isinstance(value, float) and not math.isfinite(value):
        msg = f"{prefix}{name!r} must be finite (got {value!r})"
        raise ValueError(msg)
    if value < 0:
        msg = f"{prefix}{name!r} must be >= 0 (got {shown(value)})"
        raise ValueError(msg)
    if integer and value > INT64_MAX:
        msg = (
            f"{prefix}{name!r} must be at most 2**63 - 1 = {INT64_MAX}, the largest count "
            f"OpenTelemetry carries (got {shown(value)}); use None for no limit"
        )
        raise ValueError(msg)
    if not integer and value > MAX_USD:
        msg = (
            f"{prefix}{name!r} must be at most {MAX_USD:,.2f} dollars, the largest int64 "
            f"count of nano-dollars (got {shown(value)}); use None for no limit"
        )
        raise ValueError(msg)


_UNITS = {"max_tokens": "tokens", "max_llm_calls": "calls"}


@attrs.frozen(repr=False)
class Budget:
    """
    What a step (and everything it calls) may spend.

    Each limit is optional; ``None`` means unlimited. Limits are strict: reaching a limit
    exactly is allowed, exceeding it raises `StepBudgetExhausted`. ``max_usd=0`` is a
    valid limit meaning nothing may be spent.

    A parent step's budget covers its whole subtree: usage recorded in a nested step is
    charged to the nested step *and* to every step around it.

    With a ``shared_key`` the limits are fleet-wide: every step with that key, in any
    thread or process using the same store, charges one set of counters there, per
    ``period`` (see the "One budget for a fleet" guide and `agentsteps.stores`).

    Example:
        >>> from agentsteps import Budget
        >>> Budget(max_tokens=2_000, max_usd=0.05)
        Budget(max_tokens=2000, max_usd=0.05, max_llm_calls=None)
        >>> Budget(max_tokens=-1)
        Traceback (most recent call last):
        ...
        ValueError: Budget: 'max_tokens' must be >= 0 (got -1)

    .. versionadded:: 0.1.0
    """

    max_tokens: int | None = None
    """Most tokens (input, cached input included, plus output) the step may use."""
    max_usd: float | None = None
    """Most US dollars the step may spend."""
    max_llm_calls: int | None = None
    """Most model calls the step may make."""
    shared_key: str | None = None
    """Share the limits fleet-wide under this key (``None``: the limits are the step's)."""
    period: timedelta | None = None
    """For a shared budget: the limits hold per calendar window of this length, aligned
    to UTC multiples of it (``timedelta(days=1)`` resets at midnight UTC). ``None``: for
    ever."""
    store: Any = attrs.field(default=None, eq=False)
    """For a shared budget: the `BudgetStore` holding the counters (``None``: the one
    given to ``configure(budget_store=...)``, else the process's in-process store)."""
    on_store_error: str = "fail_closed"
    """For a shared budget, when its store cannot be reached: ``"fail_closed"`` raises
    `BudgetStoreUnavailable` before the next model call is sent; ``"fail_open"`` lets calls
    go on, charged locally and logged once, and adds them to the store when it is back."""

    def __attrs_post_init__(self) -> None:
        _validate(self, "Budget")
        if (
            self.shared_key is not None
            or self.period is not None
            or self.store is not None
            or self.on_store_error != "fail_closed"
        ):
            _validate_shared(self, "Budget: ")

    def __repr__(self) -> str:
        text = (
            f"Budget(max_tokens={self.max_tokens!r}, max_usd={self.max_usd!r}, "
            f"max_llm_calls={self.max_llm_calls!r}"
        )
        if self.shared_key is not None:
            text += f", shared_key={self.shared_key!r}, period={self.period!r}"
            if self.store is not None:
                text += f", store={self.store!r}"
            if self.on_store_error != "fail_closed":
                text += f", on_store_error={self.on_store_error!r}"
        return text + ")"

    @property
    def is_unlimited(self) -> bool:
        """True when no limit is set."""
        return self.max_tokens is None and self.max_usd is None and self.max_llm_calls is None

    def used_pct(self, usage: Usage) -> float | None:
        """
        The highest share of any limit that ``usage`` uses, in percent; ``None`` when no
        limit is set.

        Dollars are compared in integer nano-dollars, as the budget is enforced, so the
        figure agrees with when `StepBudgetExhausted` is raised: over 100 exactly when a
        limit is exceeded.

        Example:
            >>> from agentsteps import Budget, Usage
            >>> Budget(max_tokens=1_000, max_usd=0.01).used_pct(
            ...     Usage(input_tokens=150, output_tokens=50, cost_nano_usd=5_000_000)
            ... )
            50.0

        .. versionadded:: 0.2.0
        """
        if self.is_unlimited:
            return None
        return used_pct(
            usage.input_tokens + usage.output_tokens,
            usage.cost_nano_usd,
            usage.llm_calls,
            self.max_tokens,
            None if self.max_usd is None else usd_to_nanos(self.max_usd),
            self.max_llm_calls,
        )

    def to_dict(self) -> dict[str, int | float | None]:
        """The limits as a plain dict, the same keys the dict form of ``budget=`` accepts."""
        return {
            "max_tokens": self.max_tokens,
            "max_usd": self.max_usd,
            "max_llm_calls": self.max_llm_calls,
        }


_STORE_ERRORS = ("fail_closed", "fail_open")


def _validate_shared(budget: Budget, prefix: str) -> None:
    """Check the shared-budget arguments: each error names the argument, rule and fix."""
    key: object = budget.shared_key  # object: the annotation is not checked at run time
    if key is None:
        msg = (
            f"{prefix}'period', 'store' and 'on_store_error' apply to shared budgets only; "
            "pass shared_key='...' too (got shared_key=None)"
        )
        raise ValueError(msg)
    if not isinstance(key, str):
        kind = type(key).__name__
        msg = f"{prefix}'shared_key' must be a str or None (got {key!r} of type {kind})"
        raise TypeError(msg)
    if not key.strip():
        msg = f"{prefix}'shared_key' must be a non-empty str (got {key!r})"
        raise ValueError(msg)
    period: object = budget.period
    if period is not None:
        if not isinstance(period, timedelta):
            msg = (
                f"{prefix}'period' must be a datetime.timedelta or None (got {period!r} of "
                f"type {type(period).__name__}); e.g. period=timedelta(days=1)"
            )
            raise TypeError(msg)
        if period < timedelta(milliseconds=1):
            msg = (
                f"{prefix}'period' must be a positive timedelta of at least 1 ms "
                f"(got {period!r}); use None for a budget that never resets"
            )
            raise ValueError(msg)
    if budget.store is not None and not isinstance(budget.store, BudgetStore):
        msg = (
            f"{prefix}'store' must be a BudgetStore (agentsteps.stores."
            "InProcessBudgetStore, RedisBudgetStore, or an object with their methods) "
            f"or None (got {budget.store!r} of type {type(budget.store).__name__})"
        )
        raise TypeError(msg)
    if budget.on_store_error not in _STORE_ERRORS:
        msg = (
            f"{prefix}'on_store_error' must be 'fail_closed' or 'fail_open' "
            f"(got {budget.on_store_error!r})"
        )
        raise ValueError(msg)


def _validate(budget: Budget, owner: str) -> None:
    prefix = f"{owner}: "
    _check_limit(prefix, "max_tokens", budget.max_tokens, integer=True)
    _check_limit(prefix, "max_usd", budget.max_usd, integer=False)
    _check_limit(prefix, "max_llm_calls", budget.max_llm_calls, integer=True)


_BUDGET_KEYS = ("max_tokens", "max_usd", "max_llm_calls")


def coerce_budget(value: object, owner: str) -> Budget | None:
    """
    Turn the ``budget=`` argument of a step into a `Budget`, or explain what is wrong.

    ``owner`` names the step in messages, e.g. ``"step 'summarize'"``.
    """
    if value is None or isinstance(value, Budget):
        return value
    if isinstance(value, Mapping):
        unknown = sorted(str(k) for k in value if k not in _BUDGET_KEYS)
        if unknown:
            msg = (
                f"{owner}: unknown budget key(s) {', '.join(map(repr, unknown))}; "
                f"valid keys are {', '.join(map(repr, _BUDGET_KEYS))}"
            )
            raise ValueError(msg)
        for key in _BUDGET_KEYS:
            _check_limit(f"{owner}: budget ", key, value.get(key), integer=key != "max_usd")
        return Budget(**value)
    msg = (
        f"{owner}: 'budget' must be a Budget, a dict with keys "
        f"{', '.join(map(repr, _BUDGET_KEYS))}, or None (got {value!r} of type "
        f"{type(value).__name__})"
    )
    raise TypeError(msg)


class ErrorBoundary(str, enum.Enum):
    """
    What a step's caller sees when the step runs out of budget.

    - ``FAIL``: `StepBudgetExhausted` propagates (status ``failed``).
    - ``CONTINUE``: the step returns its ``default`` (``None`` unless given), status
      ``skipped``; the caller carries on.
    - ``ESCALATE``: `StepEscalated` is raised, status ``escalated``.

    Plain strings (``"fail"``, ``"continue"``, ``"escalate"``) are accepted everywhere.

    .. versionadded:: 0.1.0
    """

    FAIL = "fail"
    CONTINUE = "continue"
    ESCALATE = "escalate"

    def __str__(self) -> str:
        return self.value


def coerce_boundary(value: object, owner: str) -> ErrorBoundary:
    """Turn the ``error_boundary=`` argument into an `ErrorBoundary`, or explain."""
    if isinstance(value, ErrorBoundary):
        return value
    if isinstance(value, str):
        try:
            return ErrorBoundary(value.lower())
        except ValueError:
            pass
    valid = ", ".join(repr(b.value) for b in ErrorBoundary)
    msg = f"{owner}: 'error_boundary' must be one of {valid} (got {value!r})"
    raise ValueError(msg)
