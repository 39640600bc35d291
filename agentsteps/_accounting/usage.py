"""
Usage: what a step spent, as an immutable value (the ledger that accumulates it is in
ledger.py, a layer up: this module is a plain value, importable from every layer).

Tokens are integers and dollars are integer nano-dollars, so a parent's total is exactly
the sum of its children's, however many threads recorded into it.
"""

from __future__ import annotations

from typing import Any

import attrs

from .budget import NANOS_PER_USD, shown

__all__ = ["ZERO_USAGE", "Usage"]

_new = object.__new__


@attrs.frozen
class Usage:
    """
    Model usage: tokens, calls and cost.

    Token counts follow the OpenTelemetry GenAI conventions: ``input_tokens`` includes
    cached input (``cache_read_tokens`` and ``cache_write_tokens`` are the cached part,
    broken out because they are priced differently) and ``output_tokens`` includes
    ``reasoning_tokens``.

    Cost is held exactly as integer nano-dollars (`cost_nano_usd`); `cost_usd` gives it
    as a float. Usages add up with ``+``.

    Example:
        >>> from agentsteps import Usage
        >>> u = Usage(input_tokens=10, output_tokens=20, llm_calls=1, cost_nano_usd=1_000_000)
        >>> (u + u).total_tokens, (u + u).cost_usd
        (60, 0.002)

    .. versionadded:: 0.1.0
    """

    input_tokens: int = 0
    """Input tokens, cached ones included."""
    output_tokens: int = 0
    """Output tokens, reasoning tokens included."""
    cache_read_tokens: int = 0
    """Input tokens read from the provider's prompt cache."""
    cache_write_tokens: int = 0
    """Input tokens written to the provider's prompt cache."""
    reasoning_tokens: int = 0
    """Output tokens spent on hidden reasoning."""
    llm_calls: int = 0
    """Number of model calls."""
    unpriced_calls: int = 0
    """Model calls whose cost was unknown (no explicit cost, no price): counted as $0."""
    cost_nano_usd: int = 0
    """Cost in nano-dollars (1e-9 USD), exact."""

    def __attrs_post_init__(self) -> None:
        # One pass of cheap checks (a Usage is built at every step end with a collector);
        # the slow path only works out what to say.
        for value in (
            self.input_tokens,
            self.output_tokens,
            self.cache_read_tokens,
            self.cache_write_tokens,
            self.reasoning_tokens,
            self.llm_calls,
            self.unpriced_calls,
            self.cost_nano_usd,
        ):
            if type(value) is not int or value < 0:
                _refuse(self)

    @classmethod
    def _unchecked(
        cls,
        input_tokens: int,
        output_tokens: int,
        cache_read_tokens: int,
        cache_write_tokens: int,
        reasoning_tokens: int,
        llm_calls: int,
        unpriced_calls: int,
        cost_nano_usd: int,
    ) -> Usage:
        """
        A Usage of figures the runtime has already checked, or the signed difference
        between two (what a model call's later report adds to its earlier one, which may
        be negative). Internal: a public construction checks every field.
        """
        # Built by hand: attrs' __init__ plus the checks cost about twice as much, and a
        # charge builds one per model call. The slots' own setters are the cheapest way
        # past the frozen __setattr__ (object.__setattr__ looks each one up by name).
        usage = _new(cls)
        _SET_INPUT(usage, input_tokens)
        _SET_OUTPUT(usage, output_tokens)
        _SET_CACHE_READ(usage, cache_read_tokens)
        _SET_CACHE_WRITE(usage, cache_write_tokens)
        _SET_REASONING(usage, reasoning_tokens)
        _SET_CALLS(usage, llm_calls)
        _SET_UNPRICED(usage, unpriced_calls)
        _SET_NANOS(usage, cost_nano_usd)
        return usage

    def _minus(self, other: Usage) -> Usage:
        """``self - other`` field by field, signed (see `_unchecked`)."""
        return Usage._unchecked(
            self.input_tokens - other.input_tokens,
            self.output_tokens - other.output_tokens,
            self.cache_read_tokens - other.cache_read_tokens,
            self.cache_write_tokens - other.cache_write_tokens,
            self.reasoning_tokens - other.reasoning_tokens,
            self.llm_calls - other.llm_calls,
            self.unpriced_calls - other.unpriced_calls,
            self.cost_nano_usd - other.cost_nano_usd,
        )

    @property
    def cost_usd(self) -> float:
        """Cost in US dollars."""
        return self.cost_nano_usd / NANOS_PER_USD

    @property
    def total_tokens(self) -> int:
        """Input plus output tokens: what ``Budget.max_tokens`` counts."""
        return self.input_tokens + self.output_tokens

    def __add__(self, other: Usage) -> Usage:
        if not isinstance(other, Usage):
            return NotImplemented
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cache_read_tokens + other.cache_read_tokens,
            self.cache_write_tokens + other.cache_write_tokens,
            self.reasoning_tokens + other.reasoning_tokens,
            self.llm_calls + other.llm_calls,
            self.unpriced_calls + other.unpriced_calls,
            self.cost_nano_usd + other.cost_nano_usd,
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form, with ``cost_usd`` and ``total_tokens`` included."""
        data = attrs.asdict(self)
        data["cost_usd"] = self.cost_usd
        data["total_tokens"] = self.total_tokens
        return data


ZERO_USAGE = Usage()

# The slots' setters, for Usage._unchecked.
_SET_INPUT = Usage.__dict__["input_tokens"].__set__
_SET_OUTPUT = Usage.__dict__["output_tokens"].__set__
_SET_CACHE_READ = Usage.__dict__["cache_read_tokens"].__set__
_SET_CACHE_WRITE = Usage.__dict__["cache_write_tokens"].__set__
_SET_REASONING = Usage.__dict__["reasoning_tokens"].__set__
_SET_CALLS = Usage.__dict__["llm_calls"].__set__
_SET_UNPRICED = Usage.__dict__["unpriced_calls"].__set__
_SET_NANOS = Usage.__dict__["cost_nano_usd"].__set__


def _refuse(usage: Usage) -> None:
    """Raise the error for the first field of ``usage`` that is not an int >= 0."""
    for field in attrs.fields(Usage):
        value = getattr(usage, field.name)
        if type(value) is not int:
            # type() is, not isinstance: True is not a count, and 0.5 nano-dollars is
            # not exact (costs are whole nano-dollars; Usage.cost_usd gives dollars).
            msg = (
                f"Usage: {field.name!r} must be an int (got {shown(value)} of type "
                f"{type(value).__name__})"
            )
            raise TypeError(msg)
        if value < 0:
            msg = f"Usage: {field.name!r} must be >= 0 (got {shown(value)})"
            raise ValueError(msg)
