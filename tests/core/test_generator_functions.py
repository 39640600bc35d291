"""Decorated generators are generator functions to `inspect`, so frameworks dispatch right."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import pickle
from collections.abc import AsyncIterator, Iterator

import pytest

import agentsteps
from agentsteps import StepStatus, current_step, record_usage, step


@step(name="module-items")
def module_items(n: int) -> Iterator[int]:
    """A module-level generator step (pickled by reference)."""
    yield from range(n)


class TestInspect:
    def test_generator(self) -> None:
        """A generator step is a generator function, and neither a coroutine nor async gen."""

        @step
        def items() -> Iterator[int]:
            yield 1

        assert inspect.isgeneratorfunction(items)
        assert not inspect.isasyncgenfunction(items)
        assert not inspect.iscoroutinefunction(items)
        assert list(items()) == [1]

    def test_async_generator(self) -> None:
        """An async generator step is an async generator function, nothing else."""

        @step
        async def items() -> AsyncIterator[int]:
            yield 1

        assert inspect.isasyncgenfunction(items)
        assert not inspect.isgeneratorfunction(items)
        assert not inspect.iscoroutinefunction(items)

        async def main() -> list[int]:
            return [i async for i in items()]

        assert asyncio.run(main()) == [1]

    def test_plain_and_async_unchanged(self) -> None:
        """Plain and async steps stay plain functions and coroutine functions."""

        @step
        def plain() -> int:
            return 1

        @step
        async def coro() -> int:
            return 1

        assert inspect.isfunction(plain)
        assert not inspect.isgeneratorfunction(plain)
        assert inspect.iscoroutinefunction(coro)
        assert not inspect.isasyncgenfunction(coro)

    def test_methods(self) -> None:
        """Instance, class and static generator methods bind and stay generator functions."""

        class Agent:
            def __init__(self) -> None:
                self.items = [1, 2]

            @step
            def each(self) -> Iterator[int]:
                yield from self.items

            @classmethod
            @step
            def kind(cls) -> Iterator[str]:
                yield cls.__name__

            @staticmethod
            @step
            def fixed() -> Iterator[int]:
                yield 3

        agent = Agent()
        for method in (agent.each, Agent.kind, Agent.fixed, Agent.each):
            assert inspect.isgeneratorfunction(method), method
        assert list(agent.each()) == [1, 2]
        assert list(Agent.kind()) == ["Agent"]
        assert list(Agent.fixed()) == [3]
        assert list(Agent.each(agent)) == [1, 2]

    def test_signature_and_metadata(self) -> None:
        """The signature, name, docstring and __wrapped__ are the decorated function's."""

        def original(a: int, b: str = "x", *, c: int = 2) -> Iterator[str]:
            """Doc."""
            yield b * a * c

        wrapped = step(original)
        assert inspect.signature(wrapped) == inspect.signature(original)
        assert wrapped.__name__ == "original"
        assert wrapped.__doc__ == "Doc."
        assert wrapped.__wrapped__ is original  # type: ignore[attr-defined]
        assert list(wrapped(1, "y", c=1)) == ["y"]

    def test_pickled_by_reference(self) -> None:
        """A module-level generator step pickles as a reference, like a function."""
        assert pickle.loads(pickle.dumps(module_items)) is module_items


class TestContextManager:
    def test_contextmanager(self) -> None:
        """contextlib.contextmanager over a step: setup and teardown run inside the step."""
        seen: list[str | None] = []

        @contextlib.contextmanager
        @step(name="resource")
        def resource() -> Iterator[str]:
            seen.append(None if current_step() is None else current_step().name)  # type: ignore[union-attr]
            yield "handle"
            seen.append(None if current_step() is None else current_step().name)  # type: ignore[union-attr]

        with agentsteps.run() as collected, resource() as handle:
            assert handle == "handle"
            assert current_step() is None  # the step is active only while its body runs
        assert seen == ["resource", "resource"]
        assert [(s.name, s.status) for s in collected.steps] == [("resource", StepStatus.COMPLETED)]

    def test_contextmanager_error(self) -> None:
        """An error in the with block is thrown into the step at its yield: it fails."""

        @contextlib.contextmanager
        @step(name="resource")
        def resource() -> Iterator[None]:
            yield

        with agentsteps.run() as collected, pytest.raises(KeyError), resource():
            raise KeyError("boom")
        assert [(s.name, s.status) for s in collected.steps] == [("resource", StepStatus.FAILED)]

    def test_asynccontextmanager(self) -> None:
        """contextlib.asynccontextmanager over an async generator step."""
        seen: list[str] = []

        @contextlib.asynccontextmanager
        @step(name="aresource")
        async def aresource() -> AsyncIterator[str]:
            record_usage("m", input_tokens=1, output_tokens=1, cost_usd=0)
            yield "handle"
            seen.append("closed")

        async def main() -> str:
            async with aresource() as handle:
                return handle

        with agentsteps.run() as collected:
            assert asyncio.run(main()) == "handle"
        assert seen == ["closed"]
        [record] = collected.steps
        assert (record.name, record.status, record.usage.llm_calls) == (
            "aresource",
            StepStatus.COMPLETED,
            1,
        )


# -- a step as a pytest fixture ----------------------------------------------------------


@pytest.fixture
def teardown_log() -> Iterator[list[str]]:
    """Set up before, torn down after `stepped_fixture`: checks its teardown ran."""
    log: list[str] = []
    with agentsteps.run() as collected:
        yield log
    assert log == ["setup in stepped-fixture", "teardown in stepped-fixture"]
    assert [(s.name, s.status) for s in collected.steps] == [
        ("stepped-fixture", StepStatus.COMPLETED)
    ]


@pytest.fixture
@step(name="stepped-fixture")
def stepped_fixture(teardown_log: list[str]) -> Iterator[str]:
    """A generator step used as a fixture: pytest runs its teardown."""
    teardown_log.append(f"setup in {current_step().name}")  # type: ignore[union-attr]
    yield "fixture value"
    teardown_log.append(f"teardown in {current_step().name}")  # type: ignore[union-attr]


def test_step_as_pytest_fixture(teardown_log: list[str], stepped_fixture: str) -> None:
    """The test gets the yielded value (not a generator object); teardown runs after."""
    assert stepped_fixture == "fixture value"
    assert teardown_log == ["setup in stepped-fixture"]
