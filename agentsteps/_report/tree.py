"""
The run report: a tree of personas and steps with what each spent, built from a trace.

The source of truth is the spans of a run in the JSONL trace format
(docs/jsonl-format.md), so a report can be rebuilt from a saved file; a `Run` collected
in-process converts to the same tree. Spans stream through `_report/build.py`, which
folds repeated siblings as they come, so a report of any run fits in memory. Renderers
for the terminal and for JSON live in `_report/render.py`, the HTML page in
`_report/html.py`.
"""

from __future__ import annotations

import contextlib
import gc
import os
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import attrs

from .._accounting.usage import ZERO_USAGE, Usage
from .._core.records import Run
from .build import Forest, hoist, walk_post
from .load import (
    FORMAT_VERSION,
    KIND_LLM_CALL,
    KIND_OTHER,
    KIND_PERSONA,
    KIND_RUN,
    KIND_STEP,
    InvalidTraceError,
    Warnings,
    read_spans,
    span_fields,
)
from .node import ReportNode

__all__ = [
    "FORMAT_VERSION",
    "KIND_LLM_CALL",
    "KIND_OTHER",
    "KIND_PERSONA",
    "KIND_RUN",
    "KIND_STEP",
    "REPORT_VERSION",
    "TREE_KINDS",
    "Breakdown",
    "InvalidTraceError",
    "ReportNode",
    "RunReport",
    "SpanSink",
    "load_spans",
]

TREE_KINDS = frozenset({KIND_RUN, KIND_PERSONA, KIND_STEP})

REPORT_VERSION = 1
"""Version of the JSON report layout; bumped only when a key is removed or changes meaning."""


@attrs.define
class Breakdown:
    """What the steps of one model, or of one persona, spent themselves."""

    name: str
    """The model or persona (``"(none)"`` for steps without one)."""
    steps: int
    """How many steps."""
    usage: Usage
    """Their own usage, summed."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"name": self.name, "steps": self.steps, **self.usage.to_dict()}


class SpanSink:
    """
    Feed span dicts one at a time (from a file or a live span processor); `report` when done.

    Args:
        fold: Fold repeated siblings into one row (the default; ``--expand`` turns it off).
        top: Also keep the ``top`` steps that spent most themselves.
        attributes: Keep each span's attributes (only the HTML page shows them; without
            them an expanded report of a long run needs far less memory).
    """

    def __init__(self, *, fold: bool = True, top: int = 0, attributes: bool = True) -> None:
        self.fold = fold
        self.keep_attributes = attributes
        self.warnings = Warnings()
        self._forests: dict[str | None, Forest] = {}
        self._top = top
        self._ends: dict[str | None, int] = {}

    def add(self, data: Mapping[str, Any], line: int | None = None) -> None:
        """Add one span in the JSONL trace format."""
        fields = span_fields(data, line, self.warnings)
        trace = fields["trace_id"]
        forest = self._forests.get(trace)
        if forest is None:
            forest = self._forests[trace] = Forest(fold=self.fold, top=self._top)
        end = fields["end_ns"]
        if end > self._ends.get(trace, -1):
            self._ends[trace] = end
        parent = fields["parent_span_id"]
        key = f"{trace}/{fields['span_id']}"
        parent_key = None if parent is None else f"{trace}/{parent}"
        if forest.fold_fields(fields, key, parent_key):
            return
        if not self.keep_attributes:
            fields["attributes"] = {}
        forest.add(ReportNode(**fields), key, parent_key)

    def report(self, *, last: bool = False) -> RunReport:
        """The report of every trace fed (or, with ``last``, of the one that ended last)."""
        traces = list(self._forests)
        if last and traces:
            traces = [max(traces, key=lambda t: self._ends[t])]
        forests = [self._forests[t] for t in traces]
        span_roots: list[ReportNode] = []
        top: list[ReportNode] = []
        for forest in forests:
            span_roots += forest.roots()
            for warning in forest.warnings:
                self.warnings.add(None, warning)
            top += forest.top()
        # Roots of different traces fold too (a plain script's loop makes one trace per call).
        span_roots = hoist(span_roots, frozenset(_ALL_KINDS), fold=self.fold)
        top.sort(
            key=lambda n: (n.self_usage.cost_nano_usd, n.self_usage.total_tokens), reverse=True
        )
        return RunReport._build(span_roots, self.fold, top[: self._top], self.warnings.all())


def _cost_rank(node: ReportNode) -> tuple[int, int]:
    return (node.self_usage.cost_nano_usd, node.self_usage.total_tokens)


@contextlib.contextmanager
def _no_gc() -> Iterator[None]:
    # Building allocates many long-lived nodes; the cyclic collector's full passes over
    # them made large reports superlinear. Nothing garbage here is cyclic.
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


_ALL_KINDS = (KIND_RUN, KIND_PERSONA, KIND_STEP, KIND_LLM_CALL, KIND_OTHER)


@attrs.define(eq=False)
class RunReport:
    """
    The tree of a run (or of every run in a trace file), and its totals.

    Build it with `from_spans`, `from_jsonl` or `from_run`; render it with
    `render_text`/`to_dict` (`_report/render.py`) or `render_html` (`_report/html.py`).
    """

    roots: list[ReportNode]
    """Top-level runs, personas and steps by start time: one per trace, usually."""
    span_roots: list[ReportNode]
    """The tree of every span, llm calls and foreign spans included (the waterfall's)."""
    folded: bool = True
    """Whether repeated siblings were folded into one row."""
    top: list[ReportNode] = attrs.field(factory=list)
    """The most expensive steps by their own cost (empty unless asked for)."""
    warnings: list[str] = attrs.field(factory=list)
    """What was wrong in the trace (damaged lines and values), one line each."""

    @classmethod
    def _build(
        cls, span_roots: list[ReportNode], fold: bool, top: list[ReportNode], warnings: list[str]
    ) -> RunReport:
        _sum_runs(span_roots)
        roots = hoist(span_roots, TREE_KINDS, fold=fold)
        _sum_runs(roots)
        return cls(roots=roots, span_roots=span_roots, folded=fold, top=top, warnings=warnings)

    @classmethod
    def from_spans(
        cls, spans: Iterable[Mapping[str, Any]], *, fold: bool = True, top: int = 0
    ) -> RunReport:
        """Build the report from span dicts in the JSONL trace format."""
        sink = SpanSink(fold=fold, top=top)
        with _no_gc():
            for data in spans:
                sink.add(data)
            return sink.report()

    @classmethod
    def from_jsonl(
        cls,
        path: str | os.PathLike[str],
        *,
        fold: bool = True,
        top: int = 0,
        trace_id: str | None = None,
        last: bool = False,
        attributes: bool = True,
    ) -> RunReport:
        """
        Build the report from a JSONL trace file, reading it once, line by line.

        Args:
            path: The trace file.
            fold: Fold repeated siblings into one row.
            top: Also keep the ``top`` steps that spent most themselves.
            trace_id: Only the trace whose id starts with this (any case).
            last: Only the trace that ended last.
            attributes: Keep the spans' attributes (the HTML page shows them).

        Raises:
            FileNotFoundError: There is no such file.
            InvalidTraceError: The file holds no span at all.
        """
        sink = SpanSink(fold=fold, top=top, attributes=attributes)
        prefix = None if trace_id is None else trace_id.lower()
        keep = None if prefix is None else (lambda t: t.startswith(prefix))
        with _no_gc():
            for line, data in read_spans(path, sink.warnings, keep):
                sink.add(data, line)
            return sink.report(last=last)

    @classmethod
    def from_run(cls, run: Run, *, fold: bool = True, top: int = 0) -> RunReport:
        """Build the report from the records a `run()` block collected."""
        forest = Forest(fold=fold, top=top)
        for p in run.personas:
            node = ReportNode(
                kind=KIND_PERSONA,
                name=p.name,
                status=p.status.value,
                model=None,
                usage=p.subtree_usage,
                self_usage=ZERO_USAGE,
                budget=None,
                start_ns=round(p.start_time * 1e9),
                end_ns=round(p.end_time * 1e9),
                error=p.error,
                span_id=p.span_id,
                trace_id=p.trace_id,
            )
            forest.add(node, str(p.persona_id), None if p.parent_id is None else str(p.parent_id))
        for s in run.steps:
            node = ReportNode(
                kind=KIND_STEP,
                name=s.name,
                status=s.status.value,
                model=s.model,
                usage=s.subtree_usage,
                self_usage=s.usage,
                budget=s.budget,
                start_ns=round(s.start_time * 1e9),
                end_ns=round(s.end_time * 1e9),
                error=s.error,
                span_id=s.span_id,
                parent_span_id=s.parent_span_id,
                trace_id=s.trace_id,
            )
            forest.add(node, str(s.step_id), None if s.parent_id is None else str(s.parent_id))
        roots = forest.roots()
        return cls._build(roots, fold, forest.top(), [])

    @property
    def nodes(self) -> list[tuple[int, ReportNode]]:
        """Every node of the tree with its depth, depth first."""
        return [item for root in self.roots for item in root.walk()]

    @property
    def spans(self) -> list[tuple[int, ReportNode]]:
        """Every span with its depth, in tree order (parents before children)."""
        return [item for root in self.span_roots for item in root.walk()]

    @property
    def total(self) -> Usage:
        """What the whole run spent: the sum of every step's own usage."""
        total = ZERO_USAGE
        for node in walk_post(self.roots):
            if node.kind == KIND_STEP:
                total = total + node.self_usage
        return total

    @property
    def start_ns(self) -> int:
        """Start of the earliest span (0 when there is none)."""
        return min((n.start_ns for n in walk_post(self.span_roots)), default=0)

    @property
    def end_ns(self) -> int:
        """End of the latest span (0 when there is none)."""
        return max((n.end_ns for n in walk_post(self.span_roots)), default=0)

    @property
    def duration(self) -> float:
        """Wall-clock seconds from the first span's start to the last one's end."""
        return max(0, self.end_ns - self.start_ns) / 1e9

    def count(self, kind: str) -> int:
        """How many spans of a kind (``"step"``, ``"persona"``, ...) the tree stands for."""
        return sum(n.count for n in walk_post(self.roots) if n.kind == kind)

    def statuses(self) -> dict[str, int]:
        """How many steps ended in each status."""
        counts: dict[str, int] = {}
        for node in walk_post(self.roots):
            if node.kind == KIND_STEP and node.status is not None:
                counts[node.status] = counts.get(node.status, 0) + node.count
        return counts

    def by_model(self) -> list[Breakdown]:
        """What the steps spent themselves, by model; the most expensive first."""
        return self._breakdown(lambda node, persona: node.model)

    def by_persona(self) -> list[Breakdown]:
        """What the steps spent themselves, by the persona they ran under."""
        return self._breakdown(lambda node, persona: persona)

    def _breakdown(self, key: Any) -> list[Breakdown]:
        found: dict[str, Breakdown] = {}
        stack: list[tuple[ReportNode, str | None]] = [(r, None) for r in self.roots]
        while stack:
            node, persona = stack.pop()
            if node.kind == KIND_PERSONA:
                persona = node.name
            elif node.kind == KIND_STEP:
                name = key(node, persona) or "(none)"
                entry = found.setdefault(name, Breakdown(name, 0, ZERO_USAGE))
                entry.steps += node.count
                entry.usage = entry.usage + node.self_usage
            stack.extend((c, persona) for c in node.children)
        return sorted(
            found.values(), key=lambda b: (-b.usage.cost_nano_usd, -b.usage.total_tokens, b.name)
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: the totals and the tree (``--json`` prints this)."""
        total = self.total.to_dict()
        total["duration"] = self.duration
        data: dict[str, Any] = {
            "format": "agentsteps.report",
            "version": REPORT_VERSION,
            "personas": self.count(KIND_PERSONA),
            "steps": self.count(KIND_STEP),
            "statuses": self.statuses(),
            "total": total,
            "folded": self.folded,
            "by_model": [b.to_dict() for b in self.by_model()],
            "by_persona": [b.to_dict() for b in self.by_persona()],
            "warnings": self.warnings,
            "roots": [root.to_dict() for root in self.roots],
        }
        if self.top:
            data["top"] = [n.fields() for n in self.top]
        return data


def _sum_runs(roots: list[ReportNode]) -> None:
    """Give a run span (which records nothing itself) the usage of every step under it."""
    below: dict[int, Usage] = {}
    for node in walk_post(roots):
        total = ZERO_USAGE
        for child in node.children:
            total = total + below.pop(id(child))
        if node.kind == KIND_STEP:
            total = total + node.self_usage
        if node.kind == KIND_RUN:
            node.usage = total
        below[id(node)] = total


def load_spans(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """
    Read the spans of a JSONL trace file (all in memory: `RunReport.from_jsonl` streams).

    A line that is not valid JSON is skipped (a writer that crashed mid-line leaves one,
    docs/jsonl-format.md), as is a JSON line that is not a span.

    Raises:
        FileNotFoundError: There is no such file.
        InvalidTraceError: The file holds no span at all (the message says what was found).
    """
    return [data for _, data in read_spans(path, Warnings())]
