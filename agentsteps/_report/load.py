"""
Reading a JSONL trace file line by line into report nodes, warning about what is wrong.

A report must come out of any file a crashed, hand-edited or foreign writer left: each
damaged line or value gives a one-line warning naming its line, and the rest of the
report is built. Only a file with no span at all is an error (`InvalidTraceError`).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from .._accounting.budget import NANOS_PER_USD, Budget, usd_to_nanos
from .._accounting.usage import ZERO_USAGE, Usage
from .._core import attributes as A
from .node import ReportNode

__all__ = ["InvalidTraceError", "Warnings", "node_from_span", "read_spans", "span_fields"]

KIND_RUN = "run"
KIND_PERSONA = "persona"
KIND_STEP = "step"
KIND_LLM_CALL = A.KIND_LLM_CALL
KIND_OTHER = "span"
RUN_STATUS = "agentsteps.run.status"

FORMAT_VERSION = 1
"""The JSONL line format this reader understands (the ``"v"`` of each line)."""

MAX_COST_USD = 1e9
"""A cost above this (a billion dollars for one span) is taken for a damaged value."""

_REQUIRED = ("name", "span_id", "start_time_unix_nano", "end_time_unix_nano")
_BUDGET_ERRORS = ("StepBudgetExhausted", "StepEscalated")


class InvalidTraceError(ValueError):
    """A file that should hold a JSONL trace does not (the message says why)."""


class Warnings:
    """One-line warnings, the first `keep` of them kept (a damaged file may have millions)."""

    def __init__(self, keep: int = 200) -> None:
        self.keep = keep
        self.lines: list[str] = []
        self.dropped = 0

    def add(self, line: int | None, message: str) -> None:
        """Note a problem found at ``line`` of the file (``None``: not tied to a line)."""
        if len(self.lines) < self.keep:
            self.lines.append(message if line is None else f"line {line}: {message}")
        else:
            self.dropped += 1

    def all(self) -> list[str]:
        """The kept warnings, with a last line counting the others."""
        more = [f"... and {self.dropped:,} more warnings"] if self.dropped else []
        return self.lines + more


def read_spans(
    path: str | os.PathLike[str], warn: Warnings, keep: Callable[[str], bool] | None = None
) -> Iterator[tuple[int, dict[str, Any]]]:
    """
    Yield ``(line number, span)`` for each span line of a JSONL trace file, in one pass.

    Lines that are not JSON (a writer that crashed mid-line leaves one) or not spans are
    skipped with a warning. ``keep`` filters on the trace id before anything else is read.

    Raises:
        FileNotFoundError: There is no such file.
        InvalidTraceError: The file holds no span at all (the message says what was found).
    """
    found = False
    first_problem: str | None = None
    # raw_decode on text lines: json.loads would detect the encoding of every line again.
    decode = json.JSONDecoder().raw_decode
    with open(path, encoding="utf-8", errors="replace", newline="\n") as fh:
        for number, raw in enumerate(fh, 1):
            problem = None
            try:
                data, end = decode(raw)
                if raw[end:].strip():
                    msg = "text after the JSON value"
                    raise ValueError(msg)
            except (ValueError, RecursionError):
                if not raw.strip():
                    continue
                data = None
                problem = f"line {number} is not JSON"
            if problem is None:
                if type(data) is dict and data.get("v", FORMAT_VERSION) != FORMAT_VERSION:
                    problem = (
                        f"line {number} has format version {data.get('v')!r}; this agentsteps "
                        f"reads version {FORMAT_VERSION} (a newer agentsteps wrote it?)"
                    )
                elif (
                    type(data) is dict
                    and "name" in data
                    and "span_id" in data
                    and "start_time_unix_nano" in data
                    and "end_time_unix_nano" in data
                ):
                    found = True
                    if keep is None or keep(str(data.get("trace_id") or "")):
                        yield number, data
                    continue
                else:
                    problem = f"line {number} is JSON but not a span (no {_missing(data)!r})"
            first_problem = first_problem or problem
            if not raw.endswith("\n"):
                problem += " (cut short: the writer stopped mid-line?)"
            warn.add(None, problem + "; skipped")
    if not found:
        why = first_problem or "the file is empty"
        msg = f"{os.fspath(path)} is not a JSONL trace: {why}"
        raise InvalidTraceError(msg)


def _missing(data: object) -> str:
    if not isinstance(data, dict):
        return "name"
    return next(k for k in _REQUIRED if k not in data)


def node_from_span(data: Mapping[str, Any], line: int | None, warn: Warnings) -> ReportNode:
    """The report node of one span dict, with damaged values replaced and warned about."""
    return ReportNode(**span_fields(data, line, warn))


def span_fields(data: Mapping[str, Any], line: int | None, warn: Warnings) -> dict[str, Any]:
    """`node_from_span`'s fields, for a caller that may fold them without a node."""
    raw_attributes = data.get("attributes")
    name = data.get("name")
    if not isinstance(raw_attributes, dict):
        if raw_attributes is not None:
            warn.add(
                line,
                f"span {name!r}: attributes are a {type(raw_attributes).__name__}, "
                "not an object; ignored",
            )
        raw_attributes = {}
    attributes: dict[str, Any] = raw_attributes
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
    status_obj = data.get("status")
    span_status: Mapping[str, Any] = status_obj if isinstance(status_obj, dict) else {}
    if kind == KIND_STEP:
        name = attributes.get(A.STEP_NAME, name)
        status = attributes.get(A.STEP_STATUS)
    elif kind == KIND_PERSONA:
        name = attributes.get(A.PERSONA_NAME, name)
        status = attributes.get(A.PERSONA_STATUS)
    else:
        status = attributes.get(RUN_STATUS)
        if status is None and kind != KIND_RUN and span_status.get("code") == "ERROR":
            status = "failed"
    name = str(name)
    bad: list[str] = []
    subtree = _usage(attributes, A.SUBTREE_USAGE, bad)
    if subtree == ZERO_USAGE:
        subtree = _gen_ai_usage(attributes, kind, bad)
    self_usage = _usage(attributes, A.SELF_USAGE, bad) if kind == KIND_STEP else ZERO_USAGE
    if bad:
        warn.add(line, f"span {name!r}: {', '.join(sorted(set(bad)))}; counted as 0")
    start, end = _times(data, name, line, warn)
    model = attributes.get(A.GEN_AI_RESPONSE_MODEL) or attributes.get(A.GEN_AI_REQUEST_MODEL)
    error = _error(data, span_status) if status not in (None, "completed") else None
    if kind == KIND_LLM_CALL and status == "failed" and error and _is_budget_stop(error):
        # The call itself succeeded; its step's budget boundary stopped the step.
        status = "stopped"
    return dict(  # noqa: C408 - the keyword form reads as the ReportNode fields it is
        kind=str(kind),
        name=name,
        status=None if status is None else str(status),
        model=None if model is None else str(model),
        usage=subtree,
        self_usage=self_usage,
        budget=_budget(attributes) if kind == KIND_STEP else None,
        start_ns=start,
        end_ns=end,
        error=error,
        span_id=_id(data.get("span_id")),
        parent_span_id=_id(data.get("parent_span_id")),
        trace_id=_id(data.get("trace_id")),
        attributes=attributes,
        line=line,
    )


def _is_budget_stop(error: str) -> bool:
    kind = error.partition(":")[0].rsplit(".", 1)[-1]
    return kind in _BUDGET_ERRORS


def _id(value: object) -> str | None:
    return None if value is None or value == "" else str(value)


def _times(data: Mapping[str, Any], name: str, line: int | None, warn: Warnings) -> tuple[int, int]:
    start, end = data.get("start_time_unix_nano"), data.get("end_time_unix_nano")
    good_start, good_end = _is_time(start), _is_time(end)
    if not (good_start and good_end):
        which = "start_time_unix_nano" if not good_start else "end_time_unix_nano"
        value = start if not good_start else end
        warn.add(
            line,
            f"span {name!r}: {which} is {value!r}, not a time in nanoseconds; "
            "its duration is taken as 0",
        )
        when = start if good_start else end if good_end else 0
        assert isinstance(when, int)
        return when, when
    assert isinstance(start, int)
    assert isinstance(end, int)
    if end < start:
        warn.add(
            line,
            f"span {name!r} ends {(start - end) / 1e9:.3f}s before it starts; "
            "its duration is taken as 0",
        )
        end = start
    return start, end


def _is_time(value: object) -> bool:
    return type(value) is int and 0 <= value < 2**63


def _int(value: object, name: str, bad: list[str]) -> int:
    if value is None:
        return 0
    if type(value) is int and value >= 0:
        return value
    bad.append(f"{name} is {value!r}")
    return 0


def _cost_nanos(value: object, name: str, bad: list[str]) -> int:
    if value is None:
        return 0
    if (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and 0 <= value <= MAX_COST_USD
    ):
        return round(value * NANOS_PER_USD)
    bad.append(f"{name} is {value!r}, not a cost in dollars")
    return 0


_INT_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "llm_calls",
    "unpriced_calls",
)
_KEYS = {
    id(names): (tuple(names[f] for f in _INT_FIELDS), names["cost_usd"])
    for names in (A.SELF_USAGE, A.SUBTREE_USAGE)
}


def _usage(attributes: Mapping[str, Any], names: Mapping[str, str], bad: list[str]) -> Usage:
    # The hot loop of a large report: C-level map/set/min instead of a loop per field.
    int_keys, cost_key = _KEYS[id(names)]
    found = list(map(attributes.get, int_keys))
    cost = attributes.get(cost_key)
    if cost is None and found.count(None) == len(found):
        return ZERO_USAGE
    values = [0 if v is None else v for v in found]
    if set(map(type, values)) != {int} or min(values) < 0:
        values = [_int(v, k, bad) for v, k in zip(found, int_keys, strict=True)]
    values.append(_cost_nanos(cost, cost_key, bad))
    return _cached_usage(tuple(values))


_USAGES: dict[tuple[int, ...], Usage] = {}


def _cached_usage(values: tuple[int, ...]) -> Usage:
    # A loop's spans repeat the same figures, and building a frozen Usage costs more than
    # looking one up: keep the recent ones (Usage is immutable, so sharing is safe).
    usage = _USAGES.get(values)
    if usage is None:
        if len(_USAGES) > 4096:
            _USAGES.clear()
        usage = _USAGES[values] = Usage(*values)
    return usage


def _gen_ai_usage(attributes: Mapping[str, Any], kind: str, bad: list[str]) -> Usage:
    """Usage of a span that carries the GenAI convention attributes (a model call)."""
    inp = _int(attributes.get(A.GEN_AI_USAGE_INPUT_TOKENS), A.GEN_AI_USAGE_INPUT_TOKENS, bad)
    out = _int(attributes.get(A.GEN_AI_USAGE_OUTPUT_TOKENS), A.GEN_AI_USAGE_OUTPUT_TOKENS, bad)
    if kind != KIND_LLM_CALL and not (inp or out):
        return ZERO_USAGE
    cache_read = A.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS
    # Traces written before 0.1 used the draft name for cache writes.
    cache_write = A.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS
    if cache_write not in attributes:
        cache_write = A.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS
    reasoning = A.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS
    return Usage(
        input_tokens=inp,
        output_tokens=out,
        cache_read_tokens=_int(attributes.get(cache_read), cache_read, bad),
        cache_write_tokens=_int(attributes.get(cache_write), cache_write, bad),
        reasoning_tokens=_int(attributes.get(reasoning), reasoning, bad),
        llm_calls=1 if kind == KIND_LLM_CALL else 0,
        cost_nano_usd=_cost_nanos(attributes.get(A.LLM_CALL_COST_USD), A.LLM_CALL_COST_USD, bad),
    )


_BUDGETS: dict[tuple[object, ...], Budget | None] = {}


def _budget(attributes: Mapping[str, Any]) -> Budget | None:
    tokens = attributes.get(A.BUDGET_MAX_TOKENS)
    usd = attributes.get(A.BUDGET_MAX_USD)
    calls = attributes.get(A.BUDGET_MAX_LLM_CALLS)
    if tokens is None and usd is None and calls is None:
        return None
    # A loop's steps share one budget: build (and validate) it once.
    key = (tokens, type(tokens), usd, type(usd), calls, type(calls))
    try:
        return _BUDGETS[key]
    except (KeyError, TypeError):  # TypeError: a list value, unhashable
        pass
    try:
        budget = Budget(max_tokens=tokens, max_usd=usd, max_llm_calls=calls)
        if budget.max_usd is not None:
            usd_to_nanos(budget.max_usd)  # 1e308 passes Budget but not the percentages
    except (TypeError, ValueError, OverflowError):  # a hand-edited file: show no budget
        budget = None
    if len(_BUDGETS) > 1024:
        _BUDGETS.clear()
    try:
        _BUDGETS[key] = budget
    except TypeError:
        pass
    return budget


def _error(data: Mapping[str, Any], status: Mapping[str, Any]) -> str | None:
    events = data.get("events")
    for event in events if isinstance(events, list) else ():
        if not isinstance(event, dict):
            continue
        found = event.get("attributes")
        attrs_ = found if isinstance(found, dict) else {}
        if event.get("name") in (A.EVENT_BUDGET_EXHAUSTED, "exception"):
            kind, message = attrs_.get("exception.type"), attrs_.get("exception.message")
            if kind:
                return f"{kind}: {message}" if message else str(kind)
    description = status.get("description")
    return None if not description else str(description)
