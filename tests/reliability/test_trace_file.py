"""
The trace file is opened safely, and a failed write does not take the next line with it.

The default trace file is in the current directory: a symbolic link planted there must
not redirect the trace, and a device, FIFO or socket must be refused with a clear error
rather than swallow or block every span while the run reports the trace saved. A write
that fails part-way (a full disk) is repaired before the next line.
"""

from __future__ import annotations

import errno
import json
import os
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult

from agentsteps import JsonlSpanExporter
from agentsteps._report import cli as _cli
from agentsteps._report.cli import main

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX file kinds")

FIX = "give the path of a regular file (it is created if missing)"


class TestOpening:
    def test_a_symbolic_link_is_not_followed(self, tmp_path: Path) -> None:
        victim = tmp_path / "victim"
        victim.write_text("precious\n")
        link = tmp_path / "agentsteps-trace.jsonl"
        link.symlink_to(victim)
        with pytest.raises(OSError, match="must not be a symbolic link") as info:
            JsonlSpanExporter(link)
        assert str(info.value) == (
            "JsonlSpanExporter: 'path' must not be a symbolic link, so that a link planted "
            f"where the trace goes cannot redirect it (got {str(link)!r}, a link to "
            f"{str(victim)!r}); {FIX}"
        )
        assert victim.read_text() == "precious\n"

    def test_a_dangling_link_creates_nothing(self, tmp_path: Path) -> None:
        link = tmp_path / "trace.jsonl"
        link.symlink_to(tmp_path / "elsewhere")
        with pytest.raises(OSError, match="must not be a symbolic link"):
            JsonlSpanExporter(link)
        assert not (tmp_path / "elsewhere").exists()

    @pytest.mark.parametrize(("path", "kind"), [("/dev/full", "a character device")])
    def test_a_device_is_refused(self, path: str, kind: str) -> None:
        if not os.path.exists(path):  # pragma: no cover - Linux has it
            pytest.skip(f"no {path}")
        with pytest.raises(OSError, match="must be a regular file") as info:
            JsonlSpanExporter(path)
        assert str(info.value) == (
            f"JsonlSpanExporter: 'path' must be a regular file (got {path!r}, {kind}); {FIX}"
        )

    def test_a_fifo_is_refused_without_blocking(self, tmp_path: Path) -> None:
        fifo = tmp_path / "trace.fifo"
        os.mkfifo(fifo)
        outcome: list[BaseException | JsonlSpanExporter] = []

        def open_it() -> None:
            try:
                outcome.append(JsonlSpanExporter(fifo))
            except BaseException as exc:
                outcome.append(exc)

        # With no reader, a plain open blocks forever: open it in a thread, and unblock it
        # with a reader if it is still waiting (then the test fails instead of hanging).
        opener = threading.Thread(target=open_it, daemon=True)
        opener.start()
        opener.join(30)
        if opener.is_alive():  # pragma: no cover - the defect under test
            reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
            opener.join()
            os.close(reader)
            pytest.fail("opening a FIFO as the trace file blocked")
        assert isinstance(outcome[0], OSError)
        assert str(outcome[0]) == (
            f"JsonlSpanExporter: 'path' must be a regular file (got {str(fifo)!r}, a FIFO); {FIX}"
        )


class TestShortWrite:
    def test_a_partial_line_is_ended_before_the_next(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        path = tmp_path / "trace.jsonl"
        exporter = JsonlSpanExporter(path)
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        tracer = provider.get_tracer("test")
        tracer.start_span("first").end()  # the exporter's first export is behind it
        real_write = os.write
        results: list[SpanExportResult] = []

        calls: list[int] = []

        def disk_fills(fd: int, data: Any) -> int:
            # Half the line goes in, then the disk is full.
            calls.append(len(data))
            if len(calls) == 1:
                return real_write(fd, bytes(data[: len(data) // 2]))
            raise OSError(errno.ENOSPC, "No space left on device")

        original_export = exporter.export

        def export(spans: Any) -> SpanExportResult:
            results.append(original_export(spans))
            return results[-1]

        monkeypatch.setattr(exporter, "export", export)
        monkeypatch.setattr(os, "write", disk_fills)
        tracer.start_span("lost").end()
        monkeypatch.setattr(os, "write", real_write)
        tracer.start_span("third").end()
        provider.shutdown()

        assert results == [SpanExportResult.FAILURE, SpanExportResult.SUCCESS]
        lines = path.read_bytes().split(b"\n")
        assert lines[-1] == b""
        readable = []
        for line in lines[:-1]:
            try:
                readable.append(json.loads(line)["name"])
            except ValueError:
                readable.append("<partial>")
        # Only the span being written when the disk filled is lost.
        assert readable == ["first", "<partial>", "third"]


class TestAgentstepsRun:
    AGENT = "from agentsteps import step\n@step\ndef work():\n    return 1\nwork()\n"

    def script(self, tmp_path: Path) -> str:
        path = tmp_path / "agent.py"
        path.write_text(self.AGENT)
        return str(path)

    @pytest.fixture(autouse=True)
    def _isolated(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
        monkeypatch.setattr(_cli, "_install_global", lambda provider: None)
        monkeypatch.chdir(tmp_path)
        for name in list(os.environ):
            if name.startswith("OTEL_"):
                monkeypatch.delenv(name)

    def test_dev_full_is_an_error_not_a_saved_trace(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        code = main(["run", "--trace", "/dev/full", self.script(tmp_path)])
        err = capsys.readouterr().err
        assert code == 2
        assert err == (
            "agentsteps run: error: cannot set up tracing: JsonlSpanExporter: 'path' must be "
            f"a regular file (got '/dev/full', a character device); {FIX}\n"
        )

    def test_failed_writes_are_reported_not_called_appended(
        self,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        monkeypatch.setattr(
            JsonlSpanExporter, "export", lambda self, spans: SpanExportResult.FAILURE
        )
        code = main(["run", "--trace", "t.jsonl", self.script(tmp_path)])
        err = capsys.readouterr().err
        assert code == 0  # the script's own exit code
        assert "appended" not in err
        assert (
            "agentsteps run: error: 2 span(s) could not be written to t.jsonl; the trace "
            "there is incomplete\n" in err
        )
