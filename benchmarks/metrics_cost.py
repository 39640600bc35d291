"""
What agentsteps' metrics cost a step (issue 20).

Two questions, each answered in one process by interleaved rounds: every round times one
chunk of each variant, in a rotating order, with the garbage collector off; ratios are
medians of per-round ratios, so a slow moment on a shared machine hits both sides. Chunks
are timed in process CPU time (a shared machine's other processes then show only through
caches); the report says how many rounds were also undisturbed in wall time.

1. **No meter provider, no SDK**: a plain ``@step`` and a step with one ``record_usage``
   under a budget, on this tree and on the tree before metrics (``--baseline REF``,
   default where this branch left ``main``), both imported side by side (the baseline's
   package, exported with ``git archive``, as ``agentsteps_base``: its imports are
   relative).
2. **A meter provider configured** (an SDK ``MeterProvider`` with an in-memory reader;
   what is recorded per step does not depend on the exporter): what a step gains over the
   same step without one, as a ratio to one span (a raw ``start_as_current_span`` with 4
   attributes on an SDK tracer provider whose processor drops spans), for a plain step and
   for one that records one model call.

    python benchmarks/metrics_cost.py                 # about a minute
    python benchmarks/metrics_cost.py --quick         # a smoke run
    python benchmarks/metrics_cost.py --baseline HEAD~5
"""

from __future__ import annotations

import argparse
import gc
import importlib
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
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# CPU time of this (single-threaded) process, not wall time: on a machine shared by other
# busy processes, wall time mostly measures the scheduler. Clock resolution is ~1 ns.
_perf = time.process_time_ns
Runner = Callable[[int], int]


def _calibrate(run: Runner, chunk_ns: float) -> int:
    n = 64
    while run(n) < chunk_ns / 4 and n < 1 << 22:
        n *= 2
    per = min(run(n) for _ in range(3)) / n
    return max(16, int(chunk_ns / per))


def _rounds(variants: dict[str, Runner], rounds: int, chunk_ns: float) -> dict[str, Any]:
    sizes = {name: _calibrate(run, chunk_ns) for name, run in variants.items()}
    names = list(variants)
    per_call: dict[str, list[float]] = {name: [] for name in names}
    clean: list[bool] = []
    gc.collect()
    gc.freeze()
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        cpu0, wall0 = time.process_time_ns(), time.perf_counter_ns()
        for name in order:
            gc.collect()
            gc.disable()
            try:
                ns = variants[name](sizes[name])
            finally:
                gc.enable()
            per_call[name].append(ns / sizes[name])
        clean.append(time.process_time_ns() - cpu0 >= 0.95 * (_perf() - wall0))
    if sum(clean) >= 5:
        per_call = {
            k: [v for v, ok in zip(vs, clean, strict=True) if ok] for k, vs in per_call.items()
        }
    return {"per_call": per_call, "clean": sum(clean), "rounds": rounds}


# -- the workloads ---------------------------------------------------------------------


def _step_with_usage(package: Any) -> Runner:
    budget = package.Budget(max_tokens=10**12, max_usd=10**6)
    record_usage = package.record_usage

    @package.step(model="gpt-4o-mini", budget=budget)
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


def _plain_step(package: Any) -> Runner:
    @package.step
    def work(x: int) -> int:
        return x + 1

    def run(n: int) -> int:
        f = work
        t0 = _perf()
        for _ in range(n):
            f(1)
        return _perf() - t0

    return run


def worker_off(rounds: int, chunk_ms: float, baseline: str) -> dict[str, Any]:
    """Question 1: this tree's steps and the baseline's, side by side, no SDK anywhere."""
    import agentsteps

    sys.path.insert(0, baseline)
    base = importlib.import_module("agentsteps_base")
    variants = {
        "plain": _plain_step(agentsteps),
        "plain@base": _plain_step(base),
        "usage": _step_with_usage(agentsteps),
        "usage@base": _step_with_usage(base),
    }
    return _rounds(variants, rounds, chunk_ms * 1e6)


def worker_meter(rounds: int, chunk_ms: float) -> dict[str, Any]:
    """Question 2: steps with and without a meter provider, one span, a bare loop."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

    import agentsteps
    from agentsteps._core.instruments import STATE, set_meter_provider

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

    set_meter_provider(MeterProvider(metric_readers=[InMemoryMetricReader()]))
    instruments = STATE.instruments  # created once; switched on and off per chunk below
    set_meter_provider(None)

    def with_meter(run: Runner) -> Runner:
        def timed(n: int) -> int:
            STATE.instruments, STATE.maybe = instruments, True
            try:
                return run(n)
            finally:
                STATE.instruments, STATE.maybe = None, False

        return timed

    plain, usage = _plain_step(agentsteps), _step_with_usage(agentsteps)
    variants = {
        "bare": bare,
        "span": span,
        "plain": plain,
        "plain+meter": with_meter(plain),
        "usage": usage,
        "usage+meter": with_meter(usage),
    }
    return _rounds(variants, rounds, chunk_ms * 1e6)


# -- the driver --------------------------------------------------------------------------


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


def _export_tree(ref: str, into: Path) -> Path:
    """The baseline's ``agentsteps`` package as ``into/agentsteps_base``; returns ``into``."""
    archive = into / "tree.tar"
    _git("archive", "--format=tar", "-o", str(archive), ref, "agentsteps")
    with tarfile.open(archive) as tar:
        tar.extractall(into / "x", filter="data")
    (into / "x" / "agentsteps").rename(into / "agentsteps_base")
    return into


def _run_worker(which: str, rounds: int, chunk_ms: float, baseline: Path | None = None) -> Any:
    env = {name: value for name, value in os.environ.items() if not name.startswith("OTEL_")}
    env["PYTHONPATH"] = str(ROOT)
    command = [sys.executable, __file__, "--worker", which, "--rounds", str(rounds)]
    command += ["--chunk-ms", str(chunk_ms)]
    if baseline is not None:
        command += ["--baseline-dir", str(baseline)]
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def _median_ratio(a: list[float], b: list[float]) -> float:
    return statistics.median(x / y for x, y in zip(a, b, strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--baseline", help="git ref of 'today' (default: merge-base with main)")
    parser.add_argument("--quick", action="store_true", help="a few rounds: a smoke run")
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--chunk-ms", type=float, default=2.0)
    parser.add_argument("--worker", choices=("off", "meter"), help=argparse.SUPPRESS)
    parser.add_argument("--baseline-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker == "off":
        print(json.dumps(worker_off(args.rounds, args.chunk_ms, args.baseline_dir)))
        return
    if args.worker == "meter":
        print(json.dumps(worker_meter(args.rounds, args.chunk_ms)))
        return
    baseline = args.baseline or _git("merge-base", "HEAD", "main")
    rounds, chunk_ms = (4, 0.5) if args.quick else (args.rounds, args.chunk_ms)
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        off = _run_worker("off", rounds, chunk_ms, _export_tree(baseline, Path(tmp)))
    meter = _run_worker("meter", rounds, chunk_ms)
    print(f"tree {_git('rev-parse', '--short', 'HEAD')} (+ uncommitted changes, if any)")
    print(f"baseline {_git('rev-parse', '--short', baseline)}; python {sys.version.split()[0]}")
    print(f"load average {load:.2f} before, {os.getloadavg()[0]:.2f} after; {rounds} rounds")
    print("\n1. no meter provider, no SDK: this tree / baseline")
    print(f"   undisturbed rounds: {off['clean']} of {off['rounds']}")
    times = off["per_call"]
    for key in ("plain", "usage"):
        a, b = statistics.median(times[key]), statistics.median(times[key + "@base"])
        ratio = _median_ratio(times[key], times[key + "@base"])
        print(f"   {key:6} {a:7.0f} ns vs {b:7.0f} ns: {ratio:.3f}x")
    print("\n2. meter provider configured: added ns per step, and as a ratio to one span")
    print(f"   undisturbed rounds: {meter['clean']} of {meter['rounds']}")
    times = meter["per_call"]
    span = [s - b for s, b in zip(times["span"], times["bare"], strict=True)]
    print(f"   one span (raw start_as_current_span, SDK): {statistics.median(span):.0f} ns")
    for key in ("plain", "usage"):
        added = [m - o for m, o in zip(times[key + "+meter"], times[key], strict=True)]
        ratio = statistics.median(x / s for x, s in zip(added, span, strict=True))
        before, after = statistics.median(times[key]), statistics.median(times[key + "+meter"])
        print(
            f"   {key:6} {before:7.0f} -> {after:7.0f} ns: "
            f"{statistics.median(added):+.0f} ns = {ratio:.2f}x a span"
        )


if __name__ == "__main__":
    main()
