"""
Wrapping a function so each call runs as a step or persona: sync, async, generators.

Plain and async functions get a wrapper function; generators and async generators a
`GeneratorStepFunction` that builds a `StepGenerator` / `StepAsyncGenerator` (see
`generators.py`). Every form starts and ends its frame through the same few functions of
`lifecycle.py`, which decide whether a hook applies.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

from .._hooks.registry import ACTIVE
from .context import ActivePersona, ActiveStep
from .ending import finish_interrupted
from .generator_function import GeneratorStepFunction
from .generators import StepAsyncGenerator, StepGenerator
from .lifecycle import acomplete, afail, astart, complete, enter, fail, start

__all__ = ["decorate", "wrap"]


def decorate(kind: str, target: object, make: Callable[[str], Any]) -> Any:
    """
    Check what ``@kind`` was applied to, build its definition with ``make(qualname)``
    and return the wrapper. Method descriptors are unwrapped and rebuilt.
    """
    if isinstance(target, (classmethod, staticmethod)):
        return type(target)(decorate(kind, target.__func__, make))
    if isinstance(target, type):
        msg = (
            f"@{kind} decorates functions and methods, not classes (got class "
            f"{target.__name__!r}). Decorate the methods that do the work instead."
        )
        raise TypeError(msg)
    if isinstance(target, str):
        msg = (
            f"@{kind}({target!r}): the name is a keyword argument. Instead, you want "
            f"@{kind}(name={target!r})"
        )
        raise TypeError(msg)
    if not callable(target):
        msg = f"@{kind} must decorate a function (got {target!r} of type {type(target).__name__})"
        raise TypeError(msg)
    qualname = getattr(target, "__qualname__", None) or getattr(target, "__name__", None)
    return wrap(target, make(qualname or repr(target)))


def wrap(fn: Callable[..., Any], defn: Any) -> Callable[..., Any]:
    """Return the wrapper of ``fn`` that runs each call under ``defn``."""
    if inspect.isasyncgenfunction(fn):
        # A generator function to inspect (pytest fixtures, FastAPI dependencies).
        return GeneratorStepFunction(fn, defn, StepAsyncGenerator)
    if inspect.isgeneratorfunction(fn):
        return GeneratorStepFunction(fn, defn, StepGenerator)
    if inspect.iscoroutinefunction(fn):
        return _wrap_async(fn, defn)
    return _wrap_sync(fn, defn)


# The two wrappers below are the hottest seams: they call `start` (and `acomplete`) only
# when a hook of that seam is registered and `lifecycle._hooked` has not noted, for this
# registry generation, that none selects the step; otherwise `start` would call `enter`
# (and `acomplete` would call `complete`) anyway. `_hooked` decides; the note saves a call.


def _wrap_sync(fn: Callable[..., Any], defn: Any) -> Callable[..., Any]:
    @functools.wraps(fn)
    def step_wrapper(*args: Any, **kwargs: Any) -> Any:
        frame: ActiveStep | ActivePersona
        if ACTIVE.pre_step and defn.plain_start != ACTIVE.generation:
            frame, args, kwargs = start(defn, args, kwargs)
        else:
            frame = enter(defn)
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            # The guards around fail() and complete(): an interruption that lands as they
            # are called (before their own guards run) must still end the frame.
            try:
                skip = fail(frame, exc)
            except BaseException as raised:
                finish_interrupted(frame, raised)
                raise
            if skip:
                return defn.default
            raise
        try:
            return complete(frame, result)
        except BaseException as raised:
            finish_interrupted(frame, raised)
            raise

    return step_wrapper


def _wrap_async(fn: Callable[..., Any], defn: Any) -> Callable[..., Any]:
    # The awaitable forms, so that async handlers are awaited.
    @functools.wraps(fn)
    async def step_wrapper(*args: Any, **kwargs: Any) -> Any:
        frame: ActiveStep | ActivePersona
        if ACTIVE.pre_step and defn.plain_start != ACTIVE.generation:
            frame, args, kwargs = await astart(defn, args, kwargs)
        else:
            frame = enter(defn)
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:
            try:  # see _wrap_sync
                skip = await afail(frame, exc)
            except BaseException as raised:
                finish_interrupted(frame, raised)
                raise
            if skip:
                return defn.default
            raise
        try:
            if ACTIVE.post_step and defn.plain_end != ACTIVE.generation:
                return await acomplete(frame, result)
            return complete(frame, result)
        except BaseException as raised:
            finish_interrupted(frame, raised)
            raise

    return step_wrapper
