"""
Every exception agentsteps raises on purpose, in one place.

The hierarchy::

    AgentStepsError                  base of everything agentsteps raises at run time
    ├── StepBudgetExhausted          a step spent more than its budget allows
    │   └── StepEscalated            ... and its error boundary is "escalate"
    ├── StepDenied                   a pre_step hook refused to let the step run
    ├── BudgetStoreUnavailable       a shared budget's store could not be reached
    └── UnpricedModelError           usage of a model with no price, under a dollar budget
                                     (also a LookupError)

Mistakes in how the library is called (a negative budget, an unknown error boundary, a
decorator applied to a class) are not in this tree: they raise the builtin `TypeError` or
`ValueError` at the earliest point, usually decoration time, because they are bugs to fix
rather than outcomes to handle.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AgentStepsError",
    "BudgetStoreUnavailable",
    "StepBudgetExhausted",
    "StepDenied",
    "StepEscalated",
    "UnpricedModelError",
]

_LIMIT_UNITS = {"max_tokens": "tokens", "max_llm_calls": "calls"}


class AgentStepsError(Exception):
    """
    Base class of the exceptions agentsteps raises while your agent runs.

    .. versionadded:: 0.1.0
    """


class StepBudgetExhausted(AgentStepsError):
    """
    A step spent more than one of the limits of its `Budget`.

    It is raised by the usage record (or model call) that crossed the limit; that usage
    is still charged, so totals stay true. The step's error boundary then decides what
    its caller sees: ``"fail"`` lets this exception through, ``"continue"`` turns it into
    the step's default return value, ``"escalate"`` raises `StepEscalated` instead.

    Attributes:
        step: Name of the step whose budget ran out.
        function: Qualified name of the step's function.
        persona: Name of the persona the step ran under, or ``None``.
        limit: Which limit was crossed: ``"max_tokens"``, ``"max_usd"`` or
            ``"max_llm_calls"``.
        limit_value: The value of that limit.
        consumed_tokens: Tokens (input + output) charged to the step, this record included.
        consumed_usd: Dollars charged to the step, this record included.
        llm_calls: Model calls charged to the step, this record included.
        error_boundary: The step's boundary: ``"fail"``, ``"continue"`` or ``"escalate"``.
        trace_id: Hex trace id of the step's span, or ``None`` when tracing is off.
        span_id: Hex span id of the step's span, or ``None`` when tracing is off.
        shared_key: The ``shared_key`` of the step's budget when the limit is a fleet-wide
            one (then ``consumed_*`` are the fleet-wide figures), else ``None``.
        escalated: ``False`` here, ``True`` on `StepEscalated`.

    Example:
        >>> from agentsteps import Budget, StepBudgetExhausted, record_usage, step
        >>> @step(budget=Budget(max_tokens=100))
        ... def summarize():
        ...     record_usage(model="m", input_tokens=90, output_tokens=20, cost_usd=0)
        >>> try:
        ...     summarize()
        ... except StepBudgetExhausted as exc:
        ...     print(exc.limit, exc.consumed_tokens)
        max_tokens 110

    .. versionadded:: 0.1.0
    """

    escalated: bool = False

    def __init__(
        self,
        *,
        step: str,
        function: str,
        persona: str | None,
        limit: str,
        limit_value: int | float,
        consumed_tokens: int,
        consumed_usd: float,
        llm_calls: int,
        error_boundary: str,
        trace_id: str | None = None,
        span_id: str | None = None,
        shared_key: str | None = None,
    ) -> None:
        self.step = step
        self.function = function
        self.persona = persona
        self.limit = limit
        self.limit_value = limit_value
        self.consumed_tokens = consumed_tokens
        self.consumed_usd = consumed_usd
        self.llm_calls = llm_calls
        self.error_boundary = error_boundary
        self.trace_id = trace_id
        self.span_id = span_id
        self.shared_key = shared_key
        # The ledger of the step that tripped, so a boundary can tell its own exhaustion
        # from an enclosing step's passing through. Not pickled: it means nothing elsewhere.
        self._origin: object = None
        super().__init__(self._message())

    def _message(self) -> str:
        if self.limit == "max_usd":
            spent = f"${self.consumed_usd:.4f} > ${self.limit_value:.4f}"
        else:
            used = self.consumed_tokens if self.limit == "max_tokens" else self.llm_calls
            spent = f"{used} > {self.limit_value} {_LIMIT_UNITS.get(self.limit, '')}".rstrip()
        if self.shared_key is not None:
            return (
                f"step {self.step!r} exceeded the fleet-wide {self.limit} budget of shared "
                f"key {self.shared_key!r} ({spent})"
            )
        return f"step {self.step!r} exceeded {self.limit} budget ({spent})"

    def _fields(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "function": self.function,
            "persona": self.persona,
            "limit": self.limit,
            "limit_value": self.limit_value,
            "consumed_tokens": self.consumed_tokens,
            "consumed_usd": self.consumed_usd,
            "llm_calls": self.llm_calls,
            "error_boundary": self.error_boundary,
            "trace_id": self.trace_id,
            "span_id": self.span_id,
            "shared_key": self.shared_key,
        }

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only __init__ defeats Exception's default pickling (it replays args).
        return (_rebuild, (type(self), self._fields()))


class StepEscalated(StepBudgetExhausted):
    """
    A step with ``error_boundary="escalate"`` ran out of budget.

    It carries the same numbers as `StepBudgetExhausted` (it is a subclass, so handlers of
    the general case still see it) with ``escalated=True``, and the original exhaustion as
    ``__cause__``. Catch it in the persona or caller that should hand the work on, for
    example to a stronger model.

    .. versionadded:: 0.1.0
    """

    escalated = True


class StepDenied(AgentStepsError):
    """
    A ``pre_step`` hook refused to let a step run.

    Attributes:
        step: Name of the denied step.
        reason: The reason the hook gave.

    .. versionadded:: 0.1.0
    """

    def __init__(self, step: str, reason: str) -> None:
        self.step = step
        self.reason = reason
        super().__init__(f"step {step!r} was denied: {reason}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.step, self.reason))


class BudgetStoreUnavailable(AgentStepsError):
    """
    The store of a shared budget (``Budget(shared_key=...)``) could not be reached in time.

    Raised before a model call is sent when the budget's ``on_store_error`` is
    ``"fail_closed"`` (the default), so no request goes out that the fleet-wide limit
    could not vouch for. Usage of calls already made is never lost: it is queued and added
    to the store when it answers again. With ``on_store_error="fail_open"`` calls go on,
    charged locally, and a warning is logged once per outage instead.

    Attributes:
        shared_key: The budget's shared key.
        store: ``repr()`` of the store that failed.
        reason: What went wrong (the client's error).

    .. versionadded:: 0.2.0
    """

    def __init__(self, shared_key: str, store: str, reason: str) -> None:
        self.shared_key = shared_key
        self.store = store
        self.reason = reason
        super().__init__(
            f"the budget store {store} of shared key {shared_key!r} is unavailable "
            f"({reason}); the model call was not sent. Fix: bring the store back, or let "
            "calls go on while it is away with Budget(..., on_store_error='fail_open')"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.shared_key, self.store, self.reason))


class UnpricedModelError(AgentStepsError, LookupError):
    """
    Usage of a model with no known price was recorded under a dollar budget.

    A ``max_usd`` budget cannot count a call whose cost it does not know, so rather than
    charging it as $0 (a budget that could never trip), the record raises this and charges
    nothing. Fix it by registering the model's price (`register_price`), by passing the
    call's cost (``cost_usd=``), or, to accept unpriced calls as $0, with
    ``agentsteps.configure(unpriced="warn")`` (or ``"ignore"``).

    It is a `LookupError` too: the model was looked up in the prices and not found.

    Attributes:
        model: The model name that has no price, or ``None`` when none was given.
        step: Name of the step the usage was recorded in.
        budget_step: Name of the step whose ``max_usd`` budget needs the price (the step
            itself or one around it).

    Example:
        >>> from agentsteps import Budget, UnpricedModelError, record_usage, step
        >>> @step(budget=Budget(max_usd=0.01))
        ... def summarize():
        ...     record_usage(model="my-finetune", input_tokens=900, output_tokens=100)
        >>> try:
        ...     summarize()
        ... except UnpricedModelError as exc:
        ...     print(exc.model, exc.budget_step)
        my-finetune summarize

    .. versionadded:: 0.1.0
    """

    def __init__(self, model: str | None, step: str, budget_step: str) -> None:
        self.model = model
        self.step = step
        self.budget_step = budget_step
        where = (
            f"step {step!r}" if step == budget_step else f"step {step!r} (under {budget_step!r})"
        )
        if model is None:
            what = "usage without a model name has no price"
            fix = "pass model=... (and register its price) or cost_usd=..."
        else:
            what = f"no price is known for model {model!r}"
            fix = (
                f"agentsteps.register_price({model!r}, input_per_mtok=..., "
                "output_per_mtok=...), or pass cost_usd=... with the usage"
            )
        super().__init__(
            f"{what}, and {where} has a max_usd budget that cannot count it; nothing was "
            f"charged. Fix: {fix}; or count unpriced calls as $0 with "
            "agentsteps.configure(unpriced='warn')"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.model, self.step, self.budget_step))


def _rebuild(cls: type[StepBudgetExhausted], fields: dict[str, Any]) -> StepBudgetExhausted:
    return cls(**fields)
