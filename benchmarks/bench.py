"""
Per-call overhead of ``@agentsteps.step`` against raw OpenTelemetry and peer decorators.

Run ``python benchmarks/bench.py`` (or ``nox -s bench``); ``--quick`` for a smoke run,
``--no-peers`` to skip traceloop-sdk, Langfuse and Logfire, ``--write-results`` to refresh the
generated part of ``benchmarks/RESULTS.md``. See ``--help``.

Each group of variants runs in its own process (peers install global tracer providers, and
"no SDK" must mean no SDK), and inside a process the variants are interleaved round by round:
every round times a chunk of calls of each variant, in a rotating order, with the garbage
collector off. Ratios are medians of per-round ratios, so a slow moment on a shared machine
hits both sides of a comparison.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import gc
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# The environment variable naming a directory that holds the `agentsteps/` package to measure
# instead of this checkout's: `compare.py` points the workers at an old tree (exported with
# `git archive`) and a new one, so that both run under this same harness code.
TREE_ENV = "AGENTSTEPS_BENCH_TREE"
TREE = Path(os.environ.get(TREE_ENV) or ROOT).resolve()
# The harness runs from a checkout: import agentsteps from the tree, helpers from here.
for _path in (str(TREE), str(HERE)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

import _report  # noqa: E402
from _cases import CASES, measure_memory  # noqa: E402
from _impls import GROUPS, PEERS, build_group  # noqa: E402

# Audit events that mean "this process tried to reach another host".
_NET_EVENTS = frozenset(
    {
        "socket.connect",
        "socket.getaddrinfo",
        "socket.gethostbyname",
        "socket.gethostbyaddr",
        "socket.sendto",
        "socket.sendmsg",
        "http.client.connect",
        "urllib.Request",
    }
)
# A chunk counts as undisturbed when the process had the CPU this share of its wall time.
_CLEAN_CPU_SHARE = 0.95
_PEER_MODULES = {"traceloop": "traceloop.sdk", "langfuse": "langfuse", "logfire": "logfire"}


@dataclass(frozen=True)
class Settings:
    """How hard to measure."""

    rounds: int
    chunk_ms: float
    mem_first: int
    mem_total: int


MODES = {
    # About 2 minutes in all with the three peers on a 2-core machine. Short chunks: more
    # of them escape the scheduler's attention on a busy machine.
    "full": Settings(rounds=40, chunk_ms=2.0, mem_first=10_000, mem_total=100_000),
    "quick": Settings(rounds=3, chunk_ms=0.5, mem_first=1_000, mem_total=5_000),
    # Network audit: every code path once, briefly.
    "audit": Settings(rounds=1, chunk_ms=0.2, mem_first=100, mem_total=300),
    # compare.py: many short processes, old and new alternating; no memory run (mem_total=0),
    # which is not a hot-path ratio and would take most of each process's time.
    "compare": Settings(rounds=20, chunk_ms=2.0, mem_first=0, mem_total=0),
    "compare-quick": Settings(rounds=3, chunk_ms=0.5, mem_first=0, mem_total=0),
}


def measure(
    runners: dict[str, Any], settings: Settings, units_per_op: int | dict[str, int]
) -> tuple[dict[str, list[float]], dict[str, list[bool]], dict[str, int]]:
    """
    Time each runner in interleaved rounds.

    `units_per_op` is one count for all runners, or one per runner. Returns the samples
    (nanoseconds per unit, from `time.perf_counter_ns`), whether each chunk ran
    undisturbed, and the operations per chunk. A chunk is undisturbed when the process got
    the CPU for (nearly) all of its wall time: on a shared machine a chunk during which the
    scheduler ran someone else measures them, not us.
    """
    chunk_ns = settings.chunk_ms * 1e6
    counts: dict[str, int] = {}
    for name, run in runners.items():
        run(1)  # first calls fill caches; they are not what a loop of steps costs
        n = 1
        while True:
            # Best of three: one interrupted try must not shrink every chunk to one call.
            elapsed = max(min(run(n) for _ in range(3)), 1)
            if elapsed * 4 >= chunk_ns or n >= 1 << 20:
                break
            n *= 4
        counts[name] = max(1, min(1 << 22, round(n * chunk_ns / elapsed)))
    # What the first calls loaded (the price catalog on the first priced record_usage,
    # caches) lives for the whole run: freeze it too, or the collection before every chunk
    # walks it again (15 ms a chunk once the catalog is in, against 0.1 ms).
    gc.collect()
    gc.freeze()
    names = list(runners)
    units = units_per_op if isinstance(units_per_op, dict) else dict.fromkeys(names, units_per_op)
    samples: dict[str, list[float]] = {name: [] for name in names}
    clean: dict[str, list[bool]] = {name: [] for name in names}
    cpu, wall = time.process_time_ns, time.perf_counter_ns
    # On a busy machine keep going (up to 3x the rounds) until every variant has at least
    # half the planned rounds undisturbed.
    wanted = settings.rounds // 2
    r = 0
    while r < settings.rounds or (
        r < 3 * settings.rounds and min(sum(flags) for flags in clean.values()) < wanted
    ):
        # Rotate the order so no variant always runs right after the same neighbour.
        k = r % len(names)
        r += 1
        for name in names[k:] + names[:k]:
            n = counts[name]
            run = runners[name]
            gc.collect()
            gc.disable()
            try:
                c0, w0 = cpu(), wall()
                elapsed = run(n)
                w1, c1 = wall(), cpu()
            finally:
                gc.enable()
            samples[name].append(elapsed / (n * units[name]))
            clean[name].append(c1 - c0 >= _CLEAN_CPU_SHARE * (w1 - w0))
    return samples, clean, counts


def _install_net_audit(events: list[str]) -> None:
    def hook(event: str, args: tuple[Any, ...]) -> None:
        if event in _NET_EVENTS:
            events.append(f"{event} {args!r}"[:300])

    sys.addaudithook(hook)


def run_worker(group: str, out: Path, settings: Settings, cases: list[str], audit: bool) -> None:
    """Measure one group of variants in this process and write the results as JSON."""
    result: dict[str, Any] = {"group": group, "settings": asdict(settings), "cases": {}}
    # Which package this process really measures (compare.py checks it is the tree it asked for).
    spec = importlib.util.find_spec("agentsteps")
    result["agentsteps_file"] = spec.origin if spec else None
    events: list[str] = []
    if audit:
        _install_net_audit(events)

        # Registered before any peer registers its own exit flush, so it runs after them
        # all and sees what their shutdown did too.
        def final_write() -> None:
            result["net_events"] = list(events)
            out.write_text(json.dumps(result))

        atexit.register(final_write)

    impls, skipped = build_group(group)
    result["variants"] = {impl.name: impl.description for impl in impls}
    result["config"] = {impl.name: impl.config for impl in impls if impl.config}
    result["skipped"] = skipped
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    # Everything set up so far lives for the whole run: keep it out of every collection.
    gc.collect()
    gc.freeze()
    built: dict[str, dict[str, Any]] = {}
    for key in cases:
        runners = {}
        for impl in impls:
            runner = CASES[key].build(impl, loop)
            if runner is not None:
                runners[impl.name] = runner
        if runners:
            built[key] = runners
    # A case that a figure divides by another ((f): record_usage over a span of (a)) is timed
    # in the same rounds as that one, so the chunks divided are timed moments apart: timed
    # one after the other, a load change between the two blocks moved (f) by half.
    blocks: dict[str, list[str]] = {}
    for key in built:
        anchor = CASES[key].shares_rounds_with
        blocks.setdefault(anchor if anchor in built else key, []).append(key)
    for anchor, keys in blocks.items():
        joint = {f"{key} {name}": run for key in keys for name, run in built[key].items()}
        units = {f"{key} {name}": CASES[key].units_per_op for key in keys for name in built[key]}
        samples, clean, counts = measure(joint, settings, units)
        for key in keys:
            result["cases"][key] = {
                "samples_ns": {name: samples[f"{key} {name}"] for name in built[key]},
                "clean": {name: clean[f"{key} {name}"] for name in built[key]},
                "ops_per_chunk": {name: counts[f"{key} {name}"] for name in built[key]},
                "rounds_of": anchor,
            }
    result["memory"] = {}
    # The compare modes (mem_total=0) skip the memory run.
    for impl in impls if settings.mem_total else []:
        # Peer groups measure only the peer's memory: the baselines and step-sdk already
        # ran the full count in their own groups.
        if group.startswith("peer-") and impl.name != group.removeprefix("peer-"):
            continue
        d = impl.memory_divisor
        result["memory"][impl.name] = measure_memory(
            impl, max(1, settings.mem_first // d), max(2, settings.mem_total // d)
        )
    result["spans_exported"] = {impl.name: impl.spans_exported() for impl in impls}
    result["net_events"] = list(events)
    loop.close()
    out.write_text(json.dumps(result))


def _worker_env(tree: Path | None = None) -> dict[str, str]:
    # Nothing from the caller's OpenTelemetry settings may change what a variant does.
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["PYTHONHASHSEED"] = "0"
    env[TREE_ENV] = str(tree or TREE)
    return env


def spawn(
    group: str,
    mode: str,
    cases: list[str],
    audit: bool,
    verbose: bool,
    tree: Path | None = None,
) -> dict[str, Any]:
    """
    Run one group in a fresh interpreter and return its results.

    `tree` is the directory whose `agentsteps/` package the worker imports (default: the
    one this process was pointed at, normally this checkout).
    """
    with tempfile.TemporaryDirectory(prefix="agentsteps-bench-") as tmp:
        out = Path(tmp) / "result.json"
        cmd = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--worker",
            group,
            "--worker-out",
            str(out),
            "--mode",
            "audit" if audit else mode,
            "--cases",
            ",".join(cases),
        ]
        t0 = time.perf_counter()
        # Peers' own start-up chatter goes to a file, shown only when the worker fails.
        proc = subprocess.run(
            cmd,
            env=_worker_env(tree),
            cwd=tmp,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        if verbose or proc.returncode != 0:
            sys.stderr.write(proc.stdout + proc.stderr)
        if proc.returncode != 0 or not out.exists():
            msg = f"benchmark worker for group {group!r} failed (exit {proc.returncode})"
            raise RuntimeError(msg)
        result: dict[str, Any] = json.loads(out.read_text())
        result["seconds"] = time.perf_counter() - t0
        return result


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[1] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="few rounds, small memory run")
    parser.add_argument(
        "--no-peers", action="store_true", help="skip traceloop-sdk, Langfuse and Logfire"
    )
    parser.add_argument(
        "--peers", default=",".join(PEERS), help="comma-separated peers (default: all)"
    )
    parser.add_argument(
        "--cases", default=",".join(CASES), help=f"comma-separated cases from {list(CASES)}"
    )
    parser.add_argument(
        "--no-net-audit",
        action="store_true",
        help="skip the extra short run of each peer that records outbound connection attempts",
    )
    parser.add_argument("--json", type=Path, help="write all raw samples and results here")
    parser.add_argument("--report", type=Path, help="write the markdown report here")
    parser.add_argument(
        "--write-results",
        action="store_true",
        help="replace the generated section of benchmarks/RESULTS.md with this run",
    )
    parser.add_argument(
        "--strict", action="store_true", help="exit 1 when a target fails (never used in tests)"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="show workers' output")
    # Internal: the per-group worker processes.
    parser.add_argument("--worker", choices=list(GROUPS), help=argparse.SUPPRESS)
    parser.add_argument("--worker-out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--mode", choices=list(MODES), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    unknown = [c for c in args.cases.split(",") if c not in CASES]
    if unknown:
        parser.error(f"--cases: unknown case(s) {unknown}; choose from {list(CASES)}")
    peers = [] if args.no_peers else [p for p in args.peers.split(",") if p]
    bad = [p for p in peers if p not in PEERS]
    if bad:
        parser.error(f"--peers: unknown peer(s) {bad}; choose from {list(PEERS)}")
    args.peer_list = peers
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (or, with --worker, one group of it)."""
    args = _parse(argv)
    cases = args.cases.split(",")
    if args.worker:
        run_worker(args.worker, args.worker_out, MODES[args.mode], cases, args.mode == "audit")
        return 0

    mode = "quick" if args.quick else "full"
    started = time.time()
    load_before = os.getloadavg()
    results: dict[str, Any] = {}
    missing: dict[str, str] = {}
    audits: dict[str, list[str]] = {}
    groups = ["off", "sdk"]
    for peer in args.peer_list:
        if importlib.util.find_spec(_PEER_MODULES[peer].split(".")[0]) is None:
            missing[peer] = f"not installed in {sys.executable} (pip install -e '.[bench]')"
        else:
            groups.append(f"peer-{peer}")
    for group in groups:
        print(f"[bench] {group} ...", file=sys.stderr, flush=True)
        if group.startswith("peer-") and not args.no_net_audit:
            audits[group] = spawn(group, mode, cases, True, args.verbose)["net_events"]
        results[group] = spawn(group, mode, cases, False, args.verbose)
    meta = _report.collect_meta(
        argv if argv is not None else sys.argv[1:], mode, started, load_before
    )
    report = _report.Report(meta, results, missing, audits)
    text = report.markdown()
    print(text)
    if args.json:
        args.json.write_text(json.dumps(report.as_dict(), indent=1))
    if args.report:
        args.report.write_text(text)
    if args.write_results:
        _report.update_results_file(HERE / "RESULTS.md", text)
    return 1 if args.strict and report.any_failed() else 0


if __name__ == "__main__":
    sys.exit(main())
