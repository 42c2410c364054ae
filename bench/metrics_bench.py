"""Metrics and tracing benchmark: what the per-call hooks cost.

    .venv/bin/python bench/metrics_bench.py [--calls N]

Prints nanoseconds per call for the hooks a downstream tool call runs: `call_started`,
`observe_call` and `call_finished` (the primitives, and `track_call` doing all three), with
tracing off (`call_span` is then a no-op) and on (an SDK provider with no exporter: the span's
own cost). Labels cycle over 20 tools of 5 backends, as a busy gateway's would.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import mcp_types as types

from quiver.metrics import Metrics
from quiver.tracing import Tracing

BACKENDS = [f"backend{i}" for i in range(5)]
TOOLS = [f"tool_{i}" for i in range(20)]
RESULT = types.CallToolResult(content=[])


def per_call(calls: int, run: Callable[[str, str], None]) -> float:
    pairs = [(BACKENDS[i % len(BACKENDS)], TOOLS[i % len(TOOLS)]) for i in range(calls)]
    for backend, tool in pairs[:1000]:  # warm: every label set exists before timing
        run(backend, tool)
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter_ns()
        for backend, tool in pairs:
            run(backend, tool)
        best = min(best, (time.perf_counter_ns() - started) / calls)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100_000)
    calls = parser.parse_args().calls
    metrics = Metrics()
    off = Tracing(False)
    from opentelemetry.sdk.trace import TracerProvider

    on = Tracing(True, provider=TracerProvider())

    def primitives(backend: str, tool: str) -> None:
        metrics.call_started(backend)
        metrics.observe_call(backend, tool, "ok", 0.012)
        metrics.call_finished(backend)

    def tracked(backend: str, tool: str) -> None:
        with metrics.track_call(backend, tool) as timer:
            timer.set_result(RESULT)

    def tracked_span_off(backend: str, tool: str) -> None:
        with metrics.track_call(backend, tool) as timer, off.call_span(backend, tool) as span:
            timer.set_result(RESULT)
            span.set_result(RESULT)

    def tracked_span_on(backend: str, tool: str) -> None:
        with metrics.track_call(backend, tool) as timer, on.call_span(backend, tool) as span:
            timer.set_result(RESULT)
            span.set_result(RESULT)

    print(f"{'hooks per call':<48} {'ns/call':>8}")
    for name, run in [
        ("call_started + observe_call + call_finished", primitives),
        ("track_call (the same, with timing)", tracked),
        ("track_call + call_span, tracing off", tracked_span_off),
        ("track_call + call_span, tracing on (no exporter)", tracked_span_on),
    ]:
        print(f"{name:<48} {per_call(calls, run):>8.0f}")


if __name__ == "__main__":
    main()
