"""
Where a ``@step`` call spends its time: cProfile of the hot path plus a cost breakdown.

Run ``python benchmarks/profile_step.py`` (``--calls N``, ``--top N``). Two views:

* cProfile of sync, generator and tracing-off calls, summarised per source file and per
  function (cProfile's own overhead inflates small functions; read shares, not µs);
* a breakdown by timing, without a profiler, of the OpenTelemetry pieces a step is built
  from, so the floor the SDK sets is visible next to what agentsteps adds.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import pstats
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
for _path in (str(HERE.parent), str(HERE)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from _impls import DiscardExporter  # noqa: E402
from opentelemetry import context as otel_context  # noqa: E402
from opentelemetry import trace  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402

import agentsteps  # noqa: E402

ATTRS4 = {
    "gen_ai.operation.name": "invoke_workflow",
    "agentsteps.step.name": "work",
    "agentsteps.step.function": "work",
    "agentsteps.step.error_boundary": "fail",
}


def _provider() -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(DiscardExporter()))
    return provider


def _short(path: str) -> str:
    for marker in ("site-packages/", "/agentsteps/", "/lib/python3"):
        if marker in path:
            tail = path.split(marker, 1)[1]
            return ("agentsteps/" + tail) if marker == "/agentsteps/" else tail
    return path


def profile(label: str, fn: Callable[[], Any], calls: int, top: int) -> None:
    """Profile ``calls`` runs of ``fn``; print time per file and the top functions."""
    for _ in range(200):
        fn()
    prof = cProfile.Profile()
    gc.disable()
    prof.enable()
    for _ in range(calls):
        fn()
    prof.disable()
    gc.enable()
    stats = pstats.Stats(prof)
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    total = sum(v[2] for v in raw.values())
    per_file: dict[str, float] = defaultdict(float)
    rows = []
    for (path, line, func), (_cc, ncalls, tottime, cumtime, _callers) in raw.items():
        per_file[_short(path)] += tottime
        rows.append((tottime, ncalls, cumtime, f"{_short(path)}:{line}({func})"))
    print(f"\n## {label}: cProfile of {calls:,} calls, {total / calls * 1e6:.1f} µs/call profiled")
    print("\nown time per file:")
    for path, t in sorted(per_file.items(), key=lambda kv: -kv[1])[:12]:
        print(f"  {100 * t / total:5.1f}%  {path}")
    print(f"\ntop {top} functions by own time (calls per step call, % of total):")
    for tottime, ncalls, _cum, where in sorted(rows, reverse=True)[:top]:
        print(f"  {100 * tottime / total:5.1f}%  {ncalls / calls:5.1f}x  {where}")


def _runner(fn: Callable[[], Any]) -> Callable[[int], int]:
    def run(n: int) -> int:
        t0 = time.perf_counter_ns()
        for _ in range(n):
            fn()
        return time.perf_counter_ns() - t0

    return run


def _print_measured(rows: list[tuple[str, Callable[[], Any]]], rounds: int) -> None:
    """Time ``rows`` interleaved, as the benchmark does; print min and median µs per call."""
    from bench import Settings, measure

    runners = {label: _runner(fn) for label, fn in rows}
    settings = Settings(rounds=rounds, chunk_ms=2.0, mem_first=0, mem_total=0)
    samples, clean, _ = measure(runners, settings, 1)
    for label, _fn in rows:
        kept = [x for x, ok in zip(samples[label], clean[label], strict=True) if ok]
        kept = kept if len(kept) >= 5 else samples[label]
        print(f"  {min(kept) / 1000:7.2f} {statistics.median(kept) / 1000:7.2f}  {label}")


def breakdown(rounds: int) -> None:
    """Time the pieces of a step next to the full step, interleaved as in the benchmark."""
    provider = _provider()
    tracer = provider.get_tracer("bench")
    agentsteps.configure(tracer_provider=provider)

    @agentsteps.step
    def work(x: int) -> int:
        return x + 1

    # What @step sets on the default (attribute-blind) sampler: every attribute once, at
    # the end. Nine, as on a step with no model, budget or persona.
    late = dict(ATTRS4)
    late.update({f"agentsteps.bench.extra{i}": "v" for i in range(4)})
    late["agentsteps.step.status"] = "completed"
    kind = trace.SpanKind.INTERNAL

    def raw_current() -> None:
        with tracer.start_as_current_span("invoke_workflow work", attributes=ATTRS4):
            pass

    def span_only_0() -> None:
        tracer.start_span("invoke_workflow work").end()

    def span_only_4() -> None:
        tracer.start_span("invoke_workflow work", attributes=ATTRS4).end()

    def span_late_9() -> None:
        span = tracer.start_span("invoke_workflow work", kind=kind)
        span.set_attributes(late)
        span.end()

    def span_late_9_ctx() -> None:
        span = tracer.start_span("invoke_workflow work", kind=kind)
        token = otel_context.attach(trace.set_span_in_context(span))
        otel_context.detach(token)
        span.set_attributes(late)
        span.end()

    def attach_detach() -> None:
        otel_context.detach(otel_context.attach(trace.set_span_in_context(trace.INVALID_SPAN)))

    def step_call() -> None:
        work(1)

    print("\n## Breakdown, recording SDK (µs per call: min, median of undisturbed chunks)\n")
    _print_measured(
        [
            ("raw start_as_current_span, 4 attributes (the baseline)", raw_current),
            ("start_span().end(), no attributes, no context", span_only_0),
            ("start_span(4 attributes).end(), no context", span_only_4),
            ("start_span(), 9 attributes set before end(): the SDK part of a step", span_late_9),
            ("  + attach/detach of the span's context", span_late_9_ctx),
            ("attach + detach alone", attach_detach),
            ("@step sync call", step_call),
        ],
        rounds,
    )
    agentsteps.reset_defaults()

    @agentsteps.step
    def off(x: int) -> int:
        return x + 1

    noop = trace.get_tracer("bench")

    def noop_current() -> None:
        with noop.start_as_current_span("invoke_workflow work", attributes=ATTRS4):
            pass

    def get_provider() -> None:
        trace.get_tracer_provider()

    print("\n## Breakdown, no SDK\n")
    _print_measured(
        [
            ("raw start_as_current_span, 4 attributes, no SDK", noop_current),
            ("@step sync call, tracing off", lambda: off(1)),
            ("trace.get_tracer_provider() alone (reads os.environ while unset)", get_provider),
            ("attach + detach alone", attach_detach),
        ],
        rounds,
    )


def main() -> int:
    """Profile the hot paths and print the breakdown."""
    parser = argparse.ArgumentParser(description="Profile the @step hot path.")
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--rounds", type=int, default=40, help="rounds of the breakdown")
    args = parser.parse_args()

    provider = _provider()
    agentsteps.configure(tracer_provider=provider)

    @agentsteps.step
    def work(x: int) -> int:
        return x + 1

    @agentsteps.step
    def items(n: int) -> Any:
        yield from range(n)

    budget = agentsteps.Budget(max_tokens=10**15, max_usd=1e9, max_llm_calls=10**12)

    @agentsteps.step(budget=budget)
    def charged() -> None:
        for _ in range(100):
            agentsteps.record_usage("m", input_tokens=1000, output_tokens=200, cost_usd=3e-4)

    profile("@step sync, recording SDK", lambda: work(1), args.calls, args.top)
    profile(
        "@step generator of 100 items, recording SDK",
        lambda: sum(items(100)),
        args.calls // 50,
        args.top,
    )
    profile(
        "100 x record_usage in a budgeted step, recording SDK",
        charged,
        args.calls // 50,
        args.top,
    )
    agentsteps.reset_defaults()

    @agentsteps.step
    def off(x: int) -> int:
        return x + 1

    profile("@step sync, tracing off", lambda: off(1), args.calls, args.top)
    breakdown(args.rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
