"""
Static typing checks of the public API (checked by mypy, never executed).

Run: ``mypy --strict tests/typing`` (the test suite does, in tests/core/test_typing.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import assert_type

from agentsteps import Budget, persona, step


@step
def bare(pr: int, *, verbose: bool = False) -> str:
    return str(pr)


@step(name="summarize", model="m", budget=Budget(max_tokens=10), error_boundary="continue")
def called(pr: int) -> str:
    return str(pr)


@step(budget={"max_usd": 0.05})
async def async_step(x: str) -> int:
    return len(x)


@step
def gen_step(n: int) -> Iterator[int]:
    yield n


@step
async def agen_step(n: int) -> AsyncIterator[int]:
    yield n


@persona(name="reviewer")
def review(pr: int) -> str | None:
    return called(pr)


class Agent:
    @step
    def method(self, x: int) -> int:
        return x


assert_type(bare(1, verbose=True), str)
assert_type(called(1), str | None)  # error_boundary="continue": may be skipped
assert_type(review(1), str | None)
assert_type(gen_step(1), Iterator[int])
assert_type(agen_step(1), AsyncIterator[int])
assert_type(Agent().method(3), int)


async def _use() -> None:
    assert_type(await async_step("x"), int)


bare("not an int")  # type: ignore[arg-type]
called(1, 2)  # type: ignore[call-arg]
