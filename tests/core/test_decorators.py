"""@step and @persona on every kind of callable, and the scope forms."""

from __future__ import annotations

import asyncio
import gc
import inspect
import re
from collections.abc import AsyncIterator, Iterator

import pytest

import agentsteps
from agentsteps import (
    StepStatus,
    current_model,
    current_persona,
    current_step,
    persona,
    persona_scope,
    record_usage,
    step,
    step_scope,
)


def _names() -> tuple[str | None, str | None]:
    s, p = current_step(), current_persona()
    return (None if s is None else s.name, None if p is None else p.name)


class TestForms:
    def test_bare_and_called(self) -> None:
        """@step and @step() both work; the name defaults to __qualname__."""

        @step
        def bare() -> tuple[str | None, str | None]:
            return _names()

        @step()
        def called() -> tuple[str | None, str | None]:
            return _names()

        assert bare() == ("TestForms.test_bare_and_called.<locals>.bare", None)
        assert called()[0] == "TestForms.test_bare_and_called.<locals>.called"

    def test_persona_bare_and_called(self) -> None:
        """@persona and @persona(name=...) both work."""

        @persona
        def p1() -> str | None:
            return _names()[1]

        @persona(name="reviewer")
        def p2() -> str | None:
            return _names()[1]

        assert p1() == "TestForms.test_persona_bare_and_called.<locals>.p1"
        assert p2() == "reviewer"

    def test_metadata_preserved(self) -> None:
        """__wrapped__, __name__, __doc__ and the signature survive decoration."""

        def original(pr: int, *, verbose: bool = False) -> str:
            """Docs."""
            return str(pr)

        wrapped = step(name="x")(original)
        assert wrapped.__wrapped__ is original  # type: ignore[attr-defined]
        assert wrapped.__name__ == "original"
        assert wrapped.__doc__ == "Docs."
        assert inspect.signature(wrapped) == inspect.signature(original)

    def test_async_stays_a_coroutine_function(self) -> None:
        """Frameworks that check iscoroutinefunction still see an async function."""

        @step
        async def a() -> int:
            return 1

        assert inspect.iscoroutinefunction(a)
        assert asyncio.run(a()) == 1


class TestKinds:
    def test_sync(self) -> None:
        """A sync step is active while its body runs, and not after."""

        @step(name="s")
        def s() -> tuple[str | None, str | None]:
            return _names()

        assert s() == ("s", None)
        assert current_step() is None

    def test_async(self) -> None:
        """An async step is active across its awaits."""

        @step(name="a")
        async def a() -> str | None:
            await asyncio.sleep(0)
            return _names()[0]

        assert asyncio.run(a()) == "a"

    def test_nested_sync_async_mix(self) -> None:
        """Personas and steps nest across sync and async code."""

        @step(name="inner")
        def inner() -> tuple[str | None, str | None]:
            return _names()

        @step(name="outer")
        async def outer() -> tuple[str | None, str | None]:
            await asyncio.sleep(0)
            return inner()

        @persona(name="planner")
        async def plan() -> tuple[str | None, str | None]:
            return await outer()

        assert asyncio.run(plan()) == ("inner", "planner")

    def test_generator_active_only_inside_body(self) -> None:
        """Between yields the consumer does not run inside the generator's step."""
        seen_inside: list[str | None] = []

        @step(name="gen")
        def gen() -> Iterator[int]:
            for i in range(3):
                seen_inside.append(_names()[0])
                yield i

        @step(name="consumer")
        def consume() -> list[str | None]:
            outside = []
            for _ in gen():
                outside.append(_names()[0])
            return outside

        with agentsteps.run() as r:
            assert consume() == ["consumer"] * 3
        assert seen_inside == ["gen"] * 3
        statuses = {s.name: s.status for s in r.steps}
        assert statuses == {"gen": StepStatus.COMPLETED, "consumer": StepStatus.COMPLETED}
        gen_rec = next(s for s in r.steps if s.name == "gen")
        assert gen_rec.parent == "consumer"

    def test_generator_send_and_return_value(self) -> None:
        """send() reaches the body and the generator's return value comes through."""

        @step
        def echo() -> Iterator[int]:
            total = 0
            while total < 10:
                got = yield total
                total += got
            return total

        def driver() -> object:
            g = echo()
            next(g)
            g.send(4)
            g.send(4)
            try:
                g.send(4)
            except StopIteration as stop:
                return stop.value
            raise AssertionError

        def delegating() -> Iterator[int]:
            result = yield from echo()
            assert result == 12

        assert driver() == 12

    def test_generator_closed_early_is_cancelled(self) -> None:
        """close() before exhaustion ends the step with status cancelled."""

        @step(name="g")
        def g() -> Iterator[int]:
            yield from range(10)

        with agentsteps.run() as r:
            it = g()
            next(it)
            it.close()
            it.close()  # idempotent
        assert [s.status for s in r.steps] == [StepStatus.CANCELLED]

    def test_generator_garbage_collected_is_abandoned(self) -> None:
        """A started generator dropped without close() ends as abandoned when collected."""

        @step(name="g")
        def g() -> Iterator[int]:
            yield from range(10)

        with agentsteps.run() as r:
            it = g()
            next(it)
            del it
            gc.collect()
        assert [s.status for s in r.steps] == [StepStatus.ABANDONED]
        assert current_step() is None

    def test_generator_never_started_is_no_step(self) -> None:
        """Creating a generator without iterating it runs no step."""

        @step
        def g() -> Iterator[int]:
            yield 1

        with agentsteps.run() as r:
            g()
            gc.collect()
        assert r.steps == []

    def test_generator_throw(self) -> None:
        """throw() raises inside the body; an unhandled error fails the step."""

        @step(name="g")
        def g() -> Iterator[int]:
            yield 1
            yield 2

        with agentsteps.run() as r:
            it = g()
            next(it)
            with pytest.raises(ValueError, match="boom"):
                it.throw(ValueError("boom"))
        assert [s.status for s in r.steps] == [StepStatus.FAILED]

    def test_async_generator(self) -> None:
        """An async generator step is active only while its body runs."""

        @step(name="ag")
        async def ag() -> AsyncIterator[str | None]:
            for _ in range(2):
                await asyncio.sleep(0)
                yield _names()[0]

        async def main() -> tuple[list[str | None], list[str | None]]:
            inside, outside = [], []
            async for name in ag():
                inside.append(name)
                outside.append(_names()[0])
            return inside, outside

        with agentsteps.run() as r:
            assert asyncio.run(main()) == (["ag", "ag"], [None, None])
        assert [s.status for s in r.steps] == [StepStatus.COMPLETED]

    def test_async_generator_aclose_is_cancelled(self) -> None:
        """aclose() before exhaustion ends the step cancelled."""

        @step(name="ag")
        async def ag() -> AsyncIterator[int]:
            for i in range(5):
                yield i

        async def main() -> None:
            it = ag()
            await it.__anext__()
            await it.aclose()

        with agentsteps.run() as r:
            asyncio.run(main())
        assert [s.status for s in r.steps] == [StepStatus.CANCELLED]

    def test_generator_resumed_from_its_own_body(self) -> None:
        """next() or close() from inside the body is refused as for a plain generator, and
        the step goes on undisturbed."""
        errors: list[str] = []

        @step(name="g")
        def g() -> Iterator[int]:
            for action in (lambda: next(it), it.close):
                try:
                    action()
                except ValueError as exc:
                    errors.append(str(exc))
                yield len(errors)
                assert _names() == ("g", None)

        with agentsteps.run() as r:
            it = g()
            assert list(it) == [1, 2]
        assert errors == ["generator already executing"] * 2
        assert [s.status for s in r.steps] == [StepStatus.COMPLETED]
        assert current_step() is None

    def test_async_generator_advanced_by_two_tasks(self) -> None:
        """A second anext() while one is awaited gets RuntimeError; the first finishes and
        the step is not ended by the refused one."""

        @step(name="ag")
        async def ag() -> AsyncIterator[int]:
            await asyncio.sleep(0.01)
            yield 1
            yield 2

        async def main() -> tuple[int, str, list[int]]:
            it = ag()
            first = asyncio.ensure_future(it.__anext__())
            await asyncio.sleep(0)
            with pytest.raises(RuntimeError) as second:
                await it.__anext__()
            with pytest.raises(RuntimeError, match=re.escape("aclose(): asynchronous")):
                await it.aclose()
            return await first, str(second.value), [i async for i in it]

        with agentsteps.run() as r:
            assert asyncio.run(main()) == (
                1,
                "anext(): asynchronous generator is already running",
                [2],
            )
        assert [s.status for s in r.steps] == [StepStatus.COMPLETED]

    def test_async_generator_left_open_at_loop_end(self) -> None:
        """An async generator not closed before asyncio.run returns still ends its step."""

        @step(name="ag")
        async def ag() -> AsyncIterator[int]:
            for i in range(5):
                yield i

        holder = []

        async def main() -> None:
            it = ag()
            holder.append(it)
            await it.__anext__()

        with agentsteps.run() as r:
            asyncio.run(main())
        assert len(r.steps) == 1
        assert r.steps[0].status in (StepStatus.CANCELLED, StepStatus.ABANDONED)


class Reviewer:
    """A class with decorated methods of each kind."""

    def __init__(self, tag: str) -> None:
        self.tag = tag

    @step
    def instance(self, x: int) -> str:
        return f"{self.tag}:{x}:{_names()[0]}"

    @step
    @classmethod
    def klass(cls, x: int) -> str:
        return f"{cls.__name__}:{x}:{_names()[0]}"

    @step(name="static")
    @staticmethod
    def static(x: int) -> str:
        return f"{x}:{_names()[0]}"

    @persona(name="reviewer")
    def review(self) -> str | None:
        return _names()[1]


class TestMethods:
    def test_instance_method(self) -> None:
        """Instance methods keep self; the name is Class.method."""
        assert Reviewer("t").instance(1) == "t:1:Reviewer.instance"

    def test_classmethod(self) -> None:
        """@step over @classmethod works from the class and instances."""
        assert Reviewer.klass(2) == "Reviewer:2:Reviewer.klass"
        assert Reviewer("t").klass(2) == "Reviewer:2:Reviewer.klass"

    def test_staticmethod(self) -> None:
        """@step over @staticmethod works."""
        assert Reviewer.static(3) == "3:static"

    def test_persona_method(self) -> None:
        """@persona on a method."""
        assert Reviewer("t").review() == "reviewer"


class TestScopes:
    def test_step_scope(self) -> None:
        """step_scope pushes a step for a block and yields the ActiveStep."""
        with step_scope("plan", model="m") as s:
            assert current_step() is s
            assert s.name == "plan"
            assert current_model() == "m"
        assert current_step() is None

    def test_async_scopes(self) -> None:
        """Both scopes work with async with."""

        async def main() -> tuple[str | None, str | None]:
            async with persona_scope("author"), step_scope("draft"):
                await asyncio.sleep(0)
                return _names()

        assert asyncio.run(main()) == ("draft", "author")

    def test_scope_failure_is_recorded(self) -> None:
        """An exception leaving a scope fails the step and propagates."""
        with agentsteps.run() as r, pytest.raises(KeyError), step_scope("x"):
            raise KeyError("k")
        assert r.steps[0].status is StepStatus.FAILED
        assert r.steps[0].error == "KeyError: 'k'"

    def test_scope_reentry_is_an_error(self) -> None:
        """One scope object cannot be entered twice at once."""
        scope = step_scope("x")
        with scope, pytest.raises(RuntimeError, match="already active"), scope:
            pass


class TestModelInheritance:
    def test_nested_step_inherits_model(self) -> None:
        """A nested step without a model inherits its parent's (the seed did not)."""

        @step(model="claude-haiku-4-5")
        def outer() -> tuple[str | None, str | None]:
            return inner(), override()

        @step
        def inner() -> str | None:
            return current_model()

        @step(model="claude-sonnet-4-5")
        def override() -> str | None:
            return current_model()

        assert outer() == ("claude-haiku-4-5", "claude-sonnet-4-5")
        assert current_model() is None

    def test_persona_model_is_default(self) -> None:
        """A persona's model is the default for steps under it."""

        @persona(name="p", model="big")
        def p() -> str | None:
            return s()

        @step
        def s() -> str | None:
            return current_model()

        assert p() == "big"

    def test_record_usage_defaults_to_current_model(self) -> None:
        """record_usage without model= charges against the inherited model."""

        @step(model="m1")
        def outer() -> None:
            inner()

        @step
        def inner() -> None:
            record_usage(input_tokens=1, output_tokens=1, cost_usd=0)

        with agentsteps.run() as r:
            outer()
        assert {s.name: s.model for s in r.steps}[
            "TestModelInheritance.test_record_usage_defaults_to_current_model.<locals>.inner"
        ] == "m1"


class TestBadDecoratorArguments:
    def test_decorating_a_class(self) -> None:
        """@step on a class explains what to do instead."""
        with pytest.raises(
            TypeError,
            match=re.escape(
                "@step decorates functions and methods, not classes (got class 'K'). "
                "Decorate the methods that do the work instead."
            ),
        ):

            @step
            class K:
                pass

    def test_positional_name(self) -> None:
        """@step("name") shows the keyword form."""
        with pytest.raises(
            TypeError,
            match=re.escape(
                "@step('summarize'): the name is a keyword argument. Instead, you want "
                "@step(name='summarize')"
            ),
        ):
            step("summarize")  # type: ignore[call-overload]

    def test_not_callable(self) -> None:
        """@persona on a non-callable is rejected."""
        with pytest.raises(
            TypeError, match=re.escape("@persona must decorate a function (got 42 of type int)")
        ):
            persona(42)  # type: ignore[call-overload]

    @pytest.mark.parametrize(
        ("kwargs", "exc", "message"),
        [
            ({"name": ""}, ValueError, "@step: 'name' must be a non-empty str (got '')"),
            ({"name": 3}, TypeError, "@step: 'name' must be a non-empty str (got 3 of type int)"),
            (
                {"model": ""},
                ValueError,
                "step 'f': 'model' must be a non-empty str (got '')",
            ),
            (
                {"error_boundary": "retry"},
                ValueError,
                "step 'f': 'error_boundary' must be one of 'fail', 'continue', 'escalate' "
                "(got 'retry')",
            ),
            (
                {"default": 0},
                ValueError,
                "step 'f': 'default' is the value returned when the budget runs out under "
                "error_boundary='continue', but the boundary is 'fail'",
            ),
        ],
    )
    def test_bad_arguments(
        self, kwargs: dict[str, object], exc: type[Exception], message: str
    ) -> None:
        """Each bad argument raises at decoration time with the exact message."""
        kwargs = {"name": "f", **kwargs}
        with pytest.raises(exc, match=re.escape(message)):

            @step(**kwargs)  # type: ignore[call-overload]
            def f() -> None: ...

    def test_boundary_is_case_insensitive(self) -> None:
        """'CONTINUE' is accepted like 'continue'."""

        @step(error_boundary="CONTINUE", budget={"max_llm_calls": 0})  # type: ignore[call-overload]
        def f() -> str:
            record_usage("m", input_tokens=1, output_tokens=1, cost_usd=0)
            return "finished"

        with agentsteps.run() as collected:
            assert f() is None  # the budget ran out and the step continued with its default
        [record] = collected.steps
        assert (record.error_boundary, record.status) == ("continue", StepStatus.SKIPPED)

    def test_persona_bad_name(self) -> None:
        """@persona(name=...) is validated too."""
        with pytest.raises(
            ValueError, match=re.escape("@persona: 'name' must be a non-empty str (got ' ')")
        ):
            persona(name=" ")
