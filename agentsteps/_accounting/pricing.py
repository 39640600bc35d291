"""
Turn token counts into dollars: user-registered prices, else the genai-prices catalog
(catalog.py), else nothing (counted as an unpriced call). Registrations are in
registrations.py, `Price` and its integer rates in rates.py.
"""

from __future__ import annotations

import logging
import re

from .._core.config import SETTINGS
from .catalog import _Slow, catalog_rates, forget_catalog, slow_catalog_price
from .rates import _FEMTO_PER_NANO, _HALF_NANO, PriceSource, _Rates
from .registrations import _lock, _resolved, _user_prices, _user_rates
from .usage import Usage

__all__ = ["price", "price_usage", "probe_cost", "reset_pricing"]

logger = logging.getLogger("agentsteps")


# "gpt-4o-2024-08-06" and "claude-sonnet-4-20250514" are dated snapshots of the undated names.
_DATED = re.compile(r"(.+)-(?:\d{4}-\d{2}-\d{2}|\d{8})")
_warned_models: set[str | None] = set()


def reset_pricing() -> None:
    """Forget registered prices, cached catalog look-ups and which models were warned about."""
    with _lock:
        _user_prices.clear()
        _user_rates.clear()
        _resolved.clear()
        _warned_models.clear()
        forget_catalog()


def price_usage(
    model: str | None,
    input_tokens: int,
    output_tokens: int,
    cache_read_tokens: int = 0,
    cache_write_tokens: int = 0,
    reasoning_tokens: int = 0,
    provider: str | None = None,
) -> tuple[int, PriceSource]:
    """Price one model call in nano-dollars (1e-9 USD).

    Token counts follow the OpenTelemetry GenAI convention: *input_tokens* includes the cache
    reads and cache writes, *output_tokens* includes the reasoning tokens. Uncached input
    (``input_tokens - cache_read_tokens - cache_write_tokens``) is charged at the input rate,
    cache reads and writes at their own rates, all output at the output rate.

    The price comes from a `register_price` registration, else from the genai-prices catalog
    (its bundled data only, never the network), else the cost is 0 and the model is logged once
    on the ``agentsteps`` logger.

    Args:
        model: The model name, or `None` if unknown.
        input_tokens: All input tokens, cached ones included.
        output_tokens: All output tokens, reasoning included.
        cache_read_tokens: Input tokens read from the prompt cache.
        cache_write_tokens: Input tokens written to the prompt cache.
        reasoning_tokens: Output tokens spent on reasoning (already in *output_tokens*).
        provider: A provider name such as ``"openai"`` to pick among catalog entries.

    Returns:
        ``(cost_nanos, source)`` with source ``"user"``, ``"catalog"`` or ``"unknown"``.

    Raises:
        ValueError: If a count is negative, the cache counts exceed *input_tokens*, or the
            reasoning tokens exceed *output_tokens*.
    """
    uncached = input_tokens - cache_read_tokens - cache_write_tokens
    # The bitwise or of ints is negative exactly when one of them is: one test instead of three.
    if (
        uncached < 0
        or output_tokens < reasoning_tokens
        or (cache_read_tokens | cache_write_tokens | reasoning_tokens) < 0
    ):
        _raise_bad_counts(
            input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, reasoning_tokens
        )
    rates = _user_rates.get(model)
    if rates is not None:
        source: PriceSource = "user"
    else:
        key = (provider, model)
        try:
            found = _resolved[key]
        except KeyError:
            found = _resolve(model, provider)
        if found is None:
            if model not in _warned_models:
                _warn_unpriced(model)
            return 0, "unknown"
        resolved_rates, source = found
        if isinstance(resolved_rates, _Slow):
            return slow_catalog_price(
                resolved_rates, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens
            )
        rates = resolved_rates
    r_in, r_out, r_read, r_write, steps = rates
    if steps is not None:
        for threshold, step_rates in steps:
            if input_tokens > threshold:
                r_in, r_out, r_read, r_write = step_rates
    femto = (
        uncached * r_in
        + output_tokens * r_out
        + cache_read_tokens * r_read
        + cache_write_tokens * r_write
    )
    return (femto + _HALF_NANO) // _FEMTO_PER_NANO, source


def _raise_bad_counts(
    input_tokens: int,
    output_tokens: int,
    cache_read_tokens: int,
    cache_write_tokens: int,
    reasoning_tokens: int,
) -> None:
    counts = {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cache_read_tokens": cache_read_tokens,
        "cache_write_tokens": cache_write_tokens,
        "reasoning_tokens": reasoning_tokens,
    }
    for name, value in counts.items():
        if value < 0:
            msg = f"{name!r} must be >= 0, got {value!r}"
            raise ValueError(msg)
    if cache_read_tokens + cache_write_tokens > input_tokens:
        msg = (
            "'input_tokens' must include the cache reads and writes (OpenTelemetry convention), "
            f"but cache_read_tokens ({cache_read_tokens}) + cache_write_tokens "
            f"({cache_write_tokens}) > input_tokens ({input_tokens}). Anthropic's input_tokens "
            "excludes them: pass input_tokens=input_tokens + cache_read_input_tokens + "
            "cache_creation_input_tokens (agentsteps.integrations.anthropic does this for you)"
        )
        raise ValueError(msg)
    msg = (
        "'output_tokens' must include the reasoning tokens (OpenTelemetry convention), but "
        f"reasoning_tokens ({reasoning_tokens}) > output_tokens ({output_tokens})"
    )
    raise ValueError(msg)


def _warn_unpriced(model: str | None) -> None:
    if SETTINGS.unpriced == "ignore":
        return
    with _lock:
        if model in _warned_models:
            return
        _warned_models.add(model)
    if model is None:
        logger.warning(
            "A model call was recorded without a model name, so its cost is counted as $0; "
            "pass model=... (and register_price() it) or cost_usd=... to record_usage(). "
            "This is logged once.",
        )
    else:
        logger.warning(
            "No price known for model %r, so its cost is counted as $0 (the step counts it in "
            "usage.unpriced_calls). Call agentsteps.register_price(%r, input_per_mtok=..., "
            "output_per_mtok=...) or pass cost_usd=.... This is logged once per model.",
            model,
            model,
        )


def _resolve(model: str | None, provider: str | None) -> tuple[_Rates | _Slow, PriceSource] | None:
    """Find and remember the price of a model that is not registered under its exact name."""
    key = (provider, model)
    with _lock:
        # Under the lock so that a registration change cannot slip between the look-up and
        # the store and leave a stale entry behind.
        if key in _resolved:
            return _resolved[key]
        found: tuple[_Rates | _Slow, PriceSource] | None = None
        dated = _DATED.fullmatch(model) if model is not None else None
        undated_rates = _user_rates.get(dated.group(1)) if dated is not None else None
        if undated_rates is not None:
            found = undated_rates, "user"
        else:
            catalog = catalog_rates(model, provider)
            if catalog is not None:
                found = catalog, "catalog"
        _resolved[key] = found
        return found


def price(
    usage: Usage,
    model: str | None,
    provider: str | None = None,
    response_model: str | None = None,
) -> tuple[int, PriceSource]:
    """
    Price ``usage``'s tokens (its cost and call counts are not read): the one way the
    runtime prices a model call, whichever seam reported it.

    The requested ``model`` first: it is the name users register prices under. The
    provider's answer (``response_model``, often a dated snapshot name) only when that
    one has no price.
    """
    nanos, source = price_usage(
        model,
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cache_read_tokens=usage.cache_read_tokens,
        cache_write_tokens=usage.cache_write_tokens,
        reasoning_tokens=usage.reasoning_tokens,
        provider=provider,
    )
    if source == "unknown" and response_model is not None and response_model != model:
        return price(usage, response_model, provider)
    return nanos, source


def probe_cost(model: str | None, provider: str | None, inp: int, out: int) -> tuple[int, str]:
    """The price of ``inp`` input and ``out`` output tokens of a model: (nano-dollars, source)."""
    return price_usage(
        model,
        input_tokens=inp,
        output_tokens=out,
        cache_read_tokens=0,
        cache_write_tokens=0,
        reasoning_tokens=0,
        provider=provider,
    )
