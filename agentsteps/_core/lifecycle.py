"""
The hot path: how a step or persona starts, pauses, resumes and ends.

Every decorated call and every scope goes through these few functions, so they are
written for speed: no allocation that a disabled feature would not use, one lock-free
`ContextVar` set per push, and OpenTelemetry touched only when a tracer exists.
The decorator wrappers (`_core/wrappers.py`) and the scopes call them in this order::

    frame = enter(defn)               # span started, frame pushed
    suspend(frame) / resume(frame)    # generators only: around each yield to the caller
    complete(frame, value)            # or: fail(frame, exc) inside the except block

Steps with ``pre_step`` hooks start in two moves instead, ``prepare`` then ``push``, with
the handlers in between (see `hooked.py`). Every hook seam here is guarded by one flag
of `_hooks.registry.ACTIVE`, so a process without hooks pays a flag read per seam.
"""

from __future__ import annotations

import asyncio
import builtins
import logging
import time
from contextvars import ContextVar
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext
from opentelemetry.trace import Status, StatusCode, format_span_id

from .._accounting.budget import ErrorBoundary
from .._accounting.ledger import LEDGER_LOCK, Ledger
from .._core.instruments import _API as _METER_API
from .._core.instruments import STATE as _METRICS
from .._core.instruments import get_instruments, step_ended
from .._hooks import dispatch as _dispatch
from .._hooks.events import HookEvent
from .._hooks.registry import ACTIVE, step_events
from ..exceptions import StepBudgetExhausted, StepEscalated
from . import attributes as A
from .config import SETTINGS, get_tracer
from .context import CURRENT, ActivePersona, ActiveStep
from .records import CompletedPersona, CompletedStep, StepStatus
from .telemetry_log import log_telemetry_failure

__all__ = [
    "abort",
    "begin_generator",
    "complete",
    "current_otel_context",
    "enter",
    "fail",
    "fail_with",
    "is_current",
    "outcome",
    "pop",
    "prepare",
    "push",
    "resume",
    "suspend",
]

_set_span_in_context = trace.set_span_in_context


def _otel_context_var() -> Any:
    """
    The ContextVar behind OpenTelemetry's current context, if the default runtime holds it.

    ``attach``/``detach``/``get_current`` reach that variable through two or three Python
    calls each, and a generator step makes several per item. With the default runtime
    (anything else, chosen by ``OTEL_PYTHON_CONTEXT``, keeps the API path) the same
    operations are made on the variable directly; a failed reset still goes through
    ``detach``, which logs it (and raises nothing) as the API does.
    """
    runtime = getattr(otel_context, "_RUNTIME_CONTEXT", None)
    var = getattr(runtime, "_current_context", None)
    if type(runtime) is ContextVarsRuntimeContext and isinstance(var, ContextVar):
        return var
    return None


_OTEL_VAR = _otel_context_var()
if _OTEL_VAR is not None:
    _attach = _OTEL_VAR.set
    _get_current = _OTEL_VAR.get
    _reset = _OTEL_VAR.reset

    def _detach(token: Any) -> None:
        try:
            _reset(token)
        except Exception:
            otel_context.detach(token)  # fails the same way, and logs it as the API does

    def _detach_quietly(token: Any) -> None:
        try:
            _reset(token)
        except (ValueError, RuntimeError):
            pass  # already detached, by the code an interruption stopped half-way

else:  # pragma: no cover - another runtime context was configured
    _attach = otel_context.attach
    _get_current = otel_context.get_current
    _detach = _detach_quietly = otel_context.detach

current_otel_context = _get_current
"""The current OpenTelemetry context, read the fast way (see `_otel_context_var`)."""
_INTERNAL = trace.SpanKind.INTERNAL
_POST_STEP = HookEvent.POST_STEP.value  # post_step handlers run only for steps a hook selects
logger = logging.getLogger("agentsteps")
_CANCELLING = (asyncio.CancelledError, KeyboardInterrupt, GeneratorExit)
# Statuses whose span is marked as an error; a denied step's caller gets StepDenied.
_ERROR_STATUSES = (StepStatus.FAILED, StepStatus.ESCALATED, StepStatus.DENIED)


def enter(defn: Any) -> ActiveStep | ActivePersona:
    """Create the frame for one activation, start its span and make it current."""
    parent = CURRENT.get()
    frame: ActiveStep | ActivePersona = (
        ActiveStep(defn, parent) if defn.is_step else ActivePersona(defn, parent)
    )
    refused = False
    before = None
    try:
        tracer = get_tracer()
        if tracer is not None:
            # One statement from start to store: the frame holds the span at once, so an
            # interruption after it (below) can end it.
            frame._span = span = _start_span(tracer, frame)
            if span is not None:
                before = _get_current()
                frame._otel_token = _attach(_set_span_in_context(span, before))
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


def abort(frame: ActiveStep | ActivePersona, exc: BaseException, before: Any = None) -> None:
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
        _detach(token)
    elif before is not None and trace.get_current_span(_get_current()) is frame._span:
        _attach(before)  # attached, but the token was lost: put the old context back
    _end(frame, outcome(frame, exc)[0], exc)


def prepare(defn: Any) -> ActiveStep:
    """
    Create a step's frame and start its span without making it current: `pre_step`
    handlers run between this and `push`, and may deny the step (then it never runs).
    """
    frame = ActiveStep(defn, CURRENT.get())
    tracer = get_tracer()
    if tracer is not None:
        frame._span = _start_span(tracer, frame)
    return frame


def _start_span(tracer: Any, frame: ActiveStep | ActivePersona) -> Any:
    """Start the frame's span; ``None`` (the step runs untraced) if tracing fails."""
    defn = frame._defn
    try:
        if SETTINGS.early_attributes:
            return tracer.start_span(
                defn.span_name, kind=_INTERNAL, attributes=_start_attributes(frame)
            )
        return tracer.start_span(defn.span_name, kind=_INTERNAL)
    except Exception:
        # A span processor's on_start raised (the SDK does not guard them). Telemetry
        # must not break the program: the step runs, and is recorded, without a span.
        log_telemetry_failure("start", f"the span of {defn.name!r}", "it runs untraced")
        return None


def _start_attributes(frame: ActiveStep | ActivePersona) -> dict[str, Any]:
    """What a sampler may want to see: operation, agent (persona) and requested model."""
    defn = frame._defn
    attributes: dict[str, Any] = defn.span_attributes
    persona = frame._persona
    if defn.is_step and (persona is not None or (defn.model is None and frame._model)):
        attributes = dict(attributes)
        if persona is not None:
            attributes[A.GEN_AI_AGENT_NAME] = persona._defn.name
        if defn.model is None and frame._model:
            attributes[A.GEN_AI_REQUEST_MODEL] = frame._model
    return attributes


def push(frame: ActiveStep | ActivePersona) -> None:
    """Make a prepared frame current (a step whose ``pre_step`` handlers let it run)."""
    before = None
    try:
        span = frame._span
        if span is not None:
            before = _get_current()
            frame._otel_token = _attach(_set_span_in_context(span, before))
        frame._ctx_token = CURRENT.set(frame)
    except BaseException as exc:
        abort(frame, exc, before)  # interrupted: see `abort`
        raise


def begin_generator(frame: ActiveStep | ActivePersona, consumer: Any) -> None:
    """
    Set up a generator frame for `suspend`/`resume`, right after `enter` made it current;
    ``consumer`` is the OpenTelemetry context that was current before `enter`.
    """
    frame._body_frame = None
    frame._body_context = None
    frame._resume_parent = consumer


def suspend(frame: ActiveStep | ActivePersona) -> None:
    """
    A generator's body yielded: give the consumer its context back, keeping the body's.

    The body may have opened a scope (``with step_scope(...)``, a span) that spans the
    ``yield``: what it made current is saved here and restored by `resume`, so the body
    goes on inside that scope, and the consumer never sees it.
    """
    body = CURRENT.get()
    frame._body_frame = None if body is frame else body
    # `pop`, inlined: this runs once per item.
    try:
        CURRENT.reset(frame._ctx_token)
    except (ValueError, RuntimeError):
        # Resumed from another context (see `pop`), or the token is a spent one because
        # an interruption landed between `resume`'s set and the store of its token.
        CURRENT.set(frame._parent)
    token = frame._otel_token
    if token is not None:
        frame._body_context = _get_current()
        frame._otel_token = None
        _detach(token)


def resume(frame: ActiveStep | ActivePersona) -> None:
    """Make a suspended generator frame current again, as the body left it."""
    if frame._span is not None:
        context = frame._body_context
        consumer = _get_current()
        if context is None:
            # Never suspended (closed from inside its own first run): start from the span.
            context = _set_span_in_context(frame._span, consumer)
        elif consumer is not frame._resume_parent:
            # The consumer's context changed between two items (new baggage, another
            # current span): rebuild the body's context on it. A consumer usually resumes
            # from the same context, and then the saved one is exact and free.
            context = _rebase(context, frame._resume_parent, consumer)
            frame._resume_parent = consumer
        frame._otel_token = _attach(context)
    body = frame._body_frame
    frame._ctx_token = CURRENT.set(frame if body is None else body)


def _rebase(body: Any, old_base: Any, new_base: Any) -> Any:
    """``body`` (a context built on ``old_base``) rebuilt on ``new_base``."""
    own = {k: v for k, v in body.items() if k not in old_base or old_base[k] is not v}
    return otel_context.Context({**new_base, **own})


def pop(frame: ActiveStep | ActivePersona) -> None:
    """Stop a frame being current, restoring what was current before `push`/`enter`."""
    if not is_current(frame):
        # The frame ends where it is not current: a scope a generator's body opened across
        # a ``yield``, closed by the garbage collector finalising the body on its own
        # (objects of one garbage cycle are finalised in no set order, so the body may go
        # before its step could resume it). The stack here belongs to whatever code is
        # running; restoring this frame's tokens would put a finished step back on it.
        frame._otel_token = None
        return
    # The token stays on the frame until it is detached: an interruption before that
    # leaves it for `finish_interrupted`.
    token = frame._otel_token
    try:
        try:
            CURRENT.reset(frame._ctx_token)
        except (ValueError, RuntimeError):
            # The token belongs to another context (an async generator finalised by the
            # event loop), or is spent (an interruption landed between a set and the store
            # of its token): put the parent back by hand rather than leave this frame current.
            CURRENT.set(frame._parent)
    finally:  # also when an interruption lands right after the reset
        if token is not None:
            _detach(token)
            frame._otel_token = None


def is_current(frame: ActiveStep | ActivePersona) -> bool:
    """
    Whether ``frame`` is the current frame here, or encloses it (frames left open inside
    it). Scopes check it before restoring what was current when they began: see `pop`.
    """
    current = CURRENT.get()
    while current is not None:
        if current is frame:
            return True
        current = current._parent
    return False


def complete(frame: ActiveStep | ActivePersona, value: Any, run_hooks: bool = True) -> Any:
    """
    End a frame whose body returned ``value``; returns what the caller should get.

    ``post_step`` handlers run here unless ``run_hooks`` is false (an async step's
    wrapper has awaited them already, see `hooked.py`).
    """
    if frame._defn.is_step:
        ledger = frame._ledger
        if ledger.exhausted is not None and not ledger.delivered:
            # Usage observed from outside (another library's span) took the step over its
            # budget while it ran: its exit is the checkpoint where that is raised.
            exc = exhaustion_error(frame, ledger, ledger.exhausted)  # type: ignore[arg-type]
            return fail_with(frame, exc)
        # step_events(defn), with its cache check inlined (every step passes here).
        if (
            ACTIVE.post_step
            and run_hooks
            and _POST_STEP
            in (
                ev[1]
                if (ev := frame._defn.hook_events) is not None and ev[0] == ACTIVE.generation
                else step_events(frame._defn)
            )
        ):
            value, error = _dispatch.post_step(frame, value)  # type: ignore[arg-type]
            if error is not None:
                return fail_with(frame, error)
    try:
        pop(frame)
        _end(frame, StepStatus.COMPLETED, None)
    except BaseException as interrupted:
        finish_interrupted(frame, interrupted)
        raise
    return value


def fail_with(frame: ActiveStep | ActivePersona, exc: BaseException) -> Any:
    """End a current frame with ``exc`` raised at its exit; the step's default if swallowed."""
    try:
        raise exc
    except BaseException as raised:
        if fail(frame, raised):
            return frame._defn.default
        raise


def fail(frame: ActiveStep | ActivePersona, exc: BaseException) -> bool:
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
        if ACTIVE.step_failure and status is not StepStatus.SKIPPED and frame._defn.is_step:
            hook_error = _dispatch.step_failed(frame, status, error)  # type: ignore[arg-type]
        _end(frame, status, error)
    except BaseException:
        finish_interrupted(frame, exc)  # an interruption landed before the end completed
        raise
    if hook_error is not None:
        raise hook_error
    if error is not exc:
        raise error
    return status is StepStatus.SKIPPED


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


_EXCEPTION_GROUP: Any = getattr(builtins, "BaseExceptionGroup", None)  # Python 3.11+


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


def end_detached(
    frame: ActiveStep | ActivePersona, status: StepStatus, exc: BaseException | None
) -> None:
    """
    End a frame that is not current: a generator closed between two resumes, a step
    denied before it started, an async step whose hooks were awaited after `pop`.
    """
    try:
        _end(frame, status, exc)
    except BaseException as interrupted:
        finish_interrupted(frame, interrupted)
        raise


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


def _end(
    frame: ActiveStep | ActivePersona,
    status: StepStatus,
    exc: BaseException | None,
    run_hooks: bool = True,
) -> None:
    if ACTIVE.persona_end and run_hooks and not frame._defn.is_step:
        # Before the span ends, so the handlers' span events land on it; their error (strict
        # mode) is raised once the persona has ended all the same.
        try:
            error = _dispatch.persona_ended(frame, status, exc)  # type: ignore[arg-type]
        finally:
            _end(frame, status, exc, False)
        if error is not None:
            raise error
        return
    span = frame._span
    run = frame._run
    is_step = frame._defn.is_step
    record: Any = None
    done = 0
    try:
        if span is not None:
            try:
                if span.is_recording():
                    _finish_span(frame, span, status, exc)
                else:
                    span.end()
            except Exception:
                # A span processor's on_end raised (the SDK does not guard them): the
                # step's outcome and its record must not depend on telemetry.
                log_telemetry_failure("end", f"the span of {frame._defn.name!r}")
        done = 1
        # The fast "no meter provider" test of get_instruments, inlined: a call costs more.
        if is_step and (_METRICS.maybe or _METER_API._METER_PROVIDER is not None):
            instruments = get_instruments()
            if instruments is not None:
                try:
                    step_ended(instruments, frame, status, exc)
                except Exception:
                    # A metric reader or view raised: the step's outcome must not depend on it.
                    log_telemetry_failure("record", f"the metrics of {frame._defn.name!r}")
        if run is not None:
            record = _record(frame, status, exc, is_step)
            _add(run, record, is_step)
        else:
            frame._ledger.ended = 1  # no record to be exact for: see _record
        frame._ledger.closed = True
    except BaseException:
        # An interruption (a signal's KeyboardInterrupt) landed part-way: finish what is
        # left (each part at most once), then let it go on.
        if done == 0 and span is not None:
            _quietly(span.end)
        if run is None:
            frame._ledger.ended = 1
        else:
            if record is None:
                record = _record(frame, status, exc, is_step)
            _add(run, record, is_step, once=True)
        frame._ledger.closed = True
        raise


def _quietly(end: Any) -> None:
    try:
        end()
    except Exception:  # telemetry must not replace the interruption being handled
        pass


def finish_interrupted(frame: ActiveStep | ActivePersona, exc: BaseException) -> None:
    """
    Make sure ``frame`` has ended after an interruption landed while it was being ended
    (at the entry of `complete`, `fail` or `_end`, before their own guards): pop it if
    it is still current, and end it (``cancelled``) unless its end completed.
    """
    if frame._ledger.closed:
        return
    if is_current(frame):
        pop(frame)
    else:
        token = frame._otel_token
        frame._otel_token = None
        if token is not None:
            _detach_quietly(token)  # pop may have detached it just before the interruption
    _end(frame, outcome(frame, exc)[0], exc, False)


def _finish_span(
    frame: ActiveStep | ActivePersona, span: Any, status: StepStatus, exc: BaseException | None
) -> None:
    ledger = frame._ledger
    # Unlocked first look: counters only grow, and a step that recorded nothing is the
    # common case. The figures themselves are read under the lock.
    has_usage = ledger.calls or ledger.input or ledger.output or ledger.nanos
    if has_usage:
        usage: dict[str, Any] = {}
        with LEDGER_LOCK:
            _usage_attributes(usage, ledger)
            last_model = ledger.last_model
    if not has_usage and exc is None:
        # The common case (a step that ended without error and spent nothing itself or
        # below): its attributes are the same every time, so they are built once.
        span.set_attributes(_static_end_attributes(frame, status))
        span.end()
        return
    attributes = _static_end_attributes(frame, status).copy()
    if has_usage:
        attributes.update(usage)
    if has_usage and last_model is not None:
        attributes[A.GEN_AI_RESPONSE_MODEL] = last_model
    if exc is not None and status is not StepStatus.COMPLETED:
        if status is StepStatus.SKIPPED:
            span.add_event(A.EVENT_BUDGET_EXHAUSTED, _exhaustion_event(exc))
        elif status in _ERROR_STATUSES:
            attributes[A.ERROR_TYPE] = type(exc).__qualname__
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
        else:
            attributes[A.ERROR_TYPE] = type(exc).__qualname__
        if isinstance(exc, StepBudgetExhausted) and exc._origin is ledger:
            attributes[A.BUDGET_EXHAUSTED_LIMIT] = exc.limit
    span.set_attributes(attributes)
    span.end()


_END_CACHE_LIMIT = 64
_MAX_INT64 = 2**63 - 1  # the largest integer an OpenTelemetry attribute carries


def _static_end_attributes(frame: ActiveStep | ActivePersona, status: StepStatus) -> dict[str, Any]:
    """
    The attributes a span ends with that depend only on the definition, persona, model and
    status, cached on the definition (never mutate the result).
    """
    defn = frame._defn
    persona = frame._persona
    early = SETTINGS.early_attributes
    key = (status, None if persona is None else persona._defn.name, frame._model, early)
    cached = defn.end_cache.get(key)
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    attributes: dict[str, Any] = dict(defn.end_attributes)
    if not early:
        attributes.update(_start_attributes(frame))
    attributes[A.STEP_STATUS if defn.is_step else A.PERSONA_STATUS] = status.value
    if len(defn.end_cache) < _END_CACHE_LIMIT:  # bounded: personas x models x statuses
        defn.end_cache[key] = attributes
    return attributes


def _usage_attributes(attributes: dict[str, Any], ledger: Ledger) -> None:
    sub = A.SUBTREE_USAGE
    own = A.SELF_USAGE
    attributes[sub["input_tokens"]] = ledger.input
    attributes[sub["output_tokens"]] = ledger.output
    attributes[sub["cache_read_tokens"]] = ledger.cache_read
    attributes[sub["cache_write_tokens"]] = ledger.cache_write
    attributes[sub["reasoning_tokens"]] = ledger.reasoning
    attributes[sub["cost_usd"]] = ledger.nanos / 1_000_000_000
    attributes[sub["llm_calls"]] = ledger.calls
    attributes[sub["unpriced_calls"]] = ledger.unpriced
    attributes[own["input_tokens"]] = ledger.self_input
    attributes[own["output_tokens"]] = ledger.self_output
    attributes[own["cache_read_tokens"]] = ledger.self_cache_read
    attributes[own["cache_write_tokens"]] = ledger.self_cache_write
    attributes[own["reasoning_tokens"]] = ledger.self_reasoning
    attributes[own["cost_usd"]] = ledger.self_nanos / 1_000_000_000
    attributes[own["llm_calls"]] = ledger.self_calls
    attributes[own["unpriced_calls"]] = ledger.self_unpriced
    if ledger.input > _MAX_INT64 or ledger.output > _MAX_INT64 or ledger.calls > _MAX_INT64:
        # Each record is within int64, but their sum need not be, and an OTLP exporter
        # drops an integer attribute it cannot encode: saturate instead. Every other count
        # is bounded by one of these three (cached by input, reasoning by output,
        # unpriced by calls, self by subtree).
        for key, value in attributes.items():
            if type(value) is int and value > _MAX_INT64:
                attributes[key] = _MAX_INT64


def _exhaustion_event(exc: BaseException) -> dict[str, Any]:
    if not isinstance(exc, StepBudgetExhausted):
        return {"exception.type": type(exc).__qualname__, "exception.message": str(exc)}
    return {
        "exception.type": type(exc).__qualname__,
        "exception.message": str(exc),
        "agentsteps.budget.limit": exc.limit,
        "agentsteps.budget.limit_value": exc.limit_value,
        "agentsteps.budget.consumed_tokens": exc.consumed_tokens,
        "agentsteps.budget.consumed_usd": exc.consumed_usd,
        "agentsteps.budget.llm_calls": exc.llm_calls,
    }


def _add(run: Any, record: Any, is_step: bool, *, once: bool = False) -> None:
    """Deliver ``record`` to ``run`` and the runs around it; ``once``: skip those holding it."""
    if not once:
        if is_step:
            run._add_step(record)
        else:
            run._add_persona(record)
        return
    while run is not None:  # after an interruption: the slow, idempotent way
        with run._lock:
            records = run._steps if is_step else run._personas
            if not any(r is record for r in reversed(records)):
                records.append(record)
        run = run._parent


def _record(
    frame: ActiveStep | ActivePersona,
    status: StepStatus,
    exc: BaseException | None,
    is_step: bool,
) -> CompletedStep | CompletedPersona:
    """The frame's record, its figures read (and its ledger marked ended) under the lock."""
    ledger = frame._ledger
    with LEDGER_LOCK:
        subtree = ledger.usage()
        own = ledger.self_usage()
        last_model = ledger.last_model
        # In the same critical section as the read: usage charged from now on (a task
        # that outlived the step) goes to a frame still running, never into a ledger
        # whose record is already taken (see `charge`).
        ledger.ended = 1
    end = time.time_ns()
    trace_id, span_id = frame.trace_id, frame.span_id
    parent = frame._parent
    error = None if exc is None else f"{type(exc).__name__}: {exc}"
    if is_step:
        assert isinstance(frame, ActiveStep)
        parent_step = frame._parent_step
        parent_ctx = getattr(frame._span, "parent", None)
        parent_span_id = None if parent_ctx is None else format_span_id(parent_ctx.span_id)
        return CompletedStep(
            name=frame._defn.name,
            function=frame._defn.function,
            persona=frame.persona,
            model=last_model or frame._model,
            status=status,
            error=error,
            start_time=frame._start_ns / 1e9,
            end_time=end / 1e9,
            usage=own,
            subtree_usage=subtree,
            budget=frame._defn.budget,
            error_boundary=frame._defn.boundary.value,
            step_id=frame._id,
            parent_id=None if parent is None else parent._id,
            parent=None if parent_step is None else parent_step._defn.name,
            trace_id=trace_id,
            span_id=span_id,
            parent_span_id=parent_span_id,
        )
    return CompletedPersona(
        name=frame._defn.name,
        function=frame._defn.function,
        status=status,
        error=error,
        start_time=frame._start_ns / 1e9,
        end_time=end / 1e9,
        subtree_usage=subtree,
        persona_id=frame._id,
        parent_id=None if parent is None else parent._id,
        trace_id=trace_id,
        span_id=span_id,
    )
