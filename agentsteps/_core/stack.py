"""
The frame stack: making a frame current and restoring what was current before it.

A frame is current when `CURRENT` (agentsteps' stack) names it and, when it has a span,
OpenTelemetry's context holds that span. These functions move both together, the fast
way: OpenTelemetry's context variable is read and set directly (see `_otel_context_var`).
Generator frames are made current around each resume of their body and put back in
between (`suspend`/`resume`); what the body made current is kept from one to the next.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext

from .context import CURRENT, ActivePersona, ActiveStep

__all__ = [
    "begin_generator",
    "current_otel_context",
    "is_current",
    "otel_attach",
    "otel_detach",
    "otel_detach_quietly",
    "pop",
    "resume",
    "set_span_in_context",
    "suspend",
]

set_span_in_context = trace.set_span_in_context


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
    otel_attach = _OTEL_VAR.set
    current_otel_context = _OTEL_VAR.get
    _reset = _OTEL_VAR.reset

    def otel_detach(token: Any) -> None:
        """Detach ``token``; a failure is logged by ``otel_context.detach``, never raised."""
        try:
            _reset(token)
        except Exception:
            otel_context.detach(token)  # fails the same way, and logs it as the API does

    def otel_detach_quietly(token: Any) -> None:
        """Detach ``token`` if it is still attached (after an interruption, it may not be)."""
        try:
            _reset(token)
        except (ValueError, RuntimeError):
            pass  # already detached, by the code an interruption stopped half-way

else:  # pragma: no cover - another runtime context was configured
    otel_attach = otel_context.attach
    current_otel_context = otel_context.get_current
    otel_detach = otel_detach_quietly = otel_context.detach


def begin_generator(frame: ActiveStep | ActivePersona, consumer: Any) -> None:
    """
    Set up a generator frame for `suspend`/`resume`, right after it was made current;
    ``consumer`` is the OpenTelemetry context that was current before that.
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
        frame._body_context = current_otel_context()
        frame._otel_token = None
        otel_detach(token)


def resume(frame: ActiveStep | ActivePersona) -> None:
    """Make a suspended generator frame current again, as the body left it."""
    if frame._span is not None:
        context = frame._body_context
        consumer = current_otel_context()
        if context is None:
            # Never suspended (closed from inside its own first run): start from the span.
            context = set_span_in_context(frame._span, consumer)
        elif consumer is not frame._resume_parent:
            # The consumer's context changed between two items (new baggage, another
            # current span): rebuild the body's context on it. A consumer usually resumes
            # from the same context, and then the saved one is exact and free.
            context = _rebase(context, frame._resume_parent, consumer)
            frame._resume_parent = consumer
        frame._otel_token = otel_attach(context)
    body = frame._body_frame
    frame._ctx_token = CURRENT.set(frame if body is None else body)


def _rebase(body: Any, old_base: Any, new_base: Any) -> Any:
    """``body`` (a context built on ``old_base``) rebuilt on ``new_base``."""
    own = {k: v for k, v in body.items() if k not in old_base or old_base[k] is not v}
    return otel_context.Context({**new_base, **own})


def pop(frame: ActiveStep | ActivePersona) -> None:
    """Stop a frame being current, restoring what was current before it was made so."""
    if not is_current(frame):
        # The frame ends where it is not current: a scope a generator's body opened across
        # a ``yield``, closed by the garbage collector finalising the body on its own
        # (objects of one garbage cycle are finalised in no set order, so the body may go
        # before its step could resume it). The stack here belongs to whatever code is
        # running; restoring this frame's tokens would put a finished step back on it.
        frame._otel_token = None
        return
    # The token stays on the frame until it is detached: an interruption before that
    # leaves it for `ending.finish_interrupted`.
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
            otel_detach(token)
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
