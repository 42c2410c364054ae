"""What Quiver costs compared with talking to the servers directly, and with a bare pass-through.

One run measures, against real reference servers over stdio from an SDK client:

1. surface tokens: Quiver's `tools/list` (+ instructions) against every tool of six servers;
2. search reply tokens: whole `search_tools` results (5 hits) for a few queries;
3. start-up: process spawn → `initialize` answered, for Quiver with 6 and with 100 backends
   configured and for `mcp-server-time` alone;
4. sequential `echo` latency: direct, through the bare SDK pass-through
   (`bench/passthrough_server.py`), and through Quiver's `call_tool`;
5. throughput with 16 concurrent calls on one session, for the same three paths;
   for 4 and 5 also the forwarding process's CPU time per call (robust on a busy machine).

Variants are measured interleaved (round-robin, rotating the order each round), so a noisy
machine slows all of them alike and the ratios hold; a second, identical pass-through (an A/A
control) shows how far two equal paths drift apart in the same run. Run `make bench`, or
`.venv/bin/python bench/gateway_bench.py [--quick] [--json]`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import anyio
import mcp_types as types
from mcp import Client

# Run as a script: make the repository root importable so `bench._util` resolves.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._util import (
    AUTO_ERA,
    LEGACY_ERA,
    VENV_BIN,
    Call,
    Command,
    SetupError,
    bench_main,
    child_pids,
    client,
    cpu_seconds,
    direct_echo,
    everything_server,
    log,
    machine,
    ms,
    passthrough,
    quiver,
    real_servers,
    rotated,
    summary,
    table,
    time_server,
    write_config,
)
from quiver.tokens import result_tokens, tools_list_tokens

SEARCH_QUERIES = (
    "what time is it in Tokyo",
    "read the contents of a file",
    "show the git commit history",
    "download a web page as markdown",
    "remember a fact in the knowledge graph",
    "list the files in a directory",
)
SEARCH_LIMIT = 5
MANY_BACKENDS = 100
CONCURRENCY = 16
WARMUP_CALLS = 20
CALLS_PER_ROUND = 5  # sequential calls per variant before moving to the next one

# Targets. "No slower" allows for the spread of medians on a shared two-core machine.
START_VS_SDK_SERVER = 1.25
START_MANY_VS_FEW = 1.05
THROUGHPUT_VS_PASSTHROUGH = 0.90
OVERHEAD_TOLERANCE_MS = 0.1


@dataclass(frozen=True)
class Mode:
    startup_reps: int
    sequential_calls: int
    throughput_rounds: int
    calls_per_task: int


FULL = Mode(startup_reps=20, sequential_calls=600, throughput_rounds=8, calls_per_task=25)
QUICK = Mode(startup_reps=4, sequential_calls=60, throughput_rounds=2, calls_per_task=10)


async def list_all_tools(session: Client) -> list[types.Tool]:
    tools: list[types.Tool] = []
    cursor: str | None = None
    while True:
        page = await session.list_tools(cursor=cursor)
        tools.extend(page.tools)
        cursor = page.next_cursor
        if not cursor:
            return tools


# -- 1 + 2: tokens ---------------------------------------------------------------------------


async def measure_tokens(servers: dict[str, Command], gateway: Command, errlog: TextIO) -> dict[str, Any]:
    direct: dict[str, Any] = {}
    for name, command in servers.items():
        async with client(command, AUTO_ERA, errlog) as session:
            tools = await list_all_tools(session)
            direct[name] = {
                "tools": len(tools),
                "tokens": tools_list_tokens(tools, session.instructions),
                "era": session.protocol_version,
            }
    searches: dict[str, Any] = {}
    async with client(gateway, LEGACY_ERA, errlog) as session:
        tools = await list_all_tools(session)
        surface = tools_list_tokens(tools, session.instructions)
        for query in SEARCH_QUERIES:
            result = await session.call_tool("search_tools", {"query": query, "limit": SEARCH_LIMIT})
            hits = (result.structured_content or {}).get("results", [])
            searches[query] = {
                "tokens": result_tokens(result),
                "results": len(hits),
                "top": hits[0]["id"] if hits else None,
            }
    # The summary covers full replies (five hits); a shorter reply is listed but would flatter it.
    full = [item["tokens"] for item in searches.values() if item["results"] == SEARCH_LIMIT]
    reply_tokens = full or [item["tokens"] for item in searches.values()]
    direct_total = sum(item["tokens"] for item in direct.values())
    return {
        "quiver_surface": surface,
        "quiver_tools": len(tools),
        "direct_surface": direct_total,
        "direct_tools": sum(item["tools"] for item in direct.values()),
        "direct": direct,
        "surface_ratio": surface / direct_total,
        "search": searches,
        "search_full_replies": len(full),
        "search_max": max(reply_tokens),
        "search_mean": sum(reply_tokens) / len(reply_tokens),
    }


# -- 3: start-up -----------------------------------------------------------------------------


async def spawn_to_initialize(command: Command, errlog: TextIO) -> tuple[float, str]:
    """Seconds from spawning the process to the `initialize` result (the SDK spawns on enter)."""
    connection = client(command, LEGACY_ERA, errlog)
    started = time.perf_counter()
    async with connection as session:
        elapsed = time.perf_counter() - started
        return elapsed, session.protocol_version


async def measure_startup(variants: dict[str, Command], reps: int, errlog: TextIO) -> dict[str, Any]:
    names = list(variants)
    samples: dict[str, list[float]] = {name: [] for name in names}
    eras: dict[str, str] = {}
    for name in names:  # warm the page cache and the bytecode caches
        await spawn_to_initialize(variants[name], errlog)
    for rep in range(reps):
        for name in rotated(names, rep):
            elapsed, eras[name] = await spawn_to_initialize(variants[name], errlog)
            samples[name].append(elapsed * 1000)
    return {name: {**summary(samples[name]), "era": eras[name]} for name in names}


# -- 4 + 5: calls ----------------------------------------------------------------------------


def passthrough_echo(session: Client) -> Call:
    return lambda message: session.call_tool("forward", {"name": "echo", "arguments": {"message": message}})


def quiver_echo(session: Client) -> Call:
    return lambda message: session.call_tool("call_tool", {"id": "everything.echo", "arguments": {"message": message}})


@dataclass
class Route:
    """One way of reaching server-everything's `echo`, over one open session."""

    name: str
    kind: str  # "direct", "passthrough", "control" (a second pass-through) or "quiver"
    era: str  # the protocol the benchmark's client negotiated on this session
    downstream_era: str
    call: Call
    pid: int | None = None  # the forwarding process, whose CPU time is charged to this route

    def cpu(self) -> float:
        return cpu_seconds(self.pid)


async def checked(call: Call, message: str) -> None:
    result = await call(message)
    content = result.content[0] if result.content else None
    if result.is_error or not isinstance(content, types.TextContent) or message not in content.text:
        raise RuntimeError(f"unexpected echo result: {result.model_dump_json(exclude_none=True)[:300]}")


async def spawned(stack: AsyncExitStack, command: Command, mode: str, errlog: TextIO) -> tuple[Client, int | None]:
    """Enter a client of `command`, and find the process it spawned (for its CPU time)."""
    before = child_pids()
    session = await stack.enter_async_context(client(command, mode, errlog))
    new = child_pids() - before
    return session, new.pop() if len(new) == 1 else None


async def open_routes(stack: AsyncExitStack, gateway: Command, errlog: TextIO) -> list[Route]:
    everything = everything_server()
    direct = await stack.enter_async_context(client(everything, AUTO_ERA, errlog))
    downstream = direct.protocol_version  # server-everything speaks the handshake era only
    routes = [Route("direct", "direct", downstream, downstream, direct_echo(direct))]
    for era in (LEGACY_ERA, AUTO_ERA):
        # In the handshake era a second, identical pass-through is the run's A/A control: how far
        # two equal forwarders drift apart on this machine is the noise floor of the comparison.
        kinds = ("passthrough", "control") if era == LEGACY_ERA else ("passthrough",)
        for kind in kinds:
            relay, relay_pid = await spawned(stack, passthrough(everything), era, errlog)
            relay_downstream = (relay.instructions or "").rpartition(" ")[2]
            name = f"pass-through {relay.protocol_version}" + (" (A/A control)" if kind == "control" else "")
            call = passthrough_echo(relay)
            routes.append(Route(name, kind, relay.protocol_version, relay_downstream, call, relay_pid))
        gate, gate_pid = await spawned(stack, gateway, era, errlog)
        name = f"quiver {gate.protocol_version}"
        routes.append(Route(name, "quiver", gate.protocol_version, downstream, quiver_echo(gate), gate_pid))
    for route in routes:  # warm-up: starts Quiver's backend, fills the SDK's tool caches
        for i in range(WARMUP_CALLS):
            await checked(route.call, f"warm-up {i}")
    return routes


class CpuMeter:
    """CPU time the forwarding processes spent, per route, over the blocks measured."""

    def __init__(self, routes: Sequence[Route]) -> None:
        self.seconds = {route.name: 0.0 for route in routes}
        self.calls = {route.name: 0 for route in routes}

    def add(self, route: Route, before: float, calls: int) -> None:
        self.seconds[route.name] += route.cpu() - before
        self.calls[route.name] += calls

    def per_call_ms(self, name: str) -> float | None:
        value = self.seconds[name] / self.calls[name] * 1000 if self.calls[name] else math.nan
        return None if math.isnan(value) else value


async def measure_latency(routes: list[Route], calls: int) -> dict[str, Any]:
    samples: dict[str, list[float]] = {route.name: [] for route in routes}
    by_name = {route.name: route for route in routes}
    meter = CpuMeter(routes)
    for turn in range(max(1, calls // CALLS_PER_ROUND)):
        for name in rotated(list(by_name), turn):
            route = by_name[name]
            cpu_before = route.cpu()
            for i in range(CALLS_PER_ROUND):
                started = time.perf_counter()
                await checked(route.call, f"latency {turn}.{i}")
                samples[name].append((time.perf_counter() - started) * 1000)
            meter.add(route, cpu_before, CALLS_PER_ROUND)
    return {name: {**summary(values), "cpu_ms_per_call": meter.per_call_ms(name)} for name, values in samples.items()}


async def burst(call: Call, tasks: int, calls_per_task: int) -> float:
    """Calls per second with `tasks` tasks each making `calls_per_task` calls, all on one session."""

    async def worker(index: int) -> None:
        for i in range(calls_per_task):
            await checked(call, f"burst {index}.{i}")

    started = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for index in range(tasks):
            tg.start_soon(worker, index)
    return tasks * calls_per_task / (time.perf_counter() - started)


async def measure_throughput(routes: list[Route], rounds: int, calls_per_task: int) -> dict[str, Any]:
    rates: dict[str, list[float]] = {route.name: [] for route in routes}
    by_name = {route.name: route for route in routes}
    meter = CpuMeter(routes)
    for turn in range(rounds):
        for name in rotated(list(by_name), turn):
            route = by_name[name]
            cpu_before = route.cpu()
            rates[name].append(await burst(route.call, CONCURRENCY, calls_per_task))
            meter.add(route, cpu_before, CONCURRENCY * calls_per_task)
    return {
        name: {
            "calls_per_s": statistics.median(values),
            "rounds": [round(value, 1) for value in values],
            "cpu_ms_per_call": meter.per_call_ms(name),
        }
        for name, values in rates.items()
    }


# -- the run ---------------------------------------------------------------------------------


def refresh_catalog(config: Path, gateway: Command) -> None:
    """Fill Quiver's catalog cache, as `quiver refresh` does before a session."""
    done = subprocess.run(
        [str(VENV_BIN / "quiver"), "refresh", "--config", str(config)],
        env={**os.environ, **gateway.env},
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SetupError(f"quiver refresh failed:\n{done.stdout}{done.stderr}")


async def run(mode: Mode) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="quiver-bench-") as tmp:
        workdir = Path(tmp)
        with (workdir / "servers.log").open("w") as errlog:
            servers = real_servers(workdir)
            few = write_config(workdir / "real.json", servers)
            many = write_config(
                workdir / "many.json", {f"time{i:03d}": time_server() for i in range(1, MANY_BACKENDS + 1)}
            )
            gateway = quiver(few, workdir)
            log(f"filling the catalog cache for {len(servers)} backends …")
            refresh_catalog(few, gateway)

            log("tokens …")
            tokens = await measure_tokens(servers, gateway, errlog)

            log(f"start-up, {mode.startup_reps} interleaved repetitions …")
            startup = await measure_startup(
                {
                    "mcp-server-time alone": time_server(),
                    f"quiver, {len(servers)} backends": gateway,
                    f"quiver, {MANY_BACKENDS} backends": quiver(many, workdir),
                },
                mode.startup_reps,
                errlog,
            )

            async with AsyncExitStack() as stack:
                log("opening sessions (direct, pass-through and Quiver, both eras) …")
                routes = await open_routes(stack, gateway, errlog)
                log(f"sequential latency, {mode.sequential_calls} calls each …")
                latency = await measure_latency(routes, mode.sequential_calls)
                log(f"throughput, {CONCURRENCY} concurrent tasks, {mode.throughput_rounds} rounds …")
                throughput = await measure_throughput(routes, mode.throughput_rounds, mode.calls_per_task)
            sessions = {r.name: {"kind": r.kind, "era": r.era, "downstream_era": r.downstream_era} for r in routes}
    results: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).date().isoformat(),
        "machine": machine(),
        "mode": "quick" if mode is QUICK else "full",
        "settings": dataclasses.asdict(mode) | {"concurrency": CONCURRENCY, "many_backends": MANY_BACKENDS},
        "tokens": tokens,
        "startup_ms": startup,
        "sessions": sessions,
        "latency_ms": latency,
        "throughput": throughput,
    }
    results["targets"] = targets(results)
    return results


def targets(results: dict[str, Any]) -> dict[str, Any]:
    """Each target: its value, the goal, and met / within noise / MISSED.

    "Within noise" means the goal was missed by less than the two identical pass-throughs
    (the A/A control) differed in the same run: this machine cannot tell the two apart.
    """
    startup = results["startup_ms"]
    sdk, few, many = (startup[name]["p50"] for name in startup)
    checks: dict[str, Any] = {
        "startup_vs_sdk_server": _check(few / sdk, f"≤ {START_VS_SDK_SERVER}×", few / sdk <= START_VS_SDK_SERVER),
        "startup_many_vs_few": _check(many / few, f"≤ {START_MANY_VS_FEW}×", many / few <= START_MANY_VS_FEW),
    }
    latency, rates, sessions = results["latency_ms"], results["throughput"], results["sessions"]
    kind = {meta["kind"]: name for name, meta in sessions.items() if meta["kind"] in ("direct", "control")}
    direct, control = kind["direct"], kind.get("control")
    for era in dict.fromkeys(meta["era"] for meta in sessions.values() if meta["kind"] == "quiver"):
        relay = next(n for n, m in sessions.items() if m["kind"] == "passthrough" and m["era"] == era)
        gate = next(n for n, m in sessions.items() if m["kind"] == "quiver" and m["era"] == era)
        if control is not None:
            latency_noise = abs(latency[control]["p50"] - latency[relay]["p50"])
            rate_noise = abs(rates[control]["calls_per_s"] / rates[relay]["calls_per_s"] - 1)
        else:
            latency_noise = rate_noise = 0.0
        relay_cost = latency[relay]["p50"] - latency[direct]["p50"]
        gate_cost = latency[gate]["p50"] - latency[direct]["p50"]
        excess = gate_cost - relay_cost
        checks[f"overhead_p50_{era}"] = _check(
            gate_cost,
            f"≤ pass-through's {relay_cost:.2f} ms (+{OVERHEAD_TOLERANCE_MS} ms)",
            excess <= OVERHEAD_TOLERANCE_MS,
            within_noise=excess <= max(OVERHEAD_TOLERANCE_MS, latency_noise),
        )
        share = rates[gate]["calls_per_s"] / rates[relay]["calls_per_s"]
        checks[f"throughput_{era}"] = _check(
            share,
            f"≥ {THROUGHPUT_VS_PASSTHROUGH:.0%} of pass-through",
            share >= THROUGHPUT_VS_PASSTHROUGH,
            within_noise=share >= THROUGHPUT_VS_PASSTHROUGH - rate_noise,
        )
        gate_cpu, relay_cpu = rates[gate]["cpu_ms_per_call"], rates[relay]["cpu_ms_per_call"]
        if gate_cpu is not None and relay_cpu is not None:
            checks[f"cpu_per_call_{era}"] = _check(gate_cpu / relay_cpu, "ratio to pass-through (info)", None)
    return checks


def _check(value: float, target: str, met: bool | None, *, within_noise: bool = False) -> dict[str, Any]:
    status = "info" if met is None else "met" if met else "within noise" if within_noise else "MISSED"
    return {"value": round(value, 3), "target": target, "met": met, "status": status}


# -- output ----------------------------------------------------------------------------------


def render(results: dict[str, Any]) -> str:
    tokens, out = results["tokens"], []
    info = results["machine"]
    out.append(
        f"Quiver gateway benchmark — {results['date']}, {info['cpu']}, {info['cores']} cores, "
        f"Python {info['python']}, {results['mode']} mode"
    )
    out.append("\n1. Surface tokens (cl100k_base; tools/list JSON + server instructions)")
    rows: list[list[object]] = [
        [f"direct: {name}", item["tools"], item["tokens"], item["era"]] for name, item in tokens["direct"].items()
    ]
    rows.append([f"direct: all {len(tokens['direct'])} servers", tokens["direct_tools"], tokens["direct_surface"], ""])
    rows.append(["quiver", tokens["quiver_tools"], tokens["quiver_surface"], f"{tokens['surface_ratio']:.1%}"])
    out.append(table(["surface", "tools", "tokens", "era / share"], rows))
    out.append(f"\n2. search_tools reply tokens (limit {SEARCH_LIMIT}, whole CallToolResult JSON)")
    rows = [[query, item["results"], item["tokens"], item["top"]] for query, item in tokens["search"].items()]
    summary_label = f"max / mean of the {tokens['search_full_replies']} full replies"
    rows.append([summary_label, "", f"{tokens['search_max']} / {tokens['search_mean']:.0f}", ""])
    out.append(table(["query", "hits", "tokens", "top hit"], rows))
    out.append("\n3. Spawn → initialize answered (ms; SDK client, legacy handshake)")
    startup = results["startup_ms"]
    first = next(iter(startup.values()))["p50"]
    rows = [
        [name, s["n"], f"{s['p50']:.0f}", f"{s['p95']:.0f}", f"{s['p50'] / first:.2f}×"] for name, s in startup.items()
    ]
    out.append(table(["server", "n", "p50", "p95", "vs SDK server"], rows))
    out.append(
        "\n4–5. server-everything echo over stdio from an SDK client "
        "(ms; Δ = minus direct; cpu = forwarding process's CPU per call)"
    )
    latency, throughput, sessions = results["latency_ms"], results["throughput"], results["sessions"]
    direct = next(name for name, meta in sessions.items() if meta["kind"] == "direct")
    rows = []
    for name, s in latency.items():
        meta, rate = sessions[name], throughput[name]
        rows.append(
            [
                name,
                meta["downstream_era"] if meta["kind"] != "direct" else "",
                s["n"],
                f"{s['p50']:.2f}",
                f"{s['p95']:.2f}",
                f"{s['p50'] - latency[direct]['p50']:+.2f}",
                f"{s['p95'] - latency[direct]['p95']:+.2f}",
                ms(s["cpu_ms_per_call"]),
                f"{rate['calls_per_s']:.0f}",
                ms(rate["cpu_ms_per_call"]),
            ]
        )
    headers = ["path (client era)", "downstream", "n", "p50", "p95", "Δp50", "Δp95", "cpu"]
    out.append(table([*headers, f"calls/s @{CONCURRENCY}", f"cpu @{CONCURRENCY}"], rows))
    out.append("\nTargets" + (" (quick mode: too few repetitions to judge them)" if results["mode"] == "quick" else ""))
    rows = [[name, c["value"], c["target"], c["status"]] for name, c in results["targets"].items()]
    out.append(table(["target", "value", "goal", ""], rows))
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    return bench_main(
        argv,
        "Quiver gateway overhead benchmark.",
        "fewer repetitions: a smoke run under a minute",
        run,
        (QUICK, FULL),
        render,
    )


if __name__ == "__main__":
    sys.exit(main())
