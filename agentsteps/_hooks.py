"""
Hook dispatch seam used by the lifecycle (the registry and event API build on it).

`ACTIVE` holds one flag per family of events, true only while some handler for that
family is registered, so that a step with no hooks pays one attribute read per seam.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ACTIVE"]


class _Active:
    __slots__ = ("budget", "escalated", "persona_events", "step_events")

    def __init__(self) -> None:
        self.persona_events = False
        self.step_events = False
        self.budget = False
        self.escalated = False


ACTIVE = _Active()


def persona_started(frame: Any) -> None:
    """Run ``persona_start`` handlers (no registry yet: nothing to run)."""


def persona_ended(frame: Any, status: Any, exc: BaseException | None) -> None:
    """Run ``persona_end`` handlers (no registry yet: nothing to run)."""


def escalated(frame: Any, exc: BaseException) -> None:
    """Run ``escalated`` handlers (no registry yet: nothing to run)."""


def after_charge(frame: Any, tripped: Any) -> None:
    """Run ``budget_threshold``/``budget_exhausted`` handlers (no registry yet)."""
