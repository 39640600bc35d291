"""Fixtures of the accounting tests: one real redis-server for the shared-budget stores."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.redis_server import RedisServer


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One redis-server for a test session (tests use keys of their own)."""
    server = RedisServer()
    server.start()
    yield server
    server.close()
