"""The run report: building the tree from a trace or a Run, and rendering it as text/JSON."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import pytest

import agentsteps
from agentsteps import Budget, StepEscalated, persona, record_usage, step
from agentsteps._report.render import (
    CLI_RUNNING,
    format_cost,
    format_duration,
    render_json,
    render_text,
    write_report,
)
from agentsteps._report.tree import InvalidTraceError, RunReport, load_spans
from agentsteps._tracing.jsonl import span_to_dict

from .conftest import Spans

# -- a small agent, traced ----------------------------------------------------------------


@step(model="mini", budget=Budget(max_tokens=1_000))
def plan() -> None:
    record_usage(input_tokens=300, output_tokens=100, cost_usd=0.0002, cache_read_tokens=100)
    detail()


@step
def detail() -> None:
    record_usage(input_tokens=30, output_tokens=10, cost_usd=0.00002)


# Named "tests" for the report, but not a function pytest would collect as a test.
@step(name="tests", model="mini", budget=Budget(max_tokens=100), error_boundary="continue")
def run_tests() -> None:
    record_usage(input_tokens=300, output_tokens=100, cost_usd=0.0002)


@step(model="mini", budget=Budget(max_llm_calls=1), error_boundary="escalate")
def merge() -> None:
    record_usage(input_tokens=10, output_tokens=10, cost_usd=0.0001)
    record_usage(input_tokens=10, output_tokens=10, cost_usd=0.0001)


@persona(name="author")
def author() -> None:
    plan()
    run_tests()
    try:
        merge()
    except StepEscalated:
        pass


def traced_run(spans: Spans) -> tuple[list[dict[str, Any]], agentsteps.Run]:
    with agentsteps.run() as collected:
        author()
    # Through JSON and back, exactly as a saved trace file is read.
    dicts = [json.loads(json.dumps(span_to_dict(s))) for s in spans.all]
    return dicts, collected


def shape(report: RunReport) -> list[tuple[int, str, str | None, int, int, int, float | None]]:
    return [
        (depth, n.name, n.status, n.usage.total_tokens, n.usage.llm_calls, n.usage.cost_nano_usd,
         n.budget_pct)
        for depth, n in report.nodes
    ]  # fmt: skip


EXPECTED_SHAPE = [
    (0, "author", "completed", 880, 5, 620_000, None),
    (1, "plan", "completed", 440, 2, 220_000, 44.0),
    (2, "detail", "completed", 40, 1, 20_000, None),
    (1, "tests", "skipped", 400, 1, 200_000, 400.0),
    (1, "merge", "escalated", 40, 2, 200_000, 200.0),
]


class TestBuild:
    """Building the tree."""

    def test_from_spans_nests_personas_and_steps(self, spans: Spans) -> None:
        """Spans become a tree by parent id, with each node's subtree usage and budget use."""
        dicts, _ = traced_run(spans)
        assert shape(RunReport.from_spans(dicts)) == EXPECTED_SHAPE

    def test_from_run_gives_the_same_tree(self, spans: Spans) -> None:
        """A Run collected in-process builds the same tree as its trace."""
        _, collected = traced_run(spans)
        assert shape(RunReport.from_run(collected)) == EXPECTED_SHAPE

    def test_from_run_without_tracing(self) -> None:
        """With tracing off, a Run still gives the full tree (ids link the records)."""
        with agentsteps.run() as collected:
            author()
        assert shape(RunReport.from_run(collected)) == EXPECTED_SHAPE

    def test_total_counts_every_record_once(self, spans: Spans) -> None:
        """The total is the sum of the steps' own usage: the Run's total, nothing twice."""
        dicts, collected = traced_run(spans)
        report = RunReport.from_spans(dicts)
        assert report.total == collected.total
        assert report.total.llm_calls == 5

    def test_counts_and_statuses(self, spans: Spans) -> None:
        """The report counts personas and steps and how the steps ended."""
        dicts, _ = traced_run(spans)
        report = RunReport.from_spans(dicts)
        assert (report.count("persona"), report.count("step")) == (1, 4)
        assert report.statuses() == {"completed": 2, "skipped": 1, "escalated": 1}

    def test_errors_of_steps_that_did_not_complete(self, spans: Spans) -> None:
        """A skipped or escalated step carries the exhaustion message; completed ones none."""
        dicts, _ = traced_run(spans)
        errors = {n.name: n.error for _, n in RunReport.from_spans(dicts).nodes}
        assert errors["plan"] is None
        assert errors["tests"] == (
            "StepBudgetExhausted: step 'tests' exceeded max_tokens budget (400 > 100 tokens)"
        )
        assert errors["merge"] == (
            "agentsteps.StepEscalated: step 'merge' exceeded max_llm_calls budget (2 > 1 calls)"
        )

    def test_foreign_and_llm_spans_stay_out_of_the_tree(self, spans: Spans) -> None:
        """Other spans are in the waterfall only; steps under them hang from the nearest
        persona or step above."""
        tracer = spans.provider.get_tracer("http-client")

        @persona(name="p")
        def agent() -> None:
            with tracer.start_as_current_span("POST /v1/chat"):
                detail()

        agent()
        dicts = [span_to_dict(s) for s in spans.all]
        report = RunReport.from_spans(dicts)
        assert [(d, n.name) for d, n in report.nodes] == [(0, "p"), (1, "detail")]
        assert [(d, n.name, n.kind) for d, n in report.spans] == [
            (0, "p", "persona"),
            (1, "POST /v1/chat", "span"),
            (2, "detail", "step"),
            (3, "chat", "llm_call"),  # detail's record_usage, a model call without a model
        ]

    def test_llm_call_usage_from_gen_ai_attributes(self) -> None:
        """An llm call span's usage is read from the GenAI convention attributes."""
        span = _span("chat m", "1", None, kind="llm_call")
        span["attributes"].update(
            {
                "gen_ai.usage.input_tokens": 12,
                "gen_ai.usage.output_tokens": 3,
                "gen_ai.usage.cache_read.input_tokens": 8,
                "agentsteps.usage.cost_usd": 0.25,
            }
        )
        ((_, node),) = RunReport.from_spans([span]).spans
        u = node.usage
        assert node.kind == "llm_call"
        assert (u.input_tokens, u.output_tokens, u.cache_read_tokens) == (12, 3, 8)
        assert (u.llm_calls, u.cost_nano_usd) == (1, 250_000_000)

    def test_a_span_written_twice_counts_once(self, spans: Spans) -> None:
        """Two exporters writing to one file duplicate lines; the report keeps one of each."""
        dicts, collected = traced_run(spans)
        report = RunReport.from_spans(dicts + dicts)
        assert shape(report) == EXPECTED_SHAPE
        assert report.total == collected.total

    def test_parent_cycle_in_a_malformed_file_terminates(self) -> None:
        """Spans that name each other as parents become roots instead of looping forever."""
        a = _span("a", "1", "2")
        b = _span("b", "2", "1")
        report = RunReport.from_spans([a, b])
        assert sorted(n.name for _, n in report.nodes) == ["a", "b"]
        assert sorted(n.name for _, n in report.spans) == ["a", "b"]

    def test_run_root_sums_the_steps_under_it(self) -> None:
        """The root span of `agentsteps run` shows the usage of every step under it."""
        root = _span("agentsteps run x.py", "1", None, kind="run")
        child = _span("s", "2", "1", kind="step")
        child["attributes"].update(
            {"agentsteps.usage.self.input_tokens": 5, "agentsteps.usage.subtree.input_tokens": 5}
        )
        report = RunReport.from_spans([root, child])
        assert report.roots[0].usage.input_tokens == 5
        assert report.total.input_tokens == 5

    def test_to_dict_is_json_ready(self, spans: Spans) -> None:
        """The JSON form carries totals, counts and the tree with every figure."""
        dicts, _ = traced_run(spans)
        data = json.loads(render_json(RunReport.from_spans(dicts)))
        assert data["format"] == "agentsteps.report"
        assert data["version"] == 1
        assert (data["personas"], data["steps"]) == (1, 4)
        assert data["total"]["llm_calls"] == 5
        assert data["total"]["cost_usd"] == pytest.approx(0.00062)
        root = data["roots"][0]
        assert root["name"] == "author"
        assert [c["name"] for c in root["children"]] == ["plan", "tests", "merge"]
        plan_ = root["children"][0]
        assert plan_["budget"] == {"max_tokens": 1000, "max_usd": None, "max_llm_calls": None}
        assert plan_["budget_pct"] == 44.0
        assert plan_["cache_read_tokens"] == 100


def _span(
    name: str,
    span_id: str,
    parent: str | None,
    *,
    kind: str = "step",
    start: int = 0,
    end: int = 1_000_000,
    attributes: dict[str, Any] | None = None,
) -> dict[str, Any]:
    attrs = {"agentsteps.kind": kind, **(attributes or {})}
    if kind == "step":
        attrs.setdefault("agentsteps.step.name", name)
    return {
        "v": 1, "name": name, "trace_id": "t" * 32, "span_id": span_id,
        "parent_span_id": parent, "start_time_unix_nano": start, "end_time_unix_nano": end,
        "status": {"code": "UNSET", "description": None}, "attributes": attrs, "events": [],
    }  # fmt: skip


class TestLoad:
    """Reading JSONL trace files."""

    def test_skips_partial_and_foreign_lines(self, tmp_path: Path) -> None:
        """A line cut short by a crashed writer, or JSON that is no span, is skipped."""
        path = tmp_path / "t.jsonl"
        good = json.dumps(_span("a", "1", None))
        path.write_text(f'{good}\n{{"name": "cut sho\n[1, 2]\n\n{good}\n', encoding="utf-8")
        assert [s["name"] for s in load_spans(path)] == ["a", "a"]

    @pytest.mark.parametrize(
        ("content", "why"),
        [
            ("", "the file is empty"),
            ("hello\n", "line 1 is not JSON"),
            ('{"a": 1}\n', "line 1 is JSON but not a span (no 'name')"),
            ('\n{"name": "x"}\n', "line 2 is JSON but not a span (no 'span_id')"),
            ("[1]\n", "line 1 is JSON but not a span (no 'name')"),
            (
                '{"v": 2, "name": "x"}\n',
                "line 1 has format version 2; this agentsteps reads version 1 "
                "(a newer agentsteps wrote it?)",
            ),
        ],
    )
    def test_a_file_without_spans_is_not_a_trace(
        self, tmp_path: Path, content: str, why: str
    ) -> None:
        """The error names the file and the first thing that was wrong in it."""
        path = tmp_path / "t.jsonl"
        path.write_text(content, encoding="utf-8")
        with pytest.raises(
            InvalidTraceError, match=re.escape(f"{path} is not a JSONL trace: {why}")
        ):
            load_spans(path)

    def test_binary_file_is_not_a_trace(self, tmp_path: Path) -> None:
        """Bytes that are not text at all are reported the same way."""
        path = tmp_path / "t.png"
        path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe")
        with pytest.raises(InvalidTraceError, match="line 1 is not JSON"):
            load_spans(path)

    def test_missing_file(self, tmp_path: Path) -> None:
        """A missing file raises FileNotFoundError."""
        with pytest.raises(FileNotFoundError):
            load_spans(tmp_path / "nope.jsonl")

    def test_from_jsonl(self, tmp_path: Path, spans: Spans) -> None:
        """from_jsonl reads a file written line by line in the trace format."""
        dicts, _ = traced_run(spans)
        path = tmp_path / "t.jsonl"
        path.write_text("".join(json.dumps(d) + "\n" for d in dicts), encoding="utf-8")
        assert shape(RunReport.from_jsonl(path)) == EXPECTED_SHAPE


def _usage(which: str, **figures: float) -> dict[str, float]:
    return {f"agentsteps.usage.{which}.{k}": v for k, v in figures.items()}


# A hand-made trace with fixed times, for exact renderings.
REVIEW = {"input_tokens": 1000, "output_tokens": 200, "cache_read_tokens": 800,
          "cost_usd": 0.0023, "llm_calls": 2}  # fmt: skip
SUMMARIZE = {"input_tokens": 200, "output_tokens": 100, "cost_usd": 0.01, "llm_calls": 1}
GOLDEN_SPANS = [
    _span("reviewer", "p", None, kind="persona", start=0, end=2_500_000_000, attributes={
        "agentsteps.persona.name": "reviewer", "agentsteps.persona.status": "completed",
        **_usage("subtree", input_tokens=1200, output_tokens=300, cache_read_tokens=800,
                 cost_usd=0.0123, llm_calls=3),
    }),
    _span("review", "s1", "p", start=1_000_000, end=1_500_000_000, attributes={
        "agentsteps.step.status": "completed", "gen_ai.response.model": "scripted-mini",
        "agentsteps.budget.max_tokens": 2000,
        **_usage("subtree", **REVIEW), **_usage("self", **REVIEW),
    }),
    _span("summarize", "s2", "p", start=1_500_000_000, end=2_400_000_000, attributes={
        "agentsteps.step.status": "skipped", "gen_ai.request.model": "scripted-pro",
        "agentsteps.budget.max_usd": 0.005,
        **_usage("subtree", **SUMMARIZE), **_usage("self", **SUMMARIZE),
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

GOLDEN_TEXT = """\
agentsteps report: 1 persona, 2 steps (1 completed, 1 skipped), 3 LLM calls, 1,500 tokens, $0.0123, 2.50s

name                status     model             in  out  cached     cost  calls  budget   time
-----------------------------------------------------------------------------------------------
reviewer (persona)  completed                 1,200  300     800  $0.0123      3          2.50s
├─ review           completed  scripted-mini  1,000  200     800  $0.0023      2     60%  1.50s
└─ summarize        skipped    scripted-pro     200  100       -  $0.0100      1    200%  900ms
-----------------------------------------------------------------------------------------------
total                                         1,200  300     800  $0.0123      3          2.50s

notes:
  summarize skipped: StepBudgetExhausted: step 'summarize' exceeded max_usd budget ($0.0100 > $0.0050)
"""  # noqa: E501


class TestRenderText:
    """The plain-text renderer."""

    def test_golden(self) -> None:
        """Headline, aligned table with the tree in its first column, totals and notes."""
        assert render_text(RunReport.from_spans(GOLDEN_SPANS)) == GOLDEN_TEXT

    def test_ascii_guides(self) -> None:
        """Where box-drawing characters cannot be encoded, the tree uses ASCII."""
        text = render_text(RunReport.from_spans(GOLDEN_SPANS), ascii_only=True)
        assert "|- review" in text
        assert "`- summarize" in text
        text.encode("ascii")

    def test_no_colour_unless_asked(self) -> None:
        """Plain text has no escape codes; with colour on, status words are coloured."""
        report = RunReport.from_spans(GOLDEN_SPANS)
        assert "\x1b[" not in render_text(report)
        coloured = render_text(report, color=True)
        assert "\x1b[32mcompleted\x1b[0m" in coloured
        assert "\x1b[33mskipped  \x1b[0m" in coloured

    def test_empty_report(self) -> None:
        """A run without personas or steps says so."""
        report = RunReport.from_spans([_span("GET /", "1", None, kind="http")])
        assert render_text(report).splitlines()[1] == "(no persona or step ran)"

    def test_long_names_are_cut(self) -> None:
        """A very long step name is shortened so the table stays readable."""
        report = RunReport.from_spans([_span("x" * 80, "1", None)])
        first_row = render_text(report).splitlines()[4]
        assert first_row.startswith("x" * 47 + "…")

    @pytest.mark.parametrize(
        ("usd", "text"),
        [
            (0, "$0"),
            (0.00001, "<$0.0001"),
            (0.01234, "$0.0123"),
            (12.5, "$12.50"),
            (1234, "$1,234.00"),
        ],
    )
    def test_format_cost(self, usd: float, text: str) -> None:
        """Costs get enough decimals to tell small amounts apart."""
        assert format_cost(usd) == text

    @pytest.mark.parametrize(
        ("seconds", "text"),
        [(0.00001, "<0.1ms"), (0.0005, "0.5ms"), (0.012, "12ms"), (1.5, "1.50s"), (185, "3m05s")],
    )
    def test_format_duration(self, seconds: float, text: str) -> None:
        """Durations are short and human."""
        assert format_duration(seconds) == text


class _Tty(io.StringIO):
    encoding = "utf-8"

    def isatty(self) -> bool:
        return True


class TestWriteReport:
    """Choosing the renderer for a stream."""

    def test_plain_for_a_file(self) -> None:
        """A non-terminal stream gets plain text."""
        out = io.StringIO()
        write_report(RunReport.from_spans(GOLDEN_SPANS), out)
        assert "\x1b[" not in out.getvalue()
        assert "summarize" in out.getvalue()

    def test_rich_on_a_terminal(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A terminal gets the coloured table (rich), with the same rows and notes."""
        pytest.importorskip("rich")
        monkeypatch.delenv("NO_COLOR", raising=False)
        out = _Tty()
        write_report(RunReport.from_spans(GOLDEN_SPANS), out)
        text = out.getvalue()
        assert "\x1b[" in text
        plain = re.sub(r"\x1b\[[0-9;]*m", "", text)
        assert "├─ review" in plain
        assert "└─ summarize" in plain
        assert "summarize skipped: StepBudgetExhausted" in plain

    def test_rich_never_squeezes_figures(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """On a terminal narrower than the table, no figure is cut to an ellipsis."""
        pytest.importorskip("rich")
        monkeypatch.delenv("NO_COLOR", raising=False)
        monkeypatch.setenv("COLUMNS", "40")
        out = _Tty()
        write_report(RunReport.from_spans(GOLDEN_SPANS), out)
        plain = re.sub(r"\x1b\[[0-9;]*m", "", out.getvalue())
        assert "…" not in plain
        assert "scripted-mini  1,000  200     800  $0.0023      2     60%  1.50s" in plain

    def test_no_color_env(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """NO_COLOR turns colour off even on a terminal."""
        monkeypatch.setenv("NO_COLOR", "1")
        out = _Tty()
        write_report(RunReport.from_spans(GOLDEN_SPANS), out)
        assert "\x1b[" not in out.getvalue()

    def test_ascii_stream(self) -> None:
        """A stream that cannot encode box drawing gets the ASCII tree."""
        raw = io.BytesIO()
        out = io.TextIOWrapper(raw, encoding="ascii")
        write_report(RunReport.from_spans(GOLDEN_SPANS), out)
        out.flush()
        assert b"|- review" in raw.getvalue()

    def test_json(self) -> None:
        """as_json writes the JSON document."""
        out = io.StringIO()
        write_report(RunReport.from_spans(GOLDEN_SPANS), out, as_json=True)
        assert json.loads(out.getvalue())["total"]["llm_calls"] == 3


class TestPrintReport:
    """The public print_report."""

    def test_from_a_run(self, capsys: pytest.CaptureFixture[str]) -> None:
        """A collected Run prints as the report, on stdout by default."""
        with agentsteps.run() as collected:
            author()
        agentsteps.print_report(collected)
        out = capsys.readouterr().out
        assert out.startswith("agentsteps report: 1 persona, 4 steps")
        assert "merge escalated: StepEscalated" in out

    def test_from_a_file_as_json(self, tmp_path: Path) -> None:
        """A trace file path works too, and json=True prints JSON to the given file."""
        path = tmp_path / "t.jsonl"
        path.write_text("".join(json.dumps(s) + "\n" for s in GOLDEN_SPANS), encoding="utf-8")
        out = io.StringIO()
        agentsteps.print_report(path, file=out, json=True)
        assert json.loads(out.getvalue())["steps"] == 2

    def test_silent_under_the_cli(self, capsys: pytest.CaptureFixture[str]) -> None:
        """Under `agentsteps run`, which prints the whole run's report, it prints nothing."""
        with agentsteps.run() as collected:
            author()
        CLI_RUNNING.set()
        try:
            agentsteps.print_report(collected)
        finally:
            CLI_RUNNING.clear()
        assert capsys.readouterr().out == ""
