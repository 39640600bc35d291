"""
The active stack: which persona and steps are running, as seen by this context.

One `ContextVar` holds the innermost frame; each frame links to its parent and never
changes, so an asyncio task or a `contextvars.copy_context()` that captured the chain
keeps seeing exactly its own stack. The only shared mutable part of a frame is its
`Ledger`, on purpose: usage recorded in a child task or thread is charged to the step
that spawned it.
"""

from __future__ import annotations

import itertools
import time
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Protocol

from opentelemetry.trace import format_span_id, format_trace_id

from .._accounting.ledger import LEDGER_LOCK, Ledger
from .._accounting.usage import Usage
from .records import RUN, Run

if TYPE_CHECKING:
    from opentelemetry.trace import Span

    from .._accounting.budget import Budget, ErrorBoundary

__all__ = [
    "ActivePersona",
    "ActiveStep",
    "current_model",
    "current_persona",
    "current_step",
]

CURRENT: ContextVar[ActiveStep | ActivePersona | None] = ContextVar(
    "agentsteps.frame", default=None
)


class OpenCall(Protocol):
    """
    What the runtime needs of the open `llm_call` (agentsteps/_llm/call.py's `LLMCall`).

    Declared here, below the runtime, so that charging (recording.py, shared.py) can look
    at the open model call without importing the model-call modules above it; `_llm/call.py`
    sets `CALL` and re-exports it typed with its own class.
    """

    @property
    def _frame(self) -> object: ...

    @property
    def _reservation(self) -> Any: ...

    def _open(self) -> bool: ...

    def _attach(self, usage: Usage, source: str) -> bool: ...


# The `llm_call` open in this context, if any.
CALL: ContextVar[OpenCall | None] = ContextVar("agentsteps.llm_call", default=None)

# next() on itertools.count is atomic under the GIL: unique ids without a lock.
_next_id = itertools.count(1).__next__


class _Frame:
    """What steps and personas share: identity, links, ledger, span."""

    __slots__ = (
        "_body_context",
        "_body_frame",
        "_ctx_token",
        "_defn",
        "_id",
        "_ledger",
        "_model",
        "_otel_token",
        "_parent",
        "_resume_parent",
        "_run",
        "_span",
        "_start_ns",
    )

    _defn: Any
    _id: int
    _span: Span | None
    _ctx_token: Any
    _otel_token: Any
    # Generator frames only (see stack.suspend/resume): what the body had made current
    # when it last yielded (its own frame is stored as None, never as a self-reference),
    # and the consumer's OpenTelemetry context that the body's context was built on.
    _body_frame: ActiveStep | ActivePersona | None
    _body_context: Any
    _resume_parent: object
    _start_ns: int
    _run: Run | None
    _ledger: Ledger
    _model: str | None
    _parent: ActiveStep | ActivePersona | None
    # Each frame knows the innermost persona and step around it, self included. A frame
    # never stores a reference to itself (that cycle would leave every frame to the
    # garbage collector instead of freeing it on return): the "self" case is a property.
    _persona: ActivePersona | None
    _step: ActiveStep | None

    @property
    def name(self) -> str:
        """The step's or persona's name."""
        return self._defn.name  # type: ignore[no-any-return]

    @property
    def function(self) -> str:
        """Qualified name of the decorated function (or the scope's name)."""
        return self._defn.function  # type: ignore[no-any-return]

    @property
    def model(self) -> str | None:
        """The model declared here, or inherited from the nearest enclosing frame."""
        return self._model

    @property
    def usage(self) -> Usage:
        """Usage recorded directly in this frame (nested steps excluded)."""
        with LEDGER_LOCK:
            return self._ledger.self_usage()

    @property
    def subtree_usage(self) -> Usage:
        """Usage of this frame and everything nested in it, so far."""
        with LEDGER_LOCK:
            return self._ledger.usage()

    @property
    def trace_id(self) -> str | None:
        """Hex trace id of this frame's span, or ``None`` when tracing is off."""
        return _ids(self._span)[0]

    @property
    def span_id(self) -> str | None:
        """Hex span id of this frame's span, or ``None`` when tracing is off."""
        return _ids(self._span)[1]


def _ids(span: Span | None) -> tuple[str | None, str | None]:
    if span is None:
        return None, None
    ctx = span.get_span_context()
    if not ctx.is_valid:
        return None, None
    return format_trace_id(ctx.trace_id), format_span_id(ctx.span_id)


class ActivePersona(_Frame):
    """
    A persona while it runs: a read-only view returned by `current_persona`.

    .. versionadded:: 0.1.0
    """

    __slots__ = ("_step",)

    @property
    def _persona(self) -> ActivePersona:  # type: ignore[override]
        return self

    def __init__(self, defn: Any, parent: ActiveStep | ActivePersona | None) -> None:
        # Written out rather than shared through super(): this runs on every call.
        self._defn = defn
        self._parent = parent
        self._id = _next_id()
        self._span = self._ctx_token = self._otel_token = self._resume_parent = None
        self._start_ns = time.time_ns()
        self._run = RUN.get()
        if parent is None:
            self._model = defn.model
            self._step = None
        else:
            self._model = defn.model or parent._model
            self._step = parent._step
        self._ledger = Ledger(None)

    def __repr__(self) -> str:
        return f"<ActivePersona {self.name!r}>"


class ActiveStep(_Frame):
    """
    A step while it runs: a read-only view returned by `current_step`.

    Example:
        >>> from agentsteps import current_step, record_usage, step
        >>> @step(model="m")
        ... def plan():
        ...     record_usage(input_tokens=5, output_tokens=5, cost_usd=0)
        ...     return current_step().usage.total_tokens
        >>> plan()
        10

    .. versionadded:: 0.1.0
    """

    # _spend: what the step charged itself, by model, while metrics are on (see
    # _core/instruments.note_spend); None otherwise.
    __slots__ = ("_parent_step", "_persona", "_spend")

    @property
    def _step(self) -> ActiveStep:  # type: ignore[override]
        return self

    def __init__(self, defn: Any, parent: ActiveStep | ActivePersona | None) -> None:
        # Written out rather than shared through super(): this runs on every call.
        self._defn = defn
        self._parent = parent
        self._id = _next_id()
        self._span = self._ctx_token = self._otel_token = self._resume_parent = self._spend = None
        self._start_ns = time.time_ns()
        self._run = RUN.get()
        if parent is None:
            self._model = defn.model
            self._persona = None
            self._parent_step = None
        else:
            self._model = defn.model or parent._model
            self._persona = parent._persona
            self._parent_step = parent._step
        self._ledger = Ledger(defn.budget)

    @property
    def persona(self) -> str | None:
        """Name of the persona this step runs under, or ``None``."""
        return None if self._persona is None else self._persona.name

    @property
    def parent(self) -> ActiveStep | None:
        """The enclosing step, if any."""
        return self._parent_step

    @property
    def budget(self) -> Budget | None:
        """The step's own budget (enclosing steps' budgets apply too)."""
        return self._defn.budget  # type: ignore[no-any-return]

    @property
    def error_boundary(self) -> ErrorBoundary:
        """What the caller sees if this step's budget runs out."""
        return self._defn.boundary  # type: ignore[no-any-return]

    @property
    def budget_pct(self) -> float:
        """Highest share of any limit of this step's budget used so far, in percent."""
        with LEDGER_LOCK:
            return self._ledger.used_pct()

    def __repr__(self) -> str:
        return f"<ActiveStep {self.name!r}>"


def current_step() -> ActiveStep | None:
    """
    The innermost step running in this context, or ``None``.

    .. versionadded:: 0.1.0
    """
    frame = CURRENT.get()
    return None if frame is None else frame._step


def current_persona() -> ActivePersona | None:
    """
    The innermost persona running in this context, or ``None``.

    .. versionadded:: 0.1.0
    """
    frame = CURRENT.get()
    return None if frame is None else frame._persona


def current_model() -> str | None:
    """
    The model of the innermost step (or persona) that declares one, or ``None``.

    A nested step without a ``model=`` inherits its parent's.

    Example:
        >>> from agentsteps import current_model, step
        >>> @step(model="claude-haiku-4-5")
        ... def outer():
        ...     return inner()
        >>> @step
        ... def inner():
        ...     return current_model()
        >>> outer()
        'claude-haiku-4-5'

    .. versionadded:: 0.1.0
    """
    frame = CURRENT.get()
    return None if frame is None else frame._model
