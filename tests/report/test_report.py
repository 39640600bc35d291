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
from agentsteps._report.formats import format_cost, format_duration
from agentsteps._report.render import (
    CLI_RUNNING,
    render_json,
    render_text,
    write_report,
)
from agentsteps._report.tree import InvalidTraceError, RunReport, load_spans
from agentsteps._tracing.jsonl import span_to_dict
from tests.support import Spans
from tests.support.trace_lines import GOLDEN_SPANS, span_line, usage_attributes

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
        span = span_line("chat m", "1", None, kind="llm_call")
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
        a = span_line("a", "1", "2")
        b = span_line("b", "2", "1")
        report = RunReport.from_spans([a, b])
        assert sorted(n.name for _, n in report.nodes) == ["a", "b"]
        assert sorted(n.name for _, n in report.spans) == ["a", "b"]

    def test_run_root_sums_the_steps_under_it(self) -> None:
        """The root span of `agentsteps run` shows the usage of every step under it."""
        root = span_line("agentsteps run x.py", "1", None, kind="run")
        child = span_line("s", "2", "1", kind="step")
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


class TestLoad:
    """Reading JSONL trace files."""

    def test_skips_partial_and_foreign_lines(self, tmp_path: Path) -> None:
        """A line cut short by a crashed writer, or JSON that is no span, is skipped."""
        path = tmp_path / "t.jsonl"
        good = json.dumps(span_line("a", "1", None))
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


GOLDEN_TEXT = """\
agentsteps report: 1 persona, 2 steps (1 completed, 1 skipped), 3 LLM calls, 1,500 tokens, $0.0123, 2.50s

by model       steps  calls  tokens  cached     cost
scripted-pro       1      1     300       -  $0.0100
scripted-mini      1      2   1,200     800  $0.0023
by persona     steps  calls  tokens  cached     cost
reviewer           2      3   1,500     800  $0.0123

name                status     model             in  out  cached     cost  calls  budget   time
-----------------------------------------------------------------------------------------------
reviewer (persona)  completed                 1,200  300     800  $0.0123      3          2.50s
├─ review           completed  scripted-mini  1,000  200     800  $0.0023      2     60%  1.50s
└─ summarize        skipped    scripted-pro     200  100       -  $0.0100      1   200%!  900ms
-----------------------------------------------------------------------------------------------
total                                         1,200  300     800  $0.0123      3          2.50s

notes:
  summarize skipped: StepBudgetExhausted: step 'summarize' exceeded max_usd budget ($0.0100 > $0.0050)
"""  # noqa: E501


class TestRenderText:
    """The plain-text renderer."""

    def test_golden(self) -> None:
        """Headline, spending by model and persona, the table with the tree in its first
        column (over-budget marked with '!'), totals and notes."""
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
        report = RunReport.from_spans([span_line("GET /", "1", None, kind="http")])
        assert render_text(report).splitlines()[1] == "(no persona or step ran)"

    def test_long_names_are_cut(self) -> None:
        """A very long step name is shortened so the table stays readable."""
        report = RunReport.from_spans([span_line("x" * 80, "1", None)])
        first_row = render_text(report).splitlines()[-3]
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

    def test_rich_fits_a_narrow_terminal(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """On a narrow terminal, columns are dropped (not figures squeezed): every line fits.

        (This replaces the old behaviour, which kept the table's natural width and let
        the terminal wrap every row: issue 16.)"""
        pytest.importorskip("rich")
        monkeypatch.delenv("NO_COLOR", raising=False)
        monkeypatch.setenv("COLUMNS", "40")
        out = _Tty()
        write_report(RunReport.from_spans(GOLDEN_SPANS), out)
        plain = re.sub(r"\x1b\[[0-9;]*m", "", out.getvalue())
        assert max(len(line) for line in plain.splitlines()) <= 40
        assert "├─ review         $0.0023     60%  1.50s" in plain
        assert "└─ summarize      $0.0100   200%!  900ms" in plain

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


# -- bounded reports: folding, --top, --expand, any depth ---------------------------------


def _loop_spans(n: int, *, failed_at: int | None = None) -> list[dict[str, Any]]:
    """A persona calling `leaf` n times, each with one model call; written children first."""
    out = []
    for i in range(n):
        status = "failed" if i == failed_at else "completed"
        usage = {"input_tokens": 10, "output_tokens": 5, "llm_calls": 1, "cost_usd": 0.001}
        leaf = span_line("leaf", f"l{i}", "p", start=10 * i + 1, end=10 * i + 9, attributes={
            "agentsteps.step.status": status, "gen_ai.request.model": "m",
            **usage_attributes("self", **usage),
            **usage_attributes("subtree", **usage)})  # fmt: skip
        if i == failed_at:
            leaf["events"] = [{"name": "exception", "attributes": {
                "exception.type": "ValueError", "exception.message": "bad input"}}]  # fmt: skip
        call = span_line("chat m", f"c{i}", f"l{i}", kind="llm_call", start=10 * i + 2,
                     end=10 * i + 8, attributes={"gen_ai.usage.input_tokens": 10,
                                                  "gen_ai.usage.output_tokens": 5})  # fmt: skip
        out += [call, leaf]
    persona = {"agentsteps.persona.name": "looper", "agentsteps.persona.status": "completed"}
    out.append(
        span_line("looper", "p", None, kind="persona", start=0, end=10 * n, attributes=persona)
    )
    return out


class TestFolding:
    """Repeated siblings fold into one row with a count and summed figures."""

    def test_a_loop_is_one_row(self) -> None:
        """1,000 calls of one step: one row `leaf x1,000`, totals exact, children folded."""
        report = RunReport.from_spans(_loop_spans(1000))
        assert [(d, n.name, n.count) for d, n in report.nodes] == [
            (0, "looper", 1),
            (1, "leaf", 1000),
        ]
        assert [(d, n.name, n.count) for d, n in report.spans] == [
            (0, "looper", 1),
            (1, "leaf", 1000),
            (2, "chat m", 1000),
        ]
        leaf = report.roots[0].children[0]
        assert (leaf.usage.total_tokens, leaf.usage.llm_calls) == (15_000, 1000)
        assert leaf.usage.cost_nano_usd == 1000 * 1_000_000
        assert leaf.duration == pytest.approx(1000 * 8e-9)
        assert report.total.llm_calls == 1000
        assert report.count("step") == 1000
        assert report.statuses() == {"completed": 1000}
        assert "leaf \u00d71,000" in render_text(report)

    def test_failures_keep_their_own_rows(self) -> None:
        """A step that failed is not folded with the others: it shows, with its error."""
        report = RunReport.from_spans(_loop_spans(50, failed_at=20))
        # The twenty before and the twenty-nine after the failure are one row.
        assert [(n.name, n.count, n.status) for _, n in report.nodes[1:]] == [
            ("leaf", 49, "completed"),
            ("leaf", 1, "failed"),
        ]
        text = render_text(report)
        assert "leaf failed: ValueError: bad input" in text
        assert report.statuses() == {"completed": 49, "failed": 1}

    def test_children_arriving_after_their_parent_was_folded(self) -> None:
        """A Run lists personas before steps: the steps of a folded persona find the fold."""

        @persona(name="inner")
        def inner() -> None:
            detail()

        @persona(name="outer")
        def outer() -> None:
            inner()
            inner()

        with agentsteps.run() as collected:
            outer()
        report = RunReport.from_run(collected)
        assert [(d, n.name, n.count) for d, n in report.nodes] == [
            (0, "outer", 1),
            (1, "inner", 2),
            (2, "detail", 2),
        ]
        assert report.total == collected.total
        assert report.count("step") == 2

    def test_personas_at_the_top_keep_their_own_trees(self) -> None:
        """Two runs of one agent are two trees (as two `agentsteps run` roots are)."""
        with agentsteps.run() as collected:
            author()
            author()
        report = RunReport.from_run(collected)
        assert [(n.name, n.count) for n in report.roots] == [("author", 1), ("author", 1)]

    def test_expand_keeps_every_span(self) -> None:
        """fold=False (--expand): one row per span."""
        report = RunReport.from_spans(_loop_spans(30), fold=False)
        assert len(report.nodes) == 31
        assert len(report.spans) == 61
        assert report.total == RunReport.from_spans(_loop_spans(30)).total

    def test_parent_first_order_folds_too(self) -> None:
        """Children written after their parent (another writer's order) fold the same way."""
        spans = _loop_spans(100)
        report = RunReport.from_spans(list(reversed(spans)))
        assert [(n.name, n.count) for _, n in report.spans] == [
            ("looper", 1),
            ("leaf", 100),
            ("chat m", 100),
        ]

    def test_top_lists_the_most_expensive_steps(self) -> None:
        """top=N keeps the N steps that spent most themselves, most expensive first."""
        spans = _loop_spans(10)
        spans[2 * 7 + 1]["attributes"]["agentsteps.usage.self.cost_usd"] = 0.5
        spans[2 * 3 + 1]["attributes"]["agentsteps.usage.self.cost_usd"] = 0.25
        report = RunReport.from_spans(spans, top=2)
        assert [(n.span_id, n.self_usage.cost_usd) for n in report.top] == [
            ("l7", 0.5),
            ("l3", 0.25),
        ]
        text = render_text(report)
        assert "top 2 steps by their own cost:" in text
        data = json.loads(render_json(report))
        assert [t["span_id"] for t in data["top"]] == ["l7", "l3"]

    def test_summary_by_model_and_persona(self) -> None:
        """The steps' own usage, by model and by the persona they ran under."""
        golden = [{**s, "trace_id": "a" * 32} for s in GOLDEN_SPANS]  # another trace
        report = RunReport.from_spans([*_loop_spans(4), *golden])
        by_model = {b.name: (b.steps, b.usage.llm_calls) for b in report.by_model()}
        assert by_model == {"m": (4, 4), "scripted-mini": (1, 2), "scripted-pro": (1, 1)}
        by_persona = {b.name: b.steps for b in report.by_persona()}
        assert by_persona == {"looper": 4, "reviewer": 2}
        data = json.loads(render_json(report))
        assert {b["name"] for b in data["by_model"]} == {"m", "scripted-mini", "scripted-pro"}

    @pytest.mark.parametrize("order", ["children-first", "parents-first"])
    def test_any_depth_without_recursion(self, order: str) -> None:
        """A chain 3,000 spans deep builds and renders as text, JSON and HTML."""
        depth = 3000
        spans = [
            span_line(f"s{i}", str(i), None if i == 0 else str(i - 1), start=i, end=2 * depth - i)
            for i in range(depth)
        ]
        if order == "children-first":
            spans.reverse()
        report = RunReport.from_spans(spans)
        assert len(report.nodes) == depth
        assert report.nodes[-1] == (depth - 1, report.nodes[-1][1])
        assert render_text(report).count("\n") > depth
        text = render_json(report)
        assert text.count('"children": [') == depth  # (json.loads itself recurses)
        assert text.count('"children": []') == 1
        from agentsteps._report.html import render_html

        assert render_html(report).count(f'"depth": {depth - 1}') == 1


class TestDamagedTraces:
    """A damaged trace gives warnings with line numbers and the rest of the report."""

    def write(self, tmp_path: Path, lines: list[str]) -> Path:
        path = tmp_path / "t.jsonl"
        path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        return path

    def test_bad_costs_count_as_zero_with_a_warning(self, tmp_path: Path) -> None:
        """NaN, Infinity, 1e308 and "NaN" costs: each warned about with its line; $0."""
        lines = []
        for i, cost in enumerate(["NaN", "Infinity", "1e308", '"NaN"', "-1.0", "0.5"]):
            span = span_line(f"s{i}", str(i), None)
            text = json.dumps(span)
            text = text.replace(
                '"agentsteps.kind": "step"',
                f'"agentsteps.kind": "step", "agentsteps.usage.self.cost_usd": {cost}',
            )
            lines.append(text)
        report = RunReport.from_jsonl(self.write(tmp_path, lines))
        assert report.total.cost_nano_usd == 500_000_000
        assert report.warnings == [
            f"line {n}: span 's{n - 1}': agentsteps.usage.self.cost_usd is {v}, not a cost "
            "in dollars; counted as 0"
            for n, v in [(1, "nan"), (2, "inf"), (3, "1e+308"), (4, "'NaN'"), (5, "-1.0")]
        ]
        json.loads(render_json(report))  # still valid JSON: no NaN in it

    def test_structural_damage(self, tmp_path: Path) -> None:
        """Non-object attributes, bad times, cycles, missing parents, a cut last line."""
        a = span_line("a", "a", "b", start=5, end=9)
        b = span_line("b", "b", "c", start=5, end=9)
        c = span_line("c", "c", "a", start=5, end=9)
        lines = [
            json.dumps({**span_line("attrs", "1", None), "attributes": [1, 2]}),
            json.dumps(span_line("backwards", "2", None, start=2_000_000_000, end=1_000_000_000)),
            json.dumps(span_line("notime", "3", None, start=5) | {"end_time_unix_nano": "soon"}),
            json.dumps(span_line("orphan", "4", "ffff")),
            json.dumps(a),
            json.dumps(b),
            json.dumps(c),
            json.dumps(span_line("self", "5", "5")),
        ]
        path = self.write(tmp_path, lines)
        with open(path, "a", encoding="utf-8") as fh:
            fh.write('{"v": 1, "name": "cut')
        report = RunReport.from_jsonl(path)
        assert report.warnings == [
            "line 1: span 'attrs': attributes are a list, not an object; ignored",
            "line 2: span 'backwards' ends 1.000s before it starts; its duration is taken as 0",
            "line 3: span 'notime': end_time_unix_nano is 'soon', not a time in nanoseconds; "
            "its duration is taken as 0",
            "line 9 is not JSON (cut short: the writer stopped mid-line?); skipped",
            "line 7: span 'c' closes a parent cycle; shown at the top level",
            "line 8: span 'self' is its own parent; shown at the top level",
            "line 4: span 'orphan' names parent span 'ffff', which is not in the trace; "
            "shown at the top level",
        ]
        names = sorted(n.name for _, n in report.spans)
        assert names == ["a", "attrs", "b", "backwards", "c", "notime", "orphan", "self"]

    def test_values_no_renderer_can_hold(self) -> None:
        """A 1e308 budget, NaN attributes, an empty parent id: every renderer still works."""
        from agentsteps._report.html import render_html

        weird = {"agentsteps.budget.max_usd": 1e308, "weird": float("nan"), "list": [1, [2]]}
        span = span_line("s", "1", "", attributes=weird)
        report = RunReport.from_spans([span])
        assert report.roots[0].budget is None  # no usable budget, rather than a crash
        assert report.warnings == []  # "" is no parent, not a missing one
        render_text(report)
        json.loads(render_json(report))
        page = render_html(report)
        data = re.search(r'id="agentsteps-data">(.*?)</script>', page)
        assert data is not None
        attributes = json.loads(data.group(1))["spans"][0]["attributes"]
        assert attributes["weird"] == "nan"
        assert attributes["list"] == "[1, [2]]"

    def test_a_long_cycle_terminates(self) -> None:
        """10,000 spans in one parent cycle: one warning, every span shown once."""
        n = 10_000
        spans = [span_line(f"s{i}", str(i), str((i + 1) % n)) for i in range(n)]
        report = RunReport.from_spans(spans)
        assert len(report.spans) == n
        assert len(report.warnings) == 1
        assert "closes a parent cycle" in report.warnings[0]

    def test_the_command_warns_and_reports(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """`agentsteps report` prints warnings on stderr, the report on stdout, exit 0."""
        from agentsteps._report.cli import main

        good = json.dumps({**GOLDEN_SPANS[1], "parent_span_id": None})
        bad = json.dumps({**span_line("odd", "9", None), "end_time_unix_nano": -1})
        path = self.write(tmp_path, [good, bad, "not json"])
        assert main(["report", str(path)]) == 0
        out, err = capsys.readouterr()
        assert out.startswith("agentsteps report: 0 personas, 2 steps")
        assert err.splitlines() == [
            "agentsteps report: warning: line 2: span 'odd': end_time_unix_nano is -1, not a "
            "time in nanoseconds; its duration is taken as 0",
            "agentsteps report: warning: line 3 is not JSON; skipped",
        ]

    def test_nothing_usable_is_exit_2(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A file whose lines are all damaged is an error, not an empty report."""
        from agentsteps._report.cli import main

        path = self.write(tmp_path, ['{"v": 1, "name": "cut'])
        path.write_text('{"v": 1, "name": "cut', encoding="utf-8")
        assert main(["report", str(path)]) == 2
        assert capsys.readouterr().err == (
            f"agentsteps report: error: {path} is not a JSONL trace: line 1 is not JSON\n"
        )


class TestTerminal:
    """Fitting the terminal and printing names from a run safely."""

    NASTY = "evil\x1b]0;owned\x07\x1b[2J\u202eexe.txt\nnext"

    def test_names_and_errors_are_escaped(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Control characters, OSC/CSI sequences and bidi overrides print escaped."""
        span = span_line(self.NASTY, "1", None, attributes={"agentsteps.step.status": "failed"})
        span["status"] = {"code": "ERROR", "description": "boom\x1b[31m\u2066"}
        report = RunReport.from_spans([span])
        plain = render_text(report)
        pytest.importorskip("rich")
        monkeypatch.delenv("NO_COLOR", raising=False)
        out = _Tty()
        write_report(report, out)
        rich_text = re.sub(r"\x1b\[[0-9;]*m", "", out.getvalue())
        for text in (plain, rich_text):
            assert "\x07" not in text
            assert "\x1b]" not in text
            assert "\x1b[2J" not in text
            assert "\u202e" not in text
            assert "\u2066" not in text
            assert "evil\\x1b]0;owned\\x07\\x1b[2J\\u202eexe.txt\\nnext" in text
            assert "boom\\x1b[31m\\u2066" in text

    @pytest.mark.parametrize("width", [60, 80, 100])
    def test_plain_text_fits_the_width(self, width: int) -> None:
        """Every line fits; cost, budget and time stay on each row."""
        text = render_text(RunReport.from_spans(GOLDEN_SPANS), width=width)
        assert max(len(line) for line in text.splitlines()) <= width
        row = next(line for line in text.splitlines() if "summarize" in line)
        assert re.search(r"\$0\.0100 +(1 +)?200%!  900ms$", row), row

    def test_columns_drop_in_the_stated_order(self) -> None:
        """cached goes first, then calls, in, out, model."""
        report = RunReport.from_spans(GOLDEN_SPANS)
        header = {
            w: next(x for x in render_text(report, width=w).splitlines() if x.startswith("name"))
            for w in (95, 90, 80, 74, 68)
        }
        assert header[95].split() == [
            "name", "status", "model", "in", "out", "cached", "cost", "calls", "budget", "time"
        ]  # fmt: skip
        assert header[90].split() == [
            "name", "status", "model", "in", "out", "cost", "calls", "budget", "time"
        ]  # fmt: skip
        assert header[80].split() == [
            "name", "status", "model", "in", "out", "cost", "budget", "time"
        ]  # fmt: skip
        assert header[74].split() == ["name", "status", "model", "out", "cost", "budget", "time"]
        assert header[68].split() == ["name", "status", "model", "cost", "budget", "time"]

    def test_width_from_columns(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """write_report takes the width from COLUMNS (or the terminal)."""
        monkeypatch.setenv("COLUMNS", "70")
        out = io.StringIO()
        write_report(RunReport.from_spans(GOLDEN_SPANS), out)
        assert max(len(line) for line in out.getvalue().splitlines()) <= 70
