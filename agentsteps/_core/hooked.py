"""
Lifecycle paths taken only when hooks are registered: ``pre_step`` entry, and the
awaitable endings of async steps (whose ``async def`` handlers must be awaited).

A step with ``pre_step`` hooks starts in two moves: `prepare` (frame and span), the
handlers, then `push`. A denied step never becomes current: its span ends at once with
status ``denied`` (marked as an error, the reason in its status) and the caller gets
`StepDenied`; a `run()` collector records it with that status. Its ``step_error`` hooks
do not fire, since it never ran.
"""

from __future__ import annotations

from typing import Any

from .._hooks import dispatch as _dispatch
from .._hooks.events import HookContext
from .._hooks.registry import ACTIVE
from ..exceptions import StepDenied
from .context import ActivePersona, ActiveStep
from .lifecycle import (
    abort,
    complete,
    end_detached,
    exhaustion_error,
    outcome,
    pop,
    prepare,
    push,
)
from .records import StepStatus

__all__ = ["acomplete", "aenter_hooked", "afail", "enter_hooked"]

Arguments = tuple[ActiveStep, tuple[Any, ...], dict[str, Any]]


def enter_hooked(defn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Arguments:
    """Start a step after its ``pre_step`` handlers: the frame and the arguments to use."""
    frame = prepare(defn)
    try:
        ctx, error = _dispatch.pre_step(frame, args, kwargs)
    except BaseException as exc:
        abort(frame, exc)  # a handler was interrupted (KeyboardInterrupt): the step ends
        raise
    return _admit(frame, ctx, error, args, kwargs)


async def aenter_hooked(defn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Arguments:
    """`enter_hooked` for an async step: async ``pre_step`` handlers are awaited."""
    frame = prepare(defn)
    try:
        ctx, error = await _dispatch.apre_step(frame, args, kwargs)
    except BaseException as exc:
        abort(frame, exc)  # cancelled or interrupted in a handler: the step ends
        raise
    return _admit(frame, ctx, error, args, kwargs)


def _admit(
    frame: ActiveStep,
    ctx: HookContext | None,
    error: BaseException | None,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Arguments:
    if error is not None:
        end_detached(frame, outcome(frame, error)[0], error)
        raise error
    if ctx is not None:
        reason = ctx.deny_reason
        if reason is not None:
            denied = StepDenied(frame._defn.name, reason)
            end_detached(frame, StepStatus.DENIED, denied)
            raise denied
        args, kwargs = ctx._args, ctx._kwargs
    push(frame)
    return frame, args, kwargs


async def acomplete(frame: ActiveStep | ActivePersona, value: Any, fixed: str | None = None) -> Any:
    """
    `complete` for an async step, awaiting its ``post_step`` handlers. ``fixed`` says
    why its output cannot be replaced (``"an async generator"``), if it cannot.
    """
    if frame._defn.is_step:
        ledger = frame._ledger
        if ledger.exhausted is not None and not ledger.delivered:
            exc = exhaustion_error(frame, ledger, ledger.exhausted)  # type: ignore[arg-type]
            return await _afail_with(frame, exc)
        if ACTIVE.post_step:
            value, error = await _dispatch.apost_step(frame, value, fixed)  # type: ignore[arg-type]
            if error is not None:
                return await _afail_with(frame, error)
    return complete(frame, value, False)


async def _afail_with(frame: ActiveStep | ActivePersona, exc: BaseException) -> Any:
    if await afail(frame, exc):
        return frame._defn.default
    raise exc


async def afail(frame: ActiveStep | ActivePersona, exc: BaseException) -> bool:
    """`fail` for an async step, awaiting its ``step_error``/``escalated`` handlers."""
    pop(frame)
    status, error = outcome(frame, exc)
    hook_error = None
    if ACTIVE.step_failure and status is not StepStatus.SKIPPED and frame._defn.is_step:
        hook_error = await _dispatch.astep_failed(frame, status, error)  # type: ignore[arg-type]
    end_detached(frame, status, error)
    if hook_error is not None:
        raise hook_error
    if error is not exc:
        raise error
    return status is StepStatus.SKIPPED
