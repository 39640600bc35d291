"""
The wrapper of a generator step: a callable that `inspect` takes for a generator function.

A generator step returns a `StepGenerator` (or `StepAsyncGenerator`), an object that
implements the generator protocols by hand (see `wrappers`), so a plain wrapper function
would not be a generator function to `inspect.isgeneratorfunction` and
`inspect.isasyncgenfunction`; pytest fixtures, FastAPI dependencies and other code that
dispatches on them would then treat the step as a plain function and never run its
cleanup. A real generator function delegating to it (``yield from``) would pass, but the
generator object it returns is closed the same way by ``close()`` and by the garbage
collector, and a step must tell ``cancelled`` from ``abandoned``. So the wrapper is an
object shaped like a function (what `inspect` calls "function-like", as Cython's
functions are): its ``__code__`` is the decorated function's, flags included, and
calling it builds the step's generator object directly.
"""

from __future__ import annotations

import functools
import inspect
from types import MethodType
from typing import Any

__all__ = ["GeneratorStepFunction"]


class GeneratorStepFunction:
    """
    A decorated generator or async generator function: calling it returns the step's
    generator object; binds as a method like a function does.
    """

    __code__: Any
    __defaults__: Any
    __kwdefaults__: Any
    __wrapped__: Any
    __qualname__: str

    def __init__(self, fn: Any, defn: Any, make: Any) -> None:
        functools.update_wrapper(self, fn)
        self._fn = fn
        self._defn = defn
        self._make = make
        target = fn
        while inspect.ismethod(target):
            target = target.__func__
        while isinstance(target, functools.partial):
            target = target.func
        # What inspect reads: the code object's flags say "generator" (or "async
        # generator"); the defaults make the object "function-like" to it.
        self.__code__ = target.__code__
        self.__defaults__ = getattr(target, "__defaults__", None)
        self.__kwdefaults__ = getattr(target, "__kwdefaults__", None)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._make(self._fn, args, kwargs, self._defn)

    def __get__(self, instance: object, owner: type | None = None) -> Any:
        # A function is a descriptor: a method defined with @step binds to its instance.
        return self if instance is None else MethodType(self, instance)

    def __reduce__(self) -> str:
        # Pickled by reference, as a function is: its module and qualified name.
        return self.__qualname__

    def __repr__(self) -> str:
        return f"<generator step function {self.__qualname__} at {id(self):#x}>"
