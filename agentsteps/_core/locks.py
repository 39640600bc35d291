"""
The package's locks, made safe across ``os.fork()``.

A lock held by another thread when the process forks stays held forever in the child:
that thread does not exist there to release it, so the child's first `record_usage`
(or hook registration, run collector, exporter) hangs. Every lock the package creates
comes from `new_lock`, and a handler registered with `os.register_at_fork` gives each
one back its unlocked state in the child, as the standard library does for its own
locks (``logging``, ``threading``). A lock the forking thread itself holds stays held
by it: the child goes on inside that critical section and leaves it as usual.
"""

from __future__ import annotations

import os
import threading
import weakref
from typing import Any

__all__ = ["new_lock"]

# Weak: an exporter or collector that is dropped takes its lock with it.
_LOCKS: weakref.WeakSet[Any] = weakref.WeakSet()


def new_lock() -> Any:
    """
    A re-entrant lock that is released in a forked child.

    Re-entrant, like every lock in the package: see ``LEDGER_LOCK`` in
    ``_accounting/usage.py`` for why.
    """
    lock = threading.RLock()
    _LOCKS.add(lock)
    return lock


def _reinit_in_child() -> None:
    # Runs in the child right after fork, where only the forking thread exists: a lock
    # another thread held can never be released, so it is made free. ``_at_fork_reinit``
    # is what CPython's own modules use for this (an RLock cannot be released by a
    # thread that does not own it). The forking thread keeps what it holds (it still
    # has the same identity in the child), or its own release would fail.
    for lock in list(_LOCKS):
        if not lock._is_owned():
            lock._at_fork_reinit()


if hasattr(os, "register_at_fork"):  # pragma: no branch - absent on Windows only
    os.register_at_fork(after_in_child=_reinit_in_child)
