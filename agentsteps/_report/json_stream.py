"""The report as JSON, written in pieces without recursion, for trees of any depth."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, cast

__all__ = ["iter_json"]

_END = object()
_MAX_INDENT = 40  # levels: a deeper tree would make the output grow with depth squared


def _indent(depth: int) -> str:
    return "  " * min(depth, _MAX_INDENT)


def iter_json(value: Any) -> Iterator[str]:
    """
    ``value`` as indented JSON, in pieces, without recursion (``json.dumps`` recurses,
    and fails on a tree more than about 1,000 levels deep).
    """
    stack: list[tuple[Iterator[Any], bool, int, list[bool]]] = []

    def begin(item: Any, depth: int) -> str:
        if isinstance(item, dict) and item:
            stack.append((iter(item.items()), True, depth + 1, [True]))
            return "{"
        if isinstance(item, list) and item:
            stack.append((iter(item), False, depth + 1, [True]))
            return "["
        return json.dumps(item, allow_nan=False)

    yield begin(value, 0)
    while stack:
        items, is_dict, depth, first = stack[-1]
        item = next(items, _END)
        if item is _END:
            stack.pop()
            yield "\n" + _indent(depth - 1) + ("}" if is_dict else "]")
            continue
        lead = ("\n" if first[0] else ",\n") + _indent(depth)
        first[0] = False
        if is_dict:
            pair = cast(tuple[object, object], item)
            lead += json.dumps(str(pair[0])) + ": "
            item = pair[1]
        yield lead + begin(item, depth)
