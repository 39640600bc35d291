"""
Records of finished steps and personas, and the `run()` collector that gathers them.

Nothing is kept unless someone collects: with no `run()` open, a finished step leaves
no trace in memory (its span goes to OpenTelemetry, which has its own limits).
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import attrs

from .._accounting.budget import Budget
from .._accounting.usage import ZERO_USAGE, Usage
from .locks import new_lock

__all__ = ["CompletedPersona", "CompletedStep", "Run", "StepStatus", "run"]

# The open `run()` collector, if any; frames read it when they start (context.py).
RUN: ContextVar[Run | None] = ContextVar("agentsteps.run", default=None)


class StepStatus(str, enum.Enum):
    """
    How a step (or persona) ended.

    .. versionadded:: 0.1.0
    """

    COMPLETED = "completed"
    """Returned normally (a generator: ran to its end)."""
    FAILED = "failed"
    """An exception left it (including its own budget exhaustion under ``"fail"``)."""
    SKIPPED = "skipped"
    """Its budget ran out and its ``"continue"`` boundary returned the default instead."""
    ESCALATED = "escalated"
    """Its budget ran out and its ``"escalate"`` boundary raised `StepEscalated`."""
    CANCELLED = "cancelled"
    """Interrupted: ``CancelledError``, ``KeyboardInterrupt``, or a generator closed early."""
    ABANDONED = "abandoned"
    """A generator step dropped without being closed, ended by the garbage collector."""
    DENIED = "denied"
    """A ``pre_step`` hook refused to run it."""

    def __str__(self) -> str:
        return self.value


@attrs.frozen
class CompletedStep:
    """
    What one step activation did, delivered to collectors when it ends.

    Two `Usage` values side by side: `usage`, what the step recorded itself, and
    `subtree_usage`, what it and everything nested in it spent (the numbers its budget
    saw). The flat shortcuts (``input_tokens``, ``output_tokens``, ``cost_usd``,
    ``llm_calls``) read `subtree_usage`; prefer the explicit
    ``record.subtree_usage.input_tokens`` in new code.

    .. versionadded:: 0.1.0
    """

    name: str
    """The step's name."""
    function: str
    """Qualified name of the decorated function."""
    persona: str | None
    """The persona it ran under."""
    model: str | None
    """The model last reported by a usage record (else the declared/inherited model)."""
    status: StepStatus
    """How it ended."""
    error: str | None
    """``"ExceptionType: message"`` when an exception ended it."""
    start_time: float
    """Epoch seconds when it started."""
    end_time: float
    """Epoch seconds when it ended."""
    usage: Usage
    """Usage recorded directly in this step."""
    subtree_usage: Usage
    """Usage of this step and its nested steps."""
    budget: Budget | None
    """The step's own budget."""
    error_boundary: str
    """``"fail"``, ``"continue"`` or ``"escalate"``."""
    step_id: int
    """Process-unique id of this activation."""
    parent_id: int | None
    """Id of the enclosing step or persona activation."""
    parent: str | None
    """Name of the enclosing step."""
    trace_id: str | None
    """Hex trace id, ``None`` when tracing is off."""
    span_id: str | None
    """Hex span id, ``None`` when tracing is off."""
    parent_span_id: str | None = None
    """Hex span id of the parent span."""

    @property
    def duration(self) -> float:
        """Seconds between start and end."""
        return self.end_time - self.start_time

    @property
    def input_tokens(self) -> int:
        """``subtree_usage.input_tokens``: the step's and its nested steps' (not `usage`'s)."""
        return self.subtree_usage.input_tokens

    @property
    def output_tokens(self) -> int:
        """``subtree_usage.output_tokens``: the step's and its nested steps' (not `usage`'s)."""
        return self.subtree_usage.output_tokens

    @property
    def cost_usd(self) -> float:
        """``subtree_usage.cost_usd``: the step's and its nested steps' (not `usage`'s)."""
        return self.subtree_usage.cost_usd

    @property
    def llm_calls(self) -> int:
        """``subtree_usage.llm_calls``: the step's and its nested steps' (not `usage`'s)."""
        return self.subtree_usage.llm_calls

    @property
    def budget_pct(self) -> float | None:
        """
        Highest share of any limit the subtree used, in percent; ``None`` without a
        budget. See `Budget.used_pct`.
        """
        return None if self.budget is None else self.budget.used_pct(self.subtree_usage)

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (JSON-ready)."""
        data = attrs.asdict(self, recurse=False)
        data["status"] = self.status.value
        data["usage"] = self.usage.to_dict()
        data["subtree_usage"] = self.subtree_usage.to_dict()
        data["budget"] = None if self.budget is None else self.budget.to_dict()
        data["duration"] = self.duration
        data["budget_pct"] = self.budget_pct
        return data


@attrs.frozen
class CompletedPersona:
    """
    What one persona activation did, delivered to collectors when it ends.

    .. versionadded:: 0.1.0
    """

    name: str
    """The persona's name."""
    function: str
    """Qualified name of the decorated function."""
    status: StepStatus
    """How it ended (``completed``, ``failed`` or ``cancelled``)."""
    error: str | None
    """``"ExceptionType: message"`` when an exception ended it."""
    start_time: float
    """Epoch seconds when it started."""
    end_time: float
    """Epoch seconds when it ended."""
    subtree_usage: Usage
    """Usage of every step run under it."""
    persona_id: int
    """Process-unique id of this activation."""
    parent_id: int | None
    """Id of the enclosing step or persona activation."""
    trace_id: str | None
    """Hex trace id, ``None`` when tracing is off."""
    span_id: str | None
    """Hex span id, ``None`` when tracing is off."""

    @property
    def duration(self) -> float:
        """Seconds between start and end."""
        return self.end_time - self.start_time

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (JSON-ready)."""
        data = attrs.asdict(self, recurse=False)
        data["status"] = self.status.value
        data["subtree_usage"] = self.subtree_usage.to_dict()
        data["duration"] = self.duration
        return data


class Run:
    """
    A collector of the steps and personas that complete inside ``with run():``.

    Steps started in tasks or threads that copied the context of the block are collected
    too. Collected in completion order (a parent completes after its children).

    .. versionadded:: 0.1.0
    """

    def __init__(self, parent: Run | None = None) -> None:
        self._parent = parent
        self._lock = new_lock()  # re-entrant, fork-safe: see _core/locks.py
        self._steps: list[CompletedStep] = []
        self._personas: list[CompletedPersona] = []

    @property
    def steps(self) -> list[CompletedStep]:
        """The completed steps, in completion order (a copy)."""
        with self._lock:
            return list(self._steps)

    @property
    def personas(self) -> list[CompletedPersona]:
        """The completed personas, in completion order (a copy)."""
        with self._lock:
            return list(self._personas)

    @property
    def total(self) -> Usage:
        """Everything recorded in the collected steps, each record counted once."""
        total = ZERO_USAGE
        for s in self.steps:
            total = total + s.usage
        return total

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form of the whole run (JSON-ready)."""
        return {
            "steps": [s.to_dict() for s in self.steps],
            "personas": [p.to_dict() for p in self.personas],
            "total": self.total.to_dict(),
        }

    def _add_step(self, record: CompletedStep) -> None:
        run: Run | None = self
        while run is not None:
            with run._lock:
                run._steps.append(record)
            run = run._parent

    def _add_persona(self, record: CompletedPersona) -> None:
        run: Run | None = self
        while run is not None:
            with run._lock:
                run._personas.append(record)
            run = run._parent

    def __repr__(self) -> str:
        return f"<Run steps={len(self._steps)} personas={len(self._personas)}>"


@contextmanager
def run() -> Iterator[Run]:
    """
    Collect every step and persona that completes inside the block.

    Example:
        >>> import agentsteps
        >>> @agentsteps.step
        ... def hello():
        ...     agentsteps.record_usage(model="m", input_tokens=3, output_tokens=4, cost_usd=0.01)
        >>> with agentsteps.run() as r:
        ...     hello()
        >>> [s.name for s in r.steps], r.total.total_tokens, r.total.cost_usd
        (['hello'], 7, 0.01)

    .. versionadded:: 0.1.0
    """
    collector = Run(RUN.get())
    token = RUN.set(collector)
    try:
        yield collector
    finally:
        # Not when a generator's body is finalised on its own by the garbage collector:
        # restoring would clobber the running code's value (see stack.pop).
        if RUN.get() is collector:
            RUN.reset(token)
