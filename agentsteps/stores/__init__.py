"""
Where shared budgets keep their fleet-wide counters.

A `Budget` with a ``shared_key`` charges every record to a `BudgetStore` as well as to
the step, so one limit holds across every thread, process and machine using the same key
and store. `InProcessBudgetStore` is the default (one process); `RedisBudgetStore`
(``pip install 'agentsteps[redis]'``) spans a fleet. The ``redis`` package is imported
only when a `RedisBudgetStore` is made.

.. versionadded:: 0.2.0
"""

from __future__ import annotations

from ._memory import InProcessBudgetStore
from ._redis import RedisBudgetStore
from ._types import Amounts, BudgetStore, ChargeResult, Limits, SharedFigures, window_of

__all__ = [
    "Amounts",
    "BudgetStore",
    "ChargeResult",
    "InProcessBudgetStore",
    "Limits",
    "RedisBudgetStore",
    "SharedFigures",
    "window_of",
]

for _cls in (Amounts, BudgetStore, ChargeResult, Limits, SharedFigures):
    _cls.__module__ = "agentsteps.stores"
window_of.__module__ = "agentsteps.stores"
