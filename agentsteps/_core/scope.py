"""What `step_scope` and `persona_scope` share: a frame entered and ended around a block."""

from __future__ import annotations

from types import TracebackType
from typing import Any, Generic, TypeVar

from .lifecycle import acomplete, afail, astart, complete, fail, start

__all__ = ["FrameScope"]

F = TypeVar("F")


class FrameScope(Generic[F]):
    """
    Base of the scope context managers: ``with`` and ``async with`` over one frame.

    Subclasses set ``_defn`` in ``__init__``; ``F`` is the frame type ``as`` gives. Steps
    and personas start and end through the same `lifecycle` functions as decorated calls.
    One scope object is one activation at a time; entering it twice at once is a mistake.
    """

    __slots__ = ("_defn", "_frame")

    _defn: Any
    _frame: Any
    _kind = "scope"

    def _check_not_active(self) -> None:
        if self._frame is not None:
            msg = (
                f"{self._kind}({self._defn.name!r}) is already active; create a new one to re-enter"
            )
            raise RuntimeError(msg)

    def __enter__(self) -> F:
        self._check_not_active()
        self._frame = start(self._defn, (), {})[0]
        return self._frame  # type: ignore[no-any-return]

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        frame, self._frame = self._frame, None
        if exc is None:
            complete(frame, None)
            return False
        return fail(frame, exc)

    # The awaitable forms, so that a step scope's async hook handlers are awaited.
    async def __aenter__(self) -> F:
        self._check_not_active()
        self._frame = (await astart(self._defn, (), {}))[0]
        return self._frame  # type: ignore[no-any-return]

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        frame, self._frame = self._frame, None
        if exc is None:
            await acomplete(frame, None)
            return False
        return await afail(frame, exc)
