"""
Static typing checks of the distributed API (checked by mypy, never executed).

Run: ``mypy --strict tests/typing``.
"""

from __future__ import annotations

from typing import assert_type

from agentsteps import (
    ActiveStep,
    Budget,
    Usage,
    inject,
    record_remote_usage,
    remaining_budget,
    remote_parent,
    usage_headers,
    with_remote_parent,
)


class Handler:
    def __init__(self) -> None:
        self.headers: dict[str, str] = {}

    @with_remote_parent(lambda self: self.headers, budget={"max_tokens": 10})
    def handle(self, body: bytes, *, strict: bool = False) -> int:
        return len(body)

    @with_remote_parent(lambda self: self.headers)
    async def handle_async(self, body: bytes) -> str:
        return body.decode()


assert_type(Handler().handle(b"x", strict=True), int)


async def _use() -> None:
    assert_type(await Handler().handle_async(b"x"), str)


headers: dict[str, str] = {}
assert_type(inject(headers), None)
assert_type(remaining_budget(), Budget)
assert_type(usage_headers(), dict[str, str])
assert_type(record_remote_usage(headers), Usage | None)
scope = remote_parent(headers, budget=Budget(max_llm_calls=1), refuse_spent=False)
with scope as active:
    assert_type(active, ActiveStep)
assert_type(scope.usage, Usage)

Handler().handle("not bytes")  # type: ignore[arg-type]
