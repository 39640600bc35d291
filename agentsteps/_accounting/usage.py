"""
Usage: what a step spent, as an immutable value, and the ledger that accumulates it.

Tokens are integers and dollars are integer nano-dollars, so a parent's total is exactly
the sum of its children's, however many threads recorded into it.
"""

from __future__ import annotations

from typing import Any

import attrs

from .._core.locks import new_lock
from .budget import NANOS_PER_USD, Budget, shown, usd_to_nanos
from .shared_account import SharedAccount

__all__ = ["Ledger", "Usage"]

# One lock for every ledger: a record charges the whole chain of enclosing steps at once,
# and a single lock makes that charge atomic (no thread sees a child charged and its
# parent not yet). Critical sections are a handful of integer additions.
#
# Re-entrant, like every lock in the package: the garbage collector can finalise an
# abandoned generator step (which ends it, taking this lock) at any allocation, including
# one made while this thread already holds it. A plain Lock deadlocks the program there
# (found by tests/test_reliability_properties.py).
LEDGER_LOCK = new_lock()

# Whether any step ever had a shared budget: until one does, a charge skips looking for
# them (it is the hot path).
SHARED_IN_USE = False


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


class Ledger:
    """
    The mutable usage account of one active step or persona.

    Shared by every copy of the context the step runs in (tasks, threads); guarded by
    `LEDGER_LOCK`. ``self_*`` counts what was recorded while this frame was the innermost
    one; the plain fields count the whole subtree.
    """

    # Slots, not an instance dict: record_usage updates a dozen counters on every ledger
    # of the chain, and slot access is what CPython specialises best (an instance dict
    # whose keys appear in varying order measured 60% slower here).
    __slots__ = (
        "cache_read",
        "cache_write",
        "calls",
        "closed",
        "delivered",
        "ended",
        "exhausted",
        "input",
        "last_model",
        "max_calls",
        "max_nanos",
        "max_tokens",
        "nanos",
        "output",
        "reasoning",
        "self_cache_read",
        "self_cache_write",
        "self_calls",
        "self_input",
        "self_nanos",
        "self_output",
        "self_reasoning",
        "self_unpriced",
        "shared",
        "thresholds_fired",
        "unpriced",
    )

    last_model: str | None
    exhausted: str | None
    """Which limit tripped first ("max_tokens", ...), latched: a budget trips once."""
    delivered: bool
    """Whether the exhaustion was raised yet (usage observed from another library's span is
    raised at the step's next checkpoint instead)."""
    thresholds_fired: set[object] | None
    closed: bool
    """Whether the frame's end (span ended, record delivered) is complete."""
    ended: int
    """0 while the frame runs; 1 once its record was taken (later usage goes to the
    nearest frame still running, see `charge`); 2 once that was logged."""
    max_tokens: int | None
    max_nanos: int | None
    max_calls: int | None

    def __init__(self, budget: Budget | None) -> None:
        # One chained assignment: a single constant stored many times is the cheapest
        # way to initialise slots (this runs for every step).
        self.input = self.output = self.cache_read = self.cache_write = self.reasoning = 0
        self.calls = self.unpriced = self.nanos = self.self_input = self.self_output = 0
        self.self_cache_read = self.self_cache_write = self.self_reasoning = 0
        self.self_calls = self.self_unpriced = self.self_nanos = 0
        self.delivered = self.closed = False
        self.ended = 0
        self.shared: Any = None
        if budget is None:
            self.last_model = self.exhausted = self.thresholds_fired = None
            self.max_tokens = self.max_nanos = self.max_calls = None
        else:
            self.last_model = self.exhausted = self.thresholds_fired = None
            self.max_tokens = budget.max_tokens
            self.max_nanos = None if budget.max_usd is None else usd_to_nanos(budget.max_usd)
            self.max_calls = budget.max_llm_calls
            if budget.shared_key is not None:
                _share(self, budget)

    @property
    def has_limits(self) -> bool:
        return not (self.max_tokens is None and self.max_nanos is None and self.max_calls is None)

    def over_limit(self) -> str | None:
        """The first limit the subtree is over, if any. Caller holds the lock."""
        if self.max_tokens is not None and self.input + self.output > self.max_tokens:
            return "max_tokens"
        if self.max_nanos is not None and self.nanos > self.max_nanos:
            return "max_usd"
        if self.max_calls is not None and self.calls > self.max_calls:
            return "max_llm_calls"
        return None

    def used_pct(self) -> float:
        """Highest share of any set limit used, in percent (0 when there is no limit)."""
        pct = 0.0
        if self.max_tokens is not None:
            pct = max(pct, _pct(self.input + self.output, self.max_tokens))
        if self.max_nanos is not None:
            pct = max(pct, _pct(self.nanos, self.max_nanos))
        if self.max_calls is not None:
            pct = max(pct, _pct(self.calls, self.max_calls))
        return pct

    def usage(self) -> Usage:
        """The subtree's usage so far."""
        return Usage(
            self.input,
            self.output,
            self.cache_read,
            self.cache_write,
            self.reasoning,
            self.calls,
            self.unpriced,
            self.nanos,
        )

    def self_usage(self) -> Usage:
        """What was recorded directly in this frame, children excluded."""
        return Usage(
            self.self_input,
            self.self_output,
            self.self_cache_read,
            self.self_cache_write,
            self.self_reasoning,
            self.self_calls,
            self.self_unpriced,
            self.self_nanos,
        )

    def remaining(self) -> tuple[int | None, int | None, int | None]:
        """Tokens, nano-dollars and calls left before each limit (None: no limit)."""
        used = self.input + self.output
        tokens = None if self.max_tokens is None else max(0, self.max_tokens - used)
        nanos = None if self.max_nanos is None else max(0, self.max_nanos - self.nanos)
        calls = None if self.max_calls is None else max(0, self.max_calls - self.calls)
        return tokens, nanos, calls


def _share(ledger: Ledger, budget: Budget) -> None:
    """Move a shared budget's limits to the store: the step's ledger keeps none."""
    global SHARED_IN_USE

    ledger.shared = SharedAccount(budget)
    ledger.max_tokens = ledger.max_nanos = ledger.max_calls = None
    SHARED_IN_USE = True


def _pct(used: int, limit: int) -> float:
    if limit == 0:
        return 0.0 if used == 0 else float("inf")
    return 100.0 * used / limit
