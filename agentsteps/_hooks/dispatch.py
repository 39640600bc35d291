"""
Running hook handlers at the lifecycle seams: selection, isolation, span events.

Every function here returns the error the caller must raise (or ``None``) instead of
raising it, so that the lifecycle can first put the step stack and the span in order.
That error is a handler's exception under ``configure(strict_hooks=True)``, an async
handler matched on a sync step (a usage error, always raised), or a `BaseException`
such as `KeyboardInterrupt` (which also stops the remaining handlers). Otherwise a
failing handler is logged on the ``agentsteps`` logger and the next one runs.

Handlers run with the step stack hidden (`current_step()` is ``None``), and hooks do
not fire for work done inside a handler. Both are for the same reason: a hook that
reacts to a budget must not spend that budget. Usage a handler records (say, a model
call asking a reviewer) would otherwise be charged to the very step whose threshold
fired, pushing it further over, possibly firing hooks again. Run such work as its own
`step` inside the handler to give it a budget and a span.

Cohesive: one seam function (sync and async) per hook event, all running handlers through
the same selection, isolation and error rule above; the lifecycle calls them as
``dispatch.<seam>``, and the rule reads best beside every seam that follows it.
"""

from __future__ import annotations

import inspect
import logging
from contextvars import ContextVar
from typing import Any

from .._accounting.ledger import LEDGER_LOCK, Ledger
from .._accounting.usage import Usage
from .._core import attributes as A
from .._core.config import SETTINGS
from .._core.context import CURRENT, ActivePersona, ActiveStep
from .._core.records import StepStatus
from ..exceptions import StepBudgetExhausted
from .events import HookContext, HookEvent
from .registry import REGISTRY, HookHandle, route

__all__ = [
    "IN_HANDLER",
    "after_charge",
    "after_refusal",
    "apost_step",
    "apre_step",
    "astep_failed",
    "persona_ended",
    "persona_started",
    "post_step",
    "pre_step",
    "step_failed",
]

LOG = logging.getLogger("agentsteps")
IN_HANDLER: ContextVar[bool] = ContextVar("agentsteps.in_hook", default=False)
# Latch key in Ledger.thresholds_fired for budget_exhausted (thresholds latch by handle).
_EXHAUSTED = "budget_exhausted"

Call = tuple[tuple[HookHandle, ...], HookContext]


def _persona_name(frame: ActiveStep | ActivePersona) -> str:
    persona = frame._persona
    return "" if persona is None else persona.name


def _select(event: HookEvent, persona: str, step_name: str | None) -> tuple[HookHandle, ...]:
    if not REGISTRY[event] or IN_HANDLER.get():
        return ()
    return route(event, persona, step_name)


def _step_context(
    event: HookEvent,
    frame: ActiveStep,
    figures: tuple[Usage, float | None] | None = None,
    **fields: Any,
) -> HookContext:
    if figures is None:
        ledger = frame._ledger
        with LEDGER_LOCK:
            figures = ledger.usage(), ledger.used_pct() if ledger.has_limits else None
    usage, pct = figures
    defn = frame._defn
    fixed = fields.pop("fixed", None)
    if defn.is_scope:
        fixed = "a step_scope block"
    return HookContext(
        event=event,
        persona=frame.persona,
        step_name=defn.name,
        function=defn.function,
        step=frame,
        usage=usage,
        budget=defn.budget,
        budget_pct=pct,
        trace_id=frame.trace_id,
        span_id=frame.span_id,
        fixed=fixed,
        **fields,
    )


def _persona_context(event: HookEvent, frame: ActivePersona, **fields: Any) -> HookContext:
    return HookContext(
        event=event,
        persona=frame.name,
        step_name=None,
        function=frame.function,
        step=None,
        usage=frame.subtree_usage,
        budget=None,
        budget_pct=None,
        trace_id=frame.trace_id,
        span_id=frame.span_id,
        **fields,
    )


# -- running handlers ------------------------------------------------------------------


def _run(hooks: tuple[HookHandle, ...], ctx: HookContext, frame: Any) -> BaseException | None:
    """Call ``hooks`` in order from sync code; returns the error to raise, if any."""
    error: BaseException | None = None
    hidden = CURRENT.set(None)
    guard = IN_HANDLER.set(True)
    try:
        for hook in hooks:
            if hook.is_async:
                if error is None:
                    error = _async_on_sync(hook, ctx)
                continue
            denied = ctx.denied
            try:
                result = hook.handler(ctx)
                if inspect.isawaitable(result):
                    _discard(result)
                    if error is None:
                        error = _async_on_sync(hook, ctx)
                    continue
            except Exception as exc:
                _mark(frame, ctx, hook, exc, denied)
                error = _handler_failed(hook, ctx, exc, error)
                continue
            except BaseException as exc:
                _mark(frame, ctx, hook, exc, denied)
                return exc
            _mark(frame, ctx, hook, None, denied)
    finally:
        IN_HANDLER.reset(guard)
        CURRENT.reset(hidden)
    return error


async def _arun(
    hooks: tuple[HookHandle, ...], ctx: HookContext, frame: Any
) -> BaseException | None:
    """Call ``hooks`` in order from an async step, awaiting the async ones."""
    error: BaseException | None = None
    hidden = CURRENT.set(None)
    guard = IN_HANDLER.set(True)
    try:
        for hook in hooks:
            denied = ctx.denied
            try:
                result = hook.handler(ctx)
                if inspect.isawaitable(result):
                    await result
            except Exception as exc:
                _mark(frame, ctx, hook, exc, denied)
                error = _handler_failed(hook, ctx, exc, error)
                continue
            except BaseException as exc:
                _mark(frame, ctx, hook, exc, denied)
                return exc
            _mark(frame, ctx, hook, None, denied)
    finally:
        IN_HANDLER.reset(guard)
        CURRENT.reset(hidden)
    return error


def _discard(awaitable: Any) -> None:
    close = getattr(awaitable, "close", None)
    if close is not None:
        close()  # no "coroutine was never awaited" warning: we report it ourselves


def _target(ctx: HookContext) -> str:
    if ctx.step_name is None:
        return f"persona {ctx.persona!r}"
    return f"step {ctx.step_name!r}"


def _async_on_sync(hook: HookHandle, ctx: HookContext) -> TypeError:
    msg = (
        f"async hook handler {hook.name} ({ctx.event.value}) matched {_target(ctx)}, "
        "which is synchronous: async handlers only run on async steps (async def, async "
        "generators, 'async with step_scope'). Make the handler a plain function, or "
        "narrow its pattern or step name"
    )
    return TypeError(msg)


def _handler_failed(
    hook: HookHandle, ctx: HookContext, exc: Exception, error: BaseException | None
) -> BaseException | None:
    if SETTINGS.strict_hooks and error is None:
        return exc
    LOG.error(
        "hook handler %s raised on %s of %s; %s",
        hook.name,
        ctx.event.value,
        _target(ctx),
        "an earlier handler's error propagates"
        if SETTINGS.strict_hooks
        else "ignored (configure(strict_hooks=True) to raise it)",
        exc_info=exc,
    )
    return error


def _mark(
    frame: Any, ctx: HookContext, hook: HookHandle, exc: BaseException | None, denied: bool
) -> None:
    """Add the span event that shows which handler reacted to what."""
    span = frame._span
    if span is None:
        return
    attributes: dict[str, str] = {A.HOOK_EVENT: ctx.event.value, A.HOOK_HANDLER: hook.name}
    if exc is not None:
        attributes[A.ERROR_TYPE] = type(exc).__qualname__
    reason = ctx.deny_reason
    if reason is not None and not denied:
        attributes[A.HOOK_DENIED] = reason
    span.add_event(A.EVENT_HOOK, attributes)


def _first(error: BaseException | None, new: BaseException | None) -> BaseException | None:
    return new if error is None else error


# -- persona seams (sync only) ---------------------------------------------------------


def persona_started(frame: ActivePersona) -> BaseException | None:
    """Run ``persona_start`` handlers for ``frame``."""
    hooks = _select(HookEvent.PERSONA_START, frame.name, None)
    if not hooks:
        return None
    return _run(hooks, _persona_context(HookEvent.PERSONA_START, frame), frame)


def persona_ended(
    frame: ActivePersona, status: StepStatus, exc: BaseException | None
) -> BaseException | None:
    """Run ``persona_end`` handlers for ``frame`` (its span is still open)."""
    hooks = _select(HookEvent.PERSONA_END, frame.name, None)
    if not hooks:
        return None
    ctx = _persona_context(HookEvent.PERSONA_END, frame, status=status, exception=exc)
    return _run(hooks, ctx, frame)


# -- step seams: sync and awaitable forms ------------------------------------------------


def _pre_step_call(frame: ActiveStep, args: Any, kwargs: Any) -> Call | None:
    hooks = _select(HookEvent.PRE_STEP, _persona_name(frame), frame._defn.name)
    if not hooks:
        return None
    return hooks, _step_context(HookEvent.PRE_STEP, frame, args=args, kwargs=kwargs)


def pre_step(
    frame: ActiveStep, args: Any, kwargs: Any
) -> tuple[HookContext | None, BaseException | None]:
    """Run ``pre_step`` handlers; returns the context (args, denial) and the error."""
    call = _pre_step_call(frame, args, kwargs)
    if call is None:
        return None, None
    return call[1], _run(*call, frame)


async def apre_step(
    frame: ActiveStep, args: Any, kwargs: Any
) -> tuple[HookContext | None, BaseException | None]:
    """`pre_step` for an async step: async handlers are awaited."""
    call = _pre_step_call(frame, args, kwargs)
    if call is None:
        return None, None
    return call[1], await _arun(*call, frame)


def _post_step_call(frame: ActiveStep, value: Any, fixed: str | None) -> Call | None:
    hooks = _select(HookEvent.POST_STEP, _persona_name(frame), frame._defn.name)
    if not hooks:
        return None
    return hooks, _step_context(HookEvent.POST_STEP, frame, output=value, fixed=fixed)


def post_step(frame: ActiveStep, value: Any) -> tuple[Any, BaseException | None]:
    """Run ``post_step`` handlers; returns the (possibly replaced) value and the error."""
    call = _post_step_call(frame, value, None)
    if call is None:
        return value, None
    error = _run(*call, frame)
    return call[1].output, error


async def apost_step(
    frame: ActiveStep, value: Any, fixed: str | None = None
) -> tuple[Any, BaseException | None]:
    """`post_step` for an async step: async handlers are awaited."""
    call = _post_step_call(frame, value, fixed)
    if call is None:
        return value, None
    error = await _arun(*call, frame)
    return call[1].output, error


def _failure_calls(frame: ActiveStep, status: StepStatus, exc: BaseException) -> list[Call]:
    persona, name = _persona_name(frame), frame._defn.name
    calls: list[Call] = []
    for event in (HookEvent.STEP_ERROR, HookEvent.ESCALATED):
        if event is HookEvent.ESCALATED and status is not StepStatus.ESCALATED:
            break
        hooks = _select(event, persona, name)
        if hooks:
            calls.append((hooks, _step_context(event, frame, status=status, exception=exc)))
    return calls


def step_failed(frame: ActiveStep, status: StepStatus, exc: BaseException) -> BaseException | None:
    """Run ``step_error`` (then, for an escalation, ``escalated``) handlers."""
    error: BaseException | None = None
    for hooks, ctx in _failure_calls(frame, status, exc):
        error = _first(error, _run(hooks, ctx, frame))
    return error


async def astep_failed(
    frame: ActiveStep, status: StepStatus, exc: BaseException
) -> BaseException | None:
    """`step_failed` for an async step: async handlers are awaited."""
    error: BaseException | None = None
    for hooks, ctx in _failure_calls(frame, status, exc):
        error = _first(error, await _arun(hooks, ctx, frame))
    return error


# -- budget seam ------------------------------------------------------------------------


# What one charge owes the budget hooks of one step: the threshold handlers it crossed,
# the exhaustion handlers and limit (if it latched one), and the step's figures at that
# moment. Worked out under the ledger lock of the charge itself (see plan_after_charge).
BudgetPlan = tuple[ActiveStep, list[HookHandle], tuple[HookHandle, ...], str | None, Usage, float]


def plan_after_charge(frame: ActiveStep | ActivePersona) -> list[BudgetPlan] | None:
    """
    Claim the ``budget_threshold`` and ``budget_exhausted`` firings a usage record is due,
    for every step in the chain above it, innermost first (a parent's budget counts its
    children's usage). Call it with ``LEDGER_LOCK`` held, right after the record is added:
    the figures handlers see are then those at the crossing, not what other threads
    charged before the handlers ran. Each handler fires once per step activation, latched
    in the step's ledger, however many records (or threads) cross its threshold.
    """
    if IN_HANDLER.get():
        return None
    plans: list[BudgetPlan] = []
    f: ActiveStep | ActivePersona | None = frame
    while f is not None:
        # A shared budget's limits live in its store (no local ones): its exhaustion,
        # latched by the fleet-wide crossing, still fires budget_exhausted here.
        ledger = f._ledger
        if isinstance(f, ActiveStep) and (ledger.has_limits or ledger.shared is not None):
            plan = _plan(f)
            if plan is not None:
                plans.append(plan)
        f = f._parent
    return plans


def after_charge(
    plans: list[BudgetPlan] | None, raised: StepBudgetExhausted | None
) -> BaseException | None:
    """
    Run the budget hooks `plan_after_charge` claimed (without the lock); returns the error
    to raise, if any. ``raised`` is the exhaustion the record is about to raise, if any.
    """
    error: BaseException | None = None
    for plan in plans or ():
        for hooks, ctx in _budget_calls(plan, raised):
            error = _first(error, _run(hooks, ctx, plan[0]))
    return error


def after_refusal(frame: ActiveStep, exc: StepBudgetExhausted) -> BaseException | None:
    """
    Fire ``budget_exhausted`` for a step whose budget refused a model call before it was
    made (`llm_call`'s pre-flight check); returns the error to raise instead, if any.

    Nothing was exceeded, so the ledger's own latch stays open for a real overrun later;
    the hook latch is shared with `after_charge`, so a step's handlers hear of its
    exhaustion once per activation, whichever way it came.
    """
    hooks = _select(HookEvent.BUDGET_EXHAUSTED, _persona_name(frame), frame._defn.name)
    if not hooks:
        return None
    with LEDGER_LOCK:
        fired = _fired(frame._ledger)
        if _EXHAUSTED in fired:
            return None
        fired.add(_EXHAUSTED)
    ctx = _step_context(HookEvent.BUDGET_EXHAUSTED, frame, limit=exc.limit, exception=exc)
    return _run(hooks, ctx, frame)


def _fired(ledger: Ledger) -> set[object]:
    """The budget hooks already fired for this activation (call with the lock held)."""
    fired = ledger.thresholds_fired
    if fired is None:
        fired = ledger.thresholds_fired = set()
    return fired


def _plan(frame: ActiveStep) -> BudgetPlan | None:
    persona, name = _persona_name(frame), frame._defn.name
    wanted = route(HookEvent.BUDGET_THRESHOLD, persona, name)
    on_exhausted = route(HookEvent.BUDGET_EXHAUSTED, persona, name)
    if not wanted and not on_exhausted:
        return None
    ledger = frame._ledger
    due: list[HookHandle] = []
    limit = None
    with LEDGER_LOCK:  # re-entrant: the charge holds it already
        pct = ledger.used_pct()
        fired = _fired(ledger)
        for hook in wanted:
            if pct >= hook.threshold_pct and hook not in fired:  # type: ignore[operator]
                fired.add(hook)
                due.append(hook)
        if on_exhausted and ledger.exhausted is not None and _EXHAUSTED not in fired:
            fired.add(_EXHAUSTED)
            limit = ledger.exhausted
        if not due and limit is None:
            return None
        usage = ledger.usage()
    return frame, due, on_exhausted, limit, usage, pct


def _budget_calls(plan: BudgetPlan, raised: StepBudgetExhausted | None) -> list[Call]:
    frame, due, on_exhausted, limit, usage, pct = plan
    figures = (usage, pct)
    calls: list[Call] = []
    event = HookEvent.BUDGET_THRESHOLD
    for hook in due:
        ctx = _step_context(event, frame, figures, threshold_pct=hook.threshold_pct)
        calls.append(((hook,), ctx))
    if limit is not None:
        exc = raised if raised is not None and raised._origin is frame._ledger else None
        ctx = _step_context(HookEvent.BUDGET_EXHAUSTED, frame, figures, limit=limit, exception=exc)
        calls.append((on_exhausted, ctx))
    return calls
