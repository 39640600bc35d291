"""
Prices as values: `Price` (what a user registers, in USD per million tokens) and the exact
integer rates the pricing hot path multiplies by.
"""

from __future__ import annotations

import math
import numbers
from decimal import ROUND_HALF_UP, Decimal
from typing import Final, Literal, NamedTuple

import attrs

__all__ = ["Price", "PriceSource"]

PriceSource = Literal["user", "catalog", "unknown"]
"""Where `price_usage` found a price; the core says ``"provider"`` for an explicit ``cost_usd``."""

# Rates are kept as integer femto-dollars (1e-15 USD) per token: USD per million tokens times 1e9.
# Integers keep the hot path exact and fast; nine decimal places of USD/Mtok cover every published
# price (the catalog's few float-noise values lose less than a nano-dollar per call).
_FEMTO_PER_USD_PER_MTOK: Final = 10**9
# One nano-dollar (the core's accounting unit) is 10**6 femto-dollars.
_FEMTO_PER_NANO: Final = 10**6
_HALF_NANO: Final = _FEMTO_PER_NANO // 2

# (uncached input, output, cache read, cache write) in femto-dollars per token.
_FlatRates = tuple[int, int, int, int]


class _Rates(NamedTuple):
    """Precomputed femto-dollar rates; a plain tuple so the hot path can unpack it in one go."""

    input: int
    output: int
    cache_read: int
    cache_write: int
    steps: tuple[tuple[int, _FlatRates], ...] | None = None
    """(threshold, rates) by threshold, used when input_tokens > threshold; None if flat."""


def _check_rate(name: str, value: object, owner: str = "Price") -> None:
    """Raise a `ValueError`/`TypeError` naming *name* unless *value* is a usable USD/Mtok rate."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        msg = (
            f"{owner}: {name!r} must be a number of US dollars per million tokens (int or float), "
            f"got {value!r} of type {type(value).__name__}"
        )
        raise TypeError(msg)
    if not math.isfinite(value) or value < 0:
        msg = (
            f"{owner}: {name!r} must be a finite number >= 0 (USD per million tokens), "
            f"got {value!r}"
        )
        raise ValueError(msg)


def _validate_rate(instance: object, attribute: attrs.Attribute[float], value: object) -> None:
    """Attrs validator wrapper around `_check_rate`."""
    _check_rate(attribute.name, value)


def _default_to_input(self: Price) -> float:
    """Cache rates default to the input rate: no discount or surcharge is assumed."""
    return self.input_per_mtok


@attrs.frozen
class Price:
    """What a model costs, in US dollars per million tokens.

    Cached-token rates default to the input rate, so a price registered with only
    `input_per_mtok` and `output_per_mtok` never under-charges a cache read and charges a
    cache write like an ordinary input token (which is what OpenAI does). Providers with a
    cache discount or a write surcharge need them spelled out: Anthropic charges 0.1x the
    input rate for a cache read and 1.25x for a 5-minute cache write.

    Example:
        >>> price = Price(input_per_mtok=1.0, output_per_mtok=5.0, cache_read_per_mtok=0.1)
        >>> price.cache_read_per_mtok, price.cache_write_per_mtok
        (0.1, 1.0)

    .. versionadded:: 0.1.0
    """

    input_per_mtok: float = attrs.field(validator=_validate_rate)
    """USD per million uncached input tokens."""
    output_per_mtok: float = attrs.field(validator=_validate_rate)
    """USD per million output tokens (reasoning tokens included)."""
    cache_read_per_mtok: float = attrs.field(
        default=attrs.Factory(_default_to_input, takes_self=True), validator=_validate_rate
    )
    """USD per million input tokens read from the prompt cache (default: the input rate)."""
    cache_write_per_mtok: float = attrs.field(
        default=attrs.Factory(_default_to_input, takes_self=True), validator=_validate_rate
    )
    """USD per million input tokens written to the prompt cache (default: the input rate)."""


def _femto(usd_per_mtok: object) -> int:
    """Convert a USD/Mtok rate (int, float or Decimal) to integer femto-dollars per token."""
    # repr() of a float is the shortest string that round-trips, so 0.1 becomes exactly 0.1.
    exact = usd_per_mtok if isinstance(usd_per_mtok, Decimal) else Decimal(repr(usd_per_mtok))
    return int((exact * _FEMTO_PER_USD_PER_MTOK).to_integral_value(ROUND_HALF_UP))


def _rates_of(price: Price) -> _Rates:
    return _Rates(
        _femto(price.input_per_mtok),
        _femto(price.output_per_mtok),
        _femto(price.cache_read_per_mtok),
        _femto(price.cache_write_per_mtok),
    )
