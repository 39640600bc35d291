"""
A generator step used from two threads at once behaves like a native generator.

A native generator refuses ``close()`` or ``next()`` while another thread runs it
(``ValueError: generator already executing``). A generator step is running from the
start of a resume to its end, not only while its body runs: its first ``next()`` runs
the ``pre_step`` handlers before the body exists. Each test holds the first thread at a
chosen point with events, acts from a second thread, then checks that the step ended
once, with one record and one span, and that nothing it charged is missing.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from agentsteps import on_step, record_usage, run, run_in_context, step
from tests.support import Spans


def native_refusal(action: Any) -> str:
    """What a native generator says to ``action`` while another thread runs it."""
    inside, release = threading.Event(), threading.Event()

    def body() -> Iterator[int]:
        inside.set()
        release.wait()
        yield 1

    gen = body()
    thread = threading.Thread(target=next, args=(gen,))
    thread.start()
    inside.wait()
    try:
        action(gen)
    except ValueError as exc:
        return str(exc)
    finally:
        release.set()
        thread.join()
    return "no error"  # pragma: no cover


@pytest.mark.parametrize("action", ["close", "next"])
def test_refused_while_the_first_next_is_in_a_pre_step_handler(spans: Spans, action: str) -> None:
    inside, release = threading.Event(), threading.Event()

    def handler(ctx: Any) -> None:
        if not inside.is_set():  # only the first caller is held
            inside.set()
            release.wait()

    @step(name="stream")
    def stream() -> Iterator[int]:
        record_usage("m", 15, 5, cost_usd=0.0)
        yield 1
        yield 2

    act = {"close": lambda g: g.close(), "next": next}[action]
    handle = on_step("*", "stream", "pre_step")(handler)
    items: list[int] = []
    with run() as r:
        gen = stream()
        consumer = threading.Thread(target=run_in_context(lambda: items.append(next(gen))))
        consumer.start()
        assert inside.wait(10)
        try:
            with pytest.raises(ValueError, match="already executing") as info:
                act(gen)
        finally:
            release.set()
            consumer.join()
            handle.unregister()
        assert str(info.value) == native_refusal(act) == "generator already executing"
        assert items == [1]
        gen.close()
    # One activation: one record, one step span, the 20 tokens in the total.
    assert [(s.name, s.status.value) for s in r.steps] == [("stream", "cancelled")]
    assert r.total.total_tokens == 20
    assert [s.name for s in spans.frames] == ["invoke_workflow stream"]


def test_refused_while_the_body_is_being_suspended(monkeypatch: pytest.MonkeyPatch) -> None:
    # The body yielded; the wrapper is giving the consumer its context back. A close()
    # from another thread there ended the step, and the consumer's thread then ended
    # it again: two records, 'Calling end() on an ended span', a reused Token.
    from agentsteps._core import generators

    inside, release = threading.Event(), threading.Event()
    real_suspend = generators.suspend

    def held_suspend(frame: Any) -> None:
        if not inside.is_set():  # only the first caller is held
            inside.set()
            release.wait()
        real_suspend(frame)

    monkeypatch.setattr(generators, "suspend", held_suspend)

    @step(name="stream")
    def stream() -> Iterator[int]:
        record_usage("m", 15, 5, cost_usd=0.0)
        yield 1

    errors: list[BaseException] = []
    with run() as r:
        gen = stream()

        def consume() -> None:
            try:
                next(gen)
            except BaseException as exc:  # pragma: no cover - the failure being tested
                errors.append(exc)

        consumer = threading.Thread(target=run_in_context(consume))
        consumer.start()
        assert inside.wait(10)
        try:
            with pytest.raises(ValueError, match="generator already executing"):
                gen.close()
        finally:
            release.set()
            consumer.join()
        monkeypatch.undo()
        gen.close()
    assert errors == []
    assert [(s.name, s.status.value) for s in r.steps] == [("stream", "cancelled")]
    assert r.total.total_tokens == 20
