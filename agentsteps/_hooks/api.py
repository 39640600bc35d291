"""
Registering hooks: `on_persona`, `on_step` and their function forms, validated up front.

Everything about a registration is checked when it is made, with a message naming the
argument, the rule and the value received, so a mistake shows at import time rather
than the first time a step runs.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

from .._validate import check_name
from .events import AWAITABLE_EVENTS, PERSONA_EVENTS, HookEvent, valid_events
from .registry import Handler, HookHandle, add, qualname

__all__ = ["on_persona", "on_step"]


def _check_pattern(api: str, pattern: object) -> str:
    if not isinstance(pattern, str):
        msg = (
            f"{api}: 'pattern' must be a str glob such as 'reviewer*' "
            f"(got {pattern!r} of type {type(pattern).__name__})"
        )
        raise TypeError(msg)
    if not pattern:
        msg = (
            f"{api}: 'pattern' must be a non-empty glob such as 'reviewer*'; "
            "use '*' to match every persona, and steps without one (got '')"
        )
        raise ValueError(msg)
    return pattern


def _check_step_name(api: str, step_name: object) -> str:
    if not isinstance(step_name, str):
        msg = (
            f"{api}: 'step_name' must be a str, a step name or a glob such as 'fetch_*' "
            f"(got {step_name!r} of type {type(step_name).__name__})"
        )
        raise TypeError(msg)
    return check_name("step_name", step_name, api)


def _step_name(api: str, step_name: object) -> str:
    # None would make _build register a persona hook: refuse it here, by name.
    if step_name is None:
        _check_step_name(api, step_name)
    return step_name  # type: ignore[return-value]


def _check_event(api: str, event: object, *, step_hook: bool) -> HookEvent:
    if isinstance(event, HookEvent):
        result = event
    else:
        try:
            result = HookEvent(event)
        except ValueError:
            msg = f"{api}: 'event' must be one of {valid_events()} (got {event!r})"
            raise ValueError(msg) from None
    if step_hook and result in PERSONA_EVENTS:
        msg = (
            f"{api}: {result.value!r} is a persona event and has no step; "
            f"use on_persona(pattern, {result.value!r}) instead"
        )
        raise ValueError(msg)
    return result


def _check_threshold(api: str, event: HookEvent, threshold_pct: object) -> float | None:
    if event is not HookEvent.BUDGET_THRESHOLD:
        if threshold_pct is not None:
            msg = (
                f"{api}: 'threshold_pct' only applies to the 'budget_threshold' event "
                f"(got threshold_pct={threshold_pct!r} with event {event.value!r})"
            )
            raise ValueError(msg)
        return None
    if threshold_pct is None:
        msg = (
            f"{api}: the 'budget_threshold' event needs 'threshold_pct', the percentage "
            "of the budget that fires it, e.g. threshold_pct=80"
        )
        raise ValueError(msg)
    if isinstance(threshold_pct, bool) or not isinstance(threshold_pct, (int, float)):
        msg = (
            f"{api}: 'threshold_pct' must be a number in (0, 100] "
            f"(got {threshold_pct!r} of type {type(threshold_pct).__name__})"
        )
        raise TypeError(msg)
    if not 0 < threshold_pct <= 100:  # also rejects NaN
        msg = f"{api}: 'threshold_pct' must be within (0, 100] (got {threshold_pct!r})"
        raise ValueError(msg)
    return float(threshold_pct)


def _is_async(handler: object) -> bool:
    if inspect.iscoroutinefunction(handler):
        return True
    # An instance whose class defines ``async def __call__`` is an async handler too.
    return not inspect.isroutine(handler) and inspect.iscoroutinefunction(type(handler).__call__)


def _check_handler(api: str, event: HookEvent, handler: object) -> bool:
    if not callable(handler):
        msg = (
            f"{api}: the handler must be callable, taking one HookContext "
            f"(got {handler!r} of type {type(handler).__name__})"
        )
        raise TypeError(msg)
    is_async = _is_async(handler)
    if is_async and event not in AWAITABLE_EVENTS:
        where = (
            "persona events fire where a persona is entered, which may be sync code"
            if event in PERSONA_EVENTS
            else "budget events fire inside record_usage(), which is synchronous"
        )
        msg = (
            f"{api}: {event.value!r} handlers must be plain functions, not async "
            f"(got {qualname(handler)}): {where}. Schedule async work from a plain "
            "handler instead, e.g. asyncio.get_running_loop().create_task(...)"
        )
        raise TypeError(msg)
    return is_async


def _build(
    api: str,
    pattern: object,
    step_name: object,
    event: object,
    threshold_pct: object,
) -> Callable[[Handler], HookHandle]:
    """Validate everything but the handler now; return what registers a handler."""
    checked_pattern = _check_pattern(api, pattern)
    checked_step = None if step_name is None else _check_step_name(api, step_name)
    checked_event = _check_event(api, event, step_hook=step_name is not None)
    threshold = _check_threshold(api, checked_event, threshold_pct)

    def register(handler: Handler) -> HookHandle:
        is_async = _check_handler(api, checked_event, handler)
        return add(
            HookHandle(checked_event, checked_pattern, checked_step, threshold, handler, is_async)
        )

    return register


# -- public API ------------------------------------------------------------------------


def on_persona(
    pattern: str, event: HookEvent | str, threshold_pct: float | None = None
) -> Callable[[Handler], HookHandle]:
    """
    Register the decorated function for ``event`` on every persona whose name matches
    ``pattern`` (and, for step events, on every step running under such a persona).

    ``pattern`` is a shell-style glob (``*``, ``?``, ``[...]``, as
    `fnmatch.fnmatchcase`, case-sensitive) matched against the persona's name; a step
    with no persona has the name ``""``, which only ``"*"`` matches. Handlers run in
    registration order. The decorated name becomes the `HookHandle` (still callable).
    Without a decorator, call the result: ``on_persona("*", "pre_step")(handler)``
    registers ``handler`` and returns its `HookHandle`.

    Args:
        pattern: Glob matched against the persona's name.
        event: A `HookEvent` or its name.
        threshold_pct: For ``budget_threshold`` only (and required there): the
            percentage of the budget, in (0, 100], that fires the handler.

    Raises:
        TypeError, ValueError: A bad argument (the message names it).

    Example:
        >>> from agentsteps import HookEvent, on_persona, persona, scoped_hooks, step
        >>> @step
        ... def draft():
        ...     return "draft"
        >>> @persona(name="writer")
        ... def writer():
        ...     return draft()
        >>> with scoped_hooks():
        ...     @on_persona("wr*", HookEvent.POST_STEP)
        ...     def shout(event):
        ...         event.replace_output(event.output.upper())
        ...     writer()
        'DRAFT'

    .. versionadded:: 0.1.0
    .. versionchanged:: 0.2.0
       ``register_persona_hook(pattern, event, handler)`` was removed: it is
       ``on_persona(pattern, event)(handler)``.
    """
    return _build("on_persona()", pattern, None, event, threshold_pct)


def on_step(
    pattern: str, step_name: str, event: HookEvent | str, threshold_pct: float | None = None
) -> Callable[[Handler], HookHandle]:
    """
    Register the decorated function for ``event`` on every step whose name matches
    ``step_name``, when it runs under a persona whose name matches ``pattern``.

    ``step_name`` is a glob like ``pattern`` (``"fetch_*"``; a plain name matches only
    itself). Same arguments as `on_persona`; persona events are not step events and are
    refused here.

    .. versionchanged:: 0.2.0
       ``step_name`` is a glob; it used to be compared as a plain string, so a glob
       never matched. ``register_step_hook(pattern, step_name, event, handler)`` was
       removed: it is ``on_step(pattern, step_name, event)(handler)``.

    Example:
        >>> from agentsteps import StepDenied, on_step, scoped_hooks, step
        >>> @step
        ... def publish(doc):
        ...     return f"published {doc}"
        >>> with scoped_hooks():
        ...     @on_step("*", "publish", "pre_step")
        ...     def gate(event):
        ...         if event.args[0] != "approved.md":
        ...             event.deny("publishing needs approval")
        ...     try:
        ...         publish("draft.md")
        ...     except StepDenied as exc:
        ...         print(exc)
        step 'publish' was denied: publishing needs approval

    .. versionadded:: 0.1.0
    """
    return _build("on_step()", pattern, _step_name("on_step()", step_name), event, threshold_pct)
