"""
``os.fork()`` while another thread is inside an agentsteps critical section.

The forked child has only the forking thread; a lock another thread held at the fork
would stay held there forever, and the child's first `record_usage` would hang. Every
lock of the package is re-created unlocked in the child (`agentsteps._core.locks`).
Each test forks at a point where another thread holds the lock, and checks that the
child finishes its own work (a hang is caught by a bounded wait and reported).
"""

from __future__ import annotations

import os
import re
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

import agentsteps
from agentsteps import Budget, on_step, record_usage, register_price, run, step
from agentsteps._accounting.ledger import LEDGER_LOCK
from agentsteps._core import locks
from agentsteps._hooks import dispatch as _dispatch
from tests.support.forking import fork_and_wait

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


def _child_work() -> None:
    """What the child does with the library: each line takes one of its locks."""

    @step(budget=Budget(max_tokens=1_000))
    def work() -> None:
        record_usage("m", 2, 1, cost_usd=0.001)

    handle = on_step("*", "*", "post_step")(lambda ctx: None)
    register_price("fork-model", input_per_mtok=1.0, output_per_mtok=2.0)
    with run() as r:
        work()
    handle.unregister()
    assert r.total.total_tokens == 3, r.total


@contextmanager
def _thread_inside(hold: Callable[[threading.Event, threading.Event], None]) -> Iterator[None]:
    """Run ``hold(inside, release)`` in a thread; yield once it signalled ``inside``."""
    inside, release = threading.Event(), threading.Event()
    thread = threading.Thread(target=hold, args=(inside, release))
    thread.start()
    try:
        assert inside.wait(10), "the holding thread never got inside"
        yield
    finally:
        release.set()
        thread.join()


def test_fork_while_another_thread_is_inside_record_usage(monkeypatch: Any) -> None:
    # The thread stops inside record_usage's critical section: with a budget hook
    # registered, charge() plans the hooks a record is due under LEDGER_LOCK.
    inside_event: list[threading.Event] = []
    release_event: list[threading.Event] = []
    original = _dispatch.plan_after_charge

    def blocking_plan(frame: Any) -> Any:
        # Inside the critical section (or "inside" is never signalled, and the test fails).
        if threading.current_thread().name == "charger" and LEDGER_LOCK._is_owned():
            inside_event[0].set()
            release_event[0].wait()
        return original(frame)

    monkeypatch.setattr(_dispatch, "plan_after_charge", blocking_plan)
    on_step("*", "charging", "budget_threshold", threshold_pct=100)(lambda ctx: None)

    @step(budget=Budget(max_tokens=100))
    def charging() -> None:
        record_usage("m", 1, 1, cost_usd=0.0)

    def hold(inside: threading.Event, release: threading.Event) -> None:
        inside_event.append(inside)
        release_event.append(release)
        charging()

    inside, release = threading.Event(), threading.Event()
    thread = threading.Thread(target=hold, args=(inside, release), name="charger")
    thread.start()
    try:
        assert inside.wait(10), "the charging thread never got inside record_usage"
        code = fork_and_wait(_child_work)
    finally:
        release.set()
        thread.join()
    assert code == 0


def test_fork_while_every_library_lock_is_held() -> None:
    # The hook registry, the price table, the run collector, exporters: every lock the
    # package made so far, held by one thread at the fork.
    held = list(locks._LOCKS)
    assert len(held) >= 3  # at least the ledger, hook registry and price locks

    def hold(inside: threading.Event, release: threading.Event) -> None:
        for lock in held:
            lock.acquire()
        try:
            inside.set()
            release.wait()
        finally:
            for lock in reversed(held):
                lock.release()

    with _thread_inside(hold):
        code = fork_and_wait(_child_work)
    assert code == 0


def test_fork_inside_a_critical_section_keeps_it() -> None:
    # A fork from inside a critical section: the child goes on inside it, still owning
    # the lock, and leaves it as usual; then other threads of the child can take it.
    from agentsteps._accounting.ledger import LEDGER_LOCK

    def child() -> None:
        LEDGER_LOCK.release()  # what leaving the `with` block does: must not fail
        got: list[bool] = []
        t = threading.Thread(target=lambda: got.append(LEDGER_LOCK.acquire(blocking=False)))
        t.start()
        t.join()
        assert got == [True]

    with LEDGER_LOCK:
        code = fork_and_wait(child)
    assert code == 0


if sys.platform == "win32":  # pragma: no cover
    pytest.skip("no fork on Windows", allow_module_level=True)


def test_every_lock_of_the_package_comes_from_new_lock() -> None:
    """A lock made with threading directly is not freed in a forked child: it can hang it."""
    package = Path(agentsteps.__file__).parent
    pattern = re.compile(r"threading\.R?Lock\(")
    offenders = [
        f"{path.relative_to(package)}:{number}"
        for path in sorted(package.rglob("*.py"))
        if path.name != "locks.py"
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if pattern.search(line)
    ]
    assert offenders == [], "use agentsteps._core.locks.new_lock() instead"
