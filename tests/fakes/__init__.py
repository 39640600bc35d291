"""
Loopback fakes of the model providers' HTTP APIs, for tests that drive the real SDKs offline.

A test takes the `fake_provider` fixture (import it into a conftest.py, or use `FakeProvider`
as a context manager) and points its client's base URL at it::

    def test_x(fake_provider: FakeProvider) -> None:
        client = openai.OpenAI(base_url=fake_provider.openai_base_url, api_key="test")
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.providers import (
    ErrorReply,
    FakeProvider,
    Reply,
    Request,
    Script,
    ToolCall,
    Usage,
    always_call_tool,
    tool_calls_then_text,
)


@pytest.fixture
def fake_provider() -> Iterator[FakeProvider]:
    """A started `FakeProvider` answering ``Reply()`` (change it with ``set_replies``)."""
    with FakeProvider() as fake:
        yield fake


__all__ = [
    "ErrorReply",
    "FakeProvider",
    "Reply",
    "Request",
    "Script",
    "ToolCall",
    "Usage",
    "always_call_tool",
    "fake_provider",
    "tool_calls_then_text",
]
