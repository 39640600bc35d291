"""Running work in threads without losing the active step: a context-carrying executor."""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import ParamSpec, TypeVar

__all__ = ["ContextThreadPoolExecutor", "run_in_context"]

P = ParamSpec("P")
R = TypeVar("R")


class ContextThreadPoolExecutor(ThreadPoolExecutor):
    """
    A `ThreadPoolExecutor` whose tasks run in a copy of the submitter's context.

    A plain executor runs tasks with an empty context, so steps started there have no
    parent and usage recorded there is lost to the caller's budget. Here each task sees
    the active persona and steps of the code that submitted it, and its usage is charged
    to them (ledgers are shared; the stack itself is copied, so threads don't see each
    other's steps).

    Example:
        >>> from agentsteps import ContextThreadPoolExecutor, record_usage, step
        >>> @step
        ... def fan_out():
        ...     with ContextThreadPoolExecutor(max_workers=2) as pool:
        ...         for f in [pool.submit(record_usage, "m", 5, 5, cost_usd=0) for _ in range(3)]:
        ...             f.result()
        ...     from agentsteps import current_step
        ...     return current_step().usage.llm_calls
        >>> fan_out()
        3

    .. versionadded:: 0.1.0
    """

    def submit(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> Future[R]:
        """Schedule ``fn(*args, **kwargs)`` in a copy of the current context."""
        ctx = contextvars.copy_context()
        run: Callable[..., R] = ctx.run
        return super().submit(run, fn, *args, **kwargs)


def run_in_context(fn: Callable[P, R]) -> Callable[P, R]:
    """
    Bind ``fn`` to a copy of the current context, for any thread API that takes a callable.

    Example:
        >>> import threading
        >>> from agentsteps import run_in_context
        >>> t = threading.Thread(target=run_in_context(print), args=("in a thread",))
        >>> t.start(); t.join()
        in a thread

    .. versionadded:: 0.1.0
    """
    ctx = contextvars.copy_context()

    def bound(*args: P.args, **kwargs: P.kwargs) -> R:
        # A Context can be entered by one thread at a time; copy again per call so the
        # bound callable may run concurrently.
        return ctx.copy().run(fn, *args, **kwargs)

    return bound
