"""
Bad input across the public API: the exact exception type and message a user sees.

One table, one row per mistake, over the decorators, `Budget`, `record_usage`, the
scopes, `configure`, hook registration, `configure_tracing`, pricing, model calls,
reports and the ``agentsteps`` command. Every row raises (or, for the command, exits 2
with one error line): nothing is silently ignored. Messages name the argument, the rule
and the value received. `record_usage` validates even outside any step, and a refused
record charges nothing.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import agentsteps
from agentsteps import Budget, step_scope
from agentsteps._hooks.registry import clear_hooks
from agentsteps._report import cli as _main


def _fn() -> None:
    """A function to decorate."""


async def _async_handler(event: object) -> None:
    """An async hook handler."""


class _Agent:
    """A class, which @step and @persona refuse."""


def _reenter_scope() -> None:
    scope = step_scope("plan")
    with scope, scope:
        pass


# The API typed as Any: the rows pass wrong types on purpose.
api: Any = agentsteps

# (id, call, exception type, exact message)
Row = tuple[str, Callable[[], object], type[Exception], str]
CHOICES = "'fail', 'continue', 'escalate'"
KEYS = "'max_tokens', 'max_usd', 'max_llm_calls'"
EVENTS = (
    "'persona_start', 'persona_end', 'pre_step', 'post_step', 'step_error', "
    "'budget_threshold', 'budget_exhausted', 'escalated'"
)

ROWS: list[Row] = [
    # --- @step / @persona (decoration time)
    (
        "step-name-positional",
        lambda: api.step("plan"),
        TypeError,
        "@step('plan'): the name is a keyword argument. Instead, you want @step(name='plan')",
    ),
    (
        "step-on-class",
        lambda: api.step(_Agent),
        TypeError,
        "@step decorates functions and methods, not classes (got class '_Agent'). "
        "Decorate the methods that do the work instead.",
    ),
    (
        "step-on-non-callable",
        lambda: api.step()(42),
        TypeError,
        "@step must decorate a function (got 42 of type int)",
    ),
    (
        "step-name-blank",
        lambda: api.step(name=" "),
        ValueError,
        "@step: 'name' must be a non-empty str (got ' ')",
    ),
    (
        "step-model-int",
        lambda: api.step(model=3)(_fn),
        TypeError,
        "step '_fn': 'model' must be a non-empty str (got 3 of type int)",
    ),
    (
        "step-budget-str",
        lambda: api.step(budget="100")(_fn),
        TypeError,
        f"step '_fn': 'budget' must be a Budget, a dict with keys {KEYS}, or None "
        "(got '100' of type str)",
    ),
    (
        "step-budget-unknown-key",
        lambda: api.step(budget={"max_token": 5})(_fn),
        ValueError,
        f"step '_fn': unknown budget key(s) 'max_token'; valid keys are {KEYS}",
    ),
    (
        "step-budget-dict-negative",
        lambda: api.step(budget={"max_usd": -1})(_fn),
        ValueError,
        "step '_fn': budget 'max_usd' must be >= 0 (got -1)",
    ),
    (
        "step-boundary-unknown",
        lambda: api.step(error_boundary="retry")(_fn),
        ValueError,
        f"step '_fn': 'error_boundary' must be one of {CHOICES} (got 'retry')",
    ),
    (
        "step-default-without-continue",
        lambda: api.step(default=1)(_fn),
        ValueError,
        "step '_fn': 'default' is the value returned when the budget runs out under "
        "error_boundary='continue', but the boundary is 'fail'",
    ),
    (
        "persona-name-positional",
        lambda: api.persona("reviewer"),
        TypeError,
        "@persona('reviewer'): the name is a keyword argument. "
        "Instead, you want @persona(name='reviewer')",
    ),
    (
        "persona-on-class",
        lambda: api.persona(_Agent),
        TypeError,
        "@persona decorates functions and methods, not classes (got class '_Agent'). "
        "Decorate the methods that do the work instead.",
    ),
    (
        "persona-name-empty",
        lambda: api.persona(name=""),
        ValueError,
        "@persona: 'name' must be a non-empty str (got '')",
    ),
    # --- Budget
    (
        "budget-tokens-negative",
        lambda: api.Budget(max_tokens=-1),
        ValueError,
        "Budget: 'max_tokens' must be >= 0 (got -1)",
    ),
    (
        "budget-tokens-fraction",
        lambda: api.Budget(max_tokens=1.5),
        TypeError,
        "Budget: 'max_tokens' must be a whole number of tokens, as an int (got 1.5 of type float)",
    ),
    (
        "budget-tokens-bool",
        lambda: api.Budget(max_tokens=True),
        TypeError,
        "Budget: 'max_tokens' must be an int or None (got True of type bool)",
    ),
    (
        "budget-usd-nan",
        lambda: api.Budget(max_usd=math.nan),
        ValueError,
        "Budget: 'max_usd' must be finite (got nan)",
    ),
    (
        "budget-usd-str",
        lambda: api.Budget(max_usd="0.05"),
        TypeError,
        "Budget: 'max_usd' must be a number or None (got '0.05' of type str)",
    ),
    (
        "budget-calls-negative",
        lambda: api.Budget(max_llm_calls=-3),
        ValueError,
        "Budget: 'max_llm_calls' must be >= 0 (got -3)",
    ),
    # --- record_usage (no step is active: arguments are validated all the same)
    (
        "record-input-negative",
        lambda: api.record_usage(input_tokens=-1),
        ValueError,
        "record_usage(): 'input_tokens' must be >= 0 (got -1)",
    ),
    (
        "record-input-float",
        lambda: api.record_usage(input_tokens=1.0),
        TypeError,
        "record_usage(): 'input_tokens' must be an int (got 1.0 of type float)",
    ),
    (
        "record-output-bool",
        lambda: api.record_usage(output_tokens=True),
        TypeError,
        "record_usage(): 'output_tokens' must be an int (got True of type bool)",
    ),
    (
        "record-calls-negative",
        lambda: api.record_usage(llm_calls=-1),
        ValueError,
        "record_usage(): 'llm_calls' must be >= 0 (got -1)",
    ),
    (
        "record-cost-negative",
        lambda: api.record_usage(cost_usd=-0.01),
        ValueError,
        "record_usage(): 'cost_usd' must be a finite number >= 0 (got -0.01)",
    ),
    (
        "record-cost-str",
        lambda: api.record_usage(cost_usd="0.1"),
        TypeError,
        "record_usage(): 'cost_usd' must be a number of US dollars or None (got '0.1' of type str)",
    ),
    (
        "record-cached-exceeds-input",
        lambda: api.record_usage(input_tokens=10, cache_read_tokens=8, cache_write_tokens=5),
        ValueError,
        "record_usage(): cached tokens (cache_read_tokens=8 + cache_write_tokens=5) exceed "
        "'input_tokens' (10); input_tokens includes cached tokens (OpenTelemetry convention). "
        "Anthropic reports them separately: pass input_tokens + cache_read_input_tokens + "
        "cache_creation_input_tokens",
    ),
    (
        "record-reasoning-exceeds-output",
        lambda: api.record_usage(output_tokens=3, reasoning_tokens=4),
        ValueError,
        "record_usage(): 'reasoning_tokens' (4) exceeds 'output_tokens' (3); output_tokens "
        "includes reasoning tokens (OpenTelemetry convention)",
    ),
    (
        "record-model-int",
        lambda: api.record_usage(model=4),
        TypeError,
        "record_usage(): 'model' must be a str or None (got 4 of type int)",
    ),
    # --- scopes
    (
        "step-scope-name-empty",
        lambda: api.step_scope(""),
        ValueError,
        "step_scope(): 'name' must be a non-empty str (got '')",
    ),
    (
        "step-scope-boundary",
        lambda: api.step_scope("plan", error_boundary="ignore"),
        ValueError,
        f"step 'plan': 'error_boundary' must be one of {CHOICES} (got 'ignore')",
    ),
    (
        "step-scope-reentered",
        _reenter_scope,
        RuntimeError,
        "step_scope('plan') is already active; create a new one to re-enter",
    ),
    (
        "persona-scope-model-int",
        lambda: api.persona_scope("reviewer", model=2),
        TypeError,
        "persona 'reviewer': 'model' must be a non-empty str (got 2 of type int)",
    ),
    # --- configure
    (
        "configure-provider-not-a-provider",
        lambda: api.configure(tracer_provider="sdk"),
        TypeError,
        "configure(): 'tracer_provider' must be an opentelemetry.trace.TracerProvider or None "
        "(got 'sdk' of type str)",
    ),
    (
        "configure-strict-hooks-str",
        lambda: api.configure(strict_hooks="yes"),
        TypeError,
        "configure(): 'strict_hooks' must be a bool (got 'yes')",
    ),
    # --- hook registration
    (
        "hook-pattern-int",
        lambda: api.on_persona(1, "persona_start"),
        TypeError,
        "on_persona(): 'pattern' must be a str glob such as 'reviewer*' (got 1 of type int)",
    ),
    (
        "hook-event-unknown",
        lambda: api.on_persona("*", "step_begin"),
        ValueError,
        f"on_persona(): 'event' must be one of {EVENTS} (got 'step_begin')",
    ),
    (
        "hook-persona-event-on-step",
        lambda: api.on_step("*", "plan", "persona_start"),
        ValueError,
        "on_step(): 'persona_start' is a persona event and has no step; "
        "use on_persona(pattern, 'persona_start') instead",
    ),
    (
        "hook-threshold-missing",
        lambda: api.on_persona("*", "budget_threshold"),
        ValueError,
        "on_persona(): the 'budget_threshold' event needs 'threshold_pct', the percentage "
        "of the budget that fires it, e.g. threshold_pct=80",
    ),
    (
        "hook-threshold-out-of-range",
        lambda: api.on_persona("*", "budget_threshold", threshold_pct=0),
        ValueError,
        "on_persona(): 'threshold_pct' must be within (0, 100] (got 0)",
    ),
    (
        "hook-handler-not-callable",
        lambda: api.on_persona("*", "persona_start")(3),
        TypeError,
        "on_persona(): the handler must be callable, taking one HookContext (got 3 of type int)",
    ),
    (
        "hook-async-budget-handler",
        lambda: api.on_step("*", "plan", "budget_exhausted")(_async_handler),
        TypeError,
        "on_step(): 'budget_exhausted' handlers must be plain functions, not "
        f"async (got {__name__}._async_handler): budget events fire inside record_usage(), "
        "which is synchronous. Schedule async work from a plain handler instead, e.g. "
        "asyncio.get_running_loop().create_task(...)",
    ),
    # --- configure_tracing (refused before anything is set up)
    (
        "tracing-exporter-unknown",
        lambda: api.configure_tracing(exporter="zipkin"),
        ValueError,
        "exporter must be one of 'console', 'jsonl', 'none', 'otlp' (got 'zipkin')",
    ),
    (
        "tracing-protocol-unknown",
        lambda: api.configure_tracing(protocol="udp"),
        ValueError,
        "protocol must be one of 'grpc', 'http/protobuf' (got 'udp')",
    ),
    (
        "tracing-service-name-int",
        lambda: api.configure_tracing(service_name=3),
        TypeError,
        "configure_tracing(): 'service_name' must be a str or None (got 3 of type int)",
    ),
    (
        "tracing-endpoint-int",
        lambda: api.configure_tracing(endpoint=4318),
        TypeError,
        "configure_tracing(): 'endpoint' must be a str or None (got 4318 of type int)",
    ),
    (
        "tracing-timeout-negative",
        lambda: api.configure_tracing(export_timeout=-1),
        ValueError,
        "configure_tracing(): 'export_timeout' must be > 0 seconds and finite (got -1)",
    ),
    (
        "tracing-resource-attributes-list",
        lambda: api.configure_tracing(resource_attributes=["team=ai"]),
        TypeError,
        "configure_tracing(): 'resource_attributes' must be a mapping of attribute names to "
        "values or None (got ['team=ai'] of type list)",
    ),
    # --- pricing, model calls, reports
    (
        "price-negative",
        lambda: api.register_price("m", input_per_mtok=-1, output_per_mtok=1),
        ValueError,
        "register_price(): 'input_per_mtok' must be a finite number >= 0 "
        "(USD per million tokens), got -1",
    ),
    (
        "llm-call-max-output-negative",
        lambda: api.llm_call(model="m", max_output_tokens=-1),
        ValueError,
        "llm_call(): 'max_output_tokens' must be >= 0 (got -1)",
    ),
    (
        "report-source-int",
        lambda: api.print_report(5),
        TypeError,
        "print_report(): 'source' must be a Run (from 'with agentsteps.run() as r:') or the "
        "path of a JSONL trace (got 5 of type int)",
    ),
]


@pytest.fixture(autouse=True)
def _no_hooks_left() -> Any:
    yield
    clear_hooks()


def test_the_table_is_large_and_has_unique_ids() -> None:
    """At least 30 rows, each named once."""
    ids = [row[0] for row in ROWS]
    assert len(ids) >= 30
    assert len(set(ids)) == len(ids)


@pytest.mark.parametrize(
    ("call", "exc_type", "message"), [r[1:] for r in ROWS], ids=[r[0] for r in ROWS]
)
def test_bad_input(call: Callable[[], object], exc_type: type[Exception], message: str) -> None:
    """The exact exception type and message of one mistake."""
    with pytest.raises(exc_type, match=re.escape(message)) as info:
        call()
    assert type(info.value) is exc_type
    assert str(info.value) == message


RECORD_ROWS = [row for row in ROWS if row[0].startswith("record-")]


@pytest.mark.parametrize(
    ("call", "exc_type", "message"), [r[1:] for r in RECORD_ROWS], ids=[r[0] for r in RECORD_ROWS]
)
def test_refused_record_charges_nothing(
    call: Callable[[], object], exc_type: type[Exception], message: str
) -> None:
    """Inside a step the same mistakes raise the same errors, and nothing is charged."""
    with step_scope("plan", budget=Budget(max_tokens=1)) as plan:
        with pytest.raises(exc_type, match=re.escape(message)):
            call()
        assert plan.subtree_usage == agentsteps.Usage()


# --- the command: exit code 2 and one error line on stderr


@pytest.fixture
def cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Callable[..., tuple[int, str]]:
    """Run ``agentsteps ARGS`` in-process from an empty directory; (exit code, last line)."""
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("OTEL_"):
            monkeypatch.delenv(name)
    monkeypatch.setattr(_main, "_install_global", lambda provider: None)

    def run(*argv: str) -> tuple[int, str]:
        try:
            code = _main.main(list(argv))
        except SystemExit as exit_:  # argparse's own errors
            code = exit_.code  # type: ignore[assignment]
        err = capsys.readouterr().err.strip().splitlines()
        return code, err[-1] if err else ""

    return run


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "missing.py"], "agentsteps run: error: cannot run 'missing.py': no such file"),
        (["run", "."], "agentsteps run: error: cannot run '.': a directory, not a Python file"),
        (["report", "missing.jsonl"], "agentsteps report: error: no such file: 'missing.jsonl'"),
        (
            ["report", "."],
            "agentsteps report: error: '.' is a directory, not a JSONL trace file",
        ),
        (
            ["report", "empty.jsonl"],
            "agentsteps report: error: empty.jsonl is not a JSONL trace: the file is empty",
        ),
        (
            ["report", "notes.jsonl"],
            "agentsteps report: error: notes.jsonl is not a JSONL trace: line 1 is not JSON",
        ),
        (
            ["report", "other.jsonl"],
            "agentsteps report: error: other.jsonl is not a JSONL trace: line 1 is JSON but "
            "not a span (no 'name')",
        ),
    ],
    ids=[
        "run-missing",
        "run-directory",
        "report-missing",
        "report-directory",
        "report-empty",
        "report-not-json",
        "report-not-spans",
    ],
)
def test_command_errors(
    argv: list[str], message: str, cli: Callable[..., tuple[int, str]], tmp_path: Path
) -> None:
    """Each mistake exits 2 with one line naming what is wrong."""
    (tmp_path / "empty.jsonl").write_text("")
    (tmp_path / "notes.jsonl").write_text("remember the milk\n")
    (tmp_path / "other.jsonl").write_text('{"a": 1}\n')
    assert cli(*argv) == (2, message)


@pytest.mark.parametrize(
    ("argv", "start"),
    [
        (["launch"], "agentsteps: error: argument COMMAND: invalid choice: 'launch'"),
        (
            ["run", "--exporter", "zipkin", "agent.py"],
            "agentsteps run: error: argument --exporter: invalid choice: 'zipkin'",
        ),
        (
            ["run", "--color", "purple", "agent.py"],
            "agentsteps run: error: argument --color: invalid choice: 'purple'",
        ),
    ],
    ids=["unknown-command", "unknown-exporter", "unknown-color"],
)
def test_command_option_errors(
    argv: list[str], start: str, cli: Callable[..., tuple[int, str]]
) -> None:
    """argparse's own errors exit 2 too (the list of choices after this varies by Python)."""
    code, line = cli(*argv)
    assert code == 2
    assert line.startswith(start)
