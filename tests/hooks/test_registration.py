"""Hook registration: validation, handles, scoping, the ACTIVE flags and glob matching."""

from __future__ import annotations

import asyncio
import re
import threading
from typing import Any

import pytest

import agentsteps
from agentsteps import (
    HookContext,
    HookEvent,
    HookHandle,
    on_persona,
    on_step,
    persona_scope,
    scoped_hooks,
    step,
    step_scope,
)
from agentsteps._hooks import registry as hook_registry
from agentsteps._hooks.registry import ACTIVE, REGISTRY


def noop(event: HookContext) -> None:
    """A handler that does nothing."""


async def anoop(event: HookContext) -> None:
    """An async handler that does nothing."""


VALID = (
    "'persona_start', 'persona_end', 'pre_step', 'post_step', 'step_error', "
    "'budget_threshold', 'budget_exhausted', 'escalated'"
)


class TestHookEvent:
    def test_values(self) -> None:
        """The eight events, as lower-case strings (a str enum)."""
        assert [e.value for e in HookEvent] == [
            "persona_start",
            "persona_end",
            "pre_step",
            "post_step",
            "step_error",
            "budget_threshold",
            "budget_exhausted",
            "escalated",
        ]
        assert HookEvent.PRE_STEP == "pre_step"
        assert str(HookEvent.POST_STEP) == "post_step"

    @pytest.mark.parametrize("name", ["pre_step", "PRE_STEP", "Pre_Step"])
    def test_case_insensitive(self, name: str) -> None:
        """Names are accepted in any case."""
        assert HookEvent(name) is HookEvent.PRE_STEP

    def test_unknown_lists_valid(self) -> None:
        """An unknown name is refused with the list of valid ones."""
        with pytest.raises(
            ValueError,
            match=re.escape(f"'pre-step' is not a valid HookEvent; valid events are {VALID}"),
        ):
            HookEvent("pre-step")

    def test_public_module(self) -> None:
        """Public names say they come from agentsteps."""
        for obj in (HookEvent, HookContext, HookHandle, on_persona, on_step, scoped_hooks):
            assert obj.__module__ == "agentsteps"


class TestValidation:
    """Each invalid registration raises at registration time with its exact message."""

    def test_pattern_not_str(self) -> None:
        """A pattern must be a string."""
        with pytest.raises(
            TypeError,
            match=re.escape(
                "on_persona(): 'pattern' must be a str glob such as 'reviewer*' "
                "(got 42 of type int)"
            ),
        ):
            on_persona(42, "pre_step")  # type: ignore[arg-type]

    def test_pattern_empty(self) -> None:
        """An empty pattern is refused: '*' is the way to match steps without persona."""
        with pytest.raises(
            ValueError,
            match=re.escape(
                "on_step(): 'pattern' must be a non-empty glob such as 'reviewer*'; use '*' "
                "to match every persona, and steps without one (got '')"
            ),
        ):
            on_step("", "publish", "pre_step")

    def test_handler_not_callable(self) -> None:
        """The decorated object must be callable."""
        decorator = on_persona("*", "pre_step")
        with pytest.raises(
            TypeError,
            match=re.escape(
                "on_persona(): the handler must be callable, taking one HookContext "
                "(got 'oops' of type str)"
            ),
        ):
            decorator("oops")  # type: ignore[arg-type]

    def test_register_handler_not_callable(self) -> None:
        """The function form names itself in the message."""
        with pytest.raises(
            TypeError,
            match=re.escape(
                "on_step(): the handler must be callable, taking one HookContext "
                "(got None of type NoneType)"
            ),
        ):
            on_step("*", "publish", "post_step")(None)  # type: ignore[arg-type]

    def test_unknown_event(self) -> None:
        """An unknown event is refused with the list of valid ones."""
        with pytest.raises(
            ValueError,
            match=re.escape(f"on_persona(): 'event' must be one of {VALID} (got 'before_step')"),
        ):
            on_persona("*", "before_step")

    def test_event_wrong_type(self) -> None:
        """A non-string event is refused the same way."""
        with pytest.raises(
            ValueError,
            match=re.escape(f"on_persona(): 'event' must be one of {VALID} (got 3)"),
        ):
            on_persona("*", 3)(noop)  # type: ignore[arg-type]

    def test_event_any_case(self) -> None:
        """Event names are accepted in any case and stored as the enum."""
        handle = on_persona("*", "Budget_Threshold", threshold_pct=80)(noop)
        assert handle.event is HookEvent.BUDGET_THRESHOLD
        assert handle.threshold_pct == 80.0

    def test_threshold_with_other_event(self) -> None:
        """threshold_pct belongs to budget_threshold only."""
        with pytest.raises(
            ValueError,
            match=re.escape(
                "on_persona(): 'threshold_pct' only applies to the 'budget_threshold' event "
                "(got threshold_pct=80 with event 'pre_step')"
            ),
        ):
            on_persona("*", "pre_step", threshold_pct=80)

    def test_threshold_missing(self) -> None:
        """budget_threshold needs a threshold."""
        with pytest.raises(
            ValueError,
            match=re.escape(
                "on_step(): the 'budget_threshold' event needs 'threshold_pct', the "
                "percentage of the budget that fires it, e.g. threshold_pct=80"
            ),
        ):
            on_step("*", "plan", HookEvent.BUDGET_THRESHOLD)

    @pytest.mark.parametrize("value", [0, -5, 100.5, 101, float("nan")])
    def test_threshold_out_of_range(self, value: float) -> None:
        """threshold_pct must be within (0, 100]."""
        with pytest.raises(
            ValueError,
            match=re.escape(
                f"on_persona(): 'threshold_pct' must be within (0, 100] (got {value!r})"
            ),
        ):
            on_persona("*", "budget_threshold", threshold_pct=value)

    @pytest.mark.parametrize("value", ["80", True])
    def test_threshold_not_a_number(self, value: object) -> None:
        """threshold_pct must be a number (a bool is not)."""
        with pytest.raises(
            TypeError,
            match=re.escape(
                "on_persona(): 'threshold_pct' must be a number in (0, 100] "
                f"(got {value!r} of type {type(value).__name__})"
            ),
        ):
            on_persona("*", "budget_threshold", threshold_pct=value)  # type: ignore[arg-type]

    @pytest.mark.parametrize("value", [100, 0.5, 33.3])
    def test_threshold_bounds_accepted(self, value: float) -> None:
        """Both ends of (0, 100] behave: 100 is allowed, small fractions too."""
        assert on_persona("*", "budget_threshold", value)(noop).threshold_pct == value

    def test_step_hook_persona_event(self) -> None:
        """Persona events have no step; on_step refuses them."""
        with pytest.raises(
            ValueError,
            match=re.escape(
                "on_step(): 'persona_start' is a persona event and has no step; "
                "use on_persona(pattern, 'persona_start') instead"
            ),
        ):
            on_step("*", "plan", "persona_start")

    @pytest.mark.parametrize(
        ("step_name", "exc", "message"),
        [
            (
                None,
                TypeError,
                "on_step(): 'step_name' must be a str, a step name or a glob such as 'fetch_*' "
                "(got None of type NoneType)",
            ),
            (
                7,
                TypeError,
                "on_step(): 'step_name' must be a str, a step name or a glob such as 'fetch_*' "
                "(got 7 of type int)",
            ),
            ("  ", ValueError, "on_step(): 'step_name' must be a non-empty str (got '  ')"),
        ],
    )
    def test_step_name(self, step_name: object, exc: type[Exception], message: str) -> None:
        """A step hook needs a real step name."""
        with pytest.raises(exc, match=re.escape(message)):
            on_step("*", step_name, "pre_step")  # type: ignore[arg-type]

    @pytest.mark.parametrize(
        ("event", "why"),
        [
            ("budget_threshold", "budget events fire inside record_usage(), which is synchronous"),
            ("budget_exhausted", "budget events fire inside record_usage(), which is synchronous"),
            (
                "persona_start",
                "persona events fire where a persona is entered, which may be sync code",
            ),
            (
                "persona_end",
                "persona events fire where a persona is entered, which may be sync code",
            ),
        ],
    )
    def test_async_handler_on_sync_only_event(self, event: str, why: str) -> None:
        """Events fired from sync code refuse async handlers at registration."""
        threshold = 50 if event == "budget_threshold" else None
        with pytest.raises(
            TypeError,
            match=re.escape(
                f"on_persona(): {event!r} handlers must be plain functions, not "
                f"async (got {__name__}.anoop): {why}. Schedule async work from a plain "
                "handler instead, e.g. asyncio.get_running_loop().create_task(...)"
            ),
        ):
            on_persona("*", event, threshold)(anoop)

    @pytest.mark.parametrize("event", ["pre_step", "post_step", "step_error", "escalated"])
    def test_async_handler_accepted(self, event: str) -> None:
        """Step events accept async handlers (they run on async steps)."""
        assert on_persona("*", event)(anoop).is_async

    def test_async_callable_object_detected(self) -> None:
        """An object with an async __call__ counts as an async handler."""

        class Handler:
            async def __call__(self, event: HookContext) -> None:
                pass

        with pytest.raises(TypeError, match="must be plain functions, not async"):
            on_persona("*", "budget_exhausted")(Handler())
        assert on_persona("*", "pre_step")(Handler()).is_async

    def test_nothing_registered_on_error(self) -> None:
        """A refused registration leaves the registry untouched."""
        with pytest.raises(ValueError, match="threshold_pct"):
            on_persona("*", "pre_step", 10)(noop)
        assert not any(REGISTRY.values())


class TestHandles:
    def test_decorator_returns_callable_handle(self) -> None:
        """The decorated name is the handle; calling it calls the function."""
        calls: list[Any] = []

        @on_persona("rev*", "pre_step")
        def gate(event: Any) -> str:
            calls.append(event)
            return "called"

        assert isinstance(gate, HookHandle)
        assert gate("x") == "called"
        assert calls == ["x"]
        assert gate.event is HookEvent.PRE_STEP
        assert gate.pattern == "rev*"
        assert gate.step_name is None
        qualname = "TestHandles.test_decorator_returns_callable_handle.<locals>.gate"
        assert gate.name == f"{__name__}.{qualname}"

    def test_unregister(self) -> None:
        """unregister stops the hook at once; a second call returns False."""
        seen: list[str] = []
        handle = on_step("*", "plan", "pre_step")(lambda e: seen.append(e.step_name))

        @step(name="plan")
        def plan() -> None:
            pass

        plan()
        assert handle.active
        assert handle.unregister() is True
        assert not handle.active
        assert handle.unregister() is False
        plan()
        assert seen == ["plan"]

    def test_repr(self) -> None:
        """The repr says what, where and who, and whether it is still registered."""
        handle = on_step("r*", "plan", "budget_threshold", 80)(noop)
        assert repr(handle) == (
            f"<HookHandle budget_threshold 'r*' step 'plan' at 80% -> {__name__}.noop>"
        )
        handle.unregister()
        assert repr(handle).endswith("(unregistered)>")

    def test_same_handler_twice_fires_twice(self) -> None:
        """Registering a handler twice makes two hooks; each unregisters on its own."""
        seen: list[str] = []

        def handler(event: HookContext) -> None:
            seen.append(event.event.value)

        first = on_persona("*", "persona_start")(handler)
        on_persona("*", "persona_start")(handler)
        with persona_scope("a"):
            pass
        first.unregister()
        with persona_scope("a"):
            pass
        assert seen == ["persona_start"] * 3


class TestScoping:
    def test_scope_unregisters_its_hooks(self) -> None:
        """Hooks registered inside the block are gone after it; the block gets their handles."""
        outside = on_persona("*", "persona_end")(noop)
        with scoped_hooks() as handles:
            inside = on_persona("*", "persona_start")(noop)
            assert inside.active
            assert handles == [inside]
        assert not inside.active
        assert outside.active

    def test_scope_on_error(self) -> None:
        """The block's hooks are removed even when it raises."""
        handles: list[HookHandle] = []

        def register_then_fail() -> None:
            with scoped_hooks():
                handles.append(on_persona("*", "persona_start")(noop))
                raise ZeroDivisionError

        with pytest.raises(ZeroDivisionError):
            register_then_fail()
        assert not handles[0].active

    def test_nested_scopes(self) -> None:
        """An inner scope removes only its own hooks."""
        with scoped_hooks():
            outer = on_persona("*", "persona_start")(noop)
            with scoped_hooks():
                inner = on_persona("*", "persona_start")(noop)
            assert outer.active
            assert not inner.active
        assert not outer.active

    def test_other_threads_not_captured(self) -> None:
        """A hook registered by another thread during the block survives it."""
        handles: list[HookHandle] = []
        with scoped_hooks():
            t = threading.Thread(
                target=lambda: handles.append(on_persona("*", "persona_end")(noop))
            )
            t.start()
            t.join()
        assert handles[0].active
        handles[0].unregister()

    def test_already_unregistered_in_scope(self) -> None:
        """Unregistering by hand inside a scope is fine: the scope's exit skips it quietly."""
        with scoped_hooks() as handles:
            handle = on_persona("*", "persona_start")(noop)
            assert handle.unregister() is True
            assert not handle.active
        assert handles == [handle]
        assert handle.unregister() is False  # still unregistered, not registered again

    def test_reset_defaults_clears(self) -> None:
        """reset_defaults() unregisters every hook, like the rest of the global state."""
        handle = on_persona("*", "pre_step")(noop)
        agentsteps.reset_defaults()
        assert not handle.active
        assert not ACTIVE.pre_step


class TestActiveFlags:
    def test_recomputed(self) -> None:
        """Each seam's flag is set while a handler for it is registered, and only then."""
        flags = ("persona_start", "persona_end", "pre_step", "post_step", "step_failure", "budget")
        assert not any(getattr(ACTIVE, f) for f in flags)
        pairs = [
            ("persona_start", "persona_start"),
            ("persona_end", "persona_end"),
            ("pre_step", "pre_step"),
            ("post_step", "post_step"),
            ("step_error", "step_failure"),
            ("escalated", "step_failure"),
            ("budget_threshold", "budget"),
            ("budget_exhausted", "budget"),
        ]
        for event, flag in pairs:
            threshold = 50 if event == "budget_threshold" else None
            handle = on_persona("*", event, threshold)(noop)
            assert getattr(ACTIVE, flag)
            assert [f for f in flags if getattr(ACTIVE, f)] == [flag]
            handle.unregister()
            assert not any(getattr(ACTIVE, f) for f in flags)


class TestRouting:
    """Which handlers fire is cached per (event, persona, step) and dropped on any change."""

    def test_registration_after_a_run_is_seen(self) -> None:
        """A hook registered after the step already ran (and was routed) fires next time."""
        seen: list[str] = []
        on_step("*", "other", "pre_step")(noop)
        with step_scope("s"):
            pass
        handle = on_step("*", "s", "pre_step")(lambda e: seen.append("s"))
        with step_scope("s"):
            pass
        assert seen == ["s"]
        handle.unregister()
        with step_scope("s"):
            pass
        assert seen == ["s"]

    @pytest.mark.parametrize("kind", ["sync", "async"])
    @pytest.mark.parametrize("event", ["pre_step", "post_step"])
    def test_decorated_step_sees_a_late_registration(self, kind: str, event: str) -> None:
        """
        The wrappers skip the hook decision when the definition notes that no hook of
        the seam selected it; the note is dropped with any registration change.
        """
        seen: list[str] = []
        on_step("*", "other", event)(noop)

        @step(name="s")
        def s() -> None:
            pass

        @step(name="s")
        async def a() -> None:
            pass

        def call() -> None:
            if kind == "sync":
                s()
            else:
                asyncio.run(a())

        call()  # routed: nothing selects 's' (noted on its definition)
        handle = on_step("*", "s", event)(lambda e: seen.append(e.event.value))
        call()
        assert seen == [event]
        handle.unregister()
        call()
        assert seen == [event]

    def test_clear_drops_routes(self) -> None:
        """reset_defaults() drops the cached routes with the hooks."""
        seen: list[str] = []
        on_persona("*", "post_step")(lambda e: seen.append("old"))
        with step_scope("s"):
            pass
        agentsteps.reset_defaults()
        on_persona("*", "post_step")(lambda e: seen.append("new"))
        with step_scope("s"):
            pass
        assert seen == ["old", "new"]

    def test_bounded(self) -> None:
        """Step names made at run time do not grow the cache without bound."""
        on_persona("nobody", "pre_step")(noop)  # selects every step, then no persona
        for i in range(hook_registry._ROUTES_MAX + 10):
            with step_scope(f"s{i}"):
                pass
        assert 0 < len(hook_registry._ROUTES) <= hook_registry._ROUTES_MAX

    def test_many_non_matching_hooks_do_not_fire(self) -> None:
        """With 1,000 hooks for other steps, a step still selects only its own."""
        seen: list[str] = []
        for i in range(1000):
            on_step("*", f"other{i}", "pre_step")(noop)
        on_step("*", "mine", "pre_step")(lambda e: seen.append(str(e.step_name)))
        for _ in range(3):
            with step_scope("mine"):
                pass
        assert seen == ["mine"] * 3


def _fires(pattern: str, persona: str | None) -> bool:
    seen: list[str | None] = []
    with scoped_hooks():
        on_persona(pattern, "pre_step")(lambda e: seen.append(e.persona))

        @step
        def work() -> None:
            pass

        if persona is None:
            work()
        else:
            with persona_scope(persona):
                work()
    return bool(seen)


class TestMatching:
    @pytest.mark.parametrize(
        ("pattern", "persona", "expected"),
        [
            ("*", "reviewer", True),
            ("*", None, True),
            ("review*", "reviewer", True),
            ("review*", "review", True),
            ("review*", "a-reviewer", False),
            ("*er", "reviewer", True),
            ("*er", "writer", True),
            ("*er", "review", False),
            ("r?viewer", "reviewer", True),
            ("r?viewer", "raviewer", True),
            ("r?viewer", "rviewer", False),
            ("[rw]*", "reviewer", True),
            ("[rw]*", "writer", True),
            ("[rw]*", "planner", False),
            ("Reviewer", "reviewer", False),  # case-sensitive, like fnmatchcase
            ("reviewer", "reviewer", True),
            ("review*", None, False),
            ("*er", None, False),
            ("r?viewer", None, False),
            ("[rw]*", None, False),
            ("?*", None, False),
        ],
    )
    def test_glob(self, pattern: str, persona: str | None, expected: bool) -> None:
        """Patterns are fnmatchcase globs on the persona's name; no persona is '' ('*' only)."""
        assert _fires(pattern, persona) is expected

    def test_persona_event_pattern(self) -> None:
        """Persona events match on the persona's own name."""
        seen: list[str | None] = []
        on_persona("rev*", "persona_start")(lambda e: seen.append(e.persona))
        with persona_scope("writer"):
            pass
        with persona_scope("reviewer"):
            pass
        assert seen == ["reviewer"]

    def test_innermost_persona_routes(self) -> None:
        """A step runs under its innermost persona."""
        seen: list[str | None] = []
        on_persona("inner", "pre_step")(lambda e: seen.append(e.step_name))
        with persona_scope("outer"):
            with step_scope("a"):
                pass
            with persona_scope("inner"), step_scope("b"):
                pass
        assert seen == ["b"]

    def test_step_name_glob(self) -> None:
        """A step hook's step name is an fnmatchcase glob, like the persona pattern."""
        seen: list[str | None] = []
        on_step("*", "publish", "pre_step")(lambda e: seen.append(e.step_name))
        on_step("*", "pub*", "pre_step")(lambda e: seen.append(f"glob {e.step_name}"))
        on_step("*", "[pq]ub", "pre_step")(lambda e: seen.append(f"class {e.step_name}"))
        for name in ("publish", "publisher", "pub", "Publish", "a-publish"):
            with step_scope(name):
                pass
        assert seen == [
            "publish",
            "glob publish",
            "glob publisher",
            "glob pub",
            "class pub",
        ]

    def test_step_and_persona_both_required(self) -> None:
        """on_step needs the step name and the persona pattern to match."""
        seen: list[str] = []
        on_step("rev*", "publish", "pre_step")(lambda e: seen.append(str(e.persona)))
        with step_scope("publish"):
            pass
        with persona_scope("writer"), step_scope("publish"):
            pass
        with persona_scope("reviewer"), step_scope("publish"):
            pass
        assert seen == ["reviewer"]

    def test_registration_order(self) -> None:
        """Hooks run in registration order, whichever API registered them."""
        seen: list[int] = []
        on_step("*", "s", "pre_step")(lambda e: seen.append(1))
        on_persona("*", "pre_step")(lambda e: seen.append(2))

        @on_step("*", "s", "pre_step")
        def third(event: HookContext) -> None:
            seen.append(3)

        on_persona("*", "pre_step")(lambda e: seen.append(4))
        with step_scope("s"):
            pass
        assert seen == [1, 2, 3, 4]


def test_exported() -> None:
    """The hook API is exported from the package."""
    for name in (
        "HookContext",
        "HookEvent",
        "HookHandle",
        "on_persona",
        "on_step",
        "scoped_hooks",
    ):
        assert name in agentsteps.__all__
        assert hasattr(agentsteps, name)
    assert agentsteps.__all__ == sorted(agentsteps.__all__)


def test_register_aliases_removed() -> None:
    """register_persona_hook/register_step_hook are gone: on_persona(...)(h) does the same."""
    for name in ("register_persona_hook", "register_step_hook"):
        assert name not in agentsteps.__all__
        assert not hasattr(agentsteps, name)
