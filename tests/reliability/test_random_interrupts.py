"""
Random interruptions: a loop of steps under ``signal.setitimer`` raising KeyboardInterrupt.

Each round arms a one-shot timer with a random delay, runs a small tree of decorated
steps and a persona (sync steps, a generator step, usage records), and catches the
interruption wherever it landed. After each round: no frame is current, no span is
current, every span started was ended exactly once, every record of a traced frame names
an ended span and every ended span has its record (a frame interrupted before its span
started ends untraced, ``cancelled``, with its record).

Spans come from a minimal tracer defined here (not the SDK): an interruption inside the
SDK's own code between a processor's ``on_start`` and the span's return would lose a span
agentsteps never received (a documented limit), and this test checks agentsteps.
Bounded: ``AGENTSTEPS_INTERRUPT_ROUNDS`` rounds (default 3,000) or 60 seconds, whichever
comes first; ``AGENTSTEPS_INTERRUPT_SEED`` picks the delays.
"""

from __future__ import annotations

import os
import random
import signal
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

import agentsteps
from agentsteps import persona, record_usage, run, step
from agentsteps._core.context import CURRENT

pytestmark = pytest.mark.skipif(
    not hasattr(signal, "setitimer") or sys.platform == "win32", reason="needs setitimer"
)

ROUNDS = int(os.environ.get("AGENTSTEPS_INTERRUPT_ROUNDS", "3000"))
TIME_LIMIT_S = 60.0


class Spans:
    started: dict[int, int]
    ended: dict[int, int]

    def __init__(self) -> None:
        self.started = {}
        self.ended = {}
        self.next_id = 1
        # The zero-duration spans of recorded model calls: they have no record of their own.
        self.calls: set[int] = set()


class CountingSpan(NonRecordingSpan):
    """A span that notes its end; the note is a store, so no signal can land after it."""

    def __init__(self, book: Spans, span_id: int) -> None:
        super().__init__(SpanContext(1, span_id, False, TraceFlags(TraceFlags.SAMPLED)))
        self._book = book
        self._id = span_id

    def end(self, end_time: int | None = None) -> None:
        self._book.ended[self._id] = self._book.ended.get(self._id, 0) + 1


class CountingTracer(trace.Tracer):
    def __init__(self, book: Spans) -> None:
        self._book = book

    def start_span(self, name: str, *args: Any, **kwargs: Any) -> CountingSpan:
        book = self._book
        span_id = book.next_id
        book.next_id = span_id + 1
        span = CountingSpan(book, span_id)
        if name.startswith("chat"):
            book.calls.add(span_id)
        book.started[span_id] = 1  # the last thing before returning it
        return span

    def start_as_current_span(self, *args: Any, **kwargs: Any) -> Any:  # pragma: no cover
        raise NotImplementedError


class CountingProvider(trace.TracerProvider):
    def __init__(self, book: Spans) -> None:
        self._tracer = CountingTracer(book)

    def get_tracer(self, *args: Any, **kwargs: Any) -> CountingTracer:
        return self._tracer


@step(name="leaf")
def leaf() -> int:
    record_usage("m", 3, 2, cost_usd=0.0)
    return 1


@step(name="stream")
def stream() -> Iterator[int]:
    for _ in range(2):
        record_usage("m", 1, 1, cost_usd=0.0)
        yield leaf()


@step(name="middle")
def middle() -> int:
    total = leaf()
    total += sum(stream())
    return total + leaf()


@persona(name="agent")
def workload() -> None:
    middle()
    leaf()


def _landed(exc: BaseException) -> str:
    """Where the interruption landed: the innermost frames of its traceback."""
    tb = exc.__traceback__
    frames = []
    while tb is not None:
        code = tb.tb_frame.f_code
        frames.append(f"{code.co_name}:{tb.tb_lineno}")
        tb = tb.tb_next
    return " > ".join(frames[-4:-1])  # the last one is the signal handler


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


# An interruption landing in a finaliser (a generator step dropped mid-round and ended
# `abandoned` by its __del__) is printed and ignored by Python itself, as for any __del__.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_random_interrupts_leave_a_clean_stack_and_one_record_per_span() -> None:
    if threading.current_thread() is not threading.main_thread():  # pragma: no cover
        pytest.skip("signals are handled in the main thread")
    book = Spans()
    agentsteps.configure(tracer_provider=CountingProvider(book))
    rng = random.Random(int(os.environ.get("AGENTSTEPS_INTERRUPT_SEED", "17")))
    # Calibrate: the delays spread over one round's duration.
    start = time.perf_counter()
    for _ in range(20):
        workload()
    round_s = (time.perf_counter() - start) / 20
    book.started.clear()
    book.ended.clear()
    book.calls.clear()

    previous = signal.signal(signal.SIGALRM, _interrupt)
    interrupted = rounds = 0
    steps = personas = 0
    deadline = time.monotonic() + TIME_LIMIT_S
    try:
        with run() as collected:
            while rounds < ROUNDS and time.monotonic() < deadline:
                rounds += 1
                where = "not interrupted"
                try:
                    try:
                        began = time.perf_counter()
                        signal.setitimer(signal.ITIMER_REAL, rng.uniform(1e-6, round_s))
                        workload()
                        # Not interrupted: the delays follow how long a round takes now.
                        round_s = time.perf_counter() - began
                    finally:
                        signal.setitimer(signal.ITIMER_REAL, 0)
                except KeyboardInterrupt as exc:
                    interrupted += 1
                    where = _landed(exc)
                try:
                    time.sleep(0)  # a signal already pending is handled here, not below
                except KeyboardInterrupt:  # pragma: no cover - timing
                    interrupted += 1
                assert CURRENT.get() is None, f"round {rounds}: a frame stayed current ({where})"
                assert trace.get_current_span() is trace.INVALID_SPAN, (
                    f"round {rounds}: a span stayed current ({where})"
                )
                never_ended = book.started.keys() - book.ended.keys()
                assert not never_ended, f"round {rounds}: spans never ended ({where})"
                twice = [k for k, n in book.ended.items() if n != 1]
                assert not twice, f"round {rounds}: spans ended twice ({where})"
                new = [*collected.steps[steps:], *collected.personas[personas:]]
                steps, personas = len(collected.steps), len(collected.personas)
                traced = sorted(r.span_id for r in new if r.span_id is not None)
                frames = book.ended.keys() - book.calls
                assert traced == sorted(f"{i:016x}" for i in frames), (
                    f"round {rounds}: records and spans differ ({where})"
                )
                # A frame interrupted before its span started ends untraced, and cancelled.
                untraced = {r.status.value for r in new if r.span_id is None}
                assert untraced <= {"cancelled"}, f"round {rounds}: {untraced} ({where})"
                book.started.clear()
                book.ended.clear()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    # Most rounds are interrupted (the delays adapt to the round's duration); this only
    # checks that the loop did exercise interruptions, whatever the machine's speed.
    assert interrupted >= rounds // 10, (interrupted, rounds)
    print(f"{interrupted} of {rounds} rounds interrupted")
