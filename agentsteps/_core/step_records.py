"""
The record a step or persona leaves when it ends, and its delivery to `run()` collectors.

The figures are read, and the ledger marked ended, in one critical section, so usage
charged later (a task that outlived the step) never goes into a record already taken.
"""

from __future__ import annotations

import time
from typing import Any

from opentelemetry.trace import format_span_id

from .._accounting.ledger import LEDGER_LOCK
from .context import ActivePersona, ActiveStep
from .records import CompletedPersona, CompletedStep, StepStatus

__all__ = ["deliver", "make_record"]


def deliver(run: Any, record: Any, is_step: bool, *, once: bool = False) -> None:
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


def make_record(
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
