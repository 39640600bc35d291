"""
An interruption that lands while a step or persona is starting loses nothing.

A signal handler's ``KeyboardInterrupt`` can land between any two bytecodes that check
for signals: after the span started, after the OpenTelemetry context was attached, after
the frame was made current, even between a ``ContextVar.set`` and the store of its
token. Each test injects the interruption at one such point (by wrapping the function
called there), then checks what a random SIGINT must leave: the stack and the current
span as they were before the call, one record (``cancelled``), and every started span
ended exactly once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from agentsteps import on_step, persona, persona_scope, remote_parent, run, step, step_scope
from agentsteps._core import generators, lifecycle
from agentsteps._core.context import CURRENT
from agentsteps._distributed import propagation
from tests.support import Spans


class SpanLedger(SpanProcessor):
    """Which spans started and which ended, and how often."""

    def __init__(self) -> None:
        self.started: list[int] = []
        self.ended: list[int] = []

    def on_start(self, span: Span, parent_context: Any = None) -> None:
        self.started.append(span.context.span_id)

    def on_end(self, span: ReadableSpan) -> None:
        assert span.context is not None
        self.ended.append(span.context.span_id)


@pytest.fixture
def ledger(spans: Spans) -> SpanLedger:
    processor = SpanLedger()
    spans.provider.add_span_processor(processor)
    return processor


def interrupt_after(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn``, except that the first call is followed by a KeyboardInterrupt (its result lost)."""
    fired = []

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        result = fn(*args, **kwargs)
        if not fired:
            fired.append(True)
            raise KeyboardInterrupt
        return result

    return wrapper


class _CurrentProxy:
    """`CURRENT` with its first `set` interrupted after it took effect."""

    def __init__(self) -> None:
        self.set = interrupt_after(CURRENT.set)
        self.get = CURRENT.get
        self.reset = CURRENT.reset


class _InterruptingActive:
    """`ACTIVE` whose persona_start flag is read by a KeyboardInterrupt."""

    def __getattr__(self, name: str) -> Any:
        if name == "persona_start":
            raise KeyboardInterrupt
        return getattr(lifecycle.ACTIVE.__class__, name, False)


# Where the interruption lands, inside enter() (or push(), for a step with pre_step hooks).
POINTS: dict[str, Callable[[pytest.MonkeyPatch], None]] = {
    # The span started and is stored; the context with it is being built.
    "after the span started": lambda mp: mp.setattr(
        lifecycle,
        "set_span_in_context",
        interrupt_after(lambda *a: (_ for _ in ()).throw(KeyboardInterrupt)),
    ),
    # The span's context is attached, its token not stored yet.
    "after the context was attached": lambda mp: mp.setattr(
        lifecycle, "otel_attach", interrupt_after(lifecycle.otel_attach)
    ),
    # The frame is current, its token not stored yet.
    "after CURRENT.set": lambda mp: mp.setattr(lifecycle, "CURRENT", _CurrentProxy()),
}


def run_kind(kind: str) -> None:
    """One activation of ``kind``, whose start is interrupted."""
    if kind == "sync step":

        @step
        def work() -> None: ...

        work()
    elif kind == "async step":

        @step
        async def awork() -> None: ...

        asyncio.run(awork())
    elif kind == "persona":

        @persona(name="agent")
        def agent() -> None: ...

        agent()
    elif kind == "step_scope":
        with step_scope("work"):
            pass
    elif kind == "persona_scope":
        with persona_scope("agent"):
            pass
    elif kind == "generator step":

        @step
        def stream() -> Iterator[int]:
            yield 1

        list(stream())
    elif kind == "remote_parent":
        with remote_parent({"baggage": "agentsteps.step_path=plan"}):
            pass
    else:  # pragma: no cover
        raise AssertionError(kind)


KINDS = [
    "sync step",
    "async step",
    "persona",
    "step_scope",
    "persona_scope",
    "generator step",
    "remote_parent",
]


def check_clean(records: list[Any], ledger: SpanLedger) -> None:
    assert CURRENT.get() is None, "a dead frame stayed current"
    assert trace.get_current_span() is trace.INVALID_SPAN, "the step's span stayed current"
    assert [r.status.value for r in records] == ["cancelled"]
    assert sorted(ledger.started) == sorted(ledger.ended), "a started span never ended"
    assert len(ledger.ended) == len(set(ledger.ended)) == 1


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("point", list(POINTS))
def test_interrupted_inside_enter(
    monkeypatch: pytest.MonkeyPatch, ledger: SpanLedger, kind: str, point: str
) -> None:
    POINTS[point](monkeypatch)
    with run() as r, pytest.raises(KeyboardInterrupt):
        run_kind(kind)
    monkeypatch.undo()
    check_clean([*r.steps, *r.personas], ledger)


def test_interrupted_after_the_frame_was_made_current(
    monkeypatch: pytest.MonkeyPatch, ledger: SpanLedger
) -> None:
    # Every token is stored; the interruption lands at the next check (the hook flag).
    monkeypatch.setattr(lifecycle, "ACTIVE", _InterruptingActive())
    with run() as r, pytest.raises(KeyboardInterrupt):
        run_kind("persona")
    monkeypatch.undo()
    check_clean([*r.personas], ledger)


@pytest.mark.parametrize("kind", ["generator step"])
def test_interrupted_after_enter_returned(
    monkeypatch: pytest.MonkeyPatch, ledger: SpanLedger, kind: str
) -> None:
    # The frame is current and enter() is done; the wrapper has not stored it yet.
    def interrupted(*args: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(generators, "begin_generator", interrupted)
    with run() as r, pytest.raises(KeyboardInterrupt):
        run_kind(kind)
    monkeypatch.undo()
    check_clean([*r.steps], ledger)


def test_remote_parent_interrupted_after_enter_returned(
    monkeypatch: pytest.MonkeyPatch, ledger: SpanLedger
) -> None:
    # The scope's frame is current; the interruption lands at its next call (a property).
    def interrupted(self: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(propagation.Carried, "spent", property(interrupted))
    with run() as r, pytest.raises(KeyboardInterrupt):
        run_kind("remote_parent")
    monkeypatch.undo()
    check_clean([*r.steps], ledger)


@pytest.mark.parametrize("point", list(POINTS))
@pytest.mark.parametrize("kind", ["sync step", "async step", "generator step"])
def test_interrupted_inside_push_after_pre_step_hooks(
    monkeypatch: pytest.MonkeyPatch, ledger: SpanLedger, kind: str, point: str
) -> None:
    handle = on_step("*", "*", "pre_step")(lambda ctx: None)
    try:
        POINTS[point](monkeypatch)
        with run() as r, pytest.raises(KeyboardInterrupt):
            run_kind(kind)
        monkeypatch.undo()
    finally:
        handle.unregister()
    check_clean([*r.steps], ledger)


def _raise_first(real: Callable[..., Any]) -> Callable[..., Any]:
    """``real``, except that its first call raises KeyboardInterrupt before doing anything."""
    fired: list[bool] = []

    def wrapper(*args: Any) -> Any:
        if not fired:
            fired.append(True)
            raise KeyboardInterrupt
        return real(*args)

    return wrapper


@pytest.mark.parametrize("when", ["at its entry", "after it ran"])
@pytest.mark.parametrize("kind", ["generator", "async generator"])
def test_interrupted_while_a_generator_step_suspends(
    monkeypatch: pytest.MonkeyPatch, ledger: SpanLedger, kind: str, when: str
) -> None:
    # The body yielded; the wrapper is giving the consumer its context back. The item is
    # lost with the interruption: the step ends (cancelled), its body closed inside it.
    wrap = _raise_first if when == "at its entry" else interrupt_after
    monkeypatch.setattr(generators, "suspend", wrap(generators.suspend))
    cleaned: list[object] = []

    @step(name="gen")
    def gen() -> Iterator[int]:
        try:
            yield 1
        finally:
            cleaned.append(CURRENT.get())

    @step(name="agen")
    async def agen() -> Any:
        try:
            yield 1
        finally:
            cleaned.append(CURRENT.get())

    async def consume() -> None:
        async for _ in agen():
            pass  # pragma: no cover

    def drive() -> None:
        if kind == "generator":
            next(gen())
        else:
            asyncio.run(consume())

    with run() as r, pytest.raises(KeyboardInterrupt):
        drive()
    monkeypatch.undo()
    check_clean([*r.steps], ledger)
    assert len(cleaned) == 1
    assert cleaned[0] is not None  # the cleanup ran inside the step
