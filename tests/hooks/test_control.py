"""Handlers in control: deny, rewrite, async handlers, failing handlers, strict mode."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from opentelemetry.trace import StatusCode

import agentsteps
from agentsteps import (
    Budget,
    HookContext,
    StepDenied,
    StepStatus,
    current_step,
    on_persona,
    on_step,
    persona,
    persona_scope,
    record_usage,
    run,
    step,
    step_scope,
)
from tests.support import Spans


def deny_with(reason: str) -> Any:
    def handler(event: HookContext) -> None:
        event.deny(reason)

    return handler


class TestDeny:
    def test_denied_step_never_runs(self, spans: Spans) -> None:
        """A denied step raises StepDenied before its body; span and record say 'denied'."""
        ran: list[str] = []

        @on_step("rev*", "publish", "pre_step")
        def gate(event: HookContext) -> None:
            if event.args != ("approved",):
                event.deny("publishing needs approval")

        @step(name="publish")
        def publish(doc: str) -> str:
            ran.append(doc)
            return doc

        with run() as r, persona_scope("reviewer"):
            with pytest.raises(
                StepDenied, match=re.escape("step 'publish' was denied: publishing needs approval")
            ) as caught:
                publish("draft")
            assert current_step() is None
            assert publish("approved") == "approved"
        assert ran == ["approved"]
        assert (caught.value.step, caught.value.reason) == ("publish", "publishing needs approval")
        denied, ok = r.steps
        assert (denied.status, ok.status) == (StepStatus.DENIED, StepStatus.COMPLETED)
        assert denied.error == "StepDenied: step 'publish' was denied: publishing needs approval"
        first, _ = [s for s in spans.all if s.name == "invoke_workflow publish"]
        assert first.attributes is not None
        assert first.attributes["agentsteps.step.status"] == "denied"
        assert first.status.status_code is StatusCode.ERROR
        (event,) = [e for e in first.events if e.name == "agentsteps.hook"]
        assert event.attributes is not None
        assert event.attributes["agentsteps.hook.denied"] == "publishing needs approval"

    def test_later_handlers_still_run_first_reason_kept(self) -> None:
        """Handlers after a denial still run and see it; the first reason wins."""
        seen: list[tuple[bool, str | None]] = []
        on_persona("*", "pre_step")(deny_with("first"))
        on_persona("*", "pre_step")(deny_with("second"))
        on_persona("*", "pre_step")(lambda e: seen.append((e.denied, e.deny_reason)))
        with pytest.raises(StepDenied, match="denied: first"), step_scope("s"):
            pass
        assert seen == [(True, "first")]

    def test_parent_unaffected(self) -> None:
        """A denied child leaves its parent current and running, with no usage charged."""

        @step(name="child")
        def child() -> None:
            record_usage(model="m", input_tokens=5, output_tokens=5, cost_usd=0)

        on_step("*", "child", "pre_step")(deny_with("no"))
        with step_scope("parent") as parent:
            with pytest.raises(StepDenied):
                child()
            assert current_step() is parent
        assert parent.subtree_usage.total_tokens == 0

    @pytest.mark.parametrize("kind", ["async", "gen", "agen"])
    def test_other_kinds(self, kind: str) -> None:
        """Async steps and generators are denied at their start, before their body runs."""
        ran: list[str] = []
        on_persona("*", "pre_step")(deny_with("no"))

        @step(name="s")
        async def a() -> None:
            ran.append("body")

        @step(name="s")
        def g() -> Iterator[int]:
            ran.append("body")
            yield 1

        @step(name="s")
        async def ag() -> AsyncIterator[int]:
            ran.append("body")
            yield 1

        if kind == "async":
            with pytest.raises(StepDenied):
                asyncio.run(a())
        elif kind == "gen":
            gen = g()
            with pytest.raises(StepDenied):
                next(gen)
            with pytest.raises(StopIteration):
                next(gen)  # a denied generator is finished
        else:

            async def main() -> None:
                agen = ag()
                with pytest.raises(StepDenied):
                    await agen.__anext__()
                with pytest.raises(StopAsyncIteration):
                    await agen.__anext__()

            asyncio.run(main())
        assert ran == []

    def test_deny_outside_pre_step(self, caplog: pytest.LogCaptureFixture) -> None:
        """deny() in another event is a handler error (logged), naming the rule."""
        on_persona("*", "post_step")(deny_with("late"))
        with step_scope("s"):
            pass
        assert (
            "HookContext.deny() is only valid in a pre_step handler (this is a post_step event)"
            in (caplog.text)
        )

    def test_deny_reason_type(self) -> None:
        """The reason must be a str."""
        agentsteps.configure(strict_hooks=True)
        on_persona("*", "pre_step")(lambda e: e.deny(42))
        with (
            pytest.raises(
                TypeError,
                match=re.escape("HookContext.deny(): 'reason' must be a str (got 42 of type int)"),
            ),
            step_scope("s"),
        ):
            pass


class TestRewrite:
    def test_replace_args(self) -> None:
        """pre_step can replace the arguments; later handlers see the new ones."""
        seen: list[Any] = []

        @on_step("*", "add", "pre_step")
        def double(event: HookContext) -> None:
            event.replace_args(*(a * 2 for a in event.args), **event.kwargs)

        on_step("*", "add", "pre_step")(lambda e: seen.append((e.args, dict(e.kwargs))))

        @step(name="add")
        def add(x: int, y: int = 0) -> int:
            return x + y

        assert add(1, y=5) == 7
        assert seen == [((2,), {"y": 5})]

    def test_replace_output(self) -> None:
        """post_step can replace the return value; handlers chain in order."""
        on_step("*", "s", "post_step")(lambda e: e.replace_output(e.output + 1))
        on_step("*", "s", "post_step")(lambda e: e.replace_output(e.output * 10))

        @step(name="s")
        def s() -> int:
            return 1

        assert s() == 20

    def test_rewrite_async(self) -> None:
        """Async steps: arguments and return value are replaced as for sync ones."""
        on_step("*", "s", "pre_step")(lambda e: e.replace_args("b"))
        on_step("*", "s", "post_step")(lambda e: e.replace_output(e.output.upper()))

        @step(name="s")
        async def s(x: str) -> str:
            return x * 2

        assert asyncio.run(s("a")) == "BB"

    def test_rewrite_generator(self) -> None:
        """Generators: arguments, and the return value (StopIteration.value)."""
        on_step("*", "g", "pre_step")(lambda e: e.replace_args(3))
        on_step("*", "g", "post_step")(lambda e: e.replace_output("done"))

        @step(name="g")
        def g(n: int) -> Iterator[int]:
            yield from range(n)
            return "ended"

        def consume() -> Iterator[int]:
            result = yield from g(1)
            assert result == "done"

        assert list(consume()) == [0, 1, 2]

    @pytest.mark.parametrize(
        ("event", "call", "message"),
        [
            (
                "pre_step",
                lambda e: e.replace_args(1),
                "HookContext.replace_args(): step 's' is a step_scope block, which has no "
                "arguments to replace",
            ),
            (
                "post_step",
                lambda e: e.replace_output(1),
                "HookContext.replace_output(): step 's' is a step_scope block, which has no "
                "return value to replace",
            ),
            (
                "post_step",
                lambda e: e.replace_args(1),
                "HookContext.replace_args() is only valid in a pre_step handler "
                "(this is a post_step event)",
            ),
            (
                "pre_step",
                lambda e: e.replace_output(1),
                "HookContext.replace_output() is only valid in a post_step handler "
                "(this is a pre_step event)",
            ),
        ],
    )
    def test_replace_misuse(self, event: str, call: Any, message: str) -> None:
        """Replacing what does not exist, or at the wrong event, is a handler error."""
        agentsteps.configure(strict_hooks=True)
        on_persona("*", event)(call)
        with pytest.raises(RuntimeError, match=re.escape(message)), step_scope("s"):
            pass

    def test_async_generator_output_fixed(self) -> None:
        """An async generator has no return value to replace."""
        agentsteps.configure(strict_hooks=True)
        on_persona("*", "post_step")(lambda e: e.replace_output(1))

        @step(name="ag")
        async def ag() -> AsyncIterator[int]:
            yield 1

        async def main() -> None:
            async for _ in ag():
                pass

        with pytest.raises(
            RuntimeError,
            match=re.escape(
                "HookContext.replace_output(): step 'ag' is an async generator, which has no "
                "return value to replace"
            ),
        ):
            asyncio.run(main())


class TestAsyncHandlers:
    def test_awaited_in_order(self) -> None:
        """On an async step, async and sync handlers run in registration order, awaited."""
        log: list[str] = []

        async def slow(event: HookContext) -> None:
            await asyncio.sleep(0.001)
            log.append(f"async {event.event.value}")

        def quick(event: HookContext) -> None:
            log.append(f"sync {event.event.value}")

        for event in ("pre_step", "post_step", "step_error", "escalated"):
            on_persona("*", event)(slow)
            on_persona("*", event)(quick)

        @step(name="ok")
        async def ok() -> None:
            log.append("body")

        @step(name="esc", budget=Budget(max_tokens=1), error_boundary="escalate")
        async def esc() -> None:
            record_usage(model="m", input_tokens=2, output_tokens=0, cost_usd=0)

        asyncio.run(ok())
        with pytest.raises(agentsteps.StepEscalated):
            asyncio.run(esc())
        assert log == [
            "async pre_step",
            "sync pre_step",
            "body",
            "async post_step",
            "sync post_step",
            "async pre_step",
            "sync pre_step",
            "async step_error",
            "sync step_error",
            "async escalated",
            "sync escalated",
        ]

    def test_async_deny_and_rewrite(self) -> None:
        """Async handlers can deny and rewrite, on async functions and async scopes."""

        async def gate(event: HookContext) -> None:
            await asyncio.sleep(0)
            if event.step_name == "blocked":
                event.deny("async no")

        async def rewrite(event: HookContext) -> None:
            event.replace_output(f"<{event.output}>")

        on_persona("*", "pre_step")(gate)
        on_step("*", "s", "post_step")(rewrite)

        @step(name="s")
        async def s() -> str:
            return "x"

        async def main() -> str:
            with pytest.raises(StepDenied, match="async no"):
                async with step_scope("blocked"):
                    pass
            return await s()

        assert asyncio.run(main()) == "<x>"

    def test_async_handler_on_sync_step(self) -> None:
        """An async handler matched on a sync step raises TypeError (body not run)."""
        ran: list[str] = []

        async def gate(event: HookContext) -> None:
            pass

        on_persona("rev*", "pre_step")(gate)

        @step(name="publish")
        def publish() -> None:
            ran.append("body")

        publish()  # no persona: the async handler does not match
        with (
            pytest.raises(
                TypeError,
                match=re.escape(
                    f"async hook handler {__name__}.TestAsyncHandlers.test_async_handler_on_sync_"
                    "step.<locals>.gate (pre_step) matched step 'publish', which is synchronous: "
                    "async handlers only run on async steps (async def, async generators, "
                    "'async with step_scope'). Make the handler a plain function, or narrow its "
                    "pattern or step name"
                ),
            ),
            persona_scope("reviewer"),
        ):
            publish()
        assert ran == ["body"]

    def test_async_handler_on_sync_step_post(self) -> None:
        """The error also comes at post_step; no coroutine is left un-awaited."""

        async def late(event: HookContext) -> None:
            pass

        on_persona("*", "post_step")(late)
        with run() as r, pytest.raises(TypeError, match="which is synchronous"), step_scope("s"):
            pass
        assert r.steps[0].status is StepStatus.FAILED

    def test_sync_handler_returning_awaitable(self) -> None:
        """A plain callable returning a coroutine is treated as async (closed, not leaked)."""

        async def real(event: HookContext) -> None:
            pass

        on_persona("*", "post_step")(lambda e: real(e))
        with pytest.raises(TypeError, match="which is synchronous"), step_scope("s"):
            pass

        @step(name="a")
        async def a() -> int:
            return 1

        assert asyncio.run(a()) == 1  # on an async step it is awaited


class TestFailingHandlers:
    def _register(self, log: list[str], event: str) -> None:
        def broken(e: HookContext) -> None:
            log.append("broken")
            raise ValueError(f"broken {e.event.value}")

        on_persona("*", event)(broken)
        on_persona("*", event)(lambda e: log.append("next"))

    @pytest.mark.parametrize("event", ["persona_start", "pre_step", "post_step", "persona_end"])
    def test_default_logged_and_step_goes_on(
        self, event: str, caplog: pytest.LogCaptureFixture
    ) -> None:
        """By default a failing handler is logged on 'agentsteps'; the rest and the step go on."""
        log: list[str] = []
        self._register(log, event)

        @persona(name="p")
        def p() -> str:
            with step_scope("s"):
                log.append("body")
            return "result"

        with caplog.at_level(logging.ERROR, logger="agentsteps"):
            assert p() == "result"
        assert log.count("next") == 1
        assert "body" in log
        (record,) = caplog.records
        assert record.name == "agentsteps"
        assert record.exc_info is not None
        assert str(record.exc_info[1]) == f"broken {event}"
        assert "ignored (configure(strict_hooks=True) to raise it)" in record.getMessage()

    def test_default_budget_handler(self, caplog: pytest.LogCaptureFixture) -> None:
        """A failing budget handler does not disturb record_usage."""
        log: list[str] = []
        on_persona("*", "budget_threshold", 10)(lambda e: 1 / 0)
        on_persona("*", "budget_threshold", 10)(lambda e: log.append("next"))
        with step_scope("s", budget={"max_tokens": 10}) as s:
            record_usage(model="m", input_tokens=5, output_tokens=0, cost_usd=0)
        assert log == ["next"]
        assert s.subtree_usage.total_tokens == 5
        assert "ZeroDivisionError" in caplog.text

    @pytest.mark.parametrize("event", ["pre_step", "post_step"])
    def test_strict_propagates(self, event: str) -> None:
        """In strict mode the handler's own exception reaches the caller (after other hooks)."""
        agentsteps.configure(strict_hooks=True)
        log: list[str] = []
        self._register(log, event)

        @step(name="s")
        def s() -> str:
            log.append("body")
            return "result"

        with run() as r:
            try:
                s()
            except ValueError as exc:
                caught = exc
        assert str(caught) == f"broken {event}"
        assert log == (["broken", "next"] if event == "pre_step" else ["body", "broken", "next"])
        assert r.steps[0].status is StepStatus.FAILED
        assert current_step() is None

    def test_strict_post_step_fires_step_error(self) -> None:
        """A strict post_step failure fails the step, which fires step_error."""
        agentsteps.configure(strict_hooks=True)
        errors: list[BaseException | None] = []
        on_persona("*", "post_step")(lambda e: 1 / 0)
        on_persona("*", "step_error")(lambda e: errors.append(e.exception))
        with pytest.raises(ZeroDivisionError), step_scope("s"):
            pass
        assert isinstance(errors[0], ZeroDivisionError)

    def test_strict_step_error_replaces(self) -> None:
        """A strict step_error failure is raised instead of the step's error (chained)."""
        agentsteps.configure(strict_hooks=True)
        on_persona("*", "step_error")(lambda e: 1 / 0)

        @step(name="s")
        def s() -> None:
            raise KeyError("original")

        with run() as r, pytest.raises(ZeroDivisionError) as caught:
            s()
        assert isinstance(caught.value.__context__, KeyError)
        assert r.steps[0].status is StepStatus.FAILED

    def test_strict_budget_handler(self) -> None:
        """A strict budget handler's error comes out of record_usage, catchable in the body."""
        agentsteps.configure(strict_hooks=True)
        on_persona("*", "budget_threshold", 50)(lambda e: 1 / 0)

        @step(name="s", budget=Budget(max_tokens=10))
        def s() -> str:
            try:
                record_usage(model="m", input_tokens=6, output_tokens=0, cost_usd=0)
            except ZeroDivisionError:
                return "caught"
            return "not raised"

        assert s() == "caught"

    def test_strict_exhaustion_not_lost(self) -> None:
        """When a strict budget_exhausted handler fails, the exhaustion is raised at exit."""
        agentsteps.configure(strict_hooks=True)
        on_persona("*", "budget_exhausted")(lambda e: 1 / 0)

        @step(name="s", budget=Budget(max_tokens=1))
        def s() -> None:
            try:
                record_usage(model="m", input_tokens=6, output_tokens=0, cost_usd=0)
            except ZeroDivisionError:
                pass

        with pytest.raises(agentsteps.StepBudgetExhausted, match="'s' exceeded"):
            s()

    def test_strict_first_error_wins(self, caplog: pytest.LogCaptureFixture) -> None:
        """In strict mode the first failure propagates; later ones are logged."""
        agentsteps.configure(strict_hooks=True)
        on_persona("*", "pre_step")(lambda e: 1 / 0)
        on_persona("*", "pre_step")(lambda e: {}["missing"])
        with pytest.raises(ZeroDivisionError), step_scope("s"):
            pass
        assert "KeyError" in caplog.text
        assert "an earlier handler's error propagates" in caplog.text

    def test_strict_persona_start(self) -> None:
        """A strict persona_start failure ends the persona (failed) before its body."""
        agentsteps.configure(strict_hooks=True)
        ran: list[str] = []
        on_persona("*", "persona_start")(lambda e: 1 / 0)

        @persona(name="p")
        def p() -> None:
            ran.append("body")

        with run() as r, pytest.raises(ZeroDivisionError):
            p()
        assert ran == []
        assert r.personas[0].status is StepStatus.FAILED

    def test_strict_persona_end(self) -> None:
        """A strict persona_end failure comes out after the persona has ended."""
        agentsteps.configure(strict_hooks=True)
        on_persona("*", "persona_end")(lambda e: 1 / 0)
        with run() as r, pytest.raises(ZeroDivisionError), persona_scope("p"):
            pass
        assert r.personas[0].status is StepStatus.COMPLETED

    def test_base_exception_stops_and_propagates(self) -> None:
        """A KeyboardInterrupt in a handler propagates at once; the stack stays intact."""
        log: list[str] = []

        def interrupt(event: HookContext) -> None:
            raise KeyboardInterrupt

        on_persona("*", "post_step")(interrupt)
        on_persona("*", "post_step")(lambda e: log.append("not reached"))
        with run() as r, pytest.raises(KeyboardInterrupt), step_scope("s"):
            pass
        assert log == []
        assert r.steps[0].status is StepStatus.CANCELLED
        assert current_step() is None

    def test_failing_handler_marked_on_span(self, spans: Spans) -> None:
        """The span event of a failing handler carries its error type."""
        on_persona("*", "pre_step")(lambda e: 1 / 0)
        with step_scope("s"):
            pass
        (event,) = spans.step("s").events
        assert event.attributes is not None
        assert event.attributes["error.type"] == "ZeroDivisionError"
