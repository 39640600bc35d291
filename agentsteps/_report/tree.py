"""
The run report: a tree of personas and steps with what each spent, built from a trace.

The source of truth is a list of finished spans in the JSONL trace format
(docs/jsonl-format.md), so a report can be rebuilt from a saved file; a `Run` collected
in-process converts to the same tree. Renderers for the terminal and for JSON live in
`_report/render.py`, the HTML waterfall in `_report/html.py`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from .._accounting.budget import NANOS_PER_USD, Budget, usd_to_nanos
from .._accounting.usage import ZERO_USAGE, Usage
from .._core import attributes as A
from .._core.records import Run

__all__ = ["InvalidTraceError", "ReportNode", "RunReport", "load_spans"]

# Kinds of span in the tree. "run" is the root span `agentsteps run` opens around a script.
KIND_RUN = "run"
KIND_PERSONA = "persona"
KIND_STEP = "step"
KIND_LLM_CALL = A.KIND_LLM_CALL
KIND_OTHER = "span"
TREE_KINDS = frozenset({KIND_RUN, KIND_PERSONA, KIND_STEP})

FORMAT_VERSION = 1
"""The JSONL line format this reader understands (the ``"v"`` of each line)."""

REPORT_VERSION = 1
"""Version of the JSON report layout; bumped only when a key is removed or changes meaning."""

_REQUIRED = ("name", "span_id", "start_time_unix_nano", "end_time_unix_nano")


class InvalidTraceError(ValueError):
    """A file that should hold a JSONL trace does not (the message says why)."""


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
    """What it and everything under it spent."""
    self_usage: Usage
    """What it recorded itself (children excluded); summing these never counts twice."""
    budget: Budget | None
    """The step's own budget."""
    start_ns: int
    """Start, in nanoseconds since the epoch."""
    end_ns: int
    """End, in nanoseconds since the epoch."""
    error: str | None = None
    """``"ExceptionType: message"`` for a step that did not complete."""
    span_id: str | None = None
    """Hex span id (``None`` when built from an untraced `Run`)."""
    parent_span_id: str | None = None
    """Hex span id of the parent span."""
    trace_id: str | None = None
    """Hex trace id."""
    attributes: dict[str, Any] = attrs.field(factory=dict)
    """The span's attributes (empty when built from a `Run`)."""
    children: list[ReportNode] = attrs.field(factory=list)
    """Nested nodes, by start time."""

    @property
    def duration(self) -> float:
        """Seconds from start to end."""
        return max(0, self.end_ns - self.start_ns) / 1e9

    @property
    def budget_pct(self) -> float | None:
        """Highest share of any budget limit used, in percent; ``None`` without a budget."""
        return _budget_pct(self.budget, self.usage)

    def walk(self) -> Iterable[tuple[int, ReportNode]]:
        """This node and every node under it, depth first, with their depth."""
        stack: list[tuple[int, ReportNode]] = [(0, self)]
        while stack:
            depth, node = stack.pop()
            yield depth, node
            stack.extend((depth + 1, child) for child in reversed(node.children))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, children included."""
        return {
            "kind": self.kind,
            "name": self.name,
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
            "budget_pct": self.budget_pct,
            "start_time": self.start_ns / 1e9,
            "end_time": self.end_ns / 1e9,
            "duration": self.duration,
            "error": self.error,
            "trace_id": self.trace_id,
            "span_id": self.span_id,
            "children": [child.to_dict() for child in self.children],
        }


def _budget_pct(budget: Budget | None, usage: Usage) -> float | None:
    if budget is None or budget.is_unlimited:
        return None
    pcts = []
    if budget.max_tokens is not None:
        pcts.append(_pct(usage.total_tokens, budget.max_tokens))
    if budget.max_usd is not None:
        pcts.append(_pct(usage.cost_nano_usd, usd_to_nanos(budget.max_usd)))
    if budget.max_llm_calls is not None:
        pcts.append(_pct(usage.llm_calls, budget.max_llm_calls))
    return max(pcts)


def _pct(used: float, limit: float) -> float:
    if limit == 0:
        return 0.0 if used == 0 else float("inf")
    return 100.0 * used / limit


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

    @classmethod
    def from_spans(cls, spans: Iterable[Mapping[str, Any]]) -> RunReport:
        """Build the report from span dicts in the JSONL trace format."""
        nodes: dict[str, ReportNode] = {}
        parents: dict[str, str] = {}
        for data in spans:
            node = _node_from_span(data)
            key = f"{node.trace_id}/{node.span_id}"
            # A span exported twice (two exporters into one file) is kept once.
            if key not in nodes:
                nodes[key] = node
                parents[key] = f"{node.trace_id}/{node.parent_span_id}"
        everything = _link(nodes, parents, all_kinds=True)
        tree = _link({k: _shallow(n) for k, n in nodes.items()}, parents, all_kinds=False)
        for root in (*everything, *tree):
            _sum_runs(root)
        return cls(roots=tree, span_roots=everything)

    @classmethod
    def from_jsonl(cls, path: str | os.PathLike[str]) -> RunReport:
        """Build the report from a JSONL trace file (see `load_spans` for what fails)."""
        return cls.from_spans(load_spans(path))

    @classmethod
    def from_run(cls, run: Run) -> RunReport:
        """Build the report from the records a `run()` block collected."""
        nodes: dict[str, ReportNode] = {}
        parents: dict[str, str] = {}
        for p in run.personas:
            nodes[str(p.persona_id)] = ReportNode(
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
            parents[str(p.persona_id)] = str(p.parent_id)
        for s in run.steps:
            nodes[str(s.step_id)] = ReportNode(
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
            parents[str(s.step_id)] = str(s.parent_id)
        roots = _link(nodes, parents, all_kinds=True)
        return cls(roots=roots, span_roots=roots)

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
        for _, node in self.nodes:
            if node.kind == KIND_STEP:
                total = total + node.self_usage
        return total

    @property
    def start_ns(self) -> int:
        """Start of the earliest span (0 when there is none)."""
        return min((n.start_ns for _, n in self.spans), default=0)

    @property
    def end_ns(self) -> int:
        """End of the latest span (0 when there is none)."""
        return max((n.end_ns for _, n in self.spans), default=0)

    @property
    def duration(self) -> float:
        """Wall-clock seconds from the first span's start to the last one's end."""
        return max(0, self.end_ns - self.start_ns) / 1e9

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: the totals and the tree (``--json`` prints this)."""
        total = self.total.to_dict()
        total["duration"] = self.duration
        return {
            "format": "agentsteps.report",
            "version": REPORT_VERSION,
            "personas": self.count(KIND_PERSONA),
            "steps": self.count(KIND_STEP),
            "statuses": self.statuses(),
            "total": total,
            "roots": [root.to_dict() for root in self.roots],
        }

    def count(self, kind: str) -> int:
        """How many nodes of a kind (``"step"``, ``"persona"``, ...) the tree has."""
        return sum(1 for _, n in self.nodes if n.kind == kind)

    def statuses(self) -> dict[str, int]:
        """How many steps ended in each status."""
        counts: dict[str, int] = {}
        for _, node in self.nodes:
            if node.kind == KIND_STEP and node.status is not None:
                counts[node.status] = counts.get(node.status, 0) + 1
        return counts


def _sum_runs(root: ReportNode) -> None:
    """Give a run span (which records nothing itself) the usage of every step under it."""
    for _, node in root.walk():
        if node.kind == KIND_RUN:
            total = ZERO_USAGE
            for _, below in node.walk():
                if below.kind == KIND_STEP:
                    total = total + below.self_usage
            node.usage = total


def _shallow(node: ReportNode) -> ReportNode:
    return attrs.evolve(node, children=[])


def _link(
    nodes: dict[str, ReportNode], parents: Mapping[str, str], *, all_kinds: bool
) -> list[ReportNode]:
    """
    Attach every kept node to its nearest kept ancestor; return the roots, by start time.

    With ``all_kinds=False`` only runs, personas and steps are kept, and a step under an
    llm call or a foreign span hangs from the nearest persona or step above it.
    """
    roots: list[ReportNode] = []
    for key, node in nodes.items():
        if not all_kinds and node.kind not in TREE_KINDS:
            continue
        seen = {key}
        pkey = parents.get(key)
        parent = None if pkey is None else nodes.get(pkey)
        while parent is not None and not all_kinds and parent.kind not in TREE_KINDS:
            assert pkey is not None
            seen.add(pkey)
            pkey = parents.get(pkey)
            # A cycle in a malformed file: stop climbing and make the node a root.
            parent = None if pkey is None or pkey in seen else nodes.get(pkey)
        if parent is None or pkey in seen:
            roots.append(node)
        else:
            parent.children.append(node)
    # Nodes on a parent cycle (a malformed file) are reachable from no root: detach them.
    reached = {id(n) for root in roots for _, n in root.walk()}
    for node in nodes.values():
        if id(node) not in reached and (all_kinds or node.kind in TREE_KINDS):
            for other in nodes.values():
                if node in other.children:
                    other.children.remove(node)
            roots.append(node)
            reached.update(id(n) for _, n in node.walk())
    for node in nodes.values():
        node.children.sort(key=lambda n: n.start_ns)
    roots.sort(key=lambda n: n.start_ns)
    return roots


def _int(value: object) -> int:
    return value if type(value) is int and value >= 0 else 0


def _usage(attributes: Mapping[str, Any], names: Mapping[str, str]) -> Usage:
    cost = attributes.get(names["cost_usd"], 0)
    nanos = round(cost * NANOS_PER_USD) if isinstance(cost, (int, float)) else 0
    return Usage(
        input_tokens=_int(attributes.get(names["input_tokens"])),
        output_tokens=_int(attributes.get(names["output_tokens"])),
        cache_read_tokens=_int(attributes.get(names["cache_read_tokens"])),
        cache_write_tokens=_int(attributes.get(names["cache_write_tokens"])),
        reasoning_tokens=_int(attributes.get(names["reasoning_tokens"])),
        llm_calls=_int(attributes.get(names["llm_calls"])),
        unpriced_calls=_int(attributes.get(names["unpriced_calls"])),
        cost_nano_usd=max(0, nanos),
    )


def _budget(attributes: Mapping[str, Any]) -> Budget | None:
    tokens = attributes.get(A.BUDGET_MAX_TOKENS)
    usd = attributes.get(A.BUDGET_MAX_USD)
    calls = attributes.get(A.BUDGET_MAX_LLM_CALLS)
    if tokens is None and usd is None and calls is None:
        return None
    try:
        return Budget(max_tokens=tokens, max_usd=usd, max_llm_calls=calls)
    except (TypeError, ValueError):  # a hand-edited file: show no budget rather than fail
        return None


def _error(data: Mapping[str, Any]) -> str | None:
    for event in data.get("events") or ():
        attrs_ = event.get("attributes") or {}
        if event.get("name") in (A.EVENT_BUDGET_EXHAUSTED, "exception"):
            kind, message = attrs_.get("exception.type"), attrs_.get("exception.message")
            if kind:
                return f"{kind}: {message}" if message else str(kind)
    status = data.get("status") or {}
    return status.get("description") or None


def _node_from_span(data: Mapping[str, Any]) -> ReportNode:
    attributes = dict(data.get("attributes") or {})
    kind = attributes.get(A.KIND)
    if kind is None:
        # Step and persona spans carry no agentsteps.kind (one attribute less per span on
        # the hot path): their own name attributes say what they are.
        if A.STEP_NAME in attributes:
            kind = KIND_STEP
        elif A.PERSONA_NAME in attributes:
            kind = KIND_PERSONA
    if kind not in (KIND_RUN, KIND_PERSONA, KIND_STEP, KIND_LLM_CALL):
        kind = KIND_OTHER
    if kind == KIND_STEP:
        name = attributes.get(A.STEP_NAME, data["name"])
        status = attributes.get(A.STEP_STATUS)
    elif kind == KIND_PERSONA:
        name = attributes.get(A.PERSONA_NAME, data["name"])
        status = attributes.get(A.PERSONA_STATUS)
    else:
        name = data["name"]
        status = attributes.get(_RUN_STATUS)
        if status is None and kind != KIND_RUN:
            code = (data.get("status") or {}).get("code")
            status = "failed" if code == "ERROR" else None
    subtree = _usage(attributes, A.SUBTREE_USAGE)
    if subtree == ZERO_USAGE:
        subtree = _gen_ai_usage(attributes, kind)
    model = attributes.get(A.GEN_AI_RESPONSE_MODEL) or attributes.get(A.GEN_AI_REQUEST_MODEL)
    return ReportNode(
        kind=kind,
        name=str(name),
        status=None if status is None else str(status),
        model=None if model is None else str(model),
        usage=subtree,
        self_usage=_usage(attributes, A.SELF_USAGE) if kind == KIND_STEP else ZERO_USAGE,
        budget=_budget(attributes) if kind == KIND_STEP else None,
        start_ns=_int(data.get("start_time_unix_nano")),
        end_ns=_int(data.get("end_time_unix_nano")),
        error=_error(data) if status not in (None, "completed") else None,
        span_id=data.get("span_id"),
        parent_span_id=data.get("parent_span_id"),
        trace_id=data.get("trace_id"),
        attributes=attributes,
    )


_RUN_STATUS = "agentsteps.run.status"


def _gen_ai_usage(attributes: Mapping[str, Any], kind: str) -> Usage:
    """Usage of a span that carries the GenAI convention attributes (a model call)."""
    inp = _int(attributes.get(A.GEN_AI_USAGE_INPUT_TOKENS))
    out = _int(attributes.get(A.GEN_AI_USAGE_OUTPUT_TOKENS))
    if kind != KIND_LLM_CALL and not (inp or out):
        return ZERO_USAGE
    cost = attributes.get(A.LLM_CALL_COST_USD, 0)
    nanos = round(cost * NANOS_PER_USD) if isinstance(cost, (int, float)) else 0
    return Usage(
        input_tokens=inp,
        output_tokens=out,
        cache_read_tokens=_int(attributes.get(A.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS)),
        # Traces written before 0.1 used the draft name for cache writes.
        cache_write_tokens=_int(
            attributes.get(
                A.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS,
                attributes.get(A.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS),
            )
        ),
        reasoning_tokens=_int(attributes.get(A.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS)),
        llm_calls=1 if kind == KIND_LLM_CALL else 0,
        cost_nano_usd=max(0, nanos),
    )


def load_spans(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """
    Read the spans of a JSONL trace file.

    A line that is not valid JSON is skipped (a writer that crashed mid-line leaves one,
    docs/jsonl-format.md), as is a JSON line that is not a span.

    Raises:
        FileNotFoundError: There is no such file.
        InvalidTraceError: The file holds no span at all (the message says what was found).
    """
    spans: list[dict[str, Any]] = []
    first_problem: str | None = None
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, 1):
            if not raw.strip():
                continue
            try:
                data = json.loads(raw)
            except ValueError:
                first_problem = first_problem or f"line {number} is not JSON"
                continue
            if isinstance(data, dict) and data.get("v", FORMAT_VERSION) != FORMAT_VERSION:
                first_problem = first_problem or (
                    f"line {number} has format version {data.get('v')!r}; this agentsteps "
                    f"reads version {FORMAT_VERSION} (a newer agentsteps wrote it?)"
                )
            elif isinstance(data, dict) and all(k in data for k in _REQUIRED):
                spans.append(data)
            elif first_problem is None:
                first_problem = f"line {number} is JSON but not a span (no {_missing(data)!r})"
    if not spans:
        why = first_problem or "the file is empty"
        msg = f"{os.fspath(path)} is not a JSONL trace: {why}"
        raise InvalidTraceError(msg)
    return spans


def _missing(data: object) -> str:
    if not isinstance(data, dict):
        return "name"
    return next(k for k in _REQUIRED if k not in data)
