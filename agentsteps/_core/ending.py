"""
The end of a frame: its span, metrics and record, each finished once.

`end` ends the span (with its outcome attributes), records the step's metrics, delivers
its record to the `run()` collectors and closes its ledger. An interruption (a signal's
``KeyboardInterrupt``) can land anywhere in an end, or at the entry of the functions
that call it: `end` finishes what is left of itself before letting it go on, and
`finish_interrupted` ends a frame whose ending was cut short before `end` began.
"""

from __future__ import annotations

from typing import Any

from .._core.instruments import _API as _METER_API
from .._core.instruments import STATE as _METRICS
from .._core.instruments import get_instruments, step_ended
from .._hooks import dispatch as _dispatch
from .._hooks.registry import ACTIVE
from .boundary import outcome
from .context import ActivePersona, ActiveStep
from .records import StepStatus
from .stack import is_current, otel_detach_quietly, pop
from .step_records import deliver, make_record
from .step_spans import end_span
from .telemetry_log import log_telemetry_failure

__all__ = ["end", "end_detached", "finish_interrupted"]

Frame = ActiveStep | ActivePersona


def end_detached(frame: Frame, status: StepStatus, exc: BaseException | None) -> None:
    """
    End a frame that is not current: a generator closed between two resumes, a step
    denied before it started.
    """
    try:
        end(frame, status, exc)
    except BaseException as interrupted:
        finish_interrupted(frame, interrupted)
        raise


def finish_interrupted(frame: Frame, exc: BaseException) -> None:
    """
    Make sure ``frame`` has ended after an interruption landed while it was being ended
    (at the entry of `complete`, `fail` or `end`, before their own guards): pop it if
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
            otel_detach_quietly(token)  # pop may have detached it just before the interruption
    end(frame, outcome(frame, exc)[0], exc, False)


def end(
    frame: Frame,
    status: StepStatus,
    exc: BaseException | None,
    run_hooks: bool = True,
) -> None:
    """End the span, record the metrics, deliver the record, close the ledger."""
    if ACTIVE.persona_end and run_hooks and not frame._defn.is_step:
        # Before the span ends, so the handlers' span events land on it; their error (strict
        # mode) is raised once the persona has ended all the same.
        try:
            error = _dispatch.persona_ended(frame, status, exc)  # type: ignore[arg-type]
        finally:
            end(frame, status, exc, False)
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
            end_span(frame, span, status, exc)
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
            record = make_record(frame, status, exc, is_step)
            deliver(run, record, is_step)
        else:
            frame._ledger.ended = 1  # no record to be exact for: see make_record
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
                record = make_record(frame, status, exc, is_step)
            deliver(run, record, is_step, once=True)
        frame._ledger.closed = True
        raise


def _quietly(end: Any) -> None:
    try:
        end()
    except Exception:  # telemetry must not replace the interruption being handled
        pass
