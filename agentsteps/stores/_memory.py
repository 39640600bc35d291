"""`InProcessBudgetStore`: shared-budget counters in this process's memory."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta

from .._core.locks import new_lock
from ._types import (
    LIMIT_NAMES,
    Amounts,
    ChargeResult,
    Limits,
    SharedFigures,
    period_ms,
    reached,
    window_of,
)

__all__ = ["InProcessBudgetStore"]


class _Window:
    """One key's counters in one period."""

    __slots__ = ("crossed", "end", "ids", "key", "limits", "reservations", "reserved", "spent")

    def __init__(self, key: str, end: int | None) -> None:
        self.key = key
        self.end = end
        self.spent = [0, 0, 0]
        self.reserved = [0, 0, 0]
        self.limits = Limits()
        self.crossed: set[object] = set()  # limit names, and ("mark", basis points)
        self.ids: set[str] = set()
        # reservation id -> [tokens, nanos, calls, expires at (epoch ms)]
        self.reservations: dict[str, list[int]] = {}

    def sweep(self, now_ms: int) -> None:
        """Give back reservations whose holder never settled them (a crashed worker)."""
        for rid in [r for r, held in self.reservations.items() if held[3] <= now_ms]:
            self._drop(rid)

    def _drop(self, rid: str) -> None:
        held = self.reservations.pop(rid, None)
        if held is not None:
            for i in range(3):
                self.reserved[i] -= held[i]

    def figures(self) -> SharedFigures:
        return SharedFigures(
            key=self.key,
            limits=self.limits,
            spent=Amounts(*self.spent),
            reserved=Amounts(*self.reserved),
            period_end=None if self.end is None else self.end / 1000,
        )


class InProcessBudgetStore:
    """
    A `BudgetStore` in this process's memory: the default store of shared budgets.

    It makes a shared budget hold across every thread and task of one process (all steps
    with the same ``shared_key``), with the same semantics as `RedisBudgetStore`, so code
    written against it moves to a fleet by changing the store only. Tests use it too.

    Args:
        clock: Seconds since the epoch; defaults to `time.time`. Pass your own to move
            through periods without sleeping.

    Example:
        >>> from datetime import timedelta
        >>> from agentsteps.stores import Amounts, InProcessBudgetStore, Limits
        >>> store = InProcessBudgetStore(clock=lambda: 100.0)
        >>> result = store.charge("tenant-42", timedelta(minutes=1), Limits(tokens=10),
        ...                       Amounts(tokens=12, calls=1), charge_id="c1")
        >>> result.crossed, result.figures.spent.tokens, result.figures.period_end
        (('max_tokens',), 12, 120.0)

    .. versionadded:: 0.2.0
    """

    def __init__(self, *, clock: Callable[[], float] | None = None) -> None:
        given: object = clock  # object: the annotation is not checked at run time
        if given is not None and not callable(given):
            msg = (
                f"InProcessBudgetStore: 'clock' must be a callable returning epoch seconds "
                f"or None (got {clock!r})"
            )
            raise TypeError(msg)
        self._clock: Callable[[], float] = time.time if clock is None else clock
        # Fork-safe: prefork workers (Celery, gunicorn) fork with this store in use.
        self._lock = new_lock()
        self._windows: dict[tuple[str, int | None, int], _Window] = {}

    def __repr__(self) -> str:
        return "InProcessBudgetStore()"

    def now(self) -> float:
        """The store's clock, in seconds since the epoch."""
        return self._clock()

    def _window(
        self, key: str, period: timedelta | None, at: float, create: bool
    ) -> _Window | None:
        start, end = window_of(at, period)
        ident = (key, None if period is None else period_ms(period), start)
        window = self._windows.get(ident)
        if window is None and create:
            window = self._windows[ident] = _Window(key, end)
        return window

    def _expire(self, now_ms: int) -> None:
        # Windows past their end are dropped, as Redis expires them.
        for ident in [i for i, w in self._windows.items() if w.end is not None and w.end <= now_ms]:
            del self._windows[ident]

    def charge(
        self,
        key: str,
        period: timedelta | None,
        limits: Limits,
        amounts: Amounts,
        *,
        charge_id: str,
        at: float | None = None,
        reservation: str | None = None,
        marks: tuple[int, ...] = (),
    ) -> ChargeResult:
        """Add ``amounts`` under ``key`` once per ``charge_id`` (see `BudgetStore.charge`)."""
        now = self._clock()
        with self._lock:
            window = self._window(key, period, now if at is None else at, True)
            assert window is not None
            window.sweep(int(now * 1000))
            if charge_id in window.ids:
                return ChargeResult(window.figures(), duplicate=True)
            window.ids.add(charge_id)
            add = amounts.as_tuple()
            if reservation is not None:
                held = window.reservations.get(reservation)
                if held is not None:
                    for i in range(3):
                        draw = min(held[i], add[i])
                        held[i] -= draw
                        window.reserved[i] -= draw
            for i in range(3):
                window.spent[i] += add[i]
            window.limits = limits
            crossed = []
            for name, lim, spent in zip(LIMIT_NAMES, limits.as_tuple(), window.spent, strict=True):
                if lim is not None and spent > lim and name not in window.crossed:
                    window.crossed.add(name)
                    crossed.append(name)
            hit = []
            for mark in marks:
                if ("mark", mark) not in window.crossed and any(
                    lim is not None and reached(spent, lim, mark)
                    for lim, spent in zip(limits.as_tuple(), window.spent, strict=True)
                ):
                    window.crossed.add(("mark", mark))
                    hit.append(mark)
            result = ChargeResult(window.figures(), crossed=tuple(crossed), marks=tuple(hit))
            self._expire(int(now * 1000))
            return result

    def reserve(
        self,
        key: str,
        period: timedelta | None,
        limits: Limits,
        amounts: Amounts,
        *,
        reservation: str,
        ttl: timedelta,
    ) -> ChargeResult:
        """Hold ``amounts`` if they fit every limit (see `BudgetStore.reserve`)."""
        now = self._clock()
        with self._lock:
            window = self._window(key, period, now, True)
            assert window is not None
            window.sweep(int(now * 1000))
            window.limits = limits
            want = amounts.as_tuple()
            for name, lim, spent, held, add in zip(
                LIMIT_NAMES, limits.as_tuple(), window.spent, window.reserved, want, strict=True
            ):
                if lim is not None and spent + held + add > lim:
                    return ChargeResult(window.figures(), granted=False, refused_limit=name)
            expires = int(now * 1000) + ttl // timedelta(milliseconds=1)
            window.reservations[reservation] = [*want, expires]
            for i in range(3):
                window.reserved[i] += want[i]
            return ChargeResult(window.figures())

    def release(self, key: str, period: timedelta | None, reservation: str) -> None:
        """Give back what is left of a reservation (see `BudgetStore.release`)."""
        now = self._clock()
        with self._lock:
            window = self._window(key, period, now, False)
            if window is not None:
                window._drop(reservation)

    def get(self, key: str, period: timedelta | None = None) -> SharedFigures | None:
        """The key's figures in its current period, or ``None`` when nothing was charged."""
        now = self._clock()
        with self._lock:
            window = self._window(key, period, now, False)
            if window is None:
                return None
            window.sweep(int(now * 1000))
            return window.figures()

    def list(self) -> list[SharedFigures]:
        """Every key's figures in the periods the store still holds, by key."""
        now = self._clock()
        with self._lock:
            self._expire(int(now * 1000))
            windows = sorted(self._windows.values(), key=lambda w: (w.key, w.end or 0))
            for window in windows:
                window.sweep(int(now * 1000))
            return [w.figures() for w in windows]


InProcessBudgetStore.__module__ = "agentsteps.stores"
