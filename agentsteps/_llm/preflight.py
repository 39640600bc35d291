"""What a model call may still spend: the pre-flight check and the output headroom."""

from __future__ import annotations

from typing import Any

from .._accounting import ledger as _ledger
from .._accounting.budget import NANOS_PER_USD
from .._accounting.ledger import LEDGER_LOCK
from .._accounting.pricing import probe_cost
from .._core.boundary import exhaustion_error
from .._core.context import ActivePersona, ActiveStep
from .._core.shared import preflight_shared
from .._hooks import dispatch as _dispatch
from .._hooks.registry import ACTIVE

__all__ = [
    "affordable_output",
    "headroom",
    "preflight",
    "probe_cost",
    "raise_pending",
]

_TOKENS_PER_PROBE = 1_000_000


def _chain(frame: ActiveStep | ActivePersona) -> list[ActiveStep]:
    """The steps with a budget from ``frame`` outwards, innermost first."""
    steps: list[ActiveStep] = []
    f: ActiveStep | ActivePersona | None = frame
    while f is not None:
        if isinstance(f, ActiveStep) and f._ledger.has_limits:
            steps.append(f)
        f = f._parent
    return steps


def headroom(frame: ActiveStep | ActivePersona) -> tuple[int | None, int | None]:
    """Tokens and nano-dollars left under the tightest enclosing budget (None: no limit)."""
    tokens: int | None = None
    nanos: int | None = None
    with LEDGER_LOCK:
        for step in _chain(frame):
            t, n, _ = step._ledger.remaining()
            if t is not None:
                tokens = t if tokens is None else min(tokens, t)
            if n is not None:
                nanos = n if nanos is None else min(nanos, n)
    return tokens, nanos


_probe = probe_cost


def affordable_output(
    model: str | None, provider: str | None, inp: int, nanos_left: int
) -> int | None:
    """The most output tokens ``nanos_left`` pays for after ``inp`` input (None: unpriced)."""
    base, source = _probe(model, provider, inp, 0)
    if source == "unknown":
        return None
    if base > nanos_left:
        return 0
    per_probe = _probe(model, provider, inp, _TOKENS_PER_PROBE)[0] - base
    if per_probe <= 0:
        return None  # output is free: dollars do not limit it
    guess = (nanos_left - base) * _TOKENS_PER_PROBE // per_probe

    def fits(out: int) -> bool:
        return _probe(model, provider, inp, out)[0] <= nanos_left

    # The guess is off by rounding at most; settle it exactly (cost grows with output).
    if fits(guess):
        lo, hi = guess, guess + 1
        while fits(hi):
            lo, hi = hi, hi * 2
    else:
        lo, hi = 0, guess
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid
    return lo


def raise_pending(frame: ActiveStep | ActivePersona) -> None:
    """Raise an exhaustion observed earlier (a captured span) that nobody raised yet."""
    found: ActiveStep | None = None
    limit = ""
    consumed = (0, 0, 0)
    with LEDGER_LOCK:
        f: ActiveStep | ActivePersona | None = frame
        while f is not None:
            led = f._ledger
            if led.exhausted is not None and not led.delivered and isinstance(f, ActiveStep):
                found, limit = f, led.exhausted
                consumed = (led.input + led.output, led.nanos, led.calls)
            f = f._parent
        if found is not None:
            found._ledger.delivered = True
    if found is not None:
        raise exhaustion_error(found, found._ledger, limit, consumed)


def preflight(
    frame: ActiveStep | ActivePersona,
    model: str | None,
    provider: str | None,
    est: int,
    max_output: int | None = None,
) -> Any:
    """
    Refuse a call that an enclosing budget cannot afford, before it is made.

    Returns the reservations made in the stores of shared budgets around ``frame`` (for
    a call that knows its ``max_output``), to settle and release as the call ends with
    `agentsteps._core.shared.release`; ``None`` when there are none.
    """
    with LEDGER_LOCK:
        state = [
            (
                step,
                step._ledger.remaining(),
                step._ledger.input + step._ledger.output,
                step._ledger.nanos,
                step._ledger.calls,
            )
            for step in _chain(frame)
        ]
    refused: tuple[ActiveStep, str, str, tuple[int, int, int] | None] | None = None
    probe: tuple[int, str] | None = None
    # Innermost first; the last refusal found is the outermost step's, which dominates.
    for step, (tokens, nanos, calls), used, spent, made in state:
        budget = step._defn.budget
        if tokens is not None and tokens <= est:
            detail = f"{used} of {budget.max_tokens} tokens used"
            if est:
                detail += f", and the call's {est} input tokens leave no room for output"
            refused = (step, "max_tokens", detail, None)
            continue
        if nanos is not None:
            if probe is None:
                probe = _probe(model, provider, est, 1)
            cost, source = probe
            if (source == "unknown" and nanos == 0) or (source != "unknown" and cost > nanos):
                detail = f"${spent / NANOS_PER_USD:.4f} of ${budget.max_usd:.4f} spent"
                if source != "unknown" and cost:
                    detail += (
                        f", and {est} input tokens plus one output token would cost "
                        f"${cost / NANOS_PER_USD:.6f}"
                    )
                refused = (step, "max_usd", detail, None)
                continue
        if calls is not None and calls == 0:
            refused = (step, "max_llm_calls", f"{made} of {budget.max_llm_calls} calls made", None)
    held = None
    if _ledger.SHARED_IN_USE:
        # The fleet-wide limits of shared budgets, read (or reserved) in their stores.
        refused, held = preflight_shared(frame, model, provider, est, max_output, refused)
    if refused is not None:
        step, limit, detail, consumed = refused
        exc = exhaustion_error(step, step._ledger, limit, consumed)
        # Nothing was exceeded, nothing spent: say so rather than "exceeded (x > x)".
        exc.args = (
            f"step {step.name!r} refused a model call before making it: its {limit} "
            f"budget cannot afford it ({detail})",
        )
        if ACTIVE.budget:
            # A strict-mode handler's error wins, as for an overrun (see recording.charge).
            error = _dispatch.after_refusal(step, exc)
            if error is not None:
                raise error
        raise exc
    return held
