"""
The ledger: the mutable usage account of one active step or persona, and its lock.

The state layer: frames (context.py) hold one each, charging (`_core/recording.py`) adds
to them. The `Usage` values they report are in usage.py, a layer down.
"""

from __future__ import annotations

from typing import Any

from .._core.locks import new_lock
from .budget import Budget, usd_to_nanos, used_pct
from .shared_account import SharedAccount
from .usage import Usage

__all__ = ["LEDGER_LOCK", "SHARED_IN_USE", "Ledger"]

# One lock for every ledger: a record charges the whole chain of enclosing steps at once,
# and a single lock makes that charge atomic (no thread sees a child charged and its
# parent not yet). Critical sections are a handful of integer additions.
#
# Re-entrant, like every lock in the package: the garbage collector can finalise an
# abandoned generator step (which ends it, taking this lock) at any allocation, including
# one made while this thread already holds it. A plain Lock deadlocks the program there
# (found by tests/reliability/test_properties.py).
LEDGER_LOCK = new_lock()

# Whether any step ever had a shared budget: until one does, a charge skips looking for
# them (it is the hot path).
SHARED_IN_USE = False


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

    def used_pct(self) -> float:
        """Highest share of any set limit used, in percent (0 when there is no limit)."""
        return used_pct(
            self.input + self.output,
            self.nanos,
            self.calls,
            self.max_tokens,
            self.max_nanos,
            self.max_calls,
        )

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
