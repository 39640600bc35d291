"""The `agentsteps` command: run a script traced and print its report; render saved traces."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from agentsteps._report import cli as _main
from agentsteps._report.cli import DEFAULT_TRACE_PATH, main
from tests.support import ROOT

AGENT = """\
import sys
import agentsteps
from agentsteps import Budget, persona, step
from agentsteps.testing import ScriptedModel

llm = ScriptedModel(["a plan", "x" * 400], cycle=True)

@step(model="scripted-mini", budget=Budget(max_tokens=1000))
def plan():
    return llm.complete("make a plan").text

@step(model="scripted-mini", budget=Budget(max_tokens=50), error_boundary="continue")
def write():
    return llm.complete("write it all")

@persona(name="author")
def author():
    plan()
    write()

print("script args:", sys.argv[1:])
with agentsteps.run() as r:
    author()
agentsteps.print_report(r)  # silent under `agentsteps run`: the command prints it
print("script done")
"""


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # In-process runs must not install a global tracer provider: it would outlive the test.
    monkeypatch.setattr(_main, "_install_global", lambda provider: None)
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("OTEL_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("NO_COLOR", "1")


def script(tmp_path: Path, body: str = AGENT, name: str = "agent.py") -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    return str(path)


class TestRun:
    """agentsteps run SCRIPT."""

    def test_runs_the_script_and_prints_the_report(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """The script's output stays on stdout, the report goes to stderr, the trace to a file."""
        code = main(["run", script(tmp_path), "--flag", "value"])
        out, err = capsys.readouterr()
        assert code == 0
        assert out == "script args: ['--flag', 'value']\nscript done\n"
        assert err.startswith("agentsteps report: 1 persona, 2 steps (1 completed, 1 skipped)")
        assert "agentsteps run agent.py" in err
        assert "└─ author (persona)" in err
        assert "write skipped: StepBudgetExhausted" in err
        assert f"appended to {DEFAULT_TRACE_PATH}" in err
        assert (tmp_path / DEFAULT_TRACE_PATH).is_file()

    def test_the_trace_renders_the_same_later(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """`report` on the saved trace shows the same tree as the report at exit."""
        main(["run", "--json", script(tmp_path)])
        live = json.loads(capsys.readouterr().err.split("\ntrace ")[0])
        assert main(["report", "--json", DEFAULT_TRACE_PATH]) == 0
        saved = json.loads(capsys.readouterr().out)
        assert saved["roots"] == live["roots"]
        assert saved["total"]["llm_calls"] == 2
        assert saved["roots"][0]["kind"] == "run"

    def test_the_whole_run_is_one_trace(self, tmp_path: Path) -> None:
        """A root span around the script makes every persona and step one trace."""
        main(["run", script(tmp_path)])
        lines = (tmp_path / DEFAULT_TRACE_PATH).read_text(encoding="utf-8").splitlines()
        spans = [json.loads(line) for line in lines]
        assert len({s["trace_id"] for s in spans}) == 1
        root = next(s for s in spans if s["parent_span_id"] is None)
        assert root["name"] == "agentsteps run agent.py"
        assert root["attributes"]["agentsteps.run.exit_code"] == 0
        # A kind Phoenix and Jaeger can show (not "unknown") at the top of the trace.
        assert root["kind"] == "INTERNAL"
        assert root["attributes"]["openinference.span.kind"] == "CHAIN"

    @pytest.mark.parametrize(
        ("env", "service"),
        [
            ({}, "agent"),
            ({"OTEL_SERVICE_NAME": "reviewer-bot"}, "reviewer-bot"),
            ({"OTEL_RESOURCE_ATTRIBUTES": "service.name=from-attrs,team=ml"}, "from-attrs"),
        ],
    )
    def test_service_name(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env: dict[str, str], service: str
    ) -> None:
        """The script's name is the service unless the standard variables name one."""
        for name in ("OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES"):
            monkeypatch.delenv(name, raising=False)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        main(["run", script(tmp_path)])
        lines = (tmp_path / DEFAULT_TRACE_PATH).read_text(encoding="utf-8").splitlines()
        resources = [json.loads(line)["resource"] for line in lines]
        assert {r["service.name"] for r in resources} == {service}
        if "OTEL_RESOURCE_ATTRIBUTES" in env:
            assert {r["team"] for r in resources} == {"ml"}

    def test_exit_code_is_passed_through(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """sys.exit(3) in the script makes the command exit 3, after printing the report."""
        code = main(["run", script(tmp_path, AGENT + "sys.exit(3)\n")])
        assert code == 3
        assert "agentsteps report:" in capsys.readouterr().err

    def test_failing_script(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """An exception prints the script's traceback (not ours) and exits 1, as python does."""
        path = script(tmp_path, AGENT + "raise ValueError('bad input')\n")
        assert main(["run", path]) == 1
        err = capsys.readouterr().err
        assert "Traceback (most recent call last):" in err
        raise_line = len(AGENT.splitlines()) + 1
        assert f'File "{path}", line {raise_line}, in <module>' in err
        assert "ValueError: bad input" in err
        assert "runpy" not in err
        assert "_report/cli.py" not in err
        assert "agentsteps report:" in err  # the report still shows what ran

    @pytest.mark.parametrize(("value", "code"), [(None, 0), ("'message'", 1), (256 + 7, 7)])
    def test_exit_code_like_the_interpreter(self, tmp_path: Path, value: object, code: int) -> None:
        """sys.exit(None/str/int) map to exit codes the way the interpreter maps them."""
        assert (
            main(["run", "--no-report", script(tmp_path, f"import sys\nsys.exit({value})\n")])
            == code
        )

    def test_missing_script(self, capsys: pytest.CaptureFixture[str]) -> None:
        """A script that does not exist is exit code 2 with a message naming it."""
        assert main(["run", "nope.py"]) == 2
        assert (
            capsys.readouterr().err == "agentsteps run: error: cannot run 'nope.py': no such file\n"
        )

    def test_directory_instead_of_script(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A directory is refused the same way."""
        assert main(["run", str(tmp_path)]) == 2
        assert "a directory, not a Python file" in capsys.readouterr().err

    def test_output_file_and_html(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """-o writes the report to a file; --html writes the waterfall page."""
        assert main(["run", "-o", "report.txt", "--html", "run.html", script(tmp_path)]) == 0
        assert (
            (tmp_path / "report.txt").read_text(encoding="utf-8").startswith("agentsteps report:")
        )
        assert "<!DOCTYPE html>" in (tmp_path / "run.html").read_text(encoding="utf-8")
        err = capsys.readouterr().err
        assert "wrote run.html" in err
        assert "agentsteps report:" not in err

    def test_trace_path(self, tmp_path: Path) -> None:
        """--trace chooses the JSONL file; it is appended to, run after run."""
        main(["run", "--no-report", "--trace", "t/run.jsonl", script(tmp_path)])
        first = len((tmp_path / "t/run.jsonl").read_text(encoding="utf-8").splitlines())
        main(["run", "--no-report", "--trace", "t/run.jsonl", script(tmp_path)])
        assert len((tmp_path / "t/run.jsonl").read_text(encoding="utf-8").splitlines()) == 2 * first

    def test_exporter_none_still_reports(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """--exporter none writes no file, and the report at exit is still complete."""
        assert main(["run", "--exporter", "none", script(tmp_path)]) == 0
        assert not (tmp_path / DEFAULT_TRACE_PATH).exists()
        assert "author (persona)" in capsys.readouterr().err

    def test_sdk_disabled_reports_from_records(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """With OTEL_SDK_DISABLED=true there are no spans; the report comes from the records."""
        monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
        assert main(["run", script(tmp_path)]) == 0
        err = capsys.readouterr().err
        assert not (tmp_path / DEFAULT_TRACE_PATH).exists()
        assert err.startswith("agentsteps report: 1 persona, 2 steps")
        assert "agentsteps run" not in err

    def test_script_with_its_own_tracer_provider(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A script that sends its spans elsewhere still gets the full report, from records."""
        own = "from opentelemetry.sdk.trace import TracerProvider\n"
        own += "agentsteps.configure(tracer_provider=TracerProvider())\n"
        body = AGENT.replace("llm = ScriptedModel", own + "llm = ScriptedModel")
        assert main(["run", script(tmp_path, body)]) == 0
        err = capsys.readouterr().err
        assert err.startswith("agentsteps report: 1 persona, 2 steps (1 completed, 1 skipped)")

    def test_module(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """-m runs a module from the current directory, as python -m does."""
        script(tmp_path, AGENT, name="my_agent.py")
        assert main(["run", "-m", "my_agent", "x"]) == 0
        out, err = capsys.readouterr()
        assert out.startswith("script args: ['x']")
        assert "agentsteps run my_agent" in err

    def test_tracing_setup_error(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """A trace file that cannot be opened is exit code 2, before the script runs."""
        (tmp_path / "locked").mkdir()
        assert main(["run", "--trace", "locked", script(tmp_path)]) == 2
        out, err = capsys.readouterr()
        assert out == ""
        assert err.startswith("agentsteps run: error: cannot set up tracing:")


class Receiver:
    """What a loopback OTLP/HTTP receiver got."""

    def __init__(self) -> None:
        self.port = 0
        self.names: list[str] = []


@pytest.fixture
def otlp_receiver() -> Iterator[Receiver]:
    """A loopback OTLP/HTTP receiver that records the names of the spans it receives."""
    received = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            request = trace_service_pb2.ExportTraceServiceRequest.FromString(body)
            for resource in request.resource_spans:
                for scope in resource.scope_spans:
                    received.names.extend(span.name for span in scope.spans)
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.end_headers()
            self.wfile.write(trace_service_pb2.ExportTraceServiceResponse().SerializeToString())

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    received.port = server.server_address[1]
    yield received
    server.shutdown()
    server.server_close()


def test_otlp_when_the_standard_variables_say_so(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    otlp_receiver: Receiver,
) -> None:
    """With OTEL_EXPORTER_OTLP_ENDPOINT set, spans go over OTLP and no file is written."""
    port = otlp_receiver.port
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{port}")
    assert main(["run", script(tmp_path)]) == 0
    assert not (tmp_path / DEFAULT_TRACE_PATH).exists()
    assert sorted(otlp_receiver.names) == [
        "agentsteps run agent.py",
        "chat scripted-mini",
        "chat scripted-mini",
        "invoke_agent author",
        "invoke_workflow plan",
        "invoke_workflow write",
    ]
    err = capsys.readouterr().err
    assert "└─ author (persona)" in err
    assert f"sent over OTLP to http://127.0.0.1:{port}/v1/traces" in err


class TestExporterFromEnv:
    """Where spans go when --exporter is not given."""

    @pytest.mark.parametrize(
        ("env", "exporter"),
        [
            ({}, "jsonl"),
            ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, "otlp"),
            ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, "otlp"),
            ({"OTEL_TRACES_EXPORTER": "otlp"}, "otlp"),
            ({"OTEL_TRACES_EXPORTER": "console"}, "console"),
            ({"OTEL_TRACES_EXPORTER": "zipkin,none"}, "none"),
            ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c"}, "none"),
        ],
    )
    def test_standard_variables(
        self, monkeypatch: pytest.MonkeyPatch, env: dict[str, str], exporter: str
    ) -> None:
        """JSONL by default; OTLP when an OTLP endpoint is set; OTEL_TRACES_EXPORTER wins."""
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        assert _main._exporter_from_env() == exporter


class TestReport:
    """agentsteps report TRACE.jsonl."""

    @pytest.fixture
    def trace(self, tmp_path: Path) -> str:
        main(["run", "--no-report", script(tmp_path)])
        main(["run", "--no-report", script(tmp_path)])
        return DEFAULT_TRACE_PATH

    def test_text(self, trace: str, capsys: pytest.CaptureFixture[str]) -> None:
        """The report goes to stdout; a file of two runs shows both."""
        assert main(["report", trace]) == 0
        out = capsys.readouterr().out
        assert out.startswith("agentsteps report: 2 personas, 4 steps")
        assert out.count("agentsteps run agent.py") == 2

    def test_last(self, trace: str, capsys: pytest.CaptureFixture[str]) -> None:
        """--last keeps only the most recent trace of the file."""
        assert main(["report", "--last", trace]) == 0
        assert capsys.readouterr().out.startswith("agentsteps report: 1 persona, 2 steps")

    def test_trace_id_prefix(self, trace: str, capsys: pytest.CaptureFixture[str]) -> None:
        """--trace-id keeps the trace whose id starts with the given prefix."""
        first = json.loads(Path(trace).read_text(encoding="utf-8").splitlines()[0])["trace_id"]
        assert main(["report", "--json", "--trace-id", first[:8].upper(), trace]) == 0
        data = json.loads(capsys.readouterr().out)
        assert data["roots"][0]["trace_id"] == first
        assert len(data["roots"]) == 1

    def test_unknown_trace_id(self, trace: str, capsys: pytest.CaptureFixture[str]) -> None:
        """An id that matches nothing is exit code 2."""
        assert main(["report", "--trace-id", "zz", trace]) == 2
        assert capsys.readouterr().err == (
            f"agentsteps report: error: no trace in {trace!r} has an id starting with 'zz'\n"
        )

    def test_html(self, trace: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """--html writes the page and still prints the text report."""
        assert main(["report", trace, "--html", "out.html"]) == 0
        page = (tmp_path / "out.html").read_text(encoding="utf-8")
        assert "<title>agentsteps report agentsteps-trace.jsonl</title>" in page
        out, err = capsys.readouterr()
        assert out.startswith("agentsteps report:")
        assert err == "wrote out.html\n"

    def test_colour_always(self, trace: str, capsys: pytest.CaptureFixture[str]) -> None:
        """--color always colours even when not on a terminal."""
        assert main(["report", "--color", "always", trace]) == 0
        assert "\x1b[" in capsys.readouterr().out

    def test_missing_file(self, capsys: pytest.CaptureFixture[str]) -> None:
        """A missing file is exit code 2 with a clear message."""
        assert main(["report", "nope.jsonl"]) == 2
        assert capsys.readouterr().err == "agentsteps report: error: no such file: 'nope.jsonl'\n"

    def test_not_a_trace(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """A file that holds no span is exit code 2, saying what was found."""
        (tmp_path / "notes.txt").write_text("hello\n", encoding="utf-8")
        assert main(["report", "notes.txt"]) == 2
        assert capsys.readouterr().err == (
            "agentsteps report: error: notes.txt is not a JSONL trace: line 1 is not JSON\n"
        )

    def test_directory(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """A directory is exit code 2."""
        assert main(["report", str(tmp_path)]) == 2
        assert "is a directory, not a JSONL trace file" in capsys.readouterr().err

    def test_unwritable_html(self, trace: str, capsys: pytest.CaptureFixture[str]) -> None:
        """An HTML path that cannot be written is exit code 2."""
        assert main(["report", trace, "--html", "no/such/dir/out.html"]) == 2
        assert "cannot write 'no/such/dir/out.html'" in capsys.readouterr().err


class TestHelp:
    """Help and usage."""

    def test_no_command(self, capsys: pytest.CaptureFixture[str]) -> None:
        """Without a command the help is shown and the exit code is 2."""
        assert main([]) == 2
        err = capsys.readouterr().err
        assert "usage: agentsteps" in err
        assert "run a Python script with tracing" in err

    def test_help(self, capsys: pytest.CaptureFixture[str]) -> None:
        """--help lists the commands and examples and exits 0."""
        with pytest.raises(SystemExit) as exc:
            main(["--help"])
        assert exc.value.code == 0
        out = capsys.readouterr().out
        for text in ("run", "report", "examples:", "agentsteps run examples/code_review.py"):
            assert text in out

    def test_run_help(self, capsys: pytest.CaptureFixture[str]) -> None:
        """run --help explains where spans go and what the exit code is."""
        with pytest.raises(SystemExit):
            main(["run", "--help"])
        out = " ".join(capsys.readouterr().out.split())
        assert "OTEL_EXPORTER_OTLP_ENDPOINT" in out
        assert "exit code: the script's own" in out

    def test_bad_option(self, capsys: pytest.CaptureFixture[str]) -> None:
        """An unknown option is a usage error, exit code 2 (argparse)."""
        with pytest.raises(SystemExit) as exc:
            main(["report", "--nope", "x"])
        assert exc.value.code == 2

    def test_python_dash_m(self, tmp_path: Path) -> None:
        """python -m agentsteps is the same command."""
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        done = subprocess.run(
            [sys.executable, "-m", "agentsteps", "--version"],
            capture_output=True, text=True, env=env, check=False, timeout=60,
        )  # fmt: skip
        assert done.returncode == 0
        assert done.stdout.startswith("agentsteps ")
