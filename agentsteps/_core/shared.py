"""
Shared budgets: the fleet-wide half of a step whose `Budget` has a ``shared_key``.

A step with a shared budget keeps its own ledger as every step does, with no local limits:
its limits live in a `BudgetStore` under the key, and every record is charged there too
(atomically, with an idempotent charge id). The store tells exactly one charge per limit
and period that it crossed; that charge latches the step's exhaustion like a local one.
Pre-flights read the store (or reserve there) before a model call is sent.

When the store cannot be reached, usage is kept in an outbox per store and charged with
its original ids and times when the store answers again; what the caller sees meanwhile
is the budget's ``on_store_error``.
"""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from .._accounting.budget import NANOS_PER_USD, used_pct
from .._accounting.ledger import LEDGER_LOCK
from .._accounting.pricing import probe_cost
from .._accounting.shared_account import SharedAccount, default_store
from .._accounting.usage import Usage
from .._hooks import dispatch as _dispatch
from .._hooks.events import HookEvent
from .._hooks.registry import ACTIVE, route
from ..exceptions import BudgetStoreUnavailable
from ..stores._types import Amounts, BudgetStore, Limits, SharedFigures
from .context import CALL, ActiveStep
from .instruments import note_shared_spent
from .locks import new_lock

if TYPE_CHECKING:
    from .._accounting.ledger import Ledger
    from .context import ActivePersona

__all__ = ["SharedAccount", "charge_shared", "default_store", "preflight_shared", "release"]

logger = logging.getLogger("agentsteps")

RESERVATION_TTL = timedelta(minutes=10)
"""How long a pre-flight's reservation holds if its call never settles (a crashed worker)."""

# Span attributes of a step with a shared budget, set after each of its charges.
SHARED_KEY = "agentsteps.budget.shared.key"
SHARED_TOKENS = "agentsteps.budget.shared.tokens"
SHARED_USD = "agentsteps.budget.shared.usd"
SHARED_CALLS = "agentsteps.budget.shared.llm_calls"
SHARED_RESERVED_TOKENS = "agentsteps.budget.shared.reserved_tokens"
SHARED_RESERVED_USD = "agentsteps.budget.shared.reserved_usd"
SHARED_RESERVED_CALLS = "agentsteps.budget.shared.reserved_llm_calls"
SHARED_PERIOD_END = "agentsteps.budget.shared.period_end"


def _new_id() -> str:
    """A random charge or reservation id (128 bits, as uuid4, for a fraction of its cost)."""
    return os.urandom(16).hex()


class _Outbox:
    """Charges a store did not take yet, retried (same ids, same times) until it does."""

    __slots__ = ("down", "lock", "pending", "store")

    def __init__(self, store: BudgetStore) -> None:
        self.store = store  # kept alive: the outbox is looked up by id(store)
        self.lock = new_lock()
        self.pending: list[tuple[str, timedelta | None, Limits, Amounts, str, float]] = []
        self.down = False


_OUTBOXES: dict[int, _Outbox] = {}
_OUTBOXES_LOCK = new_lock()


def _outbox(store: BudgetStore) -> _Outbox:
    box = _OUTBOXES.get(id(store))
    if box is None or box.store is not store:
        with _OUTBOXES_LOCK:
            box = _OUTBOXES.get(id(store))
            if box is None or box.store is not store:
                box = _OUTBOXES[id(store)] = _Outbox(store)
    return box


def pending_charges(store: BudgetStore) -> int:
    """How many charges wait for ``store`` to come back (for tests and metrics)."""
    box = _OUTBOXES.get(id(store))
    return 0 if box is None or box.store is not store else len(box.pending)


def _went_down(box: _Outbox, error: BudgetStoreUnavailable, fail_open: bool) -> None:
    with box.lock:
        first, box.down = not box.down, True
    if first:
        # Once per outage, not per call: a fleet's logs must not drown in it.
        what = "calls go on, charged locally" if fail_open else "model calls are refused"
        logger.warning(
            "agentsteps: budget store %s is unavailable (%s): %s; usage is kept and added "
            "when it answers again",
            error.store,
            error.reason,
            what,
        )


def flush(store: BudgetStore) -> None:
    """
    Charge what waits in ``store``'s outbox, oldest first; raises `BudgetStoreUnavailable`
    if the store is still away (what is left stays queued).
    """
    box = _outbox(store)
    if not box.pending:
        return
    with box.lock:
        while box.pending:
            key, period, limits, amounts, charge_id, at = box.pending[0]
            # The same id and time: a charge the store took before its reply was lost
            # is not added twice, and it lands in the period it was spent in.
            store.charge(key, period, limits, amounts, charge_id=charge_id, at=at)
            box.pending.pop(0)
        was_down, box.down = box.down, False
    if was_down:
        logger.warning("agentsteps: budget store %r is back; queued usage was added", store)


def _unavailable(exc: Exception, key: str, store: BudgetStore) -> BudgetStoreUnavailable:
    """``exc`` as the store's unavailability (a custom store may raise anything)."""
    if isinstance(exc, BudgetStoreUnavailable):
        return exc
    return BudgetStoreUnavailable(key, repr(store), f"{type(exc).__name__}: {exc}")


def _reservation_of(account: SharedAccount) -> str | None:
    """The reservation the open model call holds under ``account``, if any."""

    call = CALL.get()
    for held, rid in (None if call is None else call._reservation) or ():
        if held is account:
            return str(rid)
    return None


def _threshold_hooks(frame: ActiveStep | ActivePersona) -> dict[int, list[Any]]:
    """The ``budget_threshold`` hooks of ``frame``'s step, by their mark in basis points."""

    if _dispatch.IN_HANDLER.get() or frame._step is not frame:
        return {}
    persona, name = _dispatch._persona_name(frame), frame._defn.name
    marks: dict[int, list[Any]] = {}
    for hook in route(HookEvent.BUDGET_THRESHOLD, persona, name):
        marks.setdefault(round((hook.threshold_pct or 0) * 100), []).append(hook)
    return marks


def charge_shared(
    sharers: list[ActiveStep | ActivePersona], tokens: int, nanos: int, calls: int
) -> tuple[list[tuple[Ledger, str]], list[tuple[Any, list[Any], float]]]:
    """
    Charge one record to the store of every shared budget in ``sharers`` (innermost
    first); return the ledgers whose limit this record crossed fleet-wide, with the limit,
    and the ``budget_threshold`` hooks whose mark it reached first, fleet-wide.

    Never raises for an unreachable store: the charge is queued (see `flush`).
    """

    crossings: list[tuple[Ledger, str]] = []
    due: list[tuple[Any, list[Any], float]] = []
    amounts = Amounts(tokens, nanos, calls)
    for frame in sharers:
        ledger = frame._ledger
        account: SharedAccount = ledger.shared
        store = account.store
        charge_id = _new_id()
        rid = _reservation_of(account)
        at = store.now()
        hooks = _threshold_hooks(frame) if ACTIVE.budget else {}
        try:
            flush(store)
            result = store.charge(
                account.key,
                account.period,
                account.limits,
                amounts,
                charge_id=charge_id,
                at=at,
                reservation=rid,
                marks=tuple(sorted(hooks)),
            )
        except Exception as exc:
            # Any failure of the store: the record must still be charged locally, and
            # to the store once it answers.
            error = _unavailable(exc, account.key, store)
            box = _outbox(store)
            with box.lock:
                box.pending.append(
                    (account.key, account.period, account.limits, amounts, charge_id, at)
                )
            _went_down(box, error, account.fail_open)
            continue
        account.figures = result.figures
        note_shared_spent(result.figures.key, result.figures.spent.nanos)
        _show(frame, result.figures)
        if result.crossed:
            crossings.append((ledger, result.crossed[0]))
        if result.marks:
            fired = [hook for mark in result.marks for hook in hooks[mark]]
            due.append((frame, fired, _pct(result.figures, account.limits)))
    return crossings, due


def _pct(figures: SharedFigures, limits: Limits) -> float:
    """The highest share of any limit spent fleet-wide, in percent."""
    return used_pct(*figures.spent.as_tuple(), *limits.as_tuple())


def charge_frames(frame: ActiveStep | ActivePersona, usage: Usage) -> BaseException | None:
    """
    Charge ``usage`` to the shared budgets of ``frame`` and the steps around it, and latch
    the exhaustion of each one it took over a limit fleet-wide (the caller raises it).
    Runs the ``budget_threshold`` hooks this record fired fleet-wide; returns the error a
    strict handler raised, for the caller to raise once the record is charged locally.
    """
    sharers: list[ActiveStep | ActivePersona] = []
    f: ActiveStep | ActivePersona | None = frame
    while f is not None:
        if f._ledger.shared is not None:
            sharers.append(f)
        f = f._parent
    if not sharers:
        return None
    crossings, due = charge_shared(
        sharers,
        usage.input_tokens + usage.output_tokens,
        usage.cost_nano_usd,
        usage.llm_calls,
    )
    if crossings:
        with LEDGER_LOCK:
            for ledger, limit in crossings:
                if ledger.exhausted is None:
                    ledger.exhausted = limit
                    ledger.delivered = False
    if not due:
        return None

    error: BaseException | None = None
    for step, hooks, pct in due:
        with LEDGER_LOCK:
            usage = step._ledger.usage()
        # The plan a local threshold makes, with the fleet-wide share of the limit.
        plan: Any = (step, hooks, (), None, usage, pct)
        found = _dispatch.after_charge([plan], None)
        error = error if error is not None else found
    return error


def _show(frame: ActiveStep | ActivePersona, figures: SharedFigures) -> None:
    """Put the fleet-wide figures after a charge on the step's span."""
    span = frame._span
    if span is None:
        return
    try:
        if not span.is_recording():
            return
        attributes: dict[str, Any] = {
            SHARED_KEY: figures.key,
            SHARED_TOKENS: figures.spent.tokens,
            SHARED_USD: figures.spent.nanos / NANOS_PER_USD,
            SHARED_CALLS: figures.spent.calls,
            SHARED_RESERVED_TOKENS: figures.reserved.tokens,
            SHARED_RESERVED_USD: figures.reserved.nanos / NANOS_PER_USD,
            SHARED_RESERVED_CALLS: figures.reserved.calls,
        }
        if figures.period_end is not None:
            end = datetime.fromtimestamp(figures.period_end, UTC)
            attributes[SHARED_PERIOD_END] = end.isoformat()
        span.set_attributes(attributes)
    except Exception:
        logger.warning("could not set the shared budget attributes of a step", exc_info=True)


def consumed(figures: SharedFigures) -> tuple[int, int, int]:
    """(tokens, nano-dollars, calls) spent fleet-wide, as exhaustion errors report them."""
    return figures.spent.as_tuple()


Refusal = tuple["ActiveStep", str, str, tuple[int, int, int] | None]


def preflight_shared(
    frame: ActiveStep | ActivePersona,
    model: str | None,
    provider: str | None,
    est: int,
    max_output: int | None,
    refused: Refusal | None,
) -> tuple[Refusal | None, list[tuple[SharedAccount, str]] | None]:
    """
    Check (or reserve in) the store of every shared budget around ``frame``.

    ``refused`` is the local pre-flight's refusal, if any; the outermost refusal wins, as
    for local budgets. Returns it and the reservations made (by account), which the
    model call settles as it charges and releases when it ends. A call that knows its
    maximum (``max_output``) reserves ``est + max_output`` tokens, their price and one
    call; others compare what is left with the input estimate.

    Raises:
        BudgetStoreUnavailable: A store is away and its budget fails closed.
    """

    made: list[tuple[SharedAccount, str]] = []
    f: ActiveStep | ActivePersona | None = frame
    # Innermost first; a refusal further out replaces one found further in.
    try:
        while f is not None:
            account = f._ledger.shared
            if account is not None and isinstance(f, ActiveStep):
                store = account.store
                try:
                    flush(store)
                    found = _check(f, account, store, model, provider, est, max_output, probe_cost)
                except Exception as exc:
                    error = _unavailable(exc, account.key, store)
                    _went_down(_outbox(store), error, account.fail_open)
                    if account.fail_open:
                        f = f._parent
                        continue
                    raise BudgetStoreUnavailable(account.key, error.store, error.reason) from exc
                if isinstance(found, str):
                    made.append((account, found))
                elif found is not None and (refused is None or _within(refused[0], f)):
                    refused = found  # further out than any refusal so far: it dominates
            f = f._parent
    except BaseException:
        release(made)
        raise
    if refused is not None:
        release(made)
        return refused, None
    return None, made or None


def _within(inner: ActiveStep | ActivePersona, outer: ActiveStep) -> bool:
    """Whether ``inner`` is ``outer`` or runs inside it."""
    f: ActiveStep | ActivePersona | None = inner
    while f is not None:
        if f is outer:
            return True
        f = f._parent
    return False


def release(made: list[tuple[SharedAccount, str]] | None) -> None:
    """Give back what is left of a model call's reservations (its usage is charged)."""
    for account, rid in made or ():
        try:
            account.store.release(account.key, account.period, rid)
        except Exception:
            pass  # the reservation expires by itself: RESERVATION_TTL


def _check(
    step: ActiveStep,
    account: SharedAccount,
    store: BudgetStore,
    model: str | None,
    provider: str | None,
    est: int,
    max_output: int | None,
    probe_cost: Any,
) -> Refusal | str | None:
    """A refusal, a reservation id, or None (the call may go)."""
    limits = account.limits
    if max_output is not None:
        cost = 0
        if limits.nanos is not None:
            cost, source = probe_cost(model, provider, est, max_output)
            if source == "unknown":
                cost = 0
        want = Amounts(est + max_output, cost, 1)
        rid = _new_id()
        result = store.reserve(
            account.key, account.period, limits, want, reservation=rid, ttl=RESERVATION_TTL
        )
        account.figures = result.figures
        note_shared_spent(result.figures.key, result.figures.spent.nanos)
        if result.granted:
            return rid
        limit = result.refused_limit or "max_tokens"
        detail = _spent(limit, account, result.figures) + (
            f", and the call's reservation ({est} input + {max_output} max output tokens"
            + (f", ${cost / NANOS_PER_USD:.6f}" if cost else "")
            + ") does not fit"
        )
        return (step, limit, detail, consumed(result.figures))
    found = store.get(account.key, account.period)
    if found is None:
        # Nothing charged in this period yet: a limit of 0 still refuses.
        figures = SharedFigures(account.key, limits, Amounts(), Amounts(), None)
    else:
        account.figures = found
        # Limits as this budget has them (the store keeps the last charge's).
        figures = SharedFigures(found.key, limits, found.spent, found.reserved, found.period_end)
    tokens, nanos, calls = figures.remaining()
    if tokens is not None and tokens <= est:
        detail = _spent("max_tokens", account, figures)
        if est:
            detail += f", and the call's {est} input tokens leave no room for output"
        return (step, "max_tokens", detail, consumed(figures))
    if nanos is not None:
        cost, source = probe_cost(model, provider, est, 1)
        if (source == "unknown" and nanos == 0) or (source != "unknown" and cost > nanos):
            return (step, "max_usd", _spent("max_usd", account, figures), consumed(figures))
    if calls is not None and calls == 0:
        return (step, "max_llm_calls", _spent("max_llm_calls", account, figures), consumed(figures))
    return None


def _spent(limit: str, account: SharedAccount, figures: SharedFigures) -> str:
    budget = account.budget
    where = f"fleet-wide under shared key {account.key!r}"
    if limit == "max_usd":
        spent = (figures.spent.nanos + figures.reserved.nanos) / NANOS_PER_USD
        return f"${spent:.4f} of ${budget.max_usd:.4f} spent or reserved {where}"
    if limit == "max_tokens":
        used = figures.spent.tokens + figures.reserved.tokens
        return f"{used} of {budget.max_tokens} tokens used or reserved {where}"
    made = figures.spent.calls + figures.reserved.calls
    return f"{made} of {budget.max_llm_calls} calls made or reserved {where}"
