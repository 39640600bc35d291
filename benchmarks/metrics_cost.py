"""
What agentsteps' metrics cost a step (issue 20).

Two questions, each answered by interleaved rounds (every round times one chunk of each
variant, in a rotating order, garbage collector off; ratios are medians of per-round
ratios, so a slow moment on a shared machine hits both sides):

1. **No meter provider**: a step with one ``record_usage`` under a budget, on this tree and
   on a baseline tree (``--baseline REF``, default ``main~`` style refs resolved by git;
   the tree is exported with ``git archive``), each in its own process, no SDK anywhere.
   Processes alternate; the ratio is this tree's time over the baseline's.
2. **A meter provider configured** (an SDK ``MeterProvider`` with an in-memory reader;
   recording is the same whatever exports): the time a step gains over the same step
   without one, as a ratio to one span (a raw ``start_as_current_span`` with 4 attributes
   on an SDK tracer provider whose processor drops spans), for a step that spends nothing
   and one that records one model call.

    python benchmarks/metrics_cost.py                 # about a minute
    python benchmarks/metrics_cost.py --quick         # a smoke run
    python benchmarks/metrics_cost.py --baseline HEAD~5
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
_perf = time.perf_counter_ns


def _calibrate(run: Callable[[int], int], chunk_ns: float) -> int:
    n = 64
    while run(n) < chunk_ns / 4 and n < 1 << 22:
        n *= 2
    per = min(run(n) for _ in range(3)) / n
    return max(16, int(chunk_ns / per))


def _rounds(variants: dict[str, Callable[[int], int]], rounds: int, chunk_ns: float) -> dict:
    sizes = {name: _calibrate(run, chunk_ns) for name, run in variants.items()}
    names = list(variants)
    per_call: dict[str, list[float]] = {name: [] for name in names}
    gc.collect()
    gc.freeze()
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            gc.collect()
            gc.disable()
            try:
                ns = variants[name](sizes[name])
            finally:
                gc.enable()
            per_call[name].append(ns / sizes[name])
    return per_call


# -- the workloads ---------------------------------------------------------------------


def _step_with_usage() -> Callable[[int], int]:
    from agentsteps import Budget, record_usage, step

    @step(model="gpt-4o-mini", budget=Budget(max_tokens=10**12, max_usd=10**6))
    def work() -> int:
        record_usage(input_tokens=100, output_tokens=20, cost_usd=0.0001)
        return 1

    def run(n: int) -> int:
        f = work
        t0 = _perf()
        for _ in range(n):
            f()
        return _perf() - t0

    return run


def _plain_step() -> Callable[[int], int]:
    from agentsteps import step

    @step
    def work(x: int) -> int:
        return x + 1

    def run(n: int) -> int:
        f = work
        t0 = _perf()
        for _ in range(n):
            f(1)
        return _perf() - t0

    return run


def worker_off(rounds: int, chunk_ms: float) -> None:
    """One process of question 1: no SDK; print per-call ns of the two steps as JSON."""
    result = _rounds({"plain": _plain_step(), "usage": _step_with_usage()}, rounds, chunk_ms * 1e6)
    print(json.dumps(result))


def worker_meter(rounds: int, chunk_ms: float) -> None:
    """Question 2, in one process: steps with and without a meter provider, and one span."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

    import agentsteps
    from agentsteps._metrics.instruments import STATE, set_meter_provider

    class Drop(SpanExporter):
        def export(self, spans: object) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(Drop()))
    tracer = tracer_provider.get_tracer("bench")
    attributes = {"a": "1", "b": "2", "c": 3, "d": True}

    def span(n: int) -> int:
        t0 = _perf()
        for _ in range(n):
            with tracer.start_as_current_span("work", attributes=attributes):
                pass
        return _perf() - t0

    def bare(n: int) -> int:
        t0 = _perf()
        for _ in range(n):
            pass
        return _perf() - t0

    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    set_meter_provider(meter_provider)
    instruments = STATE.instruments  # created once; switched on and off per chunk below
    set_meter_provider(None)
    plain, usage = _plain_step(), _step_with_usage()

    def with_meter(run: Callable[[int], int]) -> Callable[[int], int]:
        def timed(n: int) -> int:
            STATE.instruments = instruments
            try:
                return run(n)
            finally:
                STATE.instruments = None

        return timed

    agentsteps.configure(meter_provider=None)
    result = _rounds(
        {
            "bare": bare,
            "span": span,
            "plain": plain,
            "plain+meter": with_meter(plain),
            "usage": usage,
            "usage+meter": with_meter(usage),
        },
        rounds,
        chunk_ms * 1e6,
    )
    print(json.dumps(result))


# -- the driver --------------------------------------------------------------------------


def _export_tree(ref: str, into: Path) -> Path:
    archive = into / "tree.tar"
    subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", "-o", str(archive), ref, "agentsteps"],
        check=True,
    )
    with tarfile.open(archive) as tar:
        tar.extractall(into / "tree", filter="data")
    return into / "tree"


def _run_worker(tree: Path, which: str, rounds: int, chunk_ms: float) -> dict[str, list[float]]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    for name in list(env):
        if name.startswith("OTEL_"):
            del env[name]
    out = subprocess.run(
        [sys.executable, __file__, "--worker", which, "--rounds", str(rounds),
         "--chunk-ms", str(chunk_ms)],
        env=env, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return json.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]


def _median_ratio(a: list[float], b: list[float]) -> float:
    return statistics.median(x / y for x, y in zip(a, b, strict=False))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--baseline", help="git ref of 'today' (default: where this branch left main)"
    )
    parser.add_argument("--quick", action="store_true", help="a few rounds: a smoke run")
    parser.add_argument("--worker", choices=("off", "meter"), help=argparse.SUPPRESS)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--chunk-ms", type=float, default=2.0)
    args = parser.parse_args()
    if args.worker == "off":
        worker_off(args.rounds, args.chunk_ms)
        return
    if args.worker == "meter":
        worker_meter(args.rounds, args.chunk_ms)
        return
    if args.baseline is None:
        args.baseline = subprocess.run(
            ["git", "-C", str(ROOT), "merge-base", "HEAD", "main"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    rounds, chunk_ms, procs = (3, 0.5, 2) if args.quick else (args.rounds, args.chunk_ms, 6)
    with tempfile.TemporaryDirectory() as tmp:
        baseline = _export_tree(args.baseline, Path(tmp))
        ours: dict[str, list[float]] = {"plain": [], "usage": []}
        theirs: dict[str, list[float]] = {"plain": [], "usage": []}
        for _ in range(procs):  # alternate processes: drift hits both trees
            for target, tree in ((ours, ROOT), (theirs, baseline)):
                for key, values in _run_worker(tree, "off", rounds, chunk_ms).items():
                    target[key].extend(values)
    meter = _run_worker(ROOT, "meter", rounds * 2, chunk_ms)
    rev = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    base = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", args.baseline],
        capture_output=True,
        text=True,
    ).stdout.strip()
    span = [s - b for s, b in zip(meter["span"], meter["bare"], strict=True)]
    print(f"tree {rev} vs baseline {args.baseline} ({base}); python {sys.version.split()[0]}")
    print(f"load average {os.getloadavg()[0]:.2f}; rounds {rounds}, chunk {chunk_ms} ms")
    print("\n1. no meter provider, no SDK: this tree / baseline (median per-call ns)")
    for key in ("plain", "usage"):
        a, b = statistics.median(ours[key]), statistics.median(theirs[key])
        print(f"   {key:6} {a:8.0f} ns vs {b:8.0f} ns  ratio {a / b:.3f}x")
    print("\n2. meter provider configured: added ns per step, and as a ratio to one span")
    print(f"   one span (raw start_as_current_span, SDK): {statistics.median(span):.0f} ns")
    for key in ("plain", "usage"):
        added = [m - o for m, o in zip(meter[f"{key}+meter"], meter[key], strict=True)]
        ratios = [x / s for x, s in zip(added, span, strict=True)]
        before, after = statistics.median(meter[key]), statistics.median(meter[key + "+meter"])
        print(
            f"   {key:6} {before:7.0f} -> {after:7.0f} ns: +{statistics.median(added):.0f} ns"
            f" = {statistics.median(ratios):.2f}x a span"
        )


if __name__ == "__main__":
    main()
