"""Usage back: `usage_headers` on the callee and `record_remote_usage` on the caller."""

from __future__ import annotations

import email.message
import re
from typing import Any

import pytest

import agentsteps
from agentsteps import (
    Budget,
    StepBudgetExhausted,
    Usage,
    persona_scope,
    record_remote_usage,
    record_usage,
    remote_parent,
    run,
    step_scope,
    usage_headers,
)
from tests.support import Spans

REPORT = "input_tokens=300;output_tokens=100;llm_calls=1;cost_nano_usd=2000000"
REPORT_USAGE = Usage(input_tokens=300, output_tokens=100, llm_calls=1, cost_nano_usd=2_000_000)


def header_fields(headers: dict[str, str]) -> dict[str, int]:
    """The agentsteps-usage header as a dict of ints."""
    pairs = (part.split("=") for part in headers["agentsteps-usage"].split(";"))
    return {k: int(v) for k, v in pairs}


class TestUsageHeaders:
    def test_reports_the_usage_of_the_remote_scope(self) -> None:
        """Inside remote_parent: everything the scope spent, nested steps included."""
        with remote_parent({}), step_scope("tool"):
            record_usage(model="m", input_tokens=30, output_tokens=12, cost_usd=0.001)
            record_usage(
                model="m",
                input_tokens=10,
                output_tokens=8,
                cache_read_tokens=4,
                reasoning_tokens=2,
                cost_usd=None,
            )
            headers = usage_headers()
        assert header_fields(headers) == {
            "input_tokens": 40,
            "output_tokens": 20,
            "cache_read_tokens": 4,
            "cache_write_tokens": 0,
            "reasoning_tokens": 2,
            "llm_calls": 2,
            "unpriced_calls": 1,
            "cost_nano_usd": 1_000_000,
        }

    def test_the_innermost_remote_scope_counts(self) -> None:
        """Usage recorded before a nested remote scope opened is not its to report."""
        with remote_parent({}):
            record_usage(model="m", input_tokens=5, output_tokens=0, cost_usd=0)
            with remote_parent({}):
                record_usage(model="m", input_tokens=7, output_tokens=0, cost_usd=0)
                assert header_fields(usage_headers())["input_tokens"] == 7

    def test_outside_a_remote_scope_the_current_step_counts(self) -> None:
        """A worker without remote_parent reports its current step's subtree."""
        with step_scope("job"):
            with step_scope("part"):
                record_usage(model="m", input_tokens=5, output_tokens=5, cost_usd=0)
            assert header_fields(usage_headers())["input_tokens"] == 5

    def test_outside_any_step_reports_zero(self) -> None:
        """Nothing active, nothing spent."""
        assert set(header_fields(usage_headers()).values()) == {0}

    def test_after_the_scope_ended(self) -> None:
        """The scope object keeps its usage for the response sent after the block."""
        scope = remote_parent({})
        with scope:
            record_usage(model="m", input_tokens=5, output_tokens=1, cost_usd=0)
        assert scope.usage.total_tokens == 6
        assert header_fields(usage_headers(scope.usage))["output_tokens"] == 1

    def test_rejects_what_is_not_a_usage(self) -> None:
        """The message names the argument and what was received."""
        with pytest.raises(
            TypeError,
            match=re.escape("usage_headers(): 'usage' must be a Usage or None (got 5 of type int)"),
        ):
            usage_headers(5)  # type: ignore[arg-type]


class TestRecordRemoteUsage:
    def test_charges_the_subtree_of_the_active_step_and_its_parents(self) -> None:
        """The report counts like a nested step's usage: in every subtree, in no self."""
        with step_scope("agent") as agent, step_scope("plan") as plan:
            got = record_remote_usage({"agentsteps-usage": REPORT, "content-type": "x"})
        assert got == REPORT_USAGE
        assert plan.subtree_usage == agent.subtree_usage == REPORT_USAGE
        assert plan.usage == agent.usage == Usage()

    def test_a_run_collects_the_remote_scope_as_a_child_step(self, spans: Spans) -> None:
        """The run sees a finished remote:{path} child holding the report: totals add up."""
        with run() as r, persona_scope("planner"), step_scope("agent"), step_scope("plan") as plan:
            record_remote_usage({"agentsteps-usage": REPORT})
        remote, plan_record, agent_record = r.steps
        assert (remote.name, remote.parent, remote.persona) == (
            "remote:agent/plan",
            "plan",
            "planner",
        )
        assert remote.usage == remote.subtree_usage == REPORT_USAGE
        assert remote.status == "completed"
        assert (remote.parent_id, remote.trace_id) == (plan_record.step_id, plan.trace_id)
        assert (remote.span_id, remote.parent_span_id) == (None, plan.span_id)
        assert agent_record.input_tokens == 300
        assert r.total == REPORT_USAGE

    def test_the_trace_counts_remote_usage_once(self, spans: Spans) -> None:
        """Self figures on the caller's spans stay zero; subtree figures include the report."""
        with step_scope("plan"):
            record_remote_usage({"agentsteps-usage": REPORT})
        attributes = spans.step("plan").attributes
        assert attributes["agentsteps.usage.self.input_tokens"] == 0
        assert attributes["agentsteps.usage.subtree.input_tokens"] == 300
        assert attributes["agentsteps.usage.subtree.cost_usd"] == 0.002

    def test_round_trip_through_usage_headers(self) -> None:
        """What the callee reports is exactly what the caller charges."""
        spent = Usage(
            input_tokens=50,
            output_tokens=20,
            cache_read_tokens=10,
            cache_write_tokens=5,
            reasoning_tokens=7,
            llm_calls=3,
            unpriced_calls=1,
            cost_nano_usd=123_456_789,
        )
        with step_scope("plan") as plan:
            record_remote_usage(usage_headers(spent))
        assert plan.subtree_usage == spent

    def test_exhaustion_rules_apply(self) -> None:
        """Remote spend past the caller's budget raises from the caller's step."""
        with (
            pytest.raises(StepBudgetExhausted) as info,
            step_scope("plan", budget=Budget(max_tokens=350)) as plan,
        ):
            record_remote_usage({"agentsteps-usage": REPORT})
        assert (info.value.step, info.value.limit, info.value.consumed_tokens) == (
            "plan",
            "max_tokens",
            400,
        )
        assert plan.subtree_usage.total_tokens == 400

    def test_continue_boundary_applies(self) -> None:
        """The caller's error boundary decides, as for local usage."""
        with (
            step_scope("agent") as agent,
            step_scope("plan", budget=Budget(max_llm_calls=0), error_boundary="continue"),
        ):
            record_remote_usage({"agentsteps-usage": REPORT})
            pytest.fail("not reached")
        assert agent.subtree_usage.llm_calls == 1

    @pytest.mark.parametrize(
        "report",
        [
            Usage(input_tokens=300, output_tokens=100, llm_calls=1, cost_nano_usd=2_000_000),
            {"input_tokens": 300, "output_tokens": 100, "llm_calls": 1, "cost_usd": 0.002},
            {"input_tokens": "300", "output_tokens": "100", "cost_nano_usd": "2000000"},
            Usage(input_tokens=300, output_tokens=100, cost_nano_usd=2_000_000).to_dict(),
            {"AgentSteps-Usage": REPORT},
        ],
    )
    def test_accepted_forms(self, report: Any) -> None:
        """A Usage, a usage dict (Usage.to_dict() too) or headers of any capitalisation."""
        with step_scope("plan") as plan:
            record_remote_usage(report)
        assert (plan.subtree_usage.total_tokens, plan.subtree_usage.cost_nano_usd) == (
            400,
            2_000_000,
        )

    def test_http_response_headers(self) -> None:
        """The headers of an http.client response (an email Message) work directly."""
        headers = email.message.Message()
        headers["Content-Type"] = "application/json"
        headers["Agentsteps-Usage"] = REPORT
        with step_scope("plan") as plan:
            record_remote_usage(headers)
        assert plan.subtree_usage.llm_calls == 1

    def test_unknown_fields_are_skipped(self, warnings_log: pytest.LogCaptureFixture) -> None:
        """A newer callee may report more: the fields known here still count."""
        with step_scope("plan") as plan:
            record_remote_usage({"agentsteps-usage": REPORT + ";tool_calls=4;"})
        assert plan.subtree_usage.total_tokens == 400
        assert warnings_log.records == []

    def test_no_report_is_ignored_silently(self, warnings_log: pytest.LogCaptureFixture) -> None:
        """A callee that does not use agentsteps sends no report: nothing happens."""
        with step_scope("plan") as plan:
            assert record_remote_usage({"content-type": "application/json"}) is None
        assert plan.usage == Usage()
        assert warnings_log.records == []

    @pytest.mark.parametrize(
        ("report", "why"),
        [
            ({"agentsteps-usage": "input_tokens=-3"}, "input_tokens=-3 (negative: must be >= 0)"),
            ({"agentsteps-usage": "input_tokens=3.5"}, "input_tokens='3.5' (must be a whole"),
            ({"agentsteps-usage": "input_tokens"}, "'input_tokens' is not field=value"),
            ({"agentsteps-usage": "llm_calls=1;llm_calls=2"}, "llm_calls given twice"),
            ({"agentsteps-usage": "x=1;" * 300}, "agentsteps-usage of 1200 characters"),
            ({"agentsteps-usage": 5}, "agentsteps-usage is int, not text"),
            ({"agentsteps-usage": "input_tokens=9223372036854775808"}, "(oversized)"),
            (
                {"agentsteps-usage": "input_tokens=3;cache_read_tokens=4"},
                "cached tokens exceed input_tokens",
            ),
            (
                {"agentsteps-usage": "output_tokens=3;reasoning_tokens=4"},
                "reasoning_tokens exceed output_tokens",
            ),
            ({"agentsteps-usage": "unpriced_calls=1"}, "unpriced_calls exceed llm_calls"),
            ({"input_tokens": True}, "input_tokens=True (must be a whole number >= 0)"),
            ({"cost_usd": float("inf")}, "cost_usd=inf (must be a finite number of dollars"),
            ({"cost_usd": -1}, "cost_usd=-1 (must be a finite number of dollars >= 0)"),
            (Usage(input_tokens=2**63), "input_tokens=9223372036854775808 (oversized)"),
        ],
    )
    def test_an_invalid_report_charges_nothing_and_warns_once(
        self, warnings_log: pytest.LogCaptureFixture, report: Any, why: str
    ) -> None:
        """Remote numbers are validated; a bad report is dropped whole, with one warning."""
        with step_scope("plan", budget=Budget(max_tokens=1)) as plan:
            assert record_remote_usage(report) is None
        assert plan.usage == Usage()
        assert len(warnings_log.records) == 1
        message = warnings_log.records[0].getMessage()
        assert message.startswith("agentsteps: ignored an invalid remote usage report")
        assert why in message

    def test_two_usage_headers_are_invalid(self, warnings_log: pytest.LogCaptureFixture) -> None:
        """Repeated report headers are ambiguous: neither counts."""
        headers = email.message.Message()
        headers["agentsteps-usage"] = REPORT
        headers["agentsteps-usage"] = REPORT
        with step_scope("plan") as plan:
            assert record_remote_usage(headers) is None
        assert plan.usage == Usage()
        assert "2 agentsteps-usage headers (expected one)" in warnings_log.records[0].getMessage()

    def test_outside_any_step_reads_without_charging(self) -> None:
        """No step to charge: the report is returned and nothing raises."""
        assert record_remote_usage({"agentsteps-usage": REPORT}) == REPORT_USAGE

    def test_records_an_event_on_the_calling_step(self, spans: Spans) -> None:
        """The step's span shows where remote usage came in."""
        with step_scope("plan"):
            record_remote_usage({"agentsteps-usage": REPORT})
        (event,) = spans.step("plan").events
        assert event.name == "agentsteps.remote_usage"
        assert event.attributes is not None
        assert event.attributes["agentsteps.remote_usage.input_tokens"] == 300
        assert event.attributes["agentsteps.remote_usage.cost_usd"] == 0.002

    def test_rejects_what_is_not_a_mapping(self) -> None:
        """Developer misuse raises, naming the argument."""
        with pytest.raises(
            TypeError,
            match=re.escape(
                "record_remote_usage(): 'usage' must be the callee's response headers, a usage "
                "dict or a Usage (got 'input_tokens=1' of type str)"
            ),
        ):
            record_remote_usage("input_tokens=1")  # type: ignore[arg-type]


def test_public_names() -> None:
    """The distributed API is exported from the package root."""
    for name in (
        "inject",
        "record_remote_usage",
        "remaining_budget",
        "remote_parent",
        "usage_headers",
        "with_remote_parent",
    ):
        assert name in agentsteps.__all__
        assert getattr(agentsteps, name).__module__ == "agentsteps"
