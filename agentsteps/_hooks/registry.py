"""
The hook registry: handles, the per-event tables dispatch reads, and `scoped_hooks`.

Hooks are process-wide. The registry keeps one tuple of handles per event, replaced
(never mutated) under a lock on every change, so dispatch reads a snapshot without
locking. `ACTIVE` holds one flag per dispatch seam, recomputed on every change, so a
step with no hooks pays one attribute read per seam and allocates nothing.

`route` answers "which handlers fire for this event, persona and step" from a cache
keyed by all three and dropped on every registration change, so a step's cost does not
grow with the number of registered hooks that do not match it. `step_events` answers the
first half of that question per step definition, so a step that no hook's step filter
selects skips the hooked paths altogether (a flag and a set lookup per seam).
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

__all__ = [
    "ACTIVE",
    "REGISTRY",
    "HookHandle",
    "add",
    "clear_hooks",
    "qualname",
    "route",
    "scoped_hooks",
    "step_events",
]

Handler = Callable[[HookContext], Any]


class _Active:
    """Which seams have at least one handler registered (read on every step)."""

    __slots__ = (
        "budget",
        "generation",
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
        self.generation = 0  # counts registry changes: stamps what `step_events` cached


ACTIVE = _Active()

_LOCK = new_lock()
REGISTRY: dict[HookEvent, tuple[HookHandle, ...]] = dict.fromkeys(HookEvent, ())
_SCOPE: ContextVar[list[HookHandle] | None] = ContextVar("agentsteps.hook_scope", default=None)

RouteKey = tuple[HookEvent, str, "str | None"]
# The handlers each (event, persona, step name) selects. Replaced by a new empty dict on
# every registry change rather than cleared, so a lookup that raced with a change can
# only fill the dict being discarded. Step names can be made at run time (step_scope),
# so the cache is bounded: past the bound it starts over.
_ROUTES: dict[RouteKey, tuple[HookHandle, ...]] = {}
_ROUTES_MAX = 4096


class HookHandle:
    """
    A registered hook. Unregister it with `unregister`.

    The decorators `on_persona` and `on_step` return the handle in place of the
    function; calling the handle calls the function, so the name stays usable.

    .. versionadded:: 0.1.0
    """

    __slots__ = (
        "_match",
        "_step_match",
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
    """The glob matched against the step's name (`on_step`), or ``None`` for any step."""
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
        self._step_match = (
            None if step_name is None else re.compile(fnmatch.translate(step_name)).match
        )

    def matches_step(self, step_name: str) -> bool:
        """Whether this hook's step filter (if any) selects the step named ``step_name``."""
        step_match = self._step_match
        return step_match is None or step_match(step_name) is not None

    def matches(self, persona: str, step_name: str | None) -> bool:
        """Whether this hook applies to ``step_name`` under the persona named ``persona``."""
        step_match = self._step_match
        if step_match is not None and (step_name is None or step_match(step_name) is None):
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


def route(event: HookEvent, persona: str, step_name: str | None) -> tuple[HookHandle, ...]:
    """The handlers registered for ``event`` that match ``persona`` and ``step_name``, in order."""
    routes = _ROUTES  # before REGISTRY: a change in between only fills a discarded dict
    key = (event, persona, step_name)
    hooks = routes.get(key)
    if hooks is None:
        hooks = tuple(h for h in REGISTRY[event] if h.matches(persona, step_name))
        if len(routes) >= _ROUTES_MAX:
            routes.clear()
        routes[key] = hooks
    return hooks


def step_events(defn: Any) -> frozenset[str]:
    """
    The names of the events with a hook whose step filter selects the step ``defn``
    (under some persona: `route` checks the persona). Cached on the definition until the
    registry changes; wrappers ask it before taking a hooked path. Plain strings, not
    `HookEvent` members: an enum member hashes in Python code, a str from its cache.
    """
    cached = defn.hook_events
    generation = ACTIVE.generation  # before REGISTRY: a change in between only recomputes
    if cached is not None and cached[0] == generation:
        return cached[1]  # type: ignore[no-any-return]
    name = defn.name
    events = frozenset(
        event.value for event, hooks in REGISTRY.items() if any(h.matches_step(name) for h in hooks)
    )
    defn.hook_events = (generation, events)
    return events


def _recompute_flags() -> None:
    """Refresh `ACTIVE` and drop the routing cache after a change. Caller holds `_LOCK`."""
    global _ROUTES  # replaced, not cleared: see its comment
    _ROUTES = {}
    ACTIVE.generation += 1
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
        # restoring would clobber the running code's value (see stack.pop).
        if _SCOPE.get() is handles:
            _SCOPE.reset(token)
        for handle in handles:
            handle.unregister()
