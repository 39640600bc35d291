"""Hand-made lines of a saved trace (the JSON Lines format), for the report tests."""

from __future__ import annotations

from typing import Any


def span_line(
    name: str,
    span_id: str,
    parent: str | None,
    *,
    kind: str = "step",
    start: int = 0,
    end: int = 1_000_000,
    attributes: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One span as `agentsteps run --trace` writes it, with fixed trace id and status."""
    attrs = {"agentsteps.kind": kind, **(attributes or {})}
    if kind == "step":
        attrs.setdefault("agentsteps.step.name", name)
    return {
        "v": 1, "name": name, "trace_id": "t" * 32, "span_id": span_id,
        "parent_span_id": parent, "start_time_unix_nano": start, "end_time_unix_nano": end,
        "status": {"code": "UNSET", "description": None}, "attributes": attrs, "events": [],
    }  # fmt: skip


def usage_attributes(which: str, **figures: float) -> dict[str, float]:
    """The ``agentsteps.usage.<which>.*`` attributes (``which`` is "self" or "subtree")."""
    return {f"agentsteps.usage.{which}.{k}": v for k, v in figures.items()}


# A hand-made trace with fixed times, for exact renderings.
REVIEW = {"input_tokens": 1000, "output_tokens": 200, "cache_read_tokens": 800,
          "cost_usd": 0.0023, "llm_calls": 2}  # fmt: skip
SUMMARIZE = {"input_tokens": 200, "output_tokens": 100, "cost_usd": 0.01, "llm_calls": 1}
GOLDEN_SPANS = [
    span_line("reviewer", "p", None, kind="persona", start=0, end=2_500_000_000, attributes={
        "agentsteps.persona.name": "reviewer", "agentsteps.persona.status": "completed",
        **usage_attributes("subtree", input_tokens=1200, output_tokens=300, cache_read_tokens=800,
                 cost_usd=0.0123, llm_calls=3),
    }),
    span_line("review", "s1", "p", start=1_000_000, end=1_500_000_000, attributes={
        "agentsteps.step.status": "completed", "gen_ai.response.model": "scripted-mini",
        "agentsteps.budget.max_tokens": 2000,
        **usage_attributes("subtree", **REVIEW), **usage_attributes("self", **REVIEW),
    }),
    span_line("summarize", "s2", "p", start=1_500_000_000, end=2_400_000_000, attributes={
        "agentsteps.step.status": "skipped", "gen_ai.request.model": "scripted-pro",
        "agentsteps.budget.max_usd": 0.005,
        **usage_attributes("subtree", **SUMMARIZE), **usage_attributes("self", **SUMMARIZE),
    }),
]  # fmt: skip
GOLDEN_SPANS[2]["events"] = [
    {
        "name": "agentsteps.budget_exhausted",
        "attributes": {
            "exception.type": "StepBudgetExhausted",
            "exception.message": "step 'summarize' exceeded max_usd budget ($0.0100 > $0.0050)",
        },
    }
]
