"""
Tests that drive real agent frameworks (installed from PyPI) against the loopback fake providers.

They run in their own venv, because the frameworks' pins can conflict with the main test venv's::

    "$(bash .ci/frameworks.sh)" -m pytest tests/frameworks -p no:cacheprovider

So they are collected only when named on the command line (``pytest tests/frameworks`` or a
file in it) or when ``AGENTSTEPS_FRAMEWORK_TESTS=1``: the README's plain ``pytest`` leaves this
directory out instead of failing on frameworks it does not install. Once collected, a missing
framework skips its tests locally and fails them under CI (see `tests.frameworks.support.require`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

import agentsteps
from tests.fakes import FakeProvider, fake_provider

__all__ = ["fake_provider"]  # the fixture, for every test here

# LiteLLM fetches its model price map from GitHub at import time unless told not to: no test
# may reach the internet (and offline it costs ~10 s of retries per import).
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

HERE = Path(__file__).resolve().parent


def _selected(config: pytest.Config) -> bool:
    if os.environ.get("AGENTSTEPS_FRAMEWORK_TESTS") == "1":
        return True
    for arg in config.invocation_params.args:
        if arg.startswith("-"):
            continue
        path = Path(config.invocation_params.dir, arg.split("::", 1)[0]).resolve()
        if path == HERE or HERE in path.parents:
            return True
    return False


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Leave this directory out of runs that did not ask for it (see the module docstring)."""
    if collection_path != HERE and not _selected(config):
        return True
    return None


@pytest.fixture(params=[False, True], ids=["plain", "limit_output"])
def instrumented(request: pytest.FixtureRequest) -> Iterator[bool]:
    """Every OpenAI and Anthropic client instrumented, with limit_output off and on."""
    limit_output: bool = request.param
    with (
        agentsteps.instrument_openai(limit_output=limit_output),
        agentsteps.instrument_anthropic(limit_output=limit_output),
    ):
        yield limit_output


@pytest.fixture
def fake(fake_provider: FakeProvider) -> FakeProvider:
    """The fake provider under a shorter name."""
    return fake_provider
