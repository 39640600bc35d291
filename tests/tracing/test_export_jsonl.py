"""Tests for the JSONL span exporter: the line format, types, appending and shutdown."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from agentsteps import Budget, JsonlSpanExporter, configure_tracing, persona, record_usage, step
from tests.support import ROOT


def _lines(path: Path) -> list[dict[str, Any]]:
    """Parse every line of a JSONL file."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _provider(path: Path) -> tuple[TracerProvider, JsonlSpanExporter]:
    """A provider that writes to `path` with a fixed resource."""
    exporter = JsonlSpanExporter(path)
    provider = TracerProvider(resource=Resource({"service.name": "jsonl-test", "n": 1}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


class TestLineFormat:
    def test_every_field(self, tmp_path: Path) -> None:
        """A span is one object: hex ids, ns times, status, events, links, resource, scope."""
        path = tmp_path / "spans.jsonl"
        provider, exporter = _provider(path)
        tracer = provider.get_tracer("scope.name", "1.2")
        with tracer.start_as_current_span("outer") as outer:
            linked = outer.get_span_context()
            with tracer.start_as_current_span(
                "inner", kind=SpanKind.CLIENT, links=[Link(linked, {"why": "retry"})]
            ) as inner:
                inner.add_event("budget", {"left": 3})
                inner.set_status(Status(StatusCode.ERROR, "ValueError: boom"))
        exporter.shutdown()
        inner_line, outer_line = _lines(path)
        assert outer_line["parent_span_id"] is None
        assert inner_line["parent_span_id"] == outer_line["span_id"]
        assert inner_line["trace_id"] == outer_line["trace_id"]
        assert len(inner_line["trace_id"]) == 32
        assert len(inner_line["span_id"]) == 16
        assert int(inner_line["trace_id"], 16) == linked.trace_id
        assert set(inner_line) == {
            "v",
            "name",
            "kind",
            "trace_id",
            "span_id",
            "parent_span_id",
            "start_time_unix_nano",
            "end_time_unix_nano",
            "status",
            "attributes",
            "events",
            "links",
            "resource",
            "scope",
        }
        assert inner_line["v"] == 1
        assert (inner_line["name"], inner_line["kind"]) == ("inner", "CLIENT")
        assert inner_line["status"] == {"code": "ERROR", "description": "ValueError: boom"}
        assert outer_line["status"] == {"code": "UNSET", "description": None}
        assert isinstance(inner_line["start_time_unix_nano"], int)
        assert inner_line["start_time_unix_nano"] <= inner_line["end_time_unix_nano"]
        (event,) = inner_line["events"]
        assert (event["name"], event["attributes"]) == ("budget", {"left": 3})
        assert isinstance(event["time_unix_nano"], int)
        assert inner_line["links"] == [
            {
                "trace_id": outer_line["trace_id"],
                "span_id": outer_line["span_id"],
                "attributes": {"why": "retry"},
            }
        ]
        assert inner_line["resource"] == {"service.name": "jsonl-test", "n": 1}
        assert inner_line["scope"] == {"name": "scope.name", "version": "1.2"}

    def test_attribute_types(self, tmp_path: Path) -> None:
        """Attribute values keep their JSON types: 2.0 stays a float, 2 an int, True a bool."""
        path = tmp_path / "spans.jsonl"
        provider, exporter = _provider(path)
        attributes = {
            "int": 2,
            "float": 2.0,
            "small": 1e-9,
            "bool": True,
            "str": "x",
            "ints": [1, 2],
            "floats": [0.5, 1.0],
            "strs": ["a"],
        }
        with provider.get_tracer("t").start_as_current_span("typed", attributes=attributes):
            pass
        exporter.shutdown()
        (line,) = _lines(path)
        assert line["attributes"] == attributes
        assert {key: type(value) for key, value in line["attributes"].items()} == {
            "int": int,
            "float": float,
            "small": float,
            "bool": bool,
            "str": str,
            "ints": list,
            "floats": list,
            "strs": list,
        }
        assert [type(v) for v in line["attributes"]["floats"]] == [float, float]

    def test_non_finite_floats_are_strings(self, tmp_path: Path) -> None:
        """NaN and infinities, which JSON lacks, are written as strings, keeping the file valid."""
        path = tmp_path / "spans.jsonl"
        provider, exporter = _provider(path)
        with provider.get_tracer("t").start_as_current_span(
            "odd", attributes={"nan": float("nan"), "inf": float("inf"), "ninf": float("-inf")}
        ):
            pass
        exporter.shutdown()
        raw = path.read_text(encoding="utf-8")
        (line,) = [json.loads(raw, parse_constant=pytest.fail)]
        assert line["attributes"] == {"nan": "NaN", "inf": "Infinity", "ninf": "-Infinity"}

    def test_unicode_is_written_as_is(self, tmp_path: Path) -> None:
        """Non-ASCII names are written as UTF-8, not escaped."""
        path = tmp_path / "spans.jsonl"
        provider, exporter = _provider(path)
        with provider.get_tracer("t").start_as_current_span("résumé ✓"):
            pass
        exporter.shutdown()
        assert "résumé ✓" in path.read_text(encoding="utf-8")


class TestAppending:
    def test_appends_across_exporters(self, tmp_path: Path) -> None:
        """A second exporter on the same file appends; nothing is truncated."""
        path = tmp_path / "spans.jsonl"
        for name in ("first", "second"):
            provider, exporter = _provider(path)
            with provider.get_tracer("t").start_as_current_span(name):
                pass
            exporter.shutdown()
        assert [line["name"] for line in _lines(path)] == ["first", "second"]

    def test_repairs_a_partial_last_line(self, tmp_path: Path) -> None:
        """A file left mid-line by a crashed writer gets a newline before the next span."""
        path = tmp_path / "spans.jsonl"
        path.write_text('{"v":1,"name":"complete"}\n{"v":1,"na', encoding="utf-8")
        provider, exporter = _provider(path)
        with provider.get_tracer("t").start_as_current_span("after crash"):
            pass
        exporter.shutdown()
        lines = path.read_text(encoding="utf-8").splitlines()
        assert lines[1] == '{"v":1,"na'
        assert json.loads(lines[2])["name"] == "after crash"

    @pytest.mark.skipif(sys.platform == "win32", reason="no flock on Windows")
    def test_file_system_without_flock(self, tmp_path: Path, monkeypatch: Any) -> None:
        """Where the file system refuses flock, lines are still written (unlocked)."""
        import fcntl

        def refuse(fd: int, operation: int) -> None:
            raise OSError(37, "No locks available")

        monkeypatch.setattr(fcntl, "flock", refuse)
        path = tmp_path / "spans.jsonl"
        provider, exporter = _provider(path)
        with provider.get_tracer("t").start_as_current_span("unlocked"):
            pass
        exporter.shutdown()
        assert [line["name"] for line in _lines(path)] == ["unlocked"]

    def test_creates_parent_directories(self, tmp_path: Path) -> None:
        """Missing parent directories are created."""
        path = tmp_path / "runs" / "today" / "spans.jsonl"
        exporter = JsonlSpanExporter(path)
        exporter.shutdown()
        assert path.exists()

    def test_concurrent_processes_keep_lines_whole(self, tmp_path: Path) -> None:
        """Processes appending to one file at once leave only whole lines, and no blank ones.

        Each span gets a fresh exporter, so every line is preceded by the partial-line check,
        and lines are large, so another writer's line is often half-written when it runs.
        """
        path = tmp_path / "shared.jsonl"
        program = textwrap.dedent(
            """
            import sys
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import SimpleSpanProcessor
            from agentsteps import JsonlSpanExporter

            padding = "x" * 400_000  # far more than one page, so a write grows the file in steps
            for index in range(40):
                exporter = JsonlSpanExporter(sys.argv[1])
                provider = TracerProvider()
                provider.add_span_processor(SimpleSpanProcessor(exporter))
                tracer = provider.get_tracer("t")
                attributes = {"i": index, "p": padding}
                with tracer.start_as_current_span(sys.argv[2], attributes=attributes):
                    pass
                exporter.shutdown()
            """
        )
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        names = ("a", "b", "c", "d")
        writers = [
            subprocess.Popen([sys.executable, "-c", program, str(path), name], env=env)
            for name in names
        ]
        assert [writer.wait(timeout=120) for writer in writers] == [0] * len(names)
        lines = _lines(path)
        assert len(lines) == 40 * len(names)
        for name in names:
            assert sorted(
                line["attributes"]["i"] for line in lines if line["name"] == name
            ) == list(range(40))


class TestLifecycle:
    def test_export_after_shutdown_fails(self, tmp_path: Path) -> None:
        """After shutdown the file is closed and exports report FAILURE; shutdown is idempotent."""
        path = tmp_path / "spans.jsonl"
        provider, exporter = _provider(path)
        span = provider.get_tracer("t").start_span("late")
        span.end()
        exporter.shutdown()
        exporter.shutdown()
        assert exporter.export([span]) is SpanExportResult.FAILURE  # type: ignore[list-item]
        assert not exporter.force_flush()

    def test_force_flush(self, tmp_path: Path) -> None:
        """force_flush succeeds while open; the line is already in the file."""
        path = tmp_path / "spans.jsonl"
        provider, exporter = _provider(path)
        with provider.get_tracer("t").start_as_current_span("now"):
            pass
        assert exporter.force_flush()
        assert _lines(path)[0]["name"] == "now"
        exporter.shutdown()

    def test_unopenable_path_raises(self, tmp_path: Path) -> None:
        """A path that cannot be opened raises at construction, not at the first span."""
        with pytest.raises(IsADirectoryError):
            JsonlSpanExporter(tmp_path)


class TestAgentstepsRun:
    def test_run_through_configure_tracing(self, tmp_path: Path) -> None:
        """configure_tracing(exporter="jsonl") writes an agentsteps run with its typed figures."""
        path = tmp_path / "run.jsonl"
        handle = configure_tracing(
            exporter="jsonl", jsonl_path=path, tracer_provider=TracerProvider()
        )

        @step(
            name="summarize",
            model="m-1",
            budget=Budget(max_tokens=2_000, max_usd=0.05, max_llm_calls=3),
        )
        def summarize() -> str:
            record_usage(input_tokens=800, output_tokens=95, cost_usd=0.0012)
            return "done"

        @persona(name="reviewer")
        def review() -> str:
            return summarize()

        assert review() == "done"
        handle.shutdown()
        call_line, step_line, persona_line = _lines(path)
        assert call_line["name"] == "chat m-1"  # the model call record_usage reported
        assert call_line["parent_span_id"] == step_line["span_id"]
        assert call_line["attributes"]["gen_ai.usage.input_tokens"] == 800
        assert step_line["name"] == "invoke_workflow summarize"
        assert persona_line["name"] == "invoke_agent reviewer"
        assert step_line["parent_span_id"] == persona_line["span_id"]
        attributes = step_line["attributes"]
        assert attributes["agentsteps.budget.max_tokens"] == 2_000
        assert attributes["agentsteps.budget.max_usd"] == 0.05
        assert attributes["agentsteps.usage.self.input_tokens"] == 800
        assert attributes["agentsteps.usage.self.cost_usd"] == 0.0012
        assert type(attributes["agentsteps.budget.max_tokens"]) is int
        assert type(attributes["agentsteps.budget.max_usd"]) is float
        assert type(persona_line["attributes"]["agentsteps.usage.self.cost_usd"]) is float
        assert handle.destination == str(path)
