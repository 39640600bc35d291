"""
What `instrument_openai()` costs per request: `chat.completions.create` against a loopback
server, inside a budgeted step, with and without the instrumentation.

    python benchmarks/instrument_overhead.py            # 21 rounds of 200 requests per variant
    python benchmarks/instrument_overhead.py --quick    # 5 rounds of 50

The server is a minimal OpenAI-shaped chat endpoint on 127.0.0.1 (one write per answer,
TCP_NODELAY, so no delayed-ACK stall), so a round trip is the SDK's own work plus a local HTTP
exchange: the smallest denominator a real request could have (a real one takes hundreds of
milliseconds). Both variants run in one process, in
alternating rounds (the order flips each round), with tracing off, so the ratio isolates the
instrumentation's pre-flight check, input estimate, usage reading and charging. Time is the
process's CPU time (client and server threads), which other processes on a shared machine
disturb far less than wall time. The reported ratio is the median of the per-round ratios.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import openai

import agentsteps
from agentsteps import Budget, step

_ANSWER = json.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 0,
        "model": "gpt-4o-mini",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Done.", "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": 1000,
            "completion_tokens": 500,
            "total_tokens": 1500,
            "prompt_tokens_details": {"cached_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0},
        },
    }
).encode()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    count = 0

    def setup(self) -> None:
        super().setup()
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        _Handler.count += 1
        head = (
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
            f"content-length: {len(_ANSWER)}\r\n\r\n"
        ).encode()
        self.wfile.write(head + _ANSWER)


@contextmanager
def _server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        host, port = server.server_address[:2]
        yield f"http://{host!s}:{port}/v1"
    finally:
        server.shutdown()
        server.server_close()


MESSAGES = [{"role": "user", "content": "Summarize the change in one line."}]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="5 rounds of 50 requests")
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args(argv)
    rounds, per_round = (5, 50) if args.quick else (args.rounds, args.requests)
    agentsteps.register_price("gpt-4o-mini", input_per_mtok=0.15, output_per_mtok=0.6)

    with (
        _server() as base_url,
        openai.OpenAI(base_url=base_url, api_key="bench", max_retries=0) as client,
    ):

        @step(model="gpt-4o-mini", budget=Budget(max_tokens=10**12, max_usd=10**6))
        def requests(n: int) -> int:
            # CPU time of the whole process (client and server threads): what the requests
            # cost the machine, much less disturbed than wall time by other processes.
            t0 = time.process_time_ns()
            for _ in range(n):
                client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
            return time.process_time_ns() - t0

        def timed(instrumented: bool) -> float:
            if not instrumented:
                return requests(per_round) / per_round
            with agentsteps.instrument_openai():
                return requests(per_round) / per_round

        timed(True), timed(False)  # warm up: connections, imports, price lookups
        plain: list[float] = []
        instrumented: list[float] = []
        for i in range(rounds):
            order = (False, True) if i % 2 == 0 else (True, False)
            for which in order:
                (instrumented if which else plain).append(timed(which))
        sent = _Handler.count

    ratios = [b / a for a, b in zip(plain, instrumented, strict=True)]
    ratio = statistics.median(ratios)
    plain_us = statistics.median(plain) / 1000
    inst_us = statistics.median(instrumented) / 1000
    print(f"instrument_openai overhead: {rounds} rounds x {per_round} requests per variant")
    print(f"  plain          {plain_us:8.1f} us CPU per request (median of rounds)")
    print(f"  instrumented   {inst_us:8.1f} us per request")
    print(f"  ratio          {ratio:8.3f} (median of per-round ratios; 1.000 = no cost)")
    print(f"  added          {inst_us - plain_us:8.1f} us per request")
    # The fastest round of each: the least disturbed by other work on a shared machine.
    best_plain, best_inst = min(plain) / 1000, min(instrumented) / 1000
    print(f"  fastest rounds {best_plain:8.1f} us plain, {best_inst:.1f} us instrumented")
    print(f"  their ratio    {best_inst / best_plain:8.3f}")
    print(f"  requests sent  {sent}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
