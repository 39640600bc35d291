"""
The hot path: how a step or persona starts and ends, with or without hooks.

Every decorated call and every scope goes through these functions, so they are written
for speed: no allocation that a disabled feature would not use, one lock-free
`ContextVar` set per push, and OpenTelemetry touched only when a tracer exists. The
wrappers (`_core/wrappers.py`, `_core/generators.py`) and the scopes call them in this
order::

    frame, args, kwargs = start(defn, args, kwargs)  # or: await astart(...)
    suspend(frame) / resume(frame)    # generators only (`stack.py`): around each yield
    complete(frame, value)            # or: await acomplete(...)
    fail(frame, exc)                  # or: await afail(...), inside the except block

Each kind of seam has one decision, taken in one place, whether a hook applies: `start`
(``pre_step``), `complete` (``post_step``; both see `_hooked`) and `fail`
(``step_error``/``escalated``, see `_failure_hooked`). The awaitable forms exist so that
async handlers can be awaited; they share everything but the awaited dispatch with the
sync ones. Every seam is guarded by one flag of `_hooks.registry.ACTIVE`, so a process
without hooks pays a flag read per seam; the hottest callers (the sync and async
wrappers) read that flag, and the note `_hooked` leaves on the definition, before
calling `start` (else `enter`): the same answer, one call less.

A step a ``pre_step`` hook selects starts in two moves, `prepare` (frame and span) then
`push`, with the handlers in between. A denied step never becomes current: its span ends
at once with status ``denied`` (marked as an error, the reason in its status) and the
caller gets `StepDenied`; a `run()` collector records it with that status. Its
``step_error`` hooks do not fire, since it never ran.

The frame stack itself is `stack.py`, the end of a frame (span, metrics, record) and
its interruption safety `ending.py`, the span attributes `step_spans.py`, the record
`step_records.py` and the error-boundary policy `boundary.py`.
"""

from __future__ import annotations

from typing import Any

from opentelemetry import trace

from .._hooks import dispatch as _dispatch
from .._hooks.events import HookContext, HookEvent
from .._hooks.registry import ACTIVE, step_events
from ..exceptions import StepBudgetExhausted, StepDenied
from .boundary import exhaustion_error, outcome
from .config import get_tracer
from .context import CURRENT, ActivePersona, ActiveStep
from .ending import end, end_detached, finish_interrupted
from .records import StepStatus
from .stack import (
    current_otel_context,
    otel_attach,
    otel_detach,
    pop,
    set_span_in_context,
)
from .step_spans import start_span

__all__ = [
    "abort",
    "acomplete",
    "afail",
    "afail_with",
    "astart",
    "complete",
    "enter",
    "fail",
    "fail_with",
    "prepare",
    "push",
    "start",
]

Frame = ActiveStep | ActivePersona
Arguments = tuple[Any, tuple[Any, ...], dict[str, Any]]
# The seams' event names as plain strings, as `step_events` returns them.
_PRE_STEP = HookEvent.PRE_STEP.value
_POST_STEP = HookEvent.POST_STEP.value


# -- the decisions: does a hook apply? ----------------------------------------------------


def _hooked(defn: Any, event: str) -> bool:
    """
    Whether a hook for ``event`` (``pre_step`` or ``post_step``) selects the step ``defn``:
    the one decision of those seams (the caller has read the seam's `ACTIVE` flag).

    When none does, that is noted on the definition (``plain_start`` / ``plain_end``) for
    this generation of the registry, and the hottest callers read the note instead of
    calling `start` (`acomplete`), one call less per step while hooks for other steps
    are registered::

        if ACTIVE.pre_step and defn.plain_start != ACTIVE.generation:
            frame, args, kwargs = start(defn, args, kwargs)
        else:
            frame = enter(defn)
    """
    generation = ACTIVE.generation  # before the lookup: a change in between only recomputes
    if defn.is_step and event in step_events(defn):
        return True
    if event is _PRE_STEP:
        defn.plain_start = generation
    else:
        defn.plain_end = generation
    return False


def _failure_hooked(frame: Frame, status: StepStatus) -> bool:
    """Whether ``step_error``/``escalated`` handlers may run for a frame ending ``status``."""
    # A "continue" step whose budget ran out returns its default: no exception leaves it.
    return ACTIVE.step_failure and status is not StepStatus.SKIPPED and frame._defn.is_step


# -- starting ---------------------------------------------------------------------------


def start(defn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Arguments:
    """
    Start one call of ``defn``: after its ``pre_step`` handlers when a hook selects it,
    else plainly (`enter`). Returns the frame and the arguments to call the body with.
    """
    if ACTIVE.pre_step and _hooked(defn, _PRE_STEP):
        frame = prepare(defn)
        try:
            ctx, error = _dispatch.pre_step(frame, args, kwargs)
        except BaseException as exc:
            abort(frame, exc)  # a handler was interrupted (KeyboardInterrupt): the step ends
            raise
        return _admit(frame, ctx, error, args, kwargs)
    return enter(defn), args, kwargs


async def astart(defn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Arguments:
    """`start` for an async call: async ``pre_step`` handlers are awaited."""
    if ACTIVE.pre_step and _hooked(defn, _PRE_STEP):
        frame = prepare(defn)
        try:
            ctx, error = await _dispatch.apre_step(frame, args, kwargs)
        except BaseException as exc:
            abort(frame, exc)  # cancelled or interrupted in a handler: the step ends
            raise
        return _admit(frame, ctx, error, args, kwargs)
    return enter(defn), args, kwargs


def _admit(
    frame: ActiveStep,
    ctx: HookContext | None,
    error: BaseException | None,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Arguments:
    """After the ``pre_step`` handlers: refuse the step, or make it current."""
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


def enter(defn: Any) -> Frame:
    """Create the frame for one activation, start its span and make it current."""
    parent = CURRENT.get()
    frame: Frame = ActiveStep(defn, parent) if defn.is_step else ActivePersona(defn, parent)
    refused = False
    before = None
    try:
        tracer = get_tracer()
        if tracer is not None:
            # One statement from start to store: the frame holds the span at once, so an
            # interruption after it (below) can end it.
            frame._span = span = start_span(tracer, frame)
            if span is not None:
                before = current_otel_context()
                frame._otel_token = otel_attach(set_span_in_context(span, before))
        frame._ctx_token = CURRENT.set(frame)
        if ACTIVE.persona_start and not defn.is_step:
            error = _dispatch.persona_started(frame)  # type: ignore[arg-type]
            if error is not None:
                refused = True
                fail(frame, error)  # the persona ends (failed) before its body runs
                raise error
    except BaseException as exc:
        if not refused:
            abort(frame, exc, before)
        raise
    return frame


def prepare(defn: Any) -> ActiveStep:
    """
    Create a step's frame and start its span without making it current: `pre_step`
    handlers run between this and `push`, and may deny the step (then it never runs).
    """
    frame = ActiveStep(defn, CURRENT.get())
    tracer = get_tracer()
    if tracer is not None:
        frame._span = start_span(tracer, frame)
    return frame


def push(frame: Frame) -> None:
    """Make a prepared frame current (a step whose ``pre_step`` handlers let it run)."""
    before = None
    try:
        span = frame._span
        if span is not None:
            before = current_otel_context()
            frame._otel_token = otel_attach(set_span_in_context(span, before))
        frame._ctx_token = CURRENT.set(frame)
    except BaseException as exc:
        abort(frame, exc, before)  # interrupted: see `abort`
        raise


def abort(frame: Frame, exc: BaseException, before: Any = None) -> None:
    """
    End a frame whose start was interrupted, wherever it got to; the caller re-raises.

    A KeyboardInterrupt from a signal handler (or any error from a hook) can land at any
    point of `enter`: after the span started, after the OpenTelemetry context was
    attached, after the frame was made current, even between a ``set`` and the store of
    its token (the interpreter checks for signals right after a call returns). The frame
    ends ``cancelled`` (as the table of statuses says for an interruption) with its record
    and span, and the stack and context are put back as they were: ``before`` is the
    OpenTelemetry context from before the attach, for when its token was lost.
    """
    if frame._ctx_token is not None:
        fail(frame, exc)  # current, with its tokens: pops it, runs failure hooks, ends it
        return
    if CURRENT.get() is frame:
        CURRENT.set(frame._parent)  # made current, but the token was lost
    token = frame._otel_token
    frame._otel_token = None
    if token is not None:
        otel_detach(token)
    elif before is not None and trace.get_current_span(current_otel_context()) is frame._span:
        otel_attach(before)  # attached, but the token was lost: put the old context back
    end(frame, outcome(frame, exc)[0], exc)


# -- ending: the body returned ------------------------------------------------------------


def complete(frame: Frame, value: Any, run_hooks: bool = True) -> Any:
    """
    End a frame whose body returned ``value``; returns what the caller should get.

    ``post_step`` handlers run here unless ``run_hooks`` is false (`acomplete` has
    awaited them already).
    """
    if frame._defn.is_step:
        if frame._ledger.exhausted is not None:  # the cheap look; `_overdue` decides
            overdue = _overdue(frame)  # type: ignore[arg-type]
            if overdue is not None:
                return fail_with(frame, overdue)
        defn = frame._defn
        if (
            ACTIVE.post_step
            and run_hooks
            and defn.plain_end != ACTIVE.generation  # see `_hooked`
            and _hooked(defn, _POST_STEP)
        ):
            value, error = _dispatch.post_step(frame, value)  # type: ignore[arg-type]
            if error is not None:
                return fail_with(frame, error)
    try:
        pop(frame)
        end(frame, StepStatus.COMPLETED, None)
    except BaseException as interrupted:
        finish_interrupted(frame, interrupted)
        raise
    return value


async def acomplete(frame: Frame, value: Any, fixed: str | None = None) -> Any:
    """
    `complete` for an async call, awaiting its ``post_step`` handlers. ``fixed`` says
    why its output cannot be replaced (``"an async generator"``), if it cannot.
    """
    if frame._defn.is_step:
        overdue = _overdue(frame)  # type: ignore[arg-type]
        if overdue is not None:
            return await afail_with(frame, overdue)
        if ACTIVE.post_step and _hooked(frame._defn, _POST_STEP):
            value, error = await _dispatch.apost_step(frame, value, fixed)  # type: ignore[arg-type]
            if error is not None:
                return await afail_with(frame, error)
    return complete(frame, value, False)


def _overdue(frame: ActiveStep) -> StepBudgetExhausted | None:
    """
    The exhaustion a step's exit raises, if usage observed from outside (another
    library's span) took it over its budget while it ran and nothing raised it yet.
    """
    ledger = frame._ledger
    if ledger.exhausted is None or ledger.delivered:
        return None
    return exhaustion_error(frame, ledger, ledger.exhausted)


# -- ending: an exception leaves ----------------------------------------------------------


def fail_with(frame: Frame, exc: BaseException) -> Any:
    """End a current frame with ``exc`` raised at its exit; the step's default if swallowed."""
    try:
        raise exc  # so that it has a traceback, and is being handled while handlers run
    except BaseException as raised:
        if fail(frame, raised):
            return frame._defn.default
        raise


async def afail_with(frame: Frame, exc: BaseException) -> Any:
    """`fail_with` for an async call, awaiting its failure handlers."""
    try:
        raise exc  # as `fail_with`
    except BaseException as raised:
        if await afail(frame, raised):
            return frame._defn.default
        raise


def fail(frame: Frame, exc: BaseException) -> bool:
    """
    End a frame that an exception is leaving; call it inside the ``except`` block.

    Returns True when the caller should swallow ``exc`` and return the step's default
    (a ``"continue"`` boundary). Raises `StepEscalated` for an ``"escalate"`` boundary.
    Otherwise returns False and the caller re-raises ``exc`` unchanged (unless a
    ``step_error`` handler's error is raised instead, see `_hooks/dispatch.py`).
    """
    try:
        pop(frame)
        status, error = outcome(frame, exc)
        hook_error = None
        if _failure_hooked(frame, status):
            hook_error = _dispatch.step_failed(frame, status, error)  # type: ignore[arg-type]
        end(frame, status, error)
    except BaseException:
        finish_interrupted(frame, exc)  # an interruption landed before the end completed
        raise
    return _swallow(exc, status, error, hook_error)


async def afail(frame: Frame, exc: BaseException) -> bool:
    """`fail` for an async call, awaiting its ``step_error``/``escalated`` handlers."""
    try:
        pop(frame)
        status, error = outcome(frame, exc)
        hook_error = None
        if _failure_hooked(frame, status):
            hook_error = await _dispatch.astep_failed(frame, status, error)  # type: ignore[arg-type]
        end(frame, status, error)
    except BaseException:
        finish_interrupted(frame, exc)  # cancelled or interrupted before the end completed
        raise
    return _swallow(exc, status, error, hook_error)


def _swallow(
    exc: BaseException, status: StepStatus, error: BaseException, hook_error: BaseException | None
) -> bool:
    """What `fail` tells its caller, once the frame has ended: raise, or swallow ``exc``."""
    if hook_error is not None:
        raise hook_error
    if error is not exc:
        raise error
    return status is StepStatus.SKIPPED
