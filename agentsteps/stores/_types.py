"""The values a `BudgetStore` takes and returns, and the protocol itself."""

from __future__ import annotations

from datetime import timedelta
from typing import Protocol, runtime_checkable

import attrs

__all__ = ["Amounts", "BudgetStore", "ChargeResult", "Limits", "SharedFigures", "window_of"]

LIMIT_NAMES = ("max_tokens", "max_usd", "max_llm_calls")
"""The limits, in the order every tuple here holds them: tokens, nano-dollars, calls."""


@attrs.frozen
class Amounts:
    """
    Integer usage figures: tokens (input plus output), nano-dollars (1e-9 USD) and calls.

    .. versionadded:: 0.2.0
    """

    tokens: int = 0
    """Input plus output tokens."""
    nanos: int = 0
    """Cost in nano-dollars."""
    calls: int = 0
    """Model calls."""

    def as_tuple(self) -> tuple[int, int, int]:
        """``(tokens, nanos, calls)``."""
        return (self.tokens, self.nanos, self.calls)


@attrs.frozen
class Limits:
    """
    A shared budget's limits in store units (``None``: no limit on that figure).

    .. versionadded:: 0.2.0
    """

    tokens: int | None = None
    """Most input plus output tokens."""
    nanos: int | None = None
    """Most nano-dollars."""
    calls: int | None = None
    """Most model calls."""

    def as_tuple(self) -> tuple[int | None, int | None, int | None]:
        """``(tokens, nanos, calls)``."""
        return (self.tokens, self.nanos, self.calls)


@attrs.frozen
class SharedFigures:
    """
    One shared key's fleet-wide figures in its current period, as a store holds them.

    .. versionadded:: 0.2.0
    """

    key: str
    """The shared key (``Budget(shared_key=...)``)."""
    limits: Limits
    """The limits the last charge under the key carried."""
    spent: Amounts
    """What was charged in the period, fleet-wide."""
    reserved: Amounts
    """What open reservations hold (pre-flights of calls not settled yet)."""
    period_end: float | None
    """When the period ends, in seconds since the epoch (UTC); ``None``: no period."""

    def remaining(self) -> tuple[int | None, int | None, int | None]:
        """What is left under each limit after spent and reserved (``None``: no limit)."""
        spent = self.spent.as_tuple()
        held = self.reserved.as_tuple()
        return tuple(  # type: ignore[return-value]
            None if lim is None else max(0, lim - s - r)
            for lim, s, r in zip(self.limits.as_tuple(), spent, held, strict=True)
        )


@attrs.frozen
class ChargeResult:
    """
    What a store answers to a charge or a reservation.

    .. versionadded:: 0.2.0
    """

    figures: SharedFigures
    """The key's figures after the operation."""
    crossed: tuple[str, ...] = ()
    """The limits (``"max_tokens"``, ``"max_usd"``, ``"max_llm_calls"``) this charge took
    over: each is reported to exactly one charge per key and period, fleet-wide."""
    duplicate: bool = False
    """The charge id was applied before (a retry): nothing was added this time."""
    granted: bool = True
    """For a reservation: whether it fitted under every limit (else nothing was held)."""
    refused_limit: str | None = None
    """For a refused reservation: the first limit it did not fit under."""
    marks: tuple[int, ...] = ()
    """The ``marks`` (basis points of a limit) this charge reached first, fleet-wide."""


@runtime_checkable
class BudgetStore(Protocol):
    """
    Where shared budgets keep their fleet-wide counters.

    Every operation is atomic in the store: concurrent charges from any number of
    processes add up exactly, and each limit's crossing is reported to one charge only.
    Periods are calendar windows aligned to UTC multiples of the period (see `window_of`);
    a store computes the window from its own clock, or from ``at`` for a charge retried
    later, so a retry lands in the window its usage belongs to.

    Implementations: `InProcessBudgetStore` (one process; the default) and
    `RedisBudgetStore`. A store that cannot be reached raises `BudgetStoreUnavailable`.

    .. versionadded:: 0.2.0
    """

    def now(self) -> float:
        """The store's clock, in seconds since the epoch."""
        ...

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
        """
        Add ``amounts`` under ``key`` once per ``charge_id``; draw it from ``reservation``
        (the held amount shrinks by what is charged) when given. ``marks`` are thresholds
        in basis points of a limit (8000: 80%); each is reported to the one charge that
        first takes any limit's spent figure to it, fleet-wide.
        """
        ...

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
        """Hold ``amounts`` if spent plus reserved plus them fits every limit; else hold none."""
        ...

    def release(self, key: str, period: timedelta | None, reservation: str) -> None:
        """Give back what is left of a reservation (no error when it is gone)."""
        ...

    def get(self, key: str, period: timedelta | None = None) -> SharedFigures | None:
        """The key's figures in its current period, or ``None`` when nothing was charged."""
        ...

    def list(self) -> list[SharedFigures]:
        """Every key's figures in the periods the store still holds."""
        ...


def window_of(at: float, period: timedelta | None) -> tuple[int, int | None]:
    """
    The period containing ``at`` (epoch seconds): its start and end in epoch milliseconds.

    Windows are aligned to UTC multiples of the period since the epoch, so a daily budget
    resets at midnight UTC in every process. ``None`` is one window for ever: ``(0, None)``.

    Example:
        >>> from datetime import timedelta
        >>> window_of(90_061.5, timedelta(days=1))
        (86400000, 172800000)
    """
    if period is None:
        return 0, None
    ms = period_ms(period)
    start = int(at * 1000) // ms * ms
    return start, start + ms


def reached(spent: int, limit: int, mark: int) -> bool:
    """Whether ``spent`` is at ``mark`` basis points of ``limit`` (any spend on a 0 limit)."""
    return spent > 0 if limit == 0 else spent * 10_000 >= mark * limit


def period_ms(period: timedelta) -> int:
    """A period in whole milliseconds (validated positive by `Budget`)."""
    return period // timedelta(milliseconds=1)
