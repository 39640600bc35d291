"""
``error_boundary="continue"`` in the types: the step may return its ``default`` instead.

Checked by mypy --strict in tests/core/test_typing.py, never executed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Generator, Iterator
from typing import assert_type

from agentsteps import ErrorBoundary, step


@step(error_boundary="continue")
def maybe(pr: int) -> str:
    return str(pr)


@step(error_boundary="continue", default=0)
def with_default(pr: int) -> str:
    return str(pr)


@step(error_boundary=ErrorBoundary.CONTINUE, default="(skipped)")
def same_type(pr: int) -> str:
    return str(pr)


@step(error_boundary="continue", default="none")
async def async_default(x: str) -> int:
    return len(x)


@step(error_boundary="continue")
def gen(n: int) -> Iterator[int]:
    yield n


@step(error_boundary="continue", default="stopped")
def gen_returning(n: int) -> Generator[int, None, str]:
    yield n
    return "done"


@step(error_boundary="continue")
async def agen(n: int) -> AsyncIterator[int]:
    yield n


@step(error_boundary="fail")
def raising(pr: int) -> str:
    return str(pr)


@step(error_boundary="escalate")
def escalating(pr: int) -> str:
    return str(pr)


async def checks() -> None:
    assert_type(maybe(1), str | None)
    assert_type(with_default(1), str | int)
    assert_type(same_type(1), str)
    assert_type(await async_default("x"), int | str)
    assert_type(gen(1), Iterator[int])
    assert_type(gen_returning(1), Generator[int, None, str])
    assert_type(agen(1), AsyncIterator[int])
    assert_type(raising(1), str)
    assert_type(escalating(1), str)
    maybe("x")  # type: ignore[arg-type]


# A default only means something under "continue": elsewhere it is refused.
@step(error_boundary="fail", default=1)  # type: ignore[call-overload, untyped-decorator]
def refused() -> int:
    return 1


def dynamic(boundary: ErrorBoundary) -> None:
    """A boundary known only at run time may be "continue": the result may be None."""

    @step(error_boundary=boundary)
    def work() -> int:
        return 1

    assert_type(work(), int | None)
