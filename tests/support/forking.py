"""Fork the test process and wait for the child, failing (not hanging) if it deadlocks."""

from __future__ import annotations

import os
import signal
import time
import traceback
import warnings
from collections.abc import Callable

import pytest

# A child that has not exited by then is deadlocked (it needs a few milliseconds).
HANG_LIMIT_S = 60.0
"""How long a forked child may take before the test calls it hung (a lock stayed held)."""


def fork_and_wait(work: Callable[[], None]) -> int:
    """Fork; the child runs ``work`` and exits 0 (1 if it raised). Returns its exit code."""
    with warnings.catch_warnings():
        # Python 3.12+ warns that forking a multi-threaded process may deadlock: that
        # is the situation under test.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child, which coverage does not follow
        code = 1
        try:
            work()
            code = 0
        except BaseException:
            traceback.print_exc()  # pytest shows the child's stderr with the failure
        finally:
            os._exit(code)
    deadline = time.monotonic() + HANG_LIMIT_S
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    pytest.fail(f"the forked child hung for {HANG_LIMIT_S} s: a lock stayed held")
