"""The `@step` decorator and `step_scope`: units of agent work with a budget."""

from __future__ import annotations

from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Callable,
    Coroutine,
    Generator,
    Iterator,
    Mapping,
)
from typing import Any, Literal, ParamSpec, Protocol, TypeVar, overload

from .._accounting.budget import Budget, ErrorBoundary
from .._validate import check_name
from .context import ActiveStep
from .definitions import NOT_SET, StepDefinition
from .scope import FrameScope
from .wrappers import decorate

__all__ = ["ContinueDecorator", "step", "step_scope"]

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")
Y = TypeVar("Y")
S = TypeVar("S")
D = TypeVar("D")
D_co = TypeVar("D_co", covariant=True)

BoundaryName = Literal["fail", "continue", "escalate"] | ErrorBoundary
Continue = Literal["continue", ErrorBoundary.CONTINUE]
Raising = Literal["fail", "escalate", ErrorBoundary.FAIL, ErrorBoundary.ESCALATE]
BudgetArg = Budget | Mapping[str, Any] | None


class ContinueDecorator(Protocol[D_co]):
    """
    What ``step(error_boundary="continue", default=...)`` returns, for type checkers: the
    decorated function may give ``D_co`` (the ``default``, ``None`` if not given) in place
    of its result. An ``async def`` step's awaited value, and a generator step's return
    value, may; a generator step's yields do not change.
    """

    @overload
    def __call__(
        self, fn: Callable[P, Coroutine[Any, Any, T]], /
    ) -> Callable[P, Coroutine[Any, Any, T | D_co]]: ...
    @overload
    def __call__(
        self, fn: Callable[P, Generator[Y, S, T]], /
    ) -> Callable[P, Generator[Y, S, T | D_co]]: ...
    @overload
    def __call__(
        self, fn: Callable[P, AsyncGenerator[Y, S]], /
    ) -> Callable[P, AsyncGenerator[Y, S]]: ...
    @overload
    def __call__(self, fn: Callable[P, Iterator[Y]], /) -> Callable[P, Iterator[Y]]: ...
    @overload
    def __call__(self, fn: Callable[P, AsyncIterator[Y]], /) -> Callable[P, AsyncIterator[Y]]: ...
    @overload
    def __call__(self, fn: Callable[P, R], /) -> Callable[P, R | D_co]: ...


@overload
def step(func: Callable[P, R], /) -> Callable[P, R]: ...


@overload
def step(
    *,
    name: str | None = None,
    model: str | None = None,
    budget: BudgetArg = None,
    error_boundary: Continue,
    default: D,
) -> ContinueDecorator[D]: ...


@overload
def step(
    *,
    name: str | None = None,
    model: str | None = None,
    budget: BudgetArg = None,
    error_boundary: Continue,
) -> ContinueDecorator[None]: ...


@overload
def step(
    *,
    name: str | None = None,
    model: str | None = None,
    budget: BudgetArg = None,
    error_boundary: Raising = "fail",
) -> Callable[[Callable[P, R]], Callable[P, R]]: ...


@overload
def step(
    *,
    name: str | None = None,
    model: str | None = None,
    budget: BudgetArg = None,
    error_boundary: BoundaryName,
) -> ContinueDecorator[None]: ...


def step(
    func: Any = None,
    /,
    *,
    name: str | None = None,
    model: str | None = None,
    budget: BudgetArg = None,
    error_boundary: BoundaryName = "fail",
    default: Any = NOT_SET,
) -> Any:
    """
    Run each call of the decorated function as a step: a unit of agent work with a
    name, a model, a budget and an error boundary, traced as an OpenTelemetry span.

    Works on plain functions, ``async def``, generators, async generators and methods
    (instance, class, static), bare (``@step``) or called (``@step(...)``). The step's
    budget covers everything it calls, nested steps included.

    Args:
        name: The step's name; defaults to the function's ``__qualname__``.
        model: The model the step uses (nested steps without one inherit it).
        budget: A `Budget`, or a dict with the same keys (``max_tokens``, ``max_usd``,
            ``max_llm_calls``).
        error_boundary: What the caller sees when this step's budget runs out:
            ``"fail"`` (`StepBudgetExhausted` propagates), ``"continue"`` (the step
            returns ``default``, status ``skipped``) or ``"escalate"`` (`StepEscalated`).
        default: What a ``"continue"`` step returns when its budget runs out
            (``None`` if not given). Only valid with ``error_boundary="continue"``.

    Raises:
        TypeError, ValueError: At decoration time, for a bad argument (the message
            names it).

    Example:
        >>> from agentsteps import Budget, record_usage, step
        >>> @step(model="claude-haiku-4-5", budget=Budget(max_tokens=100),
        ...       error_boundary="continue", default="(skipped)")
        ... def summarize(text):
        ...     record_usage(input_tokens=90, output_tokens=30, cost_usd=0.0001)
        ...     return "summary"
        >>> summarize("a long diff")
        '(skipped)'

    .. versionadded:: 0.1.0
    """
    if name is not None:
        check_name("name", name, "@step")

    def make(qualname: str) -> StepDefinition:
        return StepDefinition(
            name=qualname if name is None else name,
            function=qualname,
            model=model,
            budget=budget,
            error_boundary=error_boundary,
            default=default,
        )

    if func is not None:
        return decorate("step", func, make)

    def decorator(fn: Callable[P, R]) -> Callable[P, R]:
        return decorate("step", fn, make)  # type: ignore[no-any-return]

    return decorator


class step_scope(FrameScope[ActiveStep]):
    """
    Run a block as a step: the context-manager form of `@step`, for code that is not a
    function of its own. Works with ``with`` and ``async with``; ``as`` gives the
    `ActiveStep`.

    Under ``error_boundary="continue"`` an exhausted budget ends the block early and
    execution resumes after it (the exception is swallowed), status ``skipped``.

    Example:
        >>> from agentsteps import Budget, record_usage, step_scope
        >>> with step_scope("plan", budget=Budget(max_llm_calls=1),
        ...                 error_boundary="continue") as plan:
        ...     record_usage(model="m", input_tokens=1, output_tokens=1, cost_usd=0)
        ...     record_usage(model="m", input_tokens=1, output_tokens=1, cost_usd=0)
        ...     print("not reached")
        >>> plan.subtree_usage.llm_calls
        2

    .. versionadded:: 0.1.0
    """

    __slots__ = ()
    _kind = "step_scope"

    def __init__(
        self,
        name: str,
        *,
        model: str | None = None,
        budget: BudgetArg = None,
        error_boundary: BoundaryName = "fail",
    ) -> None:
        check_name("name", name, "step_scope()")
        self._defn = StepDefinition(
            name=name,
            function=name,
            model=model,
            budget=budget,
            error_boundary=error_boundary,
        )
        self._defn.is_scope = True
        self._frame = None
