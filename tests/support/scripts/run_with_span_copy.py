"""
``agentsteps run``, keeping a JSON Lines copy of every span it sends.

``python tests/support/scripts/run_with_span_copy.py COPY.jsonl [run options] SCRIPT [ARGS...]``
runs ``agentsteps run ...`` in this process exactly as the command would, with one span
processor added to the tracer provider the command builds: it appends each span, as the
command's own exporter received it, to ``COPY.jsonl``. ``tests/tracing/test_jaeger.py`` sends a run
to Jaeger over OTLP this way and compares what Jaeger stored with the copy of the same run.
"""

from __future__ import annotations

import sys
from typing import Any

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from agentsteps._report import cli
from agentsteps._tracing.jsonl import JsonlSpanExporter


def main(argv: list[str]) -> int:
    copy_path, run_args = argv[0], argv[1:]

    class CopyingTracerProvider(TracerProvider):
        """The command's provider, plus a synchronous JSONL copy of each finished span."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.add_span_processor(SimpleSpanProcessor(JsonlSpanExporter(copy_path)))

    # The command builds its provider from the name it imported; this is the one seam.
    cli.TracerProvider = CopyingTracerProvider  # type: ignore[attr-defined]
    return cli.main(["run", *run_args])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
