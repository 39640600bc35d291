"""
The genai-prices catalog: loaded on first need (or by `preload_prices`), from the data
bundled with the installed package only, never the network; looked up once per model.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from datetime import UTC
from decimal import ROUND_HALF_UP
from typing import TYPE_CHECKING

import attrs

from .._core.locks import new_lock
from .rates import PriceSource, _femto, _Rates

if TYPE_CHECKING:
    from genai_prices.data_snapshot import DataSnapshot

__all__ = ["catalog_rates", "forget_catalog", "preload_prices", "slow_catalog_price"]

logger = logging.getLogger("agentsteps")

_snapshot: DataSnapshot | None = None
_catalog_available: bool | None = None


@attrs.frozen
class _Slow:
    """A catalog model whose price needs genai-prices on every call (time-of-day or per-request)."""

    model: str
    provider: str | None


def preload_prices(*, background: bool = True) -> threading.Thread | None:
    """Load the price catalog now, so that the first priced record does not wait for it.

    ``import agentsteps`` does not load the genai-prices catalog: the first record that
    needs a price does, which takes about 0.1 to 0.3 s (measured on a loaded 2-core
    machine). In an async application that record would stall the event loop for that
    long; call this at start-up (for example in a web framework's lifespan handler) to
    load it in a daemon thread instead. A record that needs a price while the thread is
    still loading waits for it rather than loading a second copy.

    Args:
        background: Load in a daemon thread (the default) and return it; ``False`` loads
            in the calling thread and returns ``None``.

    Returns:
        The loading thread, or ``None`` when loading synchronously or already loaded.

    Example:
        >>> import agentsteps
        >>> agentsteps.preload_prices(background=False)

    .. versionadded:: 0.1.0
    """
    if _catalog_available is not None:
        return None
    if not background:
        _load_snapshot()
        return None
    thread = threading.Thread(target=_load_snapshot, name="agentsteps-prices", daemon=True)
    thread.start()
    return thread


# Held while the catalog loads: a record arriving meanwhile waits instead of loading twice.
_catalog_lock = new_lock()  # fork-safe: see _core/locks.py


def _load_snapshot() -> DataSnapshot | None:
    """The genai-prices data bundled with the installed package, or `None` if not installed."""
    if _catalog_available is None:
        with _catalog_lock:
            _load_snapshot_locked()
    return _snapshot


def _load_snapshot_locked() -> None:
    global _snapshot, _catalog_available
    if _catalog_available is None:
        try:
            # Built from the bundled data directly rather than via get_snapshot(), which would
            # pick up prices a genai_prices.UpdatePrices thread fetched: the catalog must give
            # the same answer for the same installed version, with no network involved.
            from genai_prices.data import providers
            from genai_prices.data_snapshot import DataSnapshot
        except ImportError:
            _catalog_available = False
        else:
            _snapshot = DataSnapshot(providers=providers, from_auto_update=False)
            _catalog_available = True


def catalog_rates(model: str | None, provider: str | None) -> _Rates | _Slow | None:
    """Look *model* up in the catalog once; telemetry must not break the caller, so log errors."""
    if model is None:
        return None
    try:
        snapshot = _load_snapshot()
        if snapshot is None:
            return None
        return _rates_from_catalog(snapshot, model, provider)
    except Exception:
        logger.warning("genai-prices failed to look up model %r", model, exc_info=True)
        return None


def _rates_from_catalog(
    snapshot: DataSnapshot, model: str, provider: str | None
) -> _Rates | _Slow | None:
    from datetime import datetime

    from genai_prices.types import ModelPrice, StartDateConstraint, TieredPrices

    found = None
    if provider is not None:
        with contextlib.suppress(LookupError):
            found = snapshot.find_provider_model(model, None, provider, None)
    if found is None:
        try:
            found = snapshot.find_provider_model(model, None, None, None)
        except LookupError:
            return None
    found_provider, info = found
    now = datetime.now(tz=UTC)
    prices = info.get_prices(now)
    if getattr(prices, "input_mtok", None) is None and getattr(prices, "output_mtok", None) is None:
        return None  # priced per character, page or second: not something token counts can price
    # A price that depends on the time of day, starts in the future, or adds a per-request fee
    # is computed by genai-prices on every call; everything else is cached as plain rates.
    stable = isinstance(info.prices, ModelPrice) or all(
        c.constraint is None
        or (type(c.constraint) is StartDateConstraint and c.constraint.active(now))
        for c in info.prices
    )
    if not stable or getattr(prices, "requests_kcount", None) is not None:
        return _Slow(model, found_provider.id)

    keys = ("input_mtok", "output_mtok", "cache_read_mtok", "cache_write_mtok")
    values = [getattr(prices, k, None) for k in keys]
    # Unpriced cache rates fall back to the input rate, as genai-prices itself does.
    for i in (2, 3):
        if values[i] is None:
            values[i] = values[0]

    def at(value: object, threshold: int) -> int:
        if value is None:
            return 0
        if isinstance(value, TieredPrices):
            rate = value.base
            for tier in value.tiers:
                if tier.start <= threshold:
                    rate = tier.price
            return _femto(rate)
        return _femto(value)

    starts = sorted({t.start for v in values if isinstance(v, TieredPrices) for t in v.tiers})
    steps = tuple(
        (s, (at(values[0], s), at(values[1], s), at(values[2], s), at(values[3], s)))
        for s in starts
    )
    return _Rates(
        at(values[0], -1), at(values[1], -1), at(values[2], -1), at(values[3], -1), steps or None
    )


def slow_catalog_price(
    slow: _Slow,
    input_tokens: int,
    output_tokens: int,
    cache_read_tokens: int,
    cache_write_tokens: int,
) -> tuple[int, PriceSource]:
    try:
        from genai_prices.types import Usage

        snapshot = _load_snapshot()
        assert snapshot is not None  # a _Slow entry exists only once the catalog loaded
        usage = Usage(
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cache_read_tokens=cache_read_tokens,
            cache_write_tokens=cache_write_tokens,
        )
        calc = snapshot.calc(usage, slow.model, slow.provider, None, None)
    except Exception:
        logger.warning("genai-prices failed to price model %r", slow.model, exc_info=True)
        return 0, "unknown"
    nanos = (calc.total_price * 10**9).to_integral_value(ROUND_HALF_UP)
    return int(nanos), "catalog"


def forget_catalog() -> None:
    """Drop the loaded catalog: the next look-up loads it again (see `reset_pricing`)."""
    global _snapshot, _catalog_available
    with _catalog_lock:
        _snapshot = None
        _catalog_available = None
