"""What Quiver's own machinery costs per call, with the process and the wire taken out.

    .venv/bin/python bench/call_path_bench.py [--calls N]

One gateway in this process, in front of one in-process plugin backend whose `echo` tool
returns its message (an `async` function, so no worker thread). Timed, interleaved in rounds:

- **backend alone**: the plugin backend's `call_tool`, as the gateway's supervisor calls it;
- **gateway.call**: `Gateway.call("bench.echo", ...)` — policy view, id resolution, argument
  validation, in-flight tracking, metrics, audit, redaction, the backend's slot, breaker and
  timeout — under the default config, and with each policy step switched off in the config
  (`policy.audit: false`; `policy.redaction.builtin: false`, which leaves the step with no rules).

The difference between the two is the machinery's cost: what Quiver adds to every call before
the SDK and the wire (measured in `gateway_bench.py`) add their part.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio

# Run as a script: make the repository root importable so `bench._util` resolves.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._util import rotated
from quiver.config import QuiverConfig
from quiver.gateway import Gateway

ROUNDS = 20
PLUGIN = '''
from quiver.plugins import tool

@tool
async def echo(message: str) -> str:
    """Echo the message back."""
    return message
'''
VARIANTS: dict[str, dict[str, Any]] = {
    "default config": {},
    "audit off": {"audit": False},
    "built-in redaction off": {"redaction": {"builtin": False}},
    "both off": {"audit": False, "redaction": {"builtin": False}},
}

Call = Callable[[], Awaitable[Any]]


async def timed(call: Call, calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        await call()
    return (time.perf_counter() - started) / calls * 1e6


async def measure(calls: int, workdir: Path) -> dict[str, dict[str, float]]:
    (workdir / "bench_echo.py").write_text(PLUGIN)
    backend = {"type": "plugin", "module": "bench_echo", "path": str(workdir)}
    arguments = {"message": "hello"}
    results: dict[str, dict[str, float]] = {}
    for name, policy in VARIANTS.items():
        gateway = Gateway(QuiverConfig.model_validate({"backends": {"bench": backend}, "policy": policy}), watch=False)
        async with gateway.running():
            await gateway.call("bench.echo", arguments)  # starts the backend, compiles the validator
            live = gateway.supervisor.get("bench")._backend
            assert live is not None

            def alone(live: Any = live) -> Awaitable[Any]:
                call: Awaitable[Any] = live.call_tool("echo", arguments)
                return call

            def through(gateway: Gateway = gateway) -> Awaitable[Any]:
                return gateway.call("bench.echo", arguments)

            paths: dict[str, Call] = {"backend alone": alone, "gateway.call": through}
            samples: dict[str, list[float]] = {label: [] for label in paths}
            for turn in range(ROUNDS):
                for label in rotated(list(paths), turn):
                    samples[label].append(await timed(paths[label], max(1, calls // ROUNDS)))
            alone_us, through_us = (statistics.median(samples[label]) for label in samples)
            results[name] = {"backend_us": alone_us, "gateway_us": through_us, "machinery_us": through_us - alone_us}
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=20_000, help="calls per path and variant (default 20000)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="quiver-callpath-") as tmp:
        workdir = Path(tmp)
        os.environ["QUIVER_CACHE_DIR"] = str(workdir / "cache")
        os.environ["QUIVER_STATE_DIR"] = str(workdir / "state")
        results = anyio.run(measure, args.calls, workdir)
    print(f"µs per call, median of {ROUNDS} interleaved rounds; Python {sys.version.split()[0]}")
    print(f"{'config':<24} {'backend alone':>14} {'gateway.call':>13} {'machinery':>10}")
    for name, row in results.items():
        print(f"{name:<24} {row['backend_us']:>14.1f} {row['gateway_us']:>13.1f} {row['machinery_us']:>10.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
