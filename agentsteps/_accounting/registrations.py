"""
Registered prices: `register_price`, `unregister_price`, `override_price`, and the tables
the pricing hot path (pricing.py) reads them from without a lock.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from typing import Any

from .._core.locks import new_lock
from .catalog import _Slow
from .rates import Price, PriceSource, _check_rate, _Rates, _rates_of

__all__ = ["override_price", "register_price", "registered_price", "unregister_price"]

# Model name -> registered Price, and the same as rates for the hot path. Read without a lock:
# dict reads and single assignments are atomic in CPython; writers hold _lock so that the two
# dicts and read-modify-write sequences stay consistent.
_user_prices: dict[str, Price] = {}
_user_rates: dict[str | None, _Rates] = {}
# (provider, model) -> the price found for a model not registered under its exact name: a
# registration under its undated name, else the catalog; None if neither has it. Filled under
# _lock and cleared by every registration change, so it never outlives the registrations.
_resolved: dict[tuple[str | None, str | None], tuple[_Rates | _Slow, PriceSource] | None] = {}
_lock = new_lock()  # re-entrant, fork-safe: see _core/locks.py


def register_price(
    model: str,
    *,
    input_per_mtok: float,
    output_per_mtok: float,
    cache_read_per_mtok: float | None = None,
    cache_write_per_mtok: float | None = None,
) -> Price:
    """Set what *model* costs; it takes precedence over the genai-prices catalog.

    The price applies to calls recorded under exactly this name, and to its dated snapshots
    (``gpt-4o`` also prices ``gpt-4o-2024-08-06``; ``claude-sonnet-4`` prices
    ``claude-sonnet-4-20250514``) unless a snapshot is registered itself. Registering a model
    again replaces its price.

    Args:
        model: The model name, matched exactly.
        input_per_mtok: USD per million uncached input tokens.
        output_per_mtok: USD per million output tokens.
        cache_read_per_mtok: USD per million cache-read input tokens; `None` means the input rate.
        cache_write_per_mtok: USD per million cache-write input tokens; `None` means the input rate.

    Returns:
        The registered `Price`, with defaults filled in.

    Raises:
        TypeError: If *model* is not a string or a rate is not a number.
        ValueError: If *model* is empty or a rate is negative, infinite or NaN.

    .. versionadded:: 0.1.0
    """
    price = _make_price(
        model,
        input_per_mtok=input_per_mtok,
        output_per_mtok=output_per_mtok,
        cache_read_per_mtok=cache_read_per_mtok,
        cache_write_per_mtok=cache_write_per_mtok,
    )
    rates = _rates_of(price)
    with _lock:
        _user_prices[model] = price
        _user_rates[model] = rates
        _resolved.clear()
    return price


def _make_price(
    model: object,
    *,
    input_per_mtok: object,
    output_per_mtok: object,
    cache_read_per_mtok: object,
    cache_write_per_mtok: object,
) -> Price:
    if not isinstance(model, str):
        got = f"{model!r} of type {type(model).__name__}"
        msg = f"register_price(): 'model' must be a model name (str), got {got}"
        raise TypeError(msg)
    if not model:
        msg = "register_price(): 'model' must be a non-empty model name, got ''"
        raise ValueError(msg)
    if model != model.strip():
        # Matched exactly: a name with blanks around it never matches a recorded call.
        hint = f"write {model.strip()!r}" if model.strip() else "give the model's name"
        msg = (
            "register_price(): 'model' must not be blank or start or end with whitespace "
            f"(got {model!r}); {hint}"
        )
        raise ValueError(msg)
    # Validate here too so the error names the argument the caller typed, before attrs sees it.
    _check_rate("input_per_mtok", input_per_mtok, "register_price()")
    _check_rate("output_per_mtok", output_per_mtok, "register_price()")
    kwargs: dict[str, Any] = {}
    if cache_read_per_mtok is not None:
        _check_rate("cache_read_per_mtok", cache_read_per_mtok, "register_price()")
        kwargs["cache_read_per_mtok"] = cache_read_per_mtok
    if cache_write_per_mtok is not None:
        _check_rate("cache_write_per_mtok", cache_write_per_mtok, "register_price()")
        kwargs["cache_write_per_mtok"] = cache_write_per_mtok
    return Price(input_per_mtok, output_per_mtok, **kwargs)  # type: ignore[arg-type]


def unregister_price(model: str) -> Price | None:
    """Forget a price set with `register_price`.

    Args:
        model: The model name it was registered under.

    Returns:
        The price that was registered, or `None` if there was none.

    .. versionadded:: 0.1.0
    """
    with _lock:
        _user_rates.pop(model, None)
        _resolved.clear()
        return _user_prices.pop(model, None)


@contextlib.contextmanager
def override_price(
    model: str,
    *,
    input_per_mtok: float,
    output_per_mtok: float,
    cache_read_per_mtok: float | None = None,
    cache_write_per_mtok: float | None = None,
) -> Iterator[Price]:
    """Register a price for the duration of a ``with`` block, then restore what was there.

    Handy in tests. The registration is process-wide, not scoped to the current task or thread.
    Named for what it does to the price a model is charged at, like `register_price` and
    `unregister_price` beside it; ``registered_price``, its name until 0.2.0, read as a
    getter and still works, with a `DeprecationWarning`.

    Example:
        >>> from agentsteps import override_price, record_usage, run, step
        >>> @step(model="my-model")
        ... def ask():
        ...     record_usage(input_tokens=1_000_000, output_tokens=0)
        >>> with override_price("my-model", input_per_mtok=2.5, output_per_mtok=10), run() as r:
        ...     ask()
        >>> r.steps[0].usage.cost_usd
        2.5

    Args:
        model: The model name, matched exactly.
        input_per_mtok: USD per million uncached input tokens.
        output_per_mtok: USD per million output tokens.
        cache_read_per_mtok: USD per million cache-read input tokens; `None` means the input rate.
        cache_write_per_mtok: USD per million cache-write input tokens; `None` means the input rate.

    Yields:
        The registered `Price`.

    .. versionadded:: 0.2.0
    """
    price = _make_price(
        model,
        input_per_mtok=input_per_mtok,
        output_per_mtok=output_per_mtok,
        cache_read_per_mtok=cache_read_per_mtok,
        cache_write_per_mtok=cache_write_per_mtok,
    )
    rates = _rates_of(price)
    with _lock:
        previous_price = _user_prices.get(model)
        previous_rates = _user_rates.get(model)
        _user_prices[model] = price
        _user_rates[model] = rates
        _resolved.clear()
    try:
        yield price
    finally:
        with _lock:
            if previous_price is None or previous_rates is None:
                _user_prices.pop(model, None)
                _user_rates.pop(model, None)
            else:
                _user_prices[model] = previous_price
                _user_rates[model] = previous_rates
            _resolved.clear()


def registered_price(
    model: str,
    *,
    input_per_mtok: float,
    output_per_mtok: float,
    cache_read_per_mtok: float | None = None,
    cache_write_per_mtok: float | None = None,
) -> contextlib.AbstractContextManager[Price]:
    """
    Deprecated alias of `override_price` (a context manager named like a getter).

    .. deprecated:: 0.2.0
       Use `override_price`; this name goes in the next release.
    """
    msg = "registered_price() is deprecated since 0.2.0; use override_price() instead"
    warnings.warn(msg, DeprecationWarning, stacklevel=2)
    return override_price(
        model,
        input_per_mtok=input_per_mtok,
        output_per_mtok=output_per_mtok,
        cache_read_per_mtok=cache_read_per_mtok,
        cache_write_per_mtok=cache_write_per_mtok,
    )
