"""
Error-boundary policy: how a frame that an exception leaves ends, and the budget error.

`outcome` maps the exception to a status and to what the caller sees (the exception
itself, or a `StepEscalated` for an ``"escalate"`` step whose own budget ran out);
`exhaustion_error` builds the typed error for a step going over a limit.
"""

from __future__ import annotations

import asyncio
import builtins
from typing import Any

from .._accounting.budget import ErrorBoundary
from .._accounting.ledger import LEDGER_LOCK, Ledger
from ..exceptions import StepBudgetExhausted, StepEscalated
from .context import ActivePersona, ActiveStep
from .records import StepStatus

__all__ = ["exhaustion_error", "outcome"]

_CANCELLING = (asyncio.CancelledError, KeyboardInterrupt, GeneratorExit)
_EXCEPTION_GROUP: Any = getattr(builtins, "BaseExceptionGroup", None)  # Python 3.11+


def outcome(
    frame: ActiveStep | ActivePersona, exc: BaseException
) -> tuple[StepStatus, BaseException]:
    """
    How a frame that ``exc`` is leaving ends, and what its caller sees: ``exc`` itself,
    or a `StepEscalated` for a step whose own budget ran out under ``"escalate"``.
    """
    defn = frame._defn
    own: BaseException | None = exc
    if defn.is_step and _EXCEPTION_GROUP is not None and isinstance(exc, _EXCEPTION_GROUP):
        # asyncio.TaskGroup reports a child's error in a group: when everything in it is
        # this step's own exhaustion, the step's boundary still decides.
        own = _sole_exhaustion(exc, frame._ledger)
    if (
        defn.is_step
        and isinstance(own, StepBudgetExhausted)
        and own._origin is frame._ledger
        and not isinstance(own, StepEscalated)
    ):
        boundary = defn.boundary
        if boundary is ErrorBoundary.CONTINUE:
            return StepStatus.SKIPPED, exc
        if boundary is ErrorBoundary.ESCALATE:
            escalated = StepEscalated(**own._fields())
            escalated._origin = frame._ledger
            escalated.__cause__ = exc
            return StepStatus.ESCALATED, escalated
        return StepStatus.FAILED, exc
    if isinstance(exc, _CANCELLING) or not isinstance(exc, Exception):
        return StepStatus.CANCELLED, exc
    return StepStatus.FAILED, exc


def _sole_exhaustion(group: Any, ledger: Ledger) -> BaseException | None:
    """The first exhaustion in ``group`` if every exception in it is ``ledger``'s own."""
    mine, rest = group.split(
        lambda e: (
            isinstance(e, StepBudgetExhausted)
            and e._origin is ledger
            and not isinstance(e, StepEscalated)
        )
    )
    if mine is None or rest is not None:
        return None
    while isinstance(mine, _EXCEPTION_GROUP):
        mine = mine.exceptions[0]
    return mine  # type: ignore[no-any-return]


def exhaustion_error(
    frame: ActiveStep,
    ledger: Ledger,
    limit: str,
    consumed: tuple[int, int, int] | None = None,
) -> StepBudgetExhausted:
    """
    The typed error for ``frame`` going over ``limit``; marks it delivered.

    ``consumed`` is (tokens, nano-dollars, calls) as the caller read them under the lock
    when the limit was crossed; without it the ledger is read now, which may already
    include records other threads made since.
    """
    with LEDGER_LOCK:
        ledger.delivered = True
        if consumed is None:
            consumed = (ledger.input + ledger.output, ledger.nanos, ledger.calls)
    shared = ledger.shared
    if shared is not None and shared.figures is not None:
        # A fleet-wide limit: the figures that crossed it are the store's.
        consumed = shared.figures.spent.as_tuple()
    tokens, nanos, calls = consumed
    budget = frame._defn.budget
    trace_id, span_id = frame.trace_id, frame.span_id
    exc = StepBudgetExhausted(
        step=frame._defn.name,
        function=frame._defn.function,
        persona=frame.persona,
        limit=limit,
        limit_value=getattr(budget, limit),
        consumed_tokens=tokens,
        consumed_usd=nanos / 1_000_000_000,
        llm_calls=calls,
        error_boundary=frame._defn.boundary.value,
        trace_id=trace_id,
        span_id=span_id,
        shared_key=None if shared is None else shared.key,
    )
    exc._origin = ledger
    return exc
