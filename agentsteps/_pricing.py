"""Prices per model, and the cost of a usage record (user-registered prices only, for now)."""

from __future__ import annotations

__all__ = ["price_usage"]

_USER_PRICES: dict[str, tuple[float, float, float, float]] = {}


def price_usage(
    model: str | None,
    *,
    input_tokens: int,
    output_tokens: int,
    cache_read_tokens: int,
    cache_write_tokens: int,
    reasoning_tokens: int,
) -> tuple[int, str]:
    """Cost in nano-dollars of one record and where it came from ("user" or "unknown")."""
    price = None if model is None else _USER_PRICES.get(model)
    if price is None:
        return 0, "unknown"
    inp, out, cread, cwrite = price
    uncached = input_tokens - cache_read_tokens - cache_write_tokens
    usd_per_mtok = uncached * inp + output_tokens * out + cache_read_tokens * cread
    usd_per_mtok += cache_write_tokens * cwrite
    return round(usd_per_mtok * 1000), "user"
