"""
Building a report's tree one span at a time, folding repeated siblings as they arrive.

Spans come in any order (a trace file holds children before their parents). Each span is
linked by id to its parent, created as a placeholder when it has not arrived yet. A span
whose kind, name and status match a sibling's (and that completed) is merged into that
sibling at once, children included, so a loop of 100,000 steps costs one node: memory
follows the folded shape of the run, plus one dictionary entry per span id (to link late
children and drop spans written twice).

Parent cycles in a malformed file are found in near-constant time per span with a
union-find over the nodes: a span whose parent is already below it becomes a root.
Nothing here recurses, so a tree of any depth works.
"""

from __future__ import annotations

import heapq
import operator
from collections.abc import Iterable
from typing import Any

import attrs

from .._accounting.usage import ZERO_USAGE, Usage
from .node import ReportNode, budget_pct

__all__ = ["Forest", "fold_key", "walk_post"]

KIND_RUN = "run"
KIND_PERSONA = "persona"
_FOLDABLE_STATUSES = (None, "completed")
FoldKey = tuple[str, str, str | None]


def fold_key(node: ReportNode) -> FoldKey | None:
    """What siblings must share to fold; ``None`` for a node that always keeps its row."""
    if node.kind == KIND_RUN or node.status not in _FOLDABLE_STATUSES or node.error:
        return None
    return (node.kind, node.name, node.status)


def _find(node: ReportNode) -> ReportNode:
    # Union-find with path halving: the representative of node's connected tree.
    while node.uf is not None:
        up = node.uf
        if up.uf is not None:
            node.uf = up.uf
        node = up
    return node


_FIGURES = operator.attrgetter(
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "llm_calls",
    "unpriced_calls",
    "cost_nano_usd",
)


def _sums(node: ReportNode) -> list[int]:
    """The usage and self usage of ``node`` as 16 integers (its running sums, if any)."""
    if node.acc is not None:
        return node.acc
    return [*_FIGURES(node.usage), *_FIGURES(node.self_usage)]


def _absorb(into: ReportNode, other: ReportNode) -> None:
    """Add ``other``'s figures (not its children) to ``into``."""
    busy = max(0, other.end_ns - other.start_ns) if other.busy_ns is None else other.busy_ns
    _add_figures(
        into, other.count, other.start_ns, other.end_ns, busy, _sums(other), other.budget_pct
    )
    if into.model is None:
        into.model = other.model


def _add_figures(
    into: ReportNode,
    count: int,
    start: int,
    end: int,
    busy: int,
    sums: list[int],
    pct: float | None,
) -> None:
    if into.busy_ns is None:
        into.busy_ns = max(0, into.end_ns - into.start_ns)
    into.busy_ns += busy
    into.count += count
    # Running integer sums, turned back into Usage once building ends (`sort_levels`):
    # adding frozen Usage objects cost two allocations per folded span.
    into.acc = list(map(operator.add, _sums(into), sums))
    into.start_ns = min(into.start_ns, start)
    into.end_ns = max(into.end_ns, end)
    if pct is not None and (into.budget_pct is None or pct > into.budget_pct):
        into.budget_pct = pct


class Forest:
    """
    Nodes linked by ``(trace id, span id)`` as they arrive; `roots` when done.

    Args:
        fold: Merge repeated siblings (``--expand`` turns this off).
        top: Keep the ``top`` steps that spent most themselves (cost, then tokens).
    """

    def __init__(self, *, fold: bool = True, top: int = 0) -> None:
        self.fold = fold
        self.top_n = top
        self._top: list[tuple[int, int, int, ReportNode]] = []
        self._seq = 0
        self._root = _placeholder()
        self._nodes: dict[str, ReportNode] = {}  # key -> live node (real or placeholder)
        self._placeholders: dict[str, tuple[int | None, str, int]] = {}
        self.duplicates = 0
        self.warnings: list[str] = []

    def fold_fields(self, fields: dict[str, Any], key: str, parent_key: str | None) -> bool:
        """
        Fold a span into a twin straight from its fields, without building its node (the
        common case of a long loop); ``False`` when it needs `add` instead.
        """
        if not self.fold or self.top_n or parent_key is None or parent_key == key:
            return False
        if key in self._nodes:
            return False  # its children came first, or it is written twice: see add()
        parent = self._nodes.get(parent_key)
        if parent is None or parent.index is None:
            return False
        status, error = fields["status"], fields["error"]
        if fields["kind"] == KIND_RUN or status not in _FOLDABLE_STATUSES or error:
            return False
        twin = parent.index.get((fields["kind"], fields["name"], status))
        if twin is None:
            return False
        start, end = fields["start_ns"], fields["end_ns"]
        usage, self_usage = fields["usage"], fields["self_usage"]
        _add_figures(
            twin,
            1,
            start,
            end,
            max(0, end - start),
            [*_FIGURES(usage), *_FIGURES(self_usage)],
            budget_pct(fields["budget"], usage),
        )
        if twin.model is None:
            twin.model = fields["model"]
        self._nodes[key] = twin  # late children and a second copy find the fold
        placeholder = self._placeholders.get(parent_key)
        if placeholder is not None:
            line, name, n = placeholder
            self._placeholders[parent_key] = (line, name, n + 1)
        return True

    def add(self, node: ReportNode, key: str, parent_key: str | None) -> None:
        """Link one node (its ``children`` must be empty) under the node named ``parent_key``."""
        known = self._nodes.get(key)
        if known is not None and key not in self._placeholders:
            self.duplicates += 1  # a span written twice (two exporters into one file)
            return
        self._keep_top(node)
        node.key = key
        if known is not None:
            # Children arrived first: take them over from the placeholder.
            del self._placeholders[key]
            node.children, node.index = known.children, known.index
            known.children, known.index = [], None
            known.uf = node
        self._nodes[key] = node
        if parent_key is None:
            self._attach(self._root, node, link=False)
            return
        if parent_key == key:
            self.warnings.append(
                _at(node.line, f"span {node.name!r} is its own parent; shown at the top level")
            )
            self._attach(self._root, node, link=False)
            return
        parent = self._nodes.get(parent_key)
        if parent is None:
            parent = self._nodes[parent_key] = _placeholder()
            self._placeholders[parent_key] = (node.line, node.name, 0)
        if parent_key in self._placeholders:
            line, name, n = self._placeholders[parent_key]
            self._placeholders[parent_key] = (line, name, n + 1)
        if _find(parent) is _find(node):
            # The parent is already below this span: a cycle. Break it here.
            self.warnings.append(
                _at(node.line, f"span {node.name!r} closes a parent cycle; shown at the top level")
            )
            self._attach(self._root, node, link=False)
            return
        self._attach(parent, node, link=True)

    def _attach(self, parent: ReportNode, node: ReportNode, *, link: bool) -> None:
        if link:
            _find(node).uf = _find(parent)
        self._add_child(parent, node)

    def _add_child(self, parent: ReportNode, node: ReportNode) -> None:
        """Append ``node`` to ``parent``'s children, folding it into a twin (iteratively)."""
        stack = [(parent, node)]
        while stack:
            parent, node = stack.pop()
            key = fold_key(node) if self.fold else None
            if parent is self._root and node.kind == KIND_PERSONA:
                key = None  # a persona at the top is one run of an agent: its own tree
            if parent.index is None:
                parent.index = {}
            twin = None if key is None else parent.index.get(key)
            if twin is None:
                parent.children.append(node)
                if key is not None:
                    parent.index[key] = twin = node
                continue
            _absorb(twin, node)
            self._forward(node, twin)
            children, node.children, node.index, node.attributes = node.children, [], None, {}
            stack.extend((twin, child) for child in children)

    def _forward(self, node: ReportNode, twin: ReportNode) -> None:
        # A late child of a folded span must find the fold.
        if node.key is not None and self._nodes.get(node.key) is node:
            self._nodes[node.key] = twin

    def _keep_top(self, node: ReportNode) -> None:
        if not self.top_n or node.kind != "step":
            return
        self._seq += 1
        rank = (node.self_usage.cost_nano_usd, node.self_usage.total_tokens, -self._seq)
        if len(self._top) == self.top_n and rank <= self._top[0][:3]:
            return
        # A copy without attributes or children: the heap must not keep the tree alive.
        entry = (*rank, attrs.evolve(node, attributes={}, children=[]))
        if len(self._top) < self.top_n:
            heapq.heappush(self._top, entry)
        else:
            heapq.heapreplace(self._top, entry)

    def top(self) -> list[ReportNode]:
        """The kept most expensive steps, most expensive first."""
        return [entry[3] for entry in sorted(self._top, key=lambda e: e[:3], reverse=True)]

    def roots(self) -> list[ReportNode]:
        """Finish: spans whose parent never arrived become roots; every level by start time."""
        for key, (line, name, n) in self._placeholders.items():
            holder = self._nodes.pop(key)
            more = f" (and {n - 1} more spans)" if n > 1 else ""
            parent = key.rpartition("/")[2]
            self.warnings.append(
                _at(
                    line,
                    f"span {name!r}{more} names parent span {parent!r}, which is not in "
                    "the trace; shown at the top level",
                )
            )
            for child in holder.children:
                self._add_child(self._root, child)
        self._placeholders.clear()
        if self.duplicates:
            self.warnings.append(
                f"{self.duplicates:,} spans appear twice in the trace (two exporters into one "
                "file?); each is counted once"
            )
        roots = self._root.children
        sort_levels(roots)
        return roots


def sort_levels(roots: list[ReportNode]) -> None:
    """Order every level by start time, settle the folds' sums, drop the builder's state."""
    roots.sort(key=lambda n: n.start_ns)
    stack = list(roots)
    while stack:
        node = stack.pop()
        if node.acc is not None:
            node.usage, node.self_usage = Usage(*node.acc[:8]), Usage(*node.acc[8:])
            node.acc = None
        node.index = None
        node.uf = None
        node.key = None
        node.children.sort(key=lambda n: n.start_ns)
        stack.extend(node.children)


def _placeholder() -> ReportNode:
    return ReportNode(
        kind="placeholder",
        name="",
        status=None,
        model=None,
        usage=ZERO_USAGE,
        self_usage=ZERO_USAGE,
        budget=None,
        start_ns=0,
        end_ns=0,
    )


def _at(line: int | None, message: str) -> str:
    return message if line is None else f"line {line}: {message}"


def walk_post(roots: Iterable[ReportNode]) -> Iterable[ReportNode]:
    """Every node, children before their parent (no recursion)."""
    stack: list[tuple[ReportNode, bool]] = [(r, False) for r in roots]
    while stack:
        node, done = stack.pop()
        if done:
            yield node
            continue
        stack.append((node, True))
        stack.extend((c, False) for c in node.children)


def hoist(span_roots: list[ReportNode], kinds: frozenset[str], *, fold: bool) -> list[ReportNode]:
    """
    A copy of the tree with only nodes of ``kinds``: the others are dropped and their
    children hang from the nearest kept ancestor (and fold with its children).
    """
    forest = Forest(fold=fold)
    top = forest._root
    stack: list[tuple[ReportNode, ReportNode]] = [(r, top) for r in reversed(span_roots)]
    while stack:
        node, target = stack.pop()
        if node.kind in kinds:
            copy = attrs.evolve(node, children=[], index=None, uf=None, key=None, acc=None)
            before = len(target.children)
            forest._add_child(target, copy)
            if len(target.children) > before:
                target = copy
            else:
                key = fold_key(copy)
                assert target.index is not None
                assert key is not None
                target = target.index[key]
        stack.extend((c, target) for c in reversed(node.children))
    roots = top.children
    sort_levels(roots)
    return roots
