"""The `@persona` decorator and `persona_scope`: who is doing the work."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar, overload

from .._validate import check_name
from .context import ActivePersona
from .definitions import PersonaDefinition
from .scope import FrameScope
from .wrappers import decorate

__all__ = ["persona", "persona_scope"]

P = ParamSpec("P")
R = TypeVar("R")


@overload
def persona(func: Callable[P, R], /) -> Callable[P, R]: ...


@overload
def persona(
    *, name: str | None = None, model: str | None = None
) -> Callable[[Callable[P, R]], Callable[P, R]]: ...


def persona(func: Any = None, /, *, name: str | None = None, model: str | None = None) -> Any:
    """
    Run each call of the decorated function as a persona: the agent role (reviewer,
    planner, ...) under which the steps it calls run, traced as an
    ``invoke_agent {name}`` span.

    A persona has no budget of its own; the steps under it do. Hooks are routed by the
    persona's name. Same forms as `step`: bare or called, sync, async, generators,
    methods.

    Args:
        name: The persona's name; defaults to the function's ``__qualname__``.
        model: A default model for the steps under it that declare none.

    Example:
        >>> from agentsteps import current_persona, persona, step
        >>> @step
        ... def write():
        ...     return current_persona().name
        >>> @persona(name="author")
        ... def author():
        ...     return write()
        >>> author()
        'author'

    .. versionadded:: 0.1.0
    """
    if name is not None:
        check_name("name", name, "@persona")

    def make(qualname: str) -> PersonaDefinition:
        return PersonaDefinition(
            name=qualname if name is None else name, function=qualname, model=model
        )

    if func is not None:
        return decorate("persona", func, make)

    def decorator(fn: Callable[P, R]) -> Callable[P, R]:
        return decorate("persona", fn, make)  # type: ignore[no-any-return]

    return decorator


class persona_scope(FrameScope[ActivePersona]):
    """
    Run a block as a persona: the context-manager form of `@persona`.

    Example:
        >>> from agentsteps import current_persona, persona_scope
        >>> with persona_scope("reviewer"):
        ...     current_persona().name
        'reviewer'

    .. versionadded:: 0.1.0
    """

    __slots__ = ()
    _kind = "persona_scope"

    def __init__(self, name: str, *, model: str | None = None) -> None:
        check_name("name", name, "persona_scope()")
        self._defn = PersonaDefinition(name=name, function=name, model=model)
        self._frame = None
