"""Throughput and latency by concurrency: Quiver against a direct connection, over stdio and HTTP.

server-everything's `echo` from one SDK client session (handshake era), with 1, 16 and 64 calls
in flight, on these routes:

- stdio: directly (`node …/server-everything stdio`), and through `quiver stdio`;
- streamable HTTP: directly (server-everything's own `streamableHttp` mode), and through
  `quiver serve` with server-everything as a stdio backend and, separately, as an HTTP backend
  (the direct server itself).

Each transport's direct route has an A/A control (a second, identical direct connection to a
second server process): how far the two land apart is the noise floor of that run. Routes are
measured interleaved — round-robin, one burst per route per round, rotating the order — so a
busy machine slows them alike. For Quiver routes the gateway's CPU time per call is read from
the scheduler, which is far less sensitive to other load than wall-clock numbers.

Then memory: the resident set of an idle `quiver stdio` (initialised, `tools/list` answered)
with 0 and with 100 configured backends that are never started, beside an idle SDK server.

Run `.venv/bin/python bench/concurrency_bench.py [--quick] [--json]`.
"""

from __future__ import annotations

import datetime as dt
import json
import statistics
import sys
import tempfile
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import anyio
import mcp_types as types
from mcp import Client

# Run as a script: make the repository root importable so `bench._util` resolves.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import _procs
from bench._util import (
    LEGACY_ERA,
    VENV_BIN,
    Call,
    Command,
    bench_main,
    cpu_seconds,
    direct_echo,
    everything_server,
    log,
    machine,
    percentile,
    rotated,
    table,
    time_server,
)

CONCURRENCY = (1, 16, 64)
WARMUP_CALLS = 50
MANY_BACKENDS = 100
IDLE_SETTLE = 1.0  # seconds an initialised gateway sits idle before its memory is read


@dataclass(frozen=True)
class Mode:
    rounds: int
    calls_per_burst: int  # per burst, whatever the concurrency (so each burst is about as long)
    memory_reps: int


FULL = Mode(rounds=6, calls_per_burst=256, memory_reps=5)
QUICK = Mode(rounds=2, calls_per_burst=128, memory_reps=2)


def quiver_echo(session: Client, backend: str) -> Call:
    return lambda message: session.call_tool("call_tool", {"id": f"{backend}.echo", "arguments": {"message": message}})


async def checked(call: Call, message: str) -> None:
    result = await call(message)
    content = result.content[0] if result.content else None
    if result.is_error or not isinstance(content, types.TextContent) or content.text != f"Echo: {message}":
        raise RuntimeError(f"unexpected echo result: {result.model_dump_json(exclude_none=True)[:300]}")


@dataclass
class Route:
    """One way of reaching server-everything's `echo`, over one open session."""

    name: str
    transport: str  # what the benchmark's client speaks: "stdio" or "http"
    kind: str  # "direct", "control" (a second direct connection) or "quiver"
    call: Call
    pid: int | None = None  # the gateway process, whose CPU time is charged to the route
    rates: dict[int, list[float]] = field(default_factory=dict)  # concurrency → calls/s per burst
    latencies: dict[int, list[float]] = field(default_factory=dict)  # concurrency → ms per call
    cpu: dict[int, float] = field(default_factory=dict)  # concurrency → gateway CPU seconds
    calls: dict[int, int] = field(default_factory=dict)


async def burst(route: Route, concurrency: int, calls: int, label: str) -> None:
    """`calls` calls on the route's session, `concurrency` at a time; record rate, latencies and CPU."""
    per_task = max(1, calls // concurrency)
    latencies: list[float] = []

    async def worker(index: int) -> None:
        for i in range(per_task):
            started = time.perf_counter()
            await checked(route.call, f"{label} {index}.{i}")
            latencies.append((time.perf_counter() - started) * 1000)

    cpu_before = cpu_seconds(route.pid)
    started = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for index in range(concurrency):
            tg.start_soon(worker, index)
    elapsed = time.perf_counter() - started
    route.rates.setdefault(concurrency, []).append(per_task * concurrency / elapsed)
    route.latencies.setdefault(concurrency, []).extend(latencies)
    route.cpu[concurrency] = route.cpu.get(concurrency, 0.0) + cpu_seconds(route.pid) - cpu_before
    route.calls[concurrency] = route.calls.get(concurrency, 0) + per_task * concurrency


# -- opening the routes ----------------------------------------------------------------------


def write_config(path: Path, backends: dict[str, dict[str, Any]]) -> Path:
    path.write_text(json.dumps({"backends": backends}, indent=2))
    return path


def gateway_env(workdir: Path) -> dict[str, str]:
    return {"QUIVER_CACHE_DIR": str(workdir / "cache"), "QUIVER_STATE_DIR": str(workdir / "state")}


async def open_routes(stack: AsyncExitStack, workdir: Path, errlog: TextIO) -> list[Route]:
    everything = everything_server()
    routes: list[Route] = []
    for kind, name in (("direct", "direct"), ("control", "direct, A/A control")):
        session, _ = await stack.enter_async_context(_procs.spawned(everything, LEGACY_ERA, errlog))
        routes.append(Route(f"stdio: {name}", "stdio", kind, direct_echo(session)))
    stdio_config = write_config(workdir / "stdio.json", {"everything": everything.config_entry()})
    quiver = Command(str(VENV_BIN / "quiver"), ["stdio", "--config", str(stdio_config)], gateway_env(workdir))
    session, pid = await stack.enter_async_context(_procs.spawned(quiver, LEGACY_ERA, errlog))
    routes.append(Route("stdio: quiver", "stdio", "quiver", quiver_echo(session, "everything"), pid))

    servers = [await stack.enter_async_context(_procs.everything_http(errlog)) for _ in range(2)]
    for (kind, name), served in zip((("direct", "direct"), ("control", "direct, A/A control")), servers, strict=True):
        session = await stack.enter_async_context(Client(served.url, mode=LEGACY_ERA, cache=None))
        routes.append(Route(f"http: {name}", "http", kind, direct_echo(session)))
    http_config = write_config(
        workdir / "http.json",
        {"everything": everything.config_entry(), "remote": {"type": "http", "url": servers[0].url}},
    )
    served = await stack.enter_async_context(
        _procs.quiver_serve(http_config, gateway_env(workdir), workdir / "serve.log")
    )
    session = await stack.enter_async_context(Client(served.url, mode=LEGACY_ERA, cache=None))
    routes.append(
        Route("http: quiver → stdio backend", "http", "quiver", quiver_echo(session, "everything"), served.pid)
    )
    routes.append(Route("http: quiver → HTTP backend", "http", "quiver", quiver_echo(session, "remote"), served.pid))

    for route in routes:  # starts Quiver's backends and warms every connection
        async with anyio.create_task_group() as tg:
            for i in range(WARMUP_CALLS):
                tg.start_soon(checked, route.call, f"warm-up {i}")
    return routes


async def measure(routes: list[Route], mode: Mode) -> None:
    by_name = {route.name: route for route in routes}
    for concurrency in CONCURRENCY:
        log(f"concurrency {concurrency}: {mode.rounds} interleaved rounds of {mode.calls_per_burst} calls per route …")
        for turn in range(mode.rounds):
            for name in rotated(list(by_name), turn):
                await burst(by_name[name], concurrency, mode.calls_per_burst, f"c{concurrency} r{turn}")


def results_of(routes: list[Route]) -> dict[str, Any]:
    """Per concurrency and route: calls/s (median of bursts), p50/p99, CPU; ratios to direct."""
    out: dict[str, Any] = {}
    for concurrency in CONCURRENCY:
        rows: dict[str, Any] = {}
        for route in routes:
            samples = route.latencies[concurrency]
            cpu = route.cpu[concurrency] / route.calls[concurrency] * 1000 if route.pid is not None else None
            rows[route.name] = {
                "transport": route.transport,
                "kind": route.kind,
                "calls": route.calls[concurrency],
                "calls_per_s": statistics.median(route.rates[concurrency]),
                "p50_ms": percentile(samples, 50),
                "p99_ms": percentile(samples, 99),
                "gateway_cpu_ms_per_call": cpu,
            }
        for transport in ("stdio", "http"):
            direct = next(r for r in rows.values() if r["transport"] == transport and r["kind"] == "direct")
            for row in rows.values():
                if row["transport"] == transport:
                    row["vs_direct"] = {
                        "calls_per_s": row["calls_per_s"] / direct["calls_per_s"],
                        "p50": row["p50_ms"] / direct["p50_ms"],
                        "p99": row["p99_ms"] / direct["p99_ms"],
                    }
        out[str(concurrency)] = rows
    return out


# -- idle memory -----------------------------------------------------------------------------


async def idle_rss(command: Command, errlog: TextIO) -> tuple[int, int]:
    """(RSS in KiB, child processes) of a server after `initialize` and `tools/list`, left idle a moment."""
    async with _procs.spawned(command, LEGACY_ERA, errlog) as (session, pid):
        await session.list_tools()
        await anyio.sleep(IDLE_SETTLE)
        rss = _procs.rss_kib(pid)
        if rss is None:
            raise RuntimeError(f"{command.command} exited while idle")
        return rss, len(_procs.descendants(pid))


async def measure_memory(workdir: Path, reps: int, errlog: TextIO) -> dict[str, Any]:
    everything = everything_server().config_entry()
    none = write_config(workdir / "none.json", {})
    many = write_config(workdir / "many.json", {f"everything{i:03d}": everything for i in range(1, MANY_BACKENDS + 1)})
    env = gateway_env(workdir)
    variants = {
        "mcp-server-time (an idle SDK server)": time_server(),
        "quiver, 0 backends": Command(str(VENV_BIN / "quiver"), ["stdio", "--config", str(none)], env),
        f"quiver, {MANY_BACKENDS} backends": Command(str(VENV_BIN / "quiver"), ["stdio", "--config", str(many)], env),
    }
    samples: dict[str, list[int]] = {name: [] for name in variants}
    children: dict[str, int] = {}
    for rep in range(reps):
        for name in rotated(list(variants), rep):
            rss, children[name] = await idle_rss(variants[name], errlog)
            samples[name].append(rss)
    return {
        name: {"rss_kib": statistics.median(values), "samples": values, "children": children[name]}
        for name, values in samples.items()
    }


# -- the run ---------------------------------------------------------------------------------


async def run(mode: Mode) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="quiver-concurrency-") as tmp:
        workdir = Path(tmp)
        with (workdir / "servers.log").open("w") as errlog:
            async with AsyncExitStack() as stack:
                log("opening routes (stdio and HTTP; direct, A/A control, Quiver) …")
                routes = await open_routes(stack, workdir, errlog)
                await measure(routes, mode)
            log(f"idle memory, {mode.memory_reps} interleaved repetitions …")
            memory = await measure_memory(workdir, mode.memory_reps, errlog)
    return {
        "date": dt.datetime.now(dt.UTC).date().isoformat(),
        "machine": machine(),
        "mode": "quick" if mode is QUICK else "full",
        "settings": {"concurrency": list(CONCURRENCY), "rounds": mode.rounds, "calls_per_burst": mode.calls_per_burst},
        "by_concurrency": results_of(routes),
        "idle_memory": memory,
    }


# -- output ----------------------------------------------------------------------------------


def noise(rows: dict[str, Any], transport: str) -> tuple[float, float]:
    """How far the A/A control landed from the direct route: (calls/s, p50) as fractions."""
    control = next(r for r in rows.values() if r["transport"] == transport and r["kind"] == "control")
    return abs(control["vs_direct"]["calls_per_s"] - 1), abs(control["vs_direct"]["p50"] - 1)


def render(results: dict[str, Any]) -> str:
    info, settings = results["machine"], results["settings"]
    out = [
        f"Quiver throughput and latency by concurrency — {results['date']}, {info['cpu']}, {info['cores']} cores, "
        f"{results['mode']} mode; {settings['rounds']} rounds × {settings['calls_per_burst']} calls per route",
        "server-everything echo, one SDK client session (handshake era); ratios are Quiver / direct",
    ]
    for concurrency, rows in results["by_concurrency"].items():
        out.append(f"\nConcurrency {concurrency}")
        table_rows: list[list[object]] = []
        for name, row in rows.items():
            ratio = row["vs_direct"]
            cpu = row["gateway_cpu_ms_per_call"]
            table_rows.append(
                [
                    name,
                    f"{row['calls_per_s']:,.0f}",
                    f"{row['p50_ms']:.2f}",
                    f"{row['p99_ms']:.2f}",
                    f"{ratio['calls_per_s']:.2f}",
                    f"{ratio['p50']:.2f}",
                    f"{ratio['p99']:.2f}",
                    "—" if cpu is None else f"{cpu:.2f}",
                ]
            )
        headers = ["route", "calls/s", "p50 ms", "p99 ms", "×calls/s", "×p50", "×p99", "gw cpu ms/call"]
        out.append(table(headers, table_rows))
        for transport in ("stdio", "http"):
            rate_noise, p50_noise = noise(rows, transport)
            out.append(
                f"  {transport} noise floor (A/A control vs direct): calls/s {rate_noise:.0%}, p50 {p50_noise:.0%}"
            )
    out.append("\nIdle memory (RSS after initialize + tools/list, median)")
    memory = results["idle_memory"]
    rows_mem = [
        [name, f"{item['rss_kib'] / 1024:.1f}", " ".join(f"{s / 1024:.1f}" for s in item["samples"]), item["children"]]
        for name, item in memory.items()
    ]
    out.append(table(["process", "RSS MiB", "samples", "children"], rows_mem))
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    return bench_main(
        argv,
        "Quiver throughput and latency at concurrency 1, 16 and 64.",
        "fewer rounds: a smoke run",
        run,
        (QUICK, FULL),
        render,
    )


if __name__ == "__main__":
    sys.exit(main())
