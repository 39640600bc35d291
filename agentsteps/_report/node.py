"""
One row of a run report: a persona, step or other span, or a fold of repeated siblings.

A node built from one span has ``count == 1``. When siblings repeat (same kind, name and
status under one parent), the report folds them into one node whose figures are sums and
whose ``count`` says how many spans it stands for (see `_report/build.py`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import attrs

from .._accounting.budget import Budget
from .._accounting.usage import Usage

__all__ = ["ReportNode", "budget_pct"]


@attrs.define(eq=False)
class ReportNode:
    """One persona, step (or other span) of a run, with its children."""

    kind: str
    """``"run"``, ``"persona"``, ``"step"``, ``"llm_call"`` or ``"span"`` (any other span)."""
    name: str
    """The step's or persona's name (the span name for other spans)."""
    status: str | None
    """How it ended (`StepStatus` value), or ``None`` for spans that do not say."""
    model: str | None
    """The model that served its calls, else the one it declared."""
    usage: Usage
    """What it and everything under it spent (summed over the spans of a fold)."""
    self_usage: Usage
    """What it recorded itself (children excluded); summing these never counts twice."""
    budget: Budget | None
    """The step's own budget (the first span's, for a fold)."""
    start_ns: int
    """Start, in nanoseconds since the epoch (the earliest, for a fold)."""
    end_ns: int
    """End, in nanoseconds since the epoch (the latest, for a fold)."""
    error: str | None = None
    """``"ExceptionType: message"`` for a step that did not complete."""
    span_id: str | None = None
    """Hex span id (``None`` when built from an untraced `Run`; the first span's for a fold)."""
    parent_span_id: str | None = None
    """Hex span id of the parent span."""
    trace_id: str | None = None
    """Hex trace id."""
    attributes: dict[str, Any] = attrs.field(factory=dict)
    """The span's attributes (empty when built from a `Run`; the first span's for a fold)."""
    children: list[ReportNode] = attrs.field(factory=list)
    """Nested nodes, by start time."""
    count: int = 1
    """How many spans this node stands for: more than 1 for folded siblings."""
    busy_ns: int | None = None
    """For a fold, the summed durations of its spans (``None``: ``end_ns - start_ns``)."""
    budget_pct: float | None = None
    """Highest share of any budget limit used, in percent (the highest span's, for a fold)."""
    line: int | None = None
    """Line of the trace file the (first) span was read from."""
    # Builder state (see _report/build.py): children by fold key, union-find link, id key,
    # running sums of a fold.
    index: dict[tuple[str, str, str | None], ReportNode] | None = attrs.field(
        default=None, repr=False
    )
    uf: ReportNode | None = attrs.field(default=None, repr=False)
    key: str | None = attrs.field(default=None, repr=False)
    acc: list[int] | None = attrs.field(default=None, repr=False)

    def __attrs_post_init__(self) -> None:
        if self.budget_pct is None:
            self.budget_pct = budget_pct(self.budget, self.usage)

    @property
    def duration(self) -> float:
        """Seconds from start to end (summed over the spans of a fold)."""
        ns = self.end_ns - self.start_ns if self.busy_ns is None else self.busy_ns
        return max(0, ns) / 1e9

    @property
    def over_budget(self) -> bool:
        """Whether it used more than a limit of its budget."""
        return self.budget_pct is not None and self.budget_pct > 100

    def walk(self) -> Iterable[tuple[int, ReportNode]]:
        """This node and every node under it, depth first, with their depth."""
        stack: list[tuple[int, ReportNode]] = [(0, self)]
        while stack:
            depth, node = stack.pop()
            yield depth, node
            stack.extend((depth + 1, child) for child in reversed(node.children))

    def fields(self) -> dict[str, Any]:
        """JSON-ready figures of this node alone (no children)."""
        pct = self.budget_pct
        return {
            "kind": self.kind,
            "name": self.name,
            "count": self.count,
            "status": self.status,
            "model": self.model,
            "input_tokens": self.usage.input_tokens,
            "output_tokens": self.usage.output_tokens,
            "cache_read_tokens": self.usage.cache_read_tokens,
            "cache_write_tokens": self.usage.cache_write_tokens,
            "reasoning_tokens": self.usage.reasoning_tokens,
            "cost_usd": self.usage.cost_usd,
            "llm_calls": self.usage.llm_calls,
            "unpriced_calls": self.usage.unpriced_calls,
            "budget": None if self.budget is None else self.budget.to_dict(),
            # JSON has no infinity: a zero limit that was used shows as null.
            "budget_pct": None if pct is None or pct == float("inf") else pct,
            "start_time": self.start_ns / 1e9,
            "end_time": self.end_ns / 1e9,
            "duration": self.duration,
            "error": self.error,
            "trace_id": self.trace_id,
            "span_id": self.span_id,
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, children included (built without recursion: any depth works)."""
        top = self.fields()
        stack: list[tuple[ReportNode, dict[str, Any]]] = [(self, top)]
        while stack:
            node, out = stack.pop()
            out["children"] = []
            for child in node.children:
                data = child.fields()
                out["children"].append(data)
                stack.append((child, data))
        return top


def budget_pct(budget: Budget | None, usage: Usage) -> float | None:
    """Highest share of any limit of ``budget`` that ``usage`` used, in percent."""
    return None if budget is None else budget.used_pct(usage)
