"""
Static typing checks of the hook API (checked by mypy, never executed).

Run: ``mypy --strict tests/typing``.
"""

from __future__ import annotations

from typing import Any, assert_type

from agentsteps import (
    ActiveStep,
    HookContext,
    HookEvent,
    HookHandle,
    on_persona,
    on_step,
    scoped_hooks,
)


@on_persona("reviewer*", HookEvent.BUDGET_THRESHOLD, threshold_pct=80)
def warn(event: HookContext) -> None:
    assert_type(event.budget_pct, float | None)
    assert_type(event.step, ActiveStep | None)
    assert_type(event.args, tuple[Any, ...])


@on_step("reviewer*", "publish", "pre_step")
async def gate(event: HookContext) -> None:
    event.deny("needs approval")


assert_type(warn, HookHandle)
assert_type(gate, HookHandle)
assert_type(warn.unregister(), bool)
assert_type(on_persona("*", "post_step")(lambda e: e.replace_output(1)), HookHandle)
assert_type(on_step("*", "s", HookEvent.STEP_ERROR)(print), HookHandle)

with scoped_hooks() as handles:
    assert_type(handles, list[HookHandle])

on_persona(3, "pre_step")  # type: ignore[arg-type]
on_step("*", "s", "pre_step")(42)  # type: ignore[arg-type]
