"""What the framework tests share: the budget scenario, prices, and the checks on its outcome."""

from __future__ import annotations

import importlib
import os
from types import ModuleType

import attrs
import pytest

import agentsteps
from agentsteps import StepBudgetExhausted
from tests.fakes import FakeProvider, Usage

# The scenario of issue 13: a loop of 6 model requests at 1,500 tokens each under a step
# budget of 4,000 tokens. Requests 1 and 2 leave 1,000 tokens; request 3 overruns (4,500).
BUDGET_TOKENS = 4000
LOOP = 6
SENT = 3
OPENAI_MODEL = "gpt-4.1-mini"
ANTHROPIC_MODEL = "claude-haiku-4-5"
# OpenAI reports cache reads and reasoning; Anthropic reports cache reads and writes.
OPENAI_USAGE = Usage(
    input_tokens=1000, output_tokens=500, cache_read_tokens=200, reasoning_tokens=100
)
ANTHROPIC_USAGE = Usage(
    input_tokens=1000, output_tokens=500, cache_read_tokens=200, cache_write_tokens=100
)
# Pydantic AI streams Anthropic requests; message_start reports 1 output token and the input,
# which already crosses the budget on the third request: the stream is cut right there.
ANTHROPIC_CUT_AFTER = 1

# Test prices in USD per million tokens, chosen so each token costs a whole number of
# nano-dollars: the expected cost is exact integer arithmetic.
INPUT_NANO, OUTPUT_NANO, CACHE_READ_NANO, CACHE_WRITE_NANO = 1000, 4000, 100, 1250


def register_prices() -> None:
    """Deterministic prices for both test models, with distinct cache-read and write rates."""
    for model in (OPENAI_MODEL, ANTHROPIC_MODEL):
        agentsteps.register_price(
            model,
            input_per_mtok=INPUT_NANO / 1000,
            output_per_mtok=OUTPUT_NANO / 1000,
            cache_read_per_mtok=CACHE_READ_NANO / 1000,
            cache_write_per_mtok=CACHE_WRITE_NANO / 1000,
        )


def require(module: str, distribution: str) -> ModuleType:
    """
    Import a framework, or skip the test module when it is not installed; fail under CI.

    CI (the env var ``CI`` set) installs every framework (.ci/frameworks.sh), so a missing one
    there is a broken setup, not a reason to skip.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        how = 'run them with: "$(bash .ci/frameworks.sh)" -m pytest tests/frameworks'
        if os.environ.get("CI"):
            pytest.fail(
                f"{distribution} is not installed ({exc}); CI must run tests/frameworks in the "
                f"venv that .ci/frameworks.sh builds: {how}",
                pytrace=False,
            )
        pytest.skip(f"{distribution} is not installed; {how}", allow_module_level=True)


def expected_cost_nano(usage: Usage) -> int:
    """What ``usage`` costs at the test prices, in nano-dollars."""
    uncached = usage.input_tokens - usage.cache_read_tokens - usage.cache_write_tokens
    return (
        uncached * INPUT_NANO
        + usage.cache_read_tokens * CACHE_READ_NANO
        + usage.cache_write_tokens * CACHE_WRITE_NANO
        + usage.output_tokens * OUTPUT_NANO
    )


def assert_charged_exactly(
    charged: agentsteps.Usage, fake: FakeProvider, *, cut_after: int | None = None
) -> None:
    """
    What agentsteps charged equals, to the token and nano-dollar, what the fake reported.

    ``cut_after``: the last answer was a stream that agentsteps cut off (the budget crossed)
    after seeing this many output tokens of it; the rest of that stream was never read, so
    only that much of its output is charged (its input, from the first event, in full).
    """
    answered = [r.usage for r in fake.model_requests if r.usage is not None]
    if cut_after is not None:
        last = answered[-1]
        answered[-1] = attrs.evolve(
            last, output_tokens=cut_after, reasoning_tokens=min(last.reasoning_tokens, cut_after)
        )
    sent = Usage(
        input_tokens=sum(u.input_tokens for u in answered),
        output_tokens=sum(u.output_tokens for u in answered),
        cache_read_tokens=sum(u.cache_read_tokens for u in answered),
        cache_write_tokens=sum(u.cache_write_tokens for u in answered),
        reasoning_tokens=sum(u.reasoning_tokens for u in answered),
    )
    assert charged.input_tokens == sent.input_tokens
    assert charged.output_tokens == sent.output_tokens
    assert charged.cache_read_tokens == sent.cache_read_tokens
    assert charged.cache_write_tokens == sent.cache_write_tokens
    assert charged.reasoning_tokens == sent.reasoning_tokens
    assert charged.llm_calls == len(answered)
    assert charged.unpriced_calls == 0
    assert charged.cost_nano_usd == expected_cost_nano(sent)


def assert_output_limited(fake: FakeProvider, *, limit_output: bool) -> None:
    """
    With ``limit_output``, every request asked for at most the tokens the budget had left.

    The headroom before a request is the budget less what the answers before it reported;
    agentsteps also subtracts its estimate of the request's input, so the cap must be below
    the headroom, never above. Without ``limit_output`` the framework's own value goes out.
    """
    spent = 0
    for request in fake.model_requests:
        cap = request.max_output_tokens
        if limit_output:
            assert cap is not None, f"request without a max output: {request.body}"
            assert 0 <= cap < BUDGET_TOKENS - spent, (cap, BUDGET_TOKENS - spent)
        if request.usage is not None:
            spent += request.usage.total_tokens


# A calls budget of 2: the third request is refused before it is sent, the path where nothing
# overruns at all (the refusal is raised from inside the SDK call the framework makes).
CALLS_BUDGET = 2


def assert_refused_third(
    caught: pytest.ExceptionInfo[StepBudgetExhausted], fake: FakeProvider
) -> None:
    """The third request was refused before it left: 2 sent, the refusal unchanged."""
    assert type(caught.value) is StepBudgetExhausted
    assert (caught.value.limit, caught.value.limit_value) == ("max_llm_calls", CALLS_BUDGET)
    assert "refused a model call before making it" in str(caught.value)
    assert len(fake.model_requests) == CALLS_BUDGET
