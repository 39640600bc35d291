"""Propagation out: `inject` and `remaining_budget`."""

from __future__ import annotations

import re
from urllib.parse import unquote_plus

import pytest
from opentelemetry import baggage as otel_baggage
from opentelemetry import context as otel_context

import agentsteps
from agentsteps import Budget, persona_scope, record_usage, remaining_budget, step, step_scope
from agentsteps._distributed.outgoing import format_usd
from agentsteps._distributed.propagation import MAX_PATH_LENGTH
from tests.support import Spans


def baggage_of(carrier: dict[str, str]) -> dict[str, str]:
    """The baggage header of ``carrier`` as a dict, values decoded."""
    entries = [e.split("=", 1) for e in carrier.get("baggage", "").split(",") if e]
    return {unquote_plus(k): unquote_plus(v) for k, v in entries}


class TestInject:
    def test_writes_the_traceparent_of_the_active_step(self, spans: Spans) -> None:
        """The traceparent names the active step's span, sampled."""
        with step_scope("plan") as plan:
            carrier: dict[str, str] = {}
            agentsteps.inject(carrier)
        version, trace_id, span_id, flags = carrier["traceparent"].split("-")
        assert (version, trace_id, span_id) == ("00", plan.trace_id, plan.span_id)
        assert int(flags, 16) & 1  # sampled

    def test_no_traceparent_when_tracing_is_off(self) -> None:
        """Without a tracer there is no span to continue, but the budget still travels."""
        with step_scope("plan", budget=Budget(max_llm_calls=2)):
            carrier: dict[str, str] = {}
            agentsteps.inject(carrier)
        assert "traceparent" not in carrier
        assert baggage_of(carrier)["agentsteps.remaining_calls"] == "2"

    def test_persona_and_step_path(self) -> None:
        """The persona and the step names, outermost first, are carried."""
        with persona_scope("planner"), step_scope("plan"), step_scope("fetch"):
            carrier: dict[str, str] = {}
            agentsteps.inject(carrier)
        assert baggage_of(carrier) == {
            "agentsteps.persona": "planner",
            "agentsteps.step_path": "plan/fetch",
        }

    def test_remaining_is_the_tightest_across_the_stack(self) -> None:
        """Each limit carries the smallest remainder of any active step."""
        outer = Budget(max_tokens=1_000, max_usd=1.0)
        inner = Budget(max_tokens=500, max_llm_calls=3)
        with step_scope("outer", budget=outer), step_scope("inner", budget=inner):
            record_usage(model="m", input_tokens=250, output_tokens=50, cost_usd=0.25)
            carrier: dict[str, str] = {}
            agentsteps.inject(carrier)
        got = baggage_of(carrier)
        assert got["agentsteps.remaining_tokens"] == "200"
        assert got["agentsteps.remaining_usd"] == "0.75"
        assert got["agentsteps.remaining_calls"] == "2"

    def test_usd_is_carried_exactly(self) -> None:
        """Dollars travel as an exact decimal of whole nano-dollars, never as 4.9e-2."""
        with step_scope("plan", budget=Budget(max_usd=0.05)):
            record_usage(model="m", input_tokens=1, output_tokens=0, cost_usd=1e-9)
            carrier: dict[str, str] = {}
            agentsteps.inject(carrier)
        assert baggage_of(carrier)["agentsteps.remaining_usd"] == "0.049999999"

    @pytest.mark.parametrize(
        ("nanos", "text"),
        [(0, "0"), (1, "0.000000001"), (10_000_000_000, "10"), (1_500_000_000, "1.5")],
    )
    def test_format_usd(self, nanos: int, text: str) -> None:
        """Nano-dollars format as a plain decimal without trailing zeros."""
        assert format_usd(nanos) == text

    def test_spent_budget_carries_zero(self) -> None:
        """A limit reached exactly carries 0: the callee can refuse the work."""
        with step_scope("plan", budget=Budget(max_llm_calls=1)):
            record_usage(model="m", input_tokens=1, output_tokens=1, cost_usd=0)
            carrier: dict[str, str] = {}
            agentsteps.inject(carrier)
        assert baggage_of(carrier)["agentsteps.remaining_calls"] == "0"

    def test_unlimited_limits_are_left_out(self) -> None:
        """A limit no active step sets is not carried at all."""
        with step_scope("plan", budget=Budget(max_tokens=10)):
            carrier: dict[str, str] = {}
            agentsteps.inject(carrier)
        assert set(baggage_of(carrier)) == {
            "agentsteps.step_path",
            "agentsteps.remaining_tokens",
        }

    def test_keeps_other_baggage_in_the_carrier(self) -> None:
        """Entries already in the carrier survive; stale agentsteps entries are replaced."""
        carrier = {"Baggage": "tenant=acme,agentsteps.remaining_tokens=99999", "x-other": "1"}
        with step_scope("plan", budget=Budget(max_llm_calls=4)):
            agentsteps.inject(carrier)
        assert "Baggage" not in carrier
        assert carrier["x-other"] == "1"
        assert baggage_of(carrier) == {
            "tenant": "acme",
            "agentsteps.step_path": "plan",
            "agentsteps.remaining_calls": "4",
        }

    def test_keeps_baggage_of_the_active_context(self) -> None:
        """Baggage set in the OpenTelemetry context is carried along with ours."""
        token = otel_context.attach(otel_baggage.set_baggage("user", "u 1"))
        try:
            with step_scope("plan"):
                carrier: dict[str, str] = {}
                agentsteps.inject(carrier)
        finally:
            otel_context.detach(token)
        assert baggage_of(carrier) == {"user": "u 1", "agentsteps.step_path": "plan"}

    def test_outside_any_step_writes_nothing(self) -> None:
        """With no step, no span and no baggage, the carrier is left as it was."""
        carrier: dict[str, str] = {}
        agentsteps.inject(carrier)
        assert carrier == {}

    def test_long_step_paths_keep_their_innermost_end(self) -> None:
        """A path over the limit is cut at the start, where it matters least."""
        with step_scope("a" * MAX_PATH_LENGTH), step_scope("leaf"):
            carrier: dict[str, str] = {}
            agentsteps.inject(carrier)
        path = baggage_of(carrier)["agentsteps.step_path"]
        assert len(path) == MAX_PATH_LENGTH
        assert path.startswith("...a")
        assert path.endswith("a/leaf")

    def test_rejects_a_carrier_that_is_not_a_mutable_mapping(self) -> None:
        """The message names the argument, the rule and what was received."""
        with pytest.raises(
            TypeError,
            match=re.escape(
                "inject(): 'carrier' must be a mutable mapping of header names to values, "
                "such as a dict (got ('a', 'b') of type tuple)"
            ),
        ):
            agentsteps.inject(("a", "b"))  # type: ignore[arg-type]


class TestRemainingBudget:
    def test_outside_any_step_nothing_is_limited(self) -> None:
        """No active step: every limit is None."""
        assert remaining_budget() == Budget()

    def test_tightest_remainder_of_each_limit(self) -> None:
        """Each limit is the smallest remainder across the stack, dollars included."""

        @step(budget=Budget(max_tokens=100, max_usd=0.5))
        def outer() -> Budget:
            return inner()

        @step(budget=Budget(max_tokens=1_000, max_llm_calls=2))
        def inner() -> Budget:
            record_usage(model="m", input_tokens=30, output_tokens=10, cost_usd=0.125)
            return remaining_budget()

        assert outer() == Budget(max_tokens=60, max_usd=0.375, max_llm_calls=1)

    def test_personas_do_not_limit(self) -> None:
        """A persona has no budget of its own."""
        with persona_scope("planner"):
            assert remaining_budget() == Budget()
