"""
`record_usage`: charging model usage to the active step and every step around it.

A record is added to the innermost step's own ("self") account and to the subtree
account of every enclosing step and persona, under one lock, so a parent's total is the
exact sum of its children's. Then each step's budget is checked; the outermost step that
this record took over a limit raises `StepBudgetExhausted` (its exhaustion dominates:
a nested step's boundary must not swallow a parent running out of money).
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
from typing import Any

from .._accounting import ledger as _ledger
from .._accounting.budget import INT64_MAX, MAX_USD, NANOS_PER_USD, shown, usd_to_nanos
from .._accounting.ledger import LEDGER_LOCK
from .._accounting.pricing import price_usage
from .._accounting.usage import Usage
from .._hooks import dispatch as _dispatch
from .._hooks.registry import ACTIVE
from .._validate import check_count, check_optional_name
from ..exceptions import UnpricedModelError
from .boundary import exhaustion_error
from .config import SETTINGS, get_tracer
from .context import CALL, CURRENT, ActivePersona, ActiveStep
from .instruments import _API as _METER_API
from .instruments import STATE as _METRICS
from .instruments import get_instruments, note_spend, record_recorded_call
from .llm_spans import emit_record_span
from .shared import charge_frames

__all__ = ["record_usage"]

logger = logging.getLogger("agentsteps")
_WHAT = "record_usage()"
_new_usage = Usage._unchecked  # bound once: record_usage builds one per call
# The checks live in _validate; these names stay for the model-call modules importing them.
_count = check_count
_check_str = check_optional_name


def _cost(value: object, what: str = "record_usage()") -> int:
    # A range check, not math.isfinite(): that overflows on an int past 1e308, and round()
    # on a float whose nano-dollars are infinite. NaN and inf fail the range check.
    if (type(value) is float or type(value) is int) and 0 <= value <= MAX_USD:
        return usd_to_nanos(value)
    if (type(value) is int or (type(value) is float and math.isfinite(value))) and value > MAX_USD:
        msg = (
            f"{what}: 'cost_usd' must be at most {MAX_USD:,.2f} dollars, the largest int64 "
            f"count of nano-dollars (got {shown(value)})"
        )
        raise ValueError(msg)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        msg = (
            f"{what}: 'cost_usd' must be a number of US dollars or None "
            f"(got {shown(value)} of type {type(value).__name__})"
        )
        raise TypeError(msg)
    msg = f"{what}: 'cost_usd' must be a finite number >= 0 (got {shown(value)})"
    raise ValueError(msg)


def record_usage(
    model: str | None = None,
    input_tokens: int = 0,
    output_tokens: int = 0,
    *,
    cost_usd: float | None = None,
    cache_read_tokens: int = 0,
    cache_write_tokens: int = 0,
    reasoning_tokens: int = 0,
    llm_calls: int = 1,
    provider: str | None = None,
) -> None:
    """
    Charge one model call's usage to the active step and every step around it.

    Token counts follow the OpenTelemetry GenAI conventions: ``input_tokens`` *includes*
    the cached input tokens (``cache_read_tokens``, ``cache_write_tokens``), and
    ``output_tokens`` includes ``reasoning_tokens``. When ``cost_usd`` is not given the
    cost is computed from the model's price (`register_price`, else the bundled
    genai-prices catalog). Usage of a model with no price raises `UnpricedModelError`
    under a ``max_usd`` budget (it could never trip); elsewhere it costs ``$0`` and is
    counted as an unpriced call (see ``configure(unpriced=...)``).

    Outside any step this does nothing and returns ``None``: libraries can record
    unconditionally. Arguments are validated either way.

    Args:
        model: The model that served the call (defaults to `current_model`).
        input_tokens: Prompt tokens, cached ones included.
        output_tokens: Completion tokens, reasoning tokens included.
        cost_usd: What the call cost, if the provider told you.
        cache_read_tokens: Input tokens served from the prompt cache.
        cache_write_tokens: Input tokens written to the prompt cache.
        reasoning_tokens: Output tokens spent on hidden reasoning.
        llm_calls: How many model calls this record stands for.
        provider: The provider's name, e.g. ``"openai"`` (informational).

    Raises:
        StepBudgetExhausted: This record took a step over one of its limits. The usage
            is charged all the same.
        UnpricedModelError: The model has no known price, no ``cost_usd`` was given, and
            the step or one around it has a ``max_usd`` budget. Nothing is charged.
        TypeError: An argument has the wrong type (names the argument).
        ValueError: A count is negative, or the cached part exceeds the input.

    Example:
        >>> from agentsteps import Budget, record_usage, step
        >>> @step(model="claude-haiku-4-5", budget=Budget(max_tokens=2_000))
        ... def summarize():
        ...     record_usage(input_tokens=812, output_tokens=95, cost_usd=0.0012)
        >>> summarize()

    .. versionadded:: 0.1.0
    """
    # The common case (plain ints in range) is checked inline: a call per argument costs
    # more than the record's arithmetic. Anything else takes the checks that word the error.
    plain = (
        type(input_tokens) is int
        and type(output_tokens) is int
        and type(llm_calls) is int
        and 0 <= input_tokens <= INT64_MAX
        and 0 <= output_tokens <= INT64_MAX
        and 0 <= llm_calls <= INT64_MAX
    )
    inp = input_tokens if plain else _count("input_tokens", input_tokens, _WHAT)
    out = output_tokens if plain else _count("output_tokens", output_tokens, _WHAT)
    cread = _count("cache_read_tokens", cache_read_tokens, _WHAT) if cache_read_tokens else 0
    cwrite = _count("cache_write_tokens", cache_write_tokens, _WHAT) if cache_write_tokens else 0
    reason = _count("reasoning_tokens", reasoning_tokens, _WHAT) if reasoning_tokens else 0
    calls = llm_calls if plain else _count("llm_calls", llm_calls, _WHAT)
    if cread or cwrite:
        _check_cached(inp, cread, cwrite)
    if reason > out:
        msg = (
            f"record_usage(): 'reasoning_tokens' ({reason}) exceeds 'output_tokens' ({out}); "
            "output_tokens includes reasoning tokens (OpenTelemetry convention)"
        )
        raise ValueError(msg)
    # The checks below run their function only to word an error (a str that is not blank
    # passes both), and _cost's common case is written out: as for the counts above.
    if model is not None and (type(model) is not str or not model.strip()):
        _check_str("model", model, _WHAT)
    if provider is not None and (type(provider) is not str or not provider.strip()):
        _check_str("provider", provider, _WHAT)
    if cost_usd is None:
        nanos = None
    elif type(cost_usd) is float and 0.0 <= cost_usd <= MAX_USD:
        nanos = round(cost_usd * NANOS_PER_USD)  # usd_to_nanos, with its int64 clamp
        if nanos > INT64_MAX:
            nanos = INT64_MAX
    else:
        nanos = _cost(cost_usd)
    frame = CURRENT.get()
    # A step records into itself in the common case: its `_step` (a property returning
    # the step) is read only for a persona, whose `_step` is the step around it, if any.
    if frame is None or (frame.__class__ is not ActiveStep and frame._step is None):
        return
    if model is None:
        model = frame._model
    source = "provider"
    unpriced = 0
    if nanos is None:
        # price_usage itself, not price(Usage): the Usage is built once, with its cost.
        # Positional arguments, in price_usage's order: keywords cost a record 0.1 us.
        nanos, source = price_usage(model, inp, out, cread, cwrite, reason, provider)
        if source == "unknown":
            if inp or out:
                error = unpriced_error(frame, model)
                if error is not None:
                    raise error
            unpriced = calls
    # Checked above, so built unchecked: a public Usage() would check every field again.
    usage = _new_usage(inp, out, cread, cwrite, reason, calls, unpriced, nanos)
    instruments = (
        get_instruments() if _METRICS.maybe or _METER_API._METER_PROVIDER is not None else None
    )
    # Visible to backends as a model call (before the charge, which may raise).
    if (
        (instruments is not None or get_tracer() is not None)
        and _model_call_span(frame, model, provider, usage, source)
        and instruments
    ):
        record_recorded_call(instruments, model, provider, inp, out)
    charge(frame, usage, model)


def _model_call_span(
    frame: ActiveStep | ActivePersona,
    model: str | None,
    provider: str | None,
    usage: Usage,
    source: str,
) -> bool:
    """
    Show a recorded call to backends: on the open `llm_call`'s span when the record is
    made inside one (a second span there would make two model calls of one request), else
    as a zero-duration span of its own.

    Returns whether the record is a model call of its own for the metrics too: one made
    inside an open `llm_call` is counted in that call's points when the call ends.
    """

    call = CALL.get()
    if call is not None and call._frame is frame:
        if call._attach(usage, source):
            return False
        inside = call._open()
    else:
        inside = False
    if get_tracer() is not None:
        emit_record_span(model, provider, usage, source)
    return not inside


def unpriced_error(
    frame: ActiveStep | ActivePersona, model: str | None
) -> UnpricedModelError | None:
    """
    The error that usage with no cost and no known price raises, or ``None`` when it may
    be charged as $0: ``configure(unpriced="error")`` (the default) and a ``max_usd``
    budget on the frame's step or one around it, which could never trip on such usage.
    """
    if SETTINGS.unpriced != "error":
        return None
    budget_step: ActiveStep | None = None
    f: ActiveStep | ActivePersona | None = frame
    while f is not None:
        shared = f._ledger.shared
        dollars = f._ledger.max_nanos is not None or (
            shared is not None and shared.limits.nanos is not None
        )
        if dollars and isinstance(f, ActiveStep):
            budget_step = f
            break  # the innermost: the one the user is most likely looking at
        f = f._parent
    if budget_step is None:
        return None
    step = frame._step
    name = budget_step._defn.name if step is None else step._defn.name
    return UnpricedModelError(model, name, budget_step._defn.name)


def _check_cached(inp: int, cread: int, cwrite: int, what: str = "record_usage()") -> None:
    if cread + cwrite > inp:
        msg = (
            f"{what}: cached tokens (cache_read_tokens={cread} + "
            f"cache_write_tokens={cwrite}) exceed 'input_tokens' ({inp}); input_tokens "
            "includes cached tokens (OpenTelemetry convention). Anthropic reports them "
            "separately: pass input_tokens + cache_read_input_tokens + "
            "cache_creation_input_tokens"
        )
        raise ValueError(msg)


def charge(
    frame: ActiveStep | ActivePersona,
    usage: Usage,
    model: str | None,
    *,
    raise_now: bool = True,
    remote: bool = False,
) -> None:
    """
    Add ``usage`` (one record, served by ``model``) to the innermost step and to every
    frame around it, then check budgets.

    With ``raise_now=False`` (usage observed from another library's span) an exhaustion
    is only latched; the step raises it at its next checkpoint. Every charge with
    ``raise_now=True`` is such a checkpoint: it raises the exhaustion of the outermost
    step that is over budget and has not raised it yet, whether this record or an earlier
    latched one took it over (so a nested boundary cannot swallow an enclosing step's).

    With ``remote=True`` (usage a callee in another process reported) the record counts
    in the subtree of every frame but in no frame's own ("self") figures: the callee's
    spans carry it as theirs, so self figures summed over a distributed trace still count
    it once.
    """
    # The store first, outside the lock (a network round trip); a fleet-wide crossing
    # is latched on the step's ledger and raised below like a local one.
    shared_error = charge_frames(frame, usage) if _ledger.SHARED_IN_USE else None
    # The figures once, as locals: the loop below adds them to every ledger of the chain
    # (this is the hot path, so the additions are written out rather than a method call
    # per ledger).
    inp = usage.input_tokens
    out = usage.output_tokens
    cread = usage.cache_read_tokens
    cwrite = usage.cache_write_tokens
    reason = usage.reasoning_tokens
    nanos = usage.cost_nano_usd
    calls = usage.llm_calls
    unpriced = usage.unpriced_calls
    # Cache, reasoning and unpriced counts are zero in most records: one test instead of
    # four additions per ledger (they are a third of the walk's cost).
    rare = cread or cwrite or reason or unpriced
    undelivered: Any = None
    undelivered_limit = ""
    consumed = (0, 0, 0)
    late: Any = None
    with LEDGER_LOCK:
        step = frame if frame.__class__ is ActiveStep else frame._step  # see record_usage
        if frame._ledger.ended or (step is not None and step._ledger.ended):
            # The step has ended (a task that outlived it is still charging): its record
            # is taken, so the charge goes to the steps still running around it, and the
            # innermost of them counts it as its own. Logged once per ended frame.
            late = _ended_frame(frame)
            while step is not None and step._ledger.ended:
                step = step._parent_step
        if not remote and step is not None:
            own = step._ledger
            own.self_input += inp
            own.self_output += out
            own.self_nanos += nanos
            own.self_calls += calls
            if rare:
                own.self_cache_read += cread
                own.self_cache_write += cwrite
                own.self_reasoning += reason
                own.self_unpriced += unpriced
            if model is not None:
                own.last_model = model
            if (  # get_instruments' fast "no meter provider" test, inlined (see lifecycle)
                _METRICS.maybe or _METER_API._METER_PROVIDER is not None
            ) and get_instruments() is not None:
                # What the step spent, by model: its spend metrics, emitted at its end.
                note_spend(frame._step, model, inp, out, nanos, calls)
        f: ActiveStep | ActivePersona | None = frame
        while f is not None:
            led = f._ledger
            if led.ended:
                f = f._parent
                continue
            led.input += inp
            led.output += out
            led.nanos += nanos
            led.calls += calls
            if rare:
                led.cache_read += cread
                led.cache_write += cwrite
                led.reasoning += reason
                led.unpriced += unpriced
            if led.exhausted is None and (
                led.max_tokens is not None or led.max_nanos is not None or led.max_calls is not None
            ):
                # The first limit the subtree is over: written here, not as a Ledger method,
                # because it runs for every budgeted frame of every charge.
                if led.max_tokens is not None and led.input + led.output > led.max_tokens:
                    limit: str | None = "max_tokens"
                elif led.max_nanos is not None and led.nanos > led.max_nanos:
                    limit = "max_usd"
                elif led.max_calls is not None and led.calls > led.max_calls:
                    limit = "max_llm_calls"
                else:
                    limit = None
                if limit is not None:
                    # Latched: a budget trips once, however many records cross it. Not yet
                    # delivered, even if a pre-flight refusal already raised for this step.
                    led.exhausted = limit
                    led.delivered = False
            if led.exhausted is not None and not led.delivered:
                undelivered, undelivered_limit = f, led.exhausted
                # The figures at the crossing, read under the lock: by the time the error
                # is built, other threads may have charged more.
                consumed = (led.input + led.output, led.nanos, led.calls)
            f = f._parent
        if undelivered is not None and raise_now:
            # Claimed under the lock: two threads charging at once raise it only once.
            undelivered._ledger.delivered = True
        # The budget hooks this record is due, with the figures at the crossing: read
        # under the same lock, or another thread's records would show in them.
        plans = _dispatch.plan_after_charge(frame) if ACTIVE.budget else None
    if late is not None:
        _log_late(late, step)
    if shared_error is not None:
        raise shared_error  # a strict budget_threshold handler of a shared budget
    if plans:
        _charge_hooks(plans, undelivered if raise_now else None, undelivered_limit, consumed)
    elif undelivered is not None and raise_now:
        raise exhaustion_error(undelivered, undelivered._ledger, undelivered_limit, consumed)


def _ended_frame(frame: ActiveStep | ActivePersona) -> Any:
    """The ended frame to log a late charge against, once; ``None`` if already logged."""
    f: Any = frame
    while f is not None and not f._ledger.ended:
        f = f._parent
    if f is None or f._ledger.ended != 1:
        return None
    f._ledger.ended = 2
    return f


def _log_late(ended: Any, step: Any) -> None:
    """Say, once per ended frame, which task charged it late and where the usage went."""
    kind = "step" if ended._defn.is_step else "persona"
    where = (
        f"charged to step {step._defn.name!r}, the innermost step still running, and "
        "counted in its own usage"
        if step is not None
        else "counted in no record: every step around it has ended"
    )
    logger.warning(
        "agentsteps: %s recorded usage after %s %r ended; it was %s. Await or cancel "
        "the tasks a step starts before it returns. Logged once per %s.",
        _task_name(),
        kind,
        ended._defn.name,
        where,
        kind,
    )


def _task_name() -> str:
    try:
        task = asyncio.current_task()
    except RuntimeError:  # no event loop in this thread
        task = None
    if task is not None:
        return f"task {task.get_name()!r}"
    return f"thread {threading.current_thread().name!r}"


def _charge_hooks(
    plans: list[_dispatch.BudgetPlan],
    raising: Any,
    limit: str,
    consumed: tuple[int, int, int],
) -> None:
    """Run the budget hooks of a charge, then raise what the charge raises."""
    exc = None if raising is None else exhaustion_error(raising, raising._ledger, limit, consumed)
    error = _dispatch.after_charge(plans, exc)
    if error is not None:
        if exc is not None:
            # The handler's error wins; the exhaustion stays latched and is raised at the
            # step's next checkpoint instead (its exit, if the body gets there).
            with LEDGER_LOCK:
                raising._ledger.delivered = False
        raise error
    if exc is not None:
        raise exc
