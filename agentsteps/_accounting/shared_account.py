"""
The account of a shared budget on a step's ledger, and the store it names.

Apart from `_core/shared.py` (charging a store, pre-flight reservations, the outbox): a
ledger (usage.py, the state layer) makes one when its budget has a ``shared_key``, and the
charging that fires hooks and spans lives in the runtime above it.
"""

from __future__ import annotations

from .._core.config import SETTINGS
from ..stores._memory import InProcessBudgetStore
from ..stores._types import BudgetStore, Limits, SharedFigures
from .budget import Budget, usd_to_nanos

__all__ = ["SharedAccount", "default_store"]

_DEFAULT_STORE = InProcessBudgetStore()


def default_store() -> BudgetStore:
    """The store of shared budgets that name none: ``configure(budget_store=...)`` or ours."""
    store = SETTINGS.budget_store
    return _DEFAULT_STORE if store is None else store  # type: ignore[return-value]


class SharedAccount:
    """The shared half of one step activation's ledger: key, limits, last figures seen."""

    __slots__ = ("budget", "figures", "key", "limits", "period")

    def __init__(self, budget: Budget) -> None:
        assert budget.shared_key is not None
        self.budget = budget
        self.key: str = budget.shared_key
        self.period = budget.period
        self.limits = Limits(
            budget.max_tokens,
            None if budget.max_usd is None else usd_to_nanos(budget.max_usd),
            budget.max_llm_calls,
        )
        self.figures: SharedFigures | None = None

    @property
    def store(self) -> BudgetStore:
        store = self.budget.store
        return default_store() if store is None else store

    @property
    def fail_open(self) -> bool:
        return self.budget.on_store_error == "fail_open"
