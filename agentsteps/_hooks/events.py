"""The lifecycle events hooks react to, and the `HookContext` each handler receives."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from .._accounting.budget import Budget
    from .._accounting.usage import Usage
    from .._core.context import ActiveStep
    from .._core.records import StepStatus

__all__ = ["HookContext", "HookEvent"]


class HookEvent(str, enum.Enum):
    """
    The points of a persona's or step's life a hook can react to.

    Plain strings are accepted wherever a `HookEvent` is, in any case
    (``"pre_step"``, ``"PRE_STEP"``); an unknown name raises `ValueError` listing the
    valid ones.

    Example:
        >>> from agentsteps import HookEvent
        >>> HookEvent("Budget_Threshold")
        <HookEvent.BUDGET_THRESHOLD: 'budget_threshold'>

    .. versionadded:: 0.1.0
    """

    PERSONA_START = "persona_start"
    """A persona became active (its span is started)."""
    PERSONA_END = "persona_end"
    """A persona ended, however it ended (``status`` says how)."""
    PRE_STEP = "pre_step"
    """A step is about to run: handlers may deny it or replace its arguments."""
    POST_STEP = "post_step"
    """A step returned: handlers may replace its return value."""
    STEP_ERROR = "step_error"
    """An exception is leaving a step (failed, escalated or cancelled)."""
    BUDGET_THRESHOLD = "budget_threshold"
    """A step's budget use reached the handler's ``threshold_pct`` (once per activation)."""
    BUDGET_EXHAUSTED = "budget_exhausted"
    """A usage record took a step over one of its limits (once per activation)."""
    ESCALATED = "escalated"
    """A step's ``"escalate"`` boundary turned its exhaustion into `StepEscalated`."""

    def __str__(self) -> str:
        return self.value

    @classmethod
    def _missing_(cls, value: object) -> HookEvent:
        if isinstance(value, str):
            folded = value.lower()
            for member in cls:
                if member.value == folded:
                    return member
        msg = f"{value!r} is not a valid HookEvent; valid events are {valid_events()}"
        raise ValueError(msg)


def valid_events() -> str:
    """The event names, quoted and comma-separated, for error messages."""
    return ", ".join(repr(e.value) for e in HookEvent)


PERSONA_EVENTS = frozenset({HookEvent.PERSONA_START, HookEvent.PERSONA_END})
# Events dispatched from a point an async step can await (its wrapper); the others fire
# inside synchronous code (persona entry, record_usage) and take sync handlers only.
AWAITABLE_EVENTS = frozenset(
    {HookEvent.PRE_STEP, HookEvent.POST_STEP, HookEvent.STEP_ERROR, HookEvent.ESCALATED}
)

_frozen = attrs.setters.frozen


@attrs.define(eq=False, on_setattr=_frozen)
class HookContext:
    """
    What a hook handler receives: which event fired, for which step or persona, and
    how far its budget has gone. One object per firing, shared by the handlers of that
    firing in registration order, so a handler sees what earlier ones replaced or denied.

    Fields are read-only; handlers act through `deny`, `replace_args` and
    `replace_output`. Which fields are set depends on the event:

    ====================  ================================================================
    event                 also set
    ====================  ================================================================
    ``persona_start``     (``step`` is ``None``; ``function`` is the persona's)
    ``persona_end``       ``status``, ``exception`` when one ended it
    ``pre_step``          ``args``, ``kwargs``
    ``post_step``         ``output``
    ``step_error``        ``status``, ``exception``
    ``budget_threshold``  ``threshold_pct``
    ``budget_exhausted``  ``limit``, ``exception`` when this record (or refusal) raises it
    ``escalated``         ``status``, ``exception`` (the `StepEscalated`)
    ====================  ================================================================

    Example:
        >>> from agentsteps import Budget, HookEvent, on_step, record_usage, scoped_hooks, step
        >>> @step(budget=Budget(max_tokens=100))
        ... def plan():
        ...     record_usage(model="m", input_tokens=60, output_tokens=30, cost_usd=0)
        >>> with scoped_hooks():
        ...     @on_step("*", "plan", HookEvent.BUDGET_THRESHOLD, threshold_pct=80)
        ...     def warn(event):
        ...         print(event.step_name, event.budget_pct, event.usage.total_tokens)
        ...     plan()
        plan 90.0 90

    .. versionadded:: 0.1.0
    """

    event: HookEvent
    """The event that fired."""
    persona: str | None
    """Name of the persona (for step events: the persona the step runs under), or ``None``."""
    step_name: str | None
    """Name of the step, ``None`` for persona events."""
    function: str
    """Qualified name of the step's (or persona's) function."""
    step: ActiveStep | None
    """
    The step: name, ids, usage so far. ``None`` for persona events. In ``pre_step`` it
    is not running yet (and never will if denied).
    """
    usage: Usage
    """What the step and everything nested in it spent so far: what its budget counts."""
    budget: Budget | None
    """The step's own budget (``None`` for personas and steps without one)."""
    budget_pct: float | None
    """
    Highest share of any limit the step sets that is used so far, in percent (over
    100 once exhausted); ``None`` when the step sets no limit.
    """
    trace_id: str | None
    """Hex trace id of the step's (or persona's) span, ``None`` when tracing is off."""
    span_id: str | None
    """Hex span id of the step's (or persona's) span, ``None`` when tracing is off."""
    status: StepStatus | None = None
    """How it ends (``persona_end``, ``step_error``, ``escalated``)."""
    exception: BaseException | None = None
    """The exception involved: the one leaving the step or persona, or the exhaustion."""
    limit: str | None = None
    """For ``budget_exhausted``: ``"max_tokens"``, ``"max_usd"`` or ``"max_llm_calls"``."""
    threshold_pct: float | None = None
    """For ``budget_threshold``: the handler's threshold that was reached."""
    _args: tuple[Any, ...] = ()
    _kwargs: dict[str, Any] = attrs.field(factory=dict)
    _output: Any = None
    _deny_reason: str | None = None
    # Why args/output cannot be replaced here ("a step_scope block"), or None.
    _fixed: str | None = None

    @property
    def args(self) -> tuple[Any, ...]:
        """``pre_step``: the positional arguments the step will be called with."""
        return self._args

    @property
    def kwargs(self) -> Mapping[str, Any]:
        """``pre_step``: the keyword arguments the step will be called with (read-only)."""
        return MappingProxyType(self._kwargs)

    @property
    def output(self) -> Any:
        """``post_step``: what the step returned (or what an earlier handler put instead)."""
        return self._output

    @property
    def denied(self) -> bool:
        """Whether a ``pre_step`` handler has denied the step."""
        return self._deny_reason is not None

    @property
    def deny_reason(self) -> str | None:
        """The reason given by the first handler that denied the step."""
        return self._deny_reason

    def deny(self, reason: str) -> None:
        """
        Refuse to run the step: its caller gets `StepDenied` with ``reason``.

        Only in ``pre_step``. Later handlers still run (and see `denied`); the first
        reason given is kept.

        Raises:
            RuntimeError: Called for another event.
            TypeError: ``reason`` is not a str.
        """
        self._only_in(HookEvent.PRE_STEP, "deny")
        given: object = reason  # checked at run time: handlers are often untyped
        if not isinstance(given, str):
            msg = (
                "HookContext.deny(): 'reason' must be a str "
                f"(got {reason!r} of type {type(reason).__name__})"
            )
            raise TypeError(msg)
        if self._deny_reason is None:
            object.__setattr__(self, "_deny_reason", reason)

    def replace_args(self, *args: Any, **kwargs: Any) -> None:
        """
        Call the step with these arguments instead (all of them: nothing is merged).

        Only in ``pre_step`` of a decorated function (a ``step_scope`` block has none).

        Raises:
            RuntimeError: Called for another event, or on a ``step_scope`` block.
        """
        self._only_in(HookEvent.PRE_STEP, "replace_args")
        self._check_replaceable("replace_args", "arguments")
        object.__setattr__(self, "_args", args)
        object.__setattr__(self, "_kwargs", kwargs)

    def replace_output(self, value: Any) -> None:
        """
        Make the step return ``value`` instead of what it returned.

        Only in ``post_step`` of a function or generator (for a generator step, its
        return value, the ``StopIteration`` value).

        Raises:
            RuntimeError: Called for another event, or on a ``step_scope`` block or an
                async generator (neither has a return value).
        """
        self._only_in(HookEvent.POST_STEP, "replace_output")
        self._check_replaceable("replace_output", "return value")
        object.__setattr__(self, "_output", value)

    def _only_in(self, event: HookEvent, method: str) -> None:
        if self.event is not event:
            msg = (
                f"HookContext.{method}() is only valid in a {event.value} handler "
                f"(this is a {self.event.value} event)"
            )
            raise RuntimeError(msg)

    def _check_replaceable(self, method: str, what: str) -> None:
        if self._fixed is not None:
            msg = (
                f"HookContext.{method}(): step {self.step_name!r} is {self._fixed}, "
                f"which has no {what} to replace"
            )
            raise RuntimeError(msg)
