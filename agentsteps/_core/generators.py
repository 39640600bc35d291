"""
Generator and async generator steps: `StepGenerator` and `StepAsyncGenerator`.

Generator steps are active only while the generator body runs: the frame is made
current around each ``next``/``send``/``throw`` and the consumer's stack is restored
before the value goes back to it, so code between two iterations never runs "inside" the
step. What the body itself made current is kept from one resume to the next, so a scope
it opened around a ``yield`` is still the current one when it goes on. That is why the
generator wrappers are classes implementing the iterator protocols by hand rather than
generator functions: a class can also tell an explicit ``close()`` (status
``cancelled``) from the garbage collector dropping an unfinished generator
(``abandoned``).

This module is one cohesive thing at about 400 lines: the two protocol implementations,
each guarding every transition (start, resume, suspend, end, close, finalisation) against
an interruption landing part-way.
"""

from __future__ import annotations

import contextvars
import logging
import sys
from collections.abc import AsyncGenerator, Callable, Generator
from types import GeneratorType
from typing import Any

from .._hooks.dispatch import IN_HANDLER
from .context import CURRENT, ActivePersona, ActiveStep
from .ending import end_detached, finish_interrupted
from .lifecycle import acomplete, afail, astart, complete, fail, start
from .records import StepStatus
from .stack import begin_generator, current_otel_context, is_current, pop, resume, suspend

logger = logging.getLogger("agentsteps")

__all__ = ["StepAsyncGenerator", "StepGenerator"]


def _exception(typ: Any, val: Any) -> BaseException:
    """The exception ``throw(typ, val)`` means, in every form the generator protocol allows."""
    if val is None and isinstance(typ, BaseException):
        return typ
    if val is None:
        return typ()  # type: ignore[no-any-return]
    return val if isinstance(val, BaseException) else typ(val)


class StepGenerator(Generator[Any, Any, Any]):
    """A generator whose body runs as a step, one activation from first ``next`` to its end."""

    __slots__ = ("_args", "_defn", "_done", "_fn", "_frame", "_gen", "_kwargs", "_running")

    def __init__(self, fn: Callable[..., Any], args: Any, kwargs: Any, defn: Any) -> None:
        self._fn = fn
        self._args = args
        self._kwargs = kwargs
        self._defn = defn
        self._gen: GeneratorType[Any, Any, Any] | None = None
        self._frame: Any = None
        self._done = False
        # True from the start of a resume to its end, not only while the body runs: the
        # step is being started, resumed or suspended then too (pre_step handlers run
        # before the body exists), and a close() or next() from another thread in that
        # window would end or resume it twice.
        self._running = False

    def __iter__(self) -> StepGenerator:
        return self

    def __next__(self) -> Any:
        return self._resume(None, None)

    def send(self, value: Any) -> Any:
        """Resume the body with ``value``, inside the step."""
        return self._resume(value, None)

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:
        """Raise an exception at the paused ``yield``, inside the step."""
        return self._resume(None, _exception(typ, val))

    def _resume(self, value: Any, exc: BaseException | None) -> Any:
        if self._done:
            if exc is not None:
                raise exc
            raise StopIteration
        if self._running:
            # Resumed from inside its own body, or from another thread while it runs:
            # refuse before touching the stack, as a plain generator does (the step is
            # running, and must not be ended here). The test and the set below have no
            # call between them, so the interpreter cannot switch threads there.
            msg = "generator already executing"
            raise ValueError(msg)
        try:
            self._running = True
            return self._advance(value, exc)
        finally:
            self._running = False

    def _advance(self, value: Any, exc: BaseException | None) -> Any:
        frame = self._frame
        if frame is None:
            # First resume: this is when the step starts (and its body is created).
            consumer = current_otel_context()
            # One try from the start to the body's creation: an interruption (a signal's
            # KeyboardInterrupt) can land after start() returned, before the frame is
            # stored, and the frame must still end.
            try:
                frame, self._args, self._kwargs = start(self._defn, self._args, self._kwargs)
                begin_generator(frame, consumer)
                self._frame = frame
                self._gen = self._fn(*self._args, **self._kwargs)
            except BaseException as error:
                self._done = True
                if frame is None:
                    raise  # denied, a strict hook failed, or interrupted (start ended it)
                if fail(frame, error):
                    raise StopIteration(self._defn.default) from None
                raise
        else:
            try:
                resume(frame)
            except BaseException:
                # Interrupted before the body went on: give the consumer its context
                # back (if resume got that far); the generator stays where it was.
                if is_current(frame) or CURRENT.get() is frame._body_frame is not None:
                    suspend(frame)
                raise
        gen = self._gen
        assert gen is not None
        try:
            item = gen.send(value) if exc is None else gen.throw(exc)
        except StopIteration as stop:
            self._done = True
            try:
                result = complete(frame, stop.value)
            except BaseException as raised:
                finish_interrupted(frame, raised)
                raise
            raise StopIteration(result) from None
        except BaseException as error:
            self._done = True
            try:
                skip = fail(frame, error)
            except BaseException as raised:
                finish_interrupted(frame, raised)
                raise
            if skip:
                raise StopIteration(self._defn.default) from None
            raise
        try:
            suspend(frame)
        except BaseException as raised:
            # Interrupted while the consumer was getting its context back: the item is
            # lost with the interruption, so the step ends here, its body closed inside it.
            self._done = True
            if not is_current(frame):
                resume(frame)
            try:
                gen.close()
            finally:
                finish_interrupted(frame, raised)
            raise
        return item

    def close(self) -> None:
        """Close the generator early: the step ends with status ``cancelled``."""
        self._finish(StepStatus.CANCELLED)

    def _finish(self, status: StepStatus) -> None:
        if self._done:
            return
        if self._running:
            msg = "generator already executing"
            raise ValueError(msg)
        self._done = True
        frame = self._frame
        if frame is None:
            return  # never started: there was no step
        gen = self._gen
        assert gen is not None
        try:
            resume(frame)
        except BaseException as raised:
            finish_interrupted(frame, raised)  # interrupted: the step ends, body unclosed
            raise
        try:
            gen.close()
        except BaseException as error:
            try:
                fail(frame, error)
            except BaseException as raised:
                finish_interrupted(frame, raised)
                raise
            raise
        try:
            pop(frame)
            end_detached(frame, status, None)
        except BaseException as raised:
            finish_interrupted(frame, raised)
            raise

    def __del__(self) -> None:
        # getattr: an interruption can land before __init__ set anything.
        if not getattr(self, "_done", True) and self._frame is not None:
            _in_own_context(self._finish, StepStatus.ABANDONED)


class StepAsyncGenerator(AsyncGenerator[Any, Any]):
    """An async generator whose body runs as a step, from first ``anext`` to its end."""

    __slots__ = (
        "__weakref__",
        "_abandoned",
        "_agen",
        "_args",
        "_defn",
        "_done",
        "_finalizer",
        "_fn",
        "_frame",
        "_kwargs",
        "_running",
    )

    def __init__(self, fn: Callable[..., Any], args: Any, kwargs: Any, defn: Any) -> None:
        self._fn = fn
        self._args = args
        self._kwargs = kwargs
        self._defn = defn
        self._agen: AsyncGenerator[Any, Any] | None = None
        self._frame: Any = None
        self._done = False
        self._abandoned = False
        self._running = False
        self._finalizer: Callable[[Any], Any] | None = None

    def __aiter__(self) -> StepAsyncGenerator:
        return self

    def __anext__(self) -> Any:
        return self._resume(None, None)

    def asend(self, value: Any) -> Any:
        """Resume the body with ``value``, inside the step."""
        return self._resume(value, None)

    def athrow(self, typ: Any, val: Any = None, tb: Any = None) -> Any:
        """Raise an exception at the paused ``yield``, inside the step."""
        return self._resume(None, _exception(typ, val))

    async def _resume(self, value: Any, exc: BaseException | None) -> Any:
        if self._done:
            if exc is not None:
                raise exc
            raise StopAsyncIteration
        if self._running:
            # A second anext() while one is awaited (another task): refuse before touching
            # the stack, as a native async generator does.
            msg = "anext(): asynchronous generator is already running"
            raise RuntimeError(msg)
        self._running = True
        try:
            frame = self._frame
            if frame is None:
                frame, awaitable = await self._start(value, exc)
            else:
                resume(frame)
                agen = self._agen
                assert agen is not None
                awaitable = agen.asend(value) if exc is None else agen.athrow(exc)
            try:
                item = await awaitable
            except StopAsyncIteration:
                self._done = True
                await acomplete(frame, None, "an async generator")
                raise
            except BaseException as error:
                self._done = True
                if await afail(frame, error):
                    raise StopAsyncIteration from None
                raise
            suspend(frame)
            return item
        finally:
            self._running = False

    async def _start(self, value: Any, exc: BaseException | None) -> tuple[Any, Any]:
        """First resume: the step starts, its body is created; returns its first step."""
        # Tell the event loop about us like a native async generator does, so that
        # loop shutdown closes us (and the garbage collector can hand us back to it).
        firstiter, self._finalizer = sys.get_asyncgen_hooks()
        if firstiter is not None:
            firstiter(self)
        consumer = current_otel_context()
        frame: ActiveStep | ActivePersona | None = None
        try:  # one try from the start on: see StepGenerator._resume
            frame, self._args, self._kwargs = await astart(self._defn, self._args, self._kwargs)
            begin_generator(frame, consumer)
            self._frame = frame
            self._agen = self._fn(*self._args, **self._kwargs)
        except BaseException as error:
            self._done = True
            if frame is None:
                raise  # denied, a strict hook failed, or interrupted (start ended it)
            if await afail(frame, error):
                raise StopAsyncIteration from None
            raise
        return frame, _first_step(self._agen, value, exc)

    async def aclose(self) -> None:
        """Close early: the step ends ``cancelled`` (``abandoned`` when garbage collected)."""
        if self._done:
            return
        if self._running:
            msg = "aclose(): asynchronous generator is already running"
            raise RuntimeError(msg)
        self._done = True
        frame = self._frame
        if frame is None:
            return
        agen = self._agen
        assert agen is not None
        resume(frame)
        try:
            await agen.aclose()
        except BaseException as error:
            await afail(frame, error)
            raise
        pop(frame)
        status = StepStatus.ABANDONED if self._abandoned else StepStatus.CANCELLED
        end_detached(frame, status, None)

    def __del__(self) -> None:
        if getattr(self, "_done", True) or self._frame is None:  # see StepGenerator
            return
        self._abandoned = True
        finalizer = self._finalizer
        if finalizer is not None:
            # The loop schedules aclose() for us, as it does for native async generators;
            # through a reaper, which ends the step itself if that never happens (the loop
            # is closed, or cancels the closing task before it starts at shutdown).
            finalizer(_Reaper(self))
            return
        _in_own_context(self._abandon_now)

    def _abandon_now(self) -> None:
        """End the step without an event loop: the body's cleanup runs up to its first await."""
        if self._done or self._frame is None:
            return
        self._done = True
        frame, agen = self._frame, self._agen
        if agen is not None:
            resume(frame)
            try:
                closing = agen.aclose()
                try:
                    closing.send(None)
                except StopIteration:
                    pass
                else:
                    closing.close()  # the cleanup awaits, and there is no loop to finish it
            except BaseException:
                logger.warning(
                    "cleanup of abandoned async generator step %r failed",
                    frame.name,
                    exc_info=True,
                )
            finally:
                pop(frame)
        end_detached(frame, StepStatus.ABANDONED, None)


class _Reaper:
    """What an event loop is given to close an abandoned `StepAsyncGenerator`."""

    __slots__ = ("__weakref__", "_gen")

    def __init__(self, gen: StepAsyncGenerator) -> None:
        self._gen = gen

    async def aclose(self) -> None:
        await self._gen.aclose()

    def __del__(self) -> None:
        # After aclose() ran this does nothing; if it never ran, the step still ends.
        _in_own_context(self._gen._abandon_now)


def _in_own_context(finish: Callable[..., None], *args: Any) -> None:
    """
    End an abandoned generator step from a finaliser, in a copy of the current context.

    The garbage collector runs finalisers wherever an allocation triggers it, including
    inside a context-variable operation of the running code. CPython 3.11 loses a change
    made to a variable while that variable is being reset to "unset", and keeps a stale
    cached value (found by tests/reliability/test_properties.py: the stack then named a
    finished step). Ending the step makes such changes (the step is resumed for its
    cleanup code, then popped), so it makes them in a context of its own; the running
    code's context is not touched at all.
    """
    contextvars.copy_context().run(_finish_abandoned, finish, args)


def _finish_abandoned(finish: Callable[..., None], args: tuple[Any, ...]) -> None:
    # The collection may have happened inside a hook handler, whose context hides the
    # stack and silences hooks; the abandoned step's own hooks must still fire.
    IN_HANDLER.set(False)
    finish(*args)


def _first_step(agen: Any, value: Any, exc: BaseException | None) -> Any:
    """
    The first ``asend``/``athrow`` of a body's async generator, hidden from the event loop.

    Native async generators register with the loop on their first step, so that loop
    shutdown (or the garbage collector) closes them. The body's generator must not: the
    loop would close it outside the step, and its cleanup code would run, and record
    usage, with the step not active. `StepAsyncGenerator` registers itself instead and
    closes the body inside the step.
    """
    hooks = sys.get_asyncgen_hooks()
    sys.set_asyncgen_hooks(firstiter=None, finalizer=None)
    try:
        return agen.asend(value) if exc is None else agen.athrow(exc)
    finally:
        sys.set_asyncgen_hooks(*hooks)
