"""
The hook registry: handles, the per-event tables dispatch reads, and `scoped_hooks`.

Hooks are process-wide. The registry keeps one tuple of handles per event, replaced
(never mutated) under a lock on every change, so dispatch reads a snapshot without
locking. `ACTIVE` holds one flag per dispatch seam, recomputed on every change, so a
step with no hooks pays one attribute read per seam and allocates nothing.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from .._core.locks import new_lock
from .events import HookContext, HookEvent

__all__ = ["ACTIVE", "REGISTRY", "HookHandle", "add", "clear_hooks", "qualname", "scoped_hooks"]

Handler = Callable[[HookContext], Any]


class _Active:
    """Which seams have at least one handler registered (read on every step)."""

    __slots__ = (
        "budget",
        "persona_end",
        "persona_start",
        "post_step",
        "pre_step",
        "step_failure",
    )

    def __init__(self) -> None:
        self.persona_start = False
        self.persona_end = False
        self.pre_step = False
        self.post_step = False
        self.step_failure = False  # step_error or escalated
        self.budget = False  # budget_threshold or budget_exhausted


ACTIVE = _Active()

_LOCK = new_lock()
REGISTRY: dict[HookEvent, tuple[HookHandle, ...]] = dict.fromkeys(HookEvent, ())
_SCOPE: ContextVar[list[HookHandle] | None] = ContextVar("agentsteps.hook_scope", default=None)


class HookHandle:
    """
    A registered hook. Unregister it with `unregister`.

    The decorators `on_persona` and `on_step` return the handle in place of the
    function; calling the handle calls the function, so the name stays usable.

    .. versionadded:: 0.1.0
    """

    __slots__ = (
        "_match",
        "event",
        "handler",
        "is_async",
        "name",
        "pattern",
        "step_name",
        "threshold_pct",
    )

    event: HookEvent
    """The event the handler reacts to."""
    pattern: str
    """The glob matched against the persona's name (``""`` when there is none)."""
    step_name: str | None
    """The exact step name required (`on_step`), or ``None`` for any step."""
    threshold_pct: float | None
    """For ``budget_threshold``: the percentage of the budget that fires it."""
    handler: Handler
    """The function called with the `HookContext`."""
    is_async: bool
    """Whether the handler is ``async def`` (awaited; async steps only)."""
    name: str
    """The handler's qualified name, as shown in span events and logs."""

    def __init__(
        self,
        event: HookEvent,
        pattern: str,
        step_name: str | None,
        threshold_pct: float | None,
        handler: Handler,
        is_async: bool,
    ) -> None:
        self.event = event
        self.pattern = pattern
        self.step_name = step_name
        self.threshold_pct = threshold_pct
        self.handler = handler
        self.is_async = is_async
        self.name = qualname(handler)
        # What fnmatch.fnmatchcase does, compiled once instead of per event.
        self._match = re.compile(fnmatch.translate(pattern)).match

    def matches(self, persona: str, step_name: str | None) -> bool:
        """Whether this hook applies to ``step_name`` under the persona named ``persona``."""
        if self.step_name is not None and self.step_name != step_name:
            return False
        return self._match(persona) is not None

    @property
    def active(self) -> bool:
        """Whether the hook is still registered."""
        return self in REGISTRY[self.event]

    def unregister(self) -> bool:
        """
        Remove the hook; it stops firing at once. Returns ``False`` if it was already removed.
        """
        with _LOCK:
            hooks = REGISTRY[self.event]
            if self not in hooks:
                return False
            REGISTRY[self.event] = tuple(h for h in hooks if h is not self)
            _recompute_flags()
        return True

    def __call__(self, event: HookContext) -> Any:
        return self.handler(event)

    def __repr__(self) -> str:
        where = repr(self.pattern)
        if self.step_name is not None:
            where += f" step {self.step_name!r}"
        if self.threshold_pct is not None:
            where += f" at {self.threshold_pct:g}%"
        state = "" if self.active else " (unregistered)"
        return f"<HookHandle {self.event.value} {where} -> {self.name}{state}>"


def qualname(handler: object) -> str:
    """``module.qualname`` of a handler, as span events and logs show it."""
    name = getattr(handler, "__qualname__", None) or getattr(handler, "__name__", None)
    if name is None:
        name = type(handler).__qualname__
    module = getattr(handler, "__module__", None)
    return f"{module}.{name}" if module else str(name)


def _recompute_flags() -> None:
    """Refresh `ACTIVE` from the registry. Caller holds `_LOCK`."""
    r = REGISTRY
    ACTIVE.persona_start = bool(r[HookEvent.PERSONA_START])
    ACTIVE.persona_end = bool(r[HookEvent.PERSONA_END])
    ACTIVE.pre_step = bool(r[HookEvent.PRE_STEP])
    ACTIVE.post_step = bool(r[HookEvent.POST_STEP])
    ACTIVE.step_failure = bool(r[HookEvent.STEP_ERROR] or r[HookEvent.ESCALATED])
    ACTIVE.budget = bool(r[HookEvent.BUDGET_THRESHOLD] or r[HookEvent.BUDGET_EXHAUSTED])


def clear_hooks() -> None:
    """Unregister every hook (`reset_defaults` calls this)."""
    with _LOCK:
        for event in REGISTRY:
            REGISTRY[event] = ()
        _recompute_flags()


def add(handle: HookHandle) -> HookHandle:
    """Register a validated handle, and note it in the enclosing `scoped_hooks` block."""
    with _LOCK:
        REGISTRY[handle.event] = (*REGISTRY[handle.event], handle)
        _recompute_flags()
    scope = _SCOPE.get()
    if scope is not None:
        scope.append(handle)
    return handle


@contextmanager
def scoped_hooks() -> Iterator[list[HookHandle]]:
    """
    Unregister, when the block ends, every hook registered inside it.

    Hooks registered in the block fire everywhere while it lasts (hooks are
    process-wide); only their lifetime is scoped. What counts is registration in this
    context: the thread or task running the block, and tasks it starts. The block gets
    the list of those handles. Made for tests.

    Example:
        >>> from agentsteps import on_persona, scoped_hooks
        >>> with scoped_hooks() as handles:
        ...     @on_persona("*", "persona_start")
        ...     def hello(event):
        ...         pass
        ...     hello.active
        True
        >>> hello.active, len(handles)
        (False, 1)

    .. versionadded:: 0.1.0
    """
    handles: list[HookHandle] = []
    token = _SCOPE.set(handles)
    try:
        yield handles
    finally:
        # Not when a generator's body is finalised on its own by the garbage collector:
        # restoring would clobber the running code's value (see lifecycle.pop).
        if _SCOPE.get() is handles:
            _SCOPE.reset(token)
        for handle in handles:
            handle.unregister()


HookHandle.__module__ = "agentsteps"
scoped_hooks.__module__ = "agentsteps"
