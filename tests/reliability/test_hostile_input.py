"""
Values from outside the process (headers, baggage, remote usage reports) never raise.

Each is validated: a value that cannot be used is dropped with one warning on the
``agentsteps`` logger, and none can loosen a limit. Numbers that pass are within the
int64 that OpenTelemetry attributes carry, and so are the sums the library exports.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

from agentsteps import (
    Budget,
    StepBudgetExhausted,
    record_remote_usage,
    remote_parent,
    step,
    step_scope,
)
from tests.support import Spans

INT64_MAX = 2**63 - 1


@pytest.fixture
def log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    with caplog.at_level(logging.WARNING, logger="agentsteps"):
        yield caplog


def agentsteps_warnings(log: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in log.records if r.name == "agentsteps"]


class TestLoneSurrogates:
    """A JSON message may carry ``"\\ud800"``: a str that cannot be encoded."""

    @pytest.mark.parametrize(
        ("carrier", "header"),
        [
            ({"baggage": "agentsteps.persona=\ud800x"}, "baggage"),
            ({"baggage": "agentsteps.remaining_tokens=5,k\udcff=v"}, "baggage"),
            (
                {"traceparent": "00-\ud800-01", "baggage": "agentsteps.step_path=plan"},
                "traceparent",
            ),
        ],
    )
    def test_a_surrogate_drops_its_header_with_one_warning(
        self, log: pytest.LogCaptureFixture, carrier: dict[str, str], header: str
    ) -> None:
        with remote_parent(carrier) as scope:
            assert scope.persona is None
        assert agentsteps_warnings(log) == [
            "agentsteps: ignored 1 invalid propagated value(s); incoming values are advisory "
            f"and never raise a limit: {header} header holding a lone surrogate (not text)"
        ]

    def test_the_other_headers_still_count(self, log: pytest.LogCaptureFixture) -> None:
        carrier = {"traceparent": "\ud800", "baggage": "agentsteps.step_path=plan"}
        with remote_parent(carrier) as scope:
            assert scope.name == "remote:plan"


class TestRepeatedKeys:
    """Anything on the path can add a baggage entry: a repeat must not loosen a limit."""

    @pytest.mark.parametrize(
        "carrier",
        [
            {"baggage": "agentsteps.remaining_tokens=3,agentsteps.remaining_tokens=900"},
            {"baggage": "agentsteps.remaining_tokens=900, agentsteps.remaining_tokens=3"},
            {
                "baggage": "agentsteps.remaining_tokens=3",
                "Baggage": "agentsteps.remaining_tokens=900",
            },
            {
                "Baggage": "agentsteps.remaining_tokens=900",
                "baggage": "agentsteps.remaining_tokens=3",
            },
            [
                ("baggage", "agentsteps.remaining_tokens=900"),
                ("BAGGAGE", "agentsteps.remaining_tokens=3"),
            ],
        ],
    )
    def test_the_tighter_remainder_wins(self, carrier: Any) -> None:
        headers = _Items(carrier) if isinstance(carrier, list) else carrier
        with remote_parent(headers) as scope:
            assert scope.budget == Budget(max_tokens=3)

    def test_each_limit_takes_its_smallest_valid_value(self, log: pytest.LogCaptureFixture) -> None:
        carrier = {
            "baggage": "agentsteps.remaining_usd=0.5,agentsteps.remaining_calls=9,"
            "agentsteps.remaining_usd=x,agentsteps.remaining_usd=0.25,"
            "agentsteps.remaining_calls=4"
        }
        with remote_parent(carrier) as scope:
            assert scope.budget == Budget(max_usd=0.25, max_llm_calls=4)
        assert "agentsteps.remaining_usd='x' (malformed" in agentsteps_warnings(log)[0]


class _Items:
    """Headers with repeated names, as some frameworks hand them over (``items()`` only)."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self._pairs = pairs

    def items(self) -> list[tuple[str, str]]:
        return list(self._pairs)


class TestNegativeZero:
    @pytest.mark.parametrize("text", ["-0", "-0.0", "-0.000"])
    def test_minus_zero_dollars_is_a_spent_budget(
        self, log: pytest.LogCaptureFixture, text: str
    ) -> None:
        carrier = {"baggage": f"agentsteps.remaining_usd={text}"}
        with remote_parent(carrier, refuse_spent=False) as scope:
            assert scope.budget == Budget(max_usd=0.0)
        with (
            pytest.raises(StepBudgetExhausted, match="max_usd budget is already spent"),
            remote_parent(carrier),
        ):
            pass  # pragma: no cover
        assert agentsteps_warnings(log) == []

    def test_minus_zero_tokens_is_zero(self) -> None:
        carrier = {"baggage": "agentsteps.remaining_tokens=-0"}
        with remote_parent(carrier, refuse_spent=False) as scope:
            assert scope.budget == Budget(max_tokens=0)


class TestRemoteUsageNumbers:
    @pytest.mark.parametrize(
        ("report", "problem"),
        [
            ({"cost_usd": 10**400}, "cost_usd=<int of 1329 bits> (oversized)"),
            ({"cost_usd": 1e300}, "cost_usd=1e+300 (oversized)"),
            ({"cost_usd": INT64_MAX}, "cost_usd=9223372036854775807 (oversized)"),
            ({"input_tokens": 10**5000}, "input_tokens=<int of 16610 bits> (oversized)"),
            ({"input_tokens": INT64_MAX + 1}, "input_tokens=9223372036854775808 (oversized)"),
            ({"cost_usd": float("nan")}, "cost_usd=nan (must be a finite number of dollars >= 0)"),
        ],
    )
    def test_out_of_range_is_refused_with_a_warning(
        self, log: pytest.LogCaptureFixture, report: dict[str, Any], problem: str
    ) -> None:
        @step
        def caller() -> Any:
            return record_remote_usage(report)

        assert caller() is None
        assert agentsteps_warnings(log) == [
            f"agentsteps: ignored an invalid remote usage report (nothing charged): {problem}"
        ]

    def test_sums_beyond_int64_are_exported_saturated(self, spans: Spans) -> None:
        # Two legal reports whose sum no int64 holds: an OTLP encoder would drop the
        # attribute (so the span would show no usage at all); it is saturated instead.
        with step_scope("caller"):
            for _ in range(2):
                record_remote_usage({"input_tokens": INT64_MAX, "llm_calls": INT64_MAX})
        attributes = spans.step("caller").attributes
        assert attributes is not None
        assert attributes["agentsteps.usage.subtree.input_tokens"] == INT64_MAX
        assert attributes["agentsteps.usage.subtree.llm_calls"] == INT64_MAX
        assert attributes["agentsteps.usage.subtree.output_tokens"] == 0
