"""What `step_scope` and `persona_scope` share: a frame entered and ended around a block."""

from __future__ import annotations

from types import TracebackType
from typing import Any

from .lifecycle import complete, enter, fail

__all__ = ["FrameScope"]


class FrameScope:
    """
    Base of the scope context managers: ``with`` and ``async with`` over one frame.

    Subclasses set ``_defn`` in ``__init__`` and may override the entry and exit hooks.
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

    def __enter__(self) -> Any:
        self._check_not_active()
        self._frame = enter(self._defn)
        return self._frame

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

    async def __aenter__(self) -> Any:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        return self.__exit__(exc_type, exc, tb)
