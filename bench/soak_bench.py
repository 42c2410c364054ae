"""Soak under chaos: does Quiver keep answering while its backends are killed at random?

One gateway (`quiver stdio` spawned by an SDK `Client` in the handshake era, or `quiver serve`
with `--http`) fronts four backends: three instances of the test suite's faulty server (two
negotiating 2026-07-28, one forced to the handshake era) and server-everything. 32 callers share
one session and send `call_tool` → `<backend>.echo` with a unique message, at a paced rate
(Poisson arrivals), while every 0.5–1 s a chaos task picks a backend at random and SIGKILLs its
process. Every call must be answered — a result, or an `isError` result that says what
happened — and every successful answer must carry the caller's own message back.

Before the chaos, a calm phase measures the same calls through Quiver and over direct
connections to the same four servers (interleaved blocks), so the latencies have a reference.
After it, the benchmark waits until every backend answers again, checks the gateway's file
descriptors and memory against the start, shuts the gateway down and looks for processes left
behind. Run `.venv/bin/python bench/soak_bench.py [--quick] [--http] [--json]`.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import random
import re
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import anyio
import anyio.lowlevel
import mcp_types as types
from mcp import Client
from mcp.shared.exceptions import MCPError

# Run as a script: make the repository root importable so `bench._util` resolves.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import _procs
from bench._util import (
    AUTO_ERA,
    LEGACY_ERA,
    ROOT,
    VENV_BIN,
    Command,
    SetupError,
    client,
    everything_server,
    log,
    machine,
    ms,
    percentile,
    table,
)

FAULTY_SERVER = ROOT / "tests" / "fixtures" / "faulty_server.py"
CONCURRENCY = 32
CHAOS_INTERVAL = (0.5, 1.0)  # seconds between two kills, uniformly drawn
# A call not answered within this is lost. Quiver's own call timeout (below) is far shorter, so
# only a call the gateway forgot, or a gateway that stopped answering, runs into it.
CALL_DEADLINE = 30.0
CALL_TIMEOUT = 10.0
# Open after 5 consecutive failures (the default), but only for 2 s, so a run of a minute or
# two sees the breaker open, half-open and close again many times.
BREAKER_THRESHOLD = 5
BREAKER_COOLDOWN = 2.0
# Quiver backs a crash-looping backend off for up to 60 s; recovery must fit in that and more.
RECOVERY_LIMIT = 90.0
SAMPLE_INTERVAL = 0.25
CALM_BLOCK = 50  # calls per block in the calm phase, alternating direct and Quiver
BACKEND_TAG = "SOAK_BACKEND"  # in each backend's environment, to tell its process apart


@dataclass(frozen=True)
class Mode:
    calls: int
    rate: float  # arrivals per second; 0 = as fast as the callers can go
    calm_calls: int  # per path


FULL = Mode(calls=10_000, rate=80.0, calm_calls=1_000)
QUICK = Mode(calls=1_000, rate=40.0, calm_calls=200)


# -- backends --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Backend:
    name: str
    command: Command
    protocol: str  # what Quiver negotiates with it ("auto" or "legacy"); direct clients do the same
    echo_prefix: str  # what the server puts before the message in its echo

    def config_entry(self) -> dict[str, Any]:
        return {
            "command": self.command.command,
            "args": self.command.args,
            "env": {**self.command.env, BACKEND_TAG: self.name},
            "protocol": self.protocol,
            "idle_timeout": 0,  # never stopped for idleness: every stop in this run is a kill
            "call_timeout": CALL_TIMEOUT,
            "breaker_threshold": BREAKER_THRESHOLD,
            "breaker_cooldown": BREAKER_COOLDOWN,
        }


def backends() -> list[Backend]:
    faulty = Command(sys.executable, [str(FAULTY_SERVER)])
    return [
        Backend("faulty_a", faulty, AUTO_ERA, ""),
        Backend("faulty_b", faulty, AUTO_ERA, ""),
        Backend("faulty_c", faulty, LEGACY_ERA, ""),
        Backend("everything", everything_server(), AUTO_ERA, "Echo: "),
    ]


def write_config(path: Path, servers: list[Backend]) -> Path:
    path.write_text(json.dumps({"backends": {b.name: b.config_entry() for b in servers}}, indent=2))
    return path


def backend_of(pid: int) -> str | None:
    """Which backend a process serves, from the tag in its environment."""
    try:
        environ = (_procs.PROC / str(pid) / "environ").read_bytes()
    except OSError:
        return None
    for item in environ.split(b"\0"):
        key, _, value = item.partition(b"=")
        if key.decode(errors="replace") == BACKEND_TAG:
            return value.decode(errors="replace")
    return None


# -- the gateway -----------------------------------------------------------------------------


@dataclass
class Gateway:
    session: Client
    pid: int
    transport: str


def gateway_env(workdir: Path, log_level: str) -> dict[str, str]:
    return {
        "QUIVER_CACHE_DIR": str(workdir / "cache"),
        "QUIVER_STATE_DIR": str(workdir / "state"),
        "QUIVER_LOG_LEVEL": log_level,
    }


@asynccontextmanager
async def stdio_gateway(config: Path, env: dict[str, str], errlog: TextIO) -> AsyncIterator[Gateway]:
    command = Command(str(VENV_BIN / "quiver"), ["stdio", "--config", str(config)], env)
    async with _procs.spawned(command, LEGACY_ERA, errlog) as (session, pid):
        yield Gateway(session, pid, "stdio")


@asynccontextmanager
async def http_gateway(config: Path, env: dict[str, str], log_path: Path) -> AsyncIterator[Gateway]:
    """`quiver serve` on a free port; stopped with SIGTERM (as a service manager would) at the end."""
    async with (
        _procs.quiver_serve(config, env, log_path) as served,
        Client(served.url, mode=LEGACY_ERA, cache=None) as session,
    ):
        yield Gateway(session, served.pid, "http")


# -- calls -----------------------------------------------------------------------------------

OK, ERROR, UNCLEAR, LOST, WRONG = "ok", "error", "unclear error", "lost", "wrong"

# How Quiver words what happened: (pattern, kind). Errors that quote an earlier error (the
# breaker's, the crash loop's) come first, so they are not taken for the error they quote.
ERROR_KINDS = (
    (r"is failing .* paused", "breaker open: requests paused"),
    (r"keeps exiting soon after it starts", "crash loop: restart backed off"),
    (r"did not finish starting", "start timed out"),
    (r"could not start", "start failed"),
    (r"exited during", "backend died during the call"),
    (r"did not answer within", "call timed out"),
    (r"is busy", "busy"),
    (r"shutting down", "gateway shutting down"),
)


@dataclass(frozen=True)
class Outcome:
    backend: str
    status: str  # OK, ERROR, UNCLEAR, LOST or WRONG
    kind: str  # for errors: error code and what happened; for the rest, ""
    latency_ms: float
    started: float  # when the call was made, in seconds since its phase began
    detail: str = ""  # what the answer said, for errors (the first lines of its text)


def expected_text(backend: Backend, message: str) -> str:
    return backend.echo_prefix + message


def error_text(result: types.CallToolResult) -> str:
    return " ".join(c.text for c in result.content if isinstance(c, types.TextContent))


def classify_error(result: types.CallToolResult) -> tuple[str, str]:
    text = error_text(result)
    error = (result.structured_content or {}).get("error")
    code = error.get("code") if isinstance(error, dict) else None
    if not code or not text.strip() or code == "error":
        # No code, no words, or Quiver's catch-all for an unexpected exception: not a clear answer.
        return UNCLEAR, f"{code or 'no code'}: {text[:100]}"
    for pattern, kind in ERROR_KINDS:
        if re.search(pattern, text):
            return ERROR, f"{code}: {kind}"
    return ERROR, f"{code}: {re.sub(r'[0-9]+', 'N', text.splitlines()[0])[:90]}"


Call = Callable[[Backend, str], Awaitable[types.CallToolResult]]


def via_quiver(session: Client) -> Call:
    def call(backend: Backend, message: str) -> Awaitable[types.CallToolResult]:
        return session.call_tool("call_tool", {"id": f"{backend.name}.echo", "arguments": {"message": message}})

    return call


def via_direct(sessions: dict[str, Client]) -> Call:
    def call(backend: Backend, message: str) -> Awaitable[types.CallToolResult]:
        return sessions[backend.name].call_tool("echo", {"message": message})

    return call


async def one_call(call: Call, backend: Backend, message: str, origin: float) -> Outcome:
    started = time.perf_counter()
    status, kind, detail = LOST, f"no answer within {CALL_DEADLINE:g} s", ""
    with anyio.move_on_after(CALL_DEADLINE):
        try:
            result = await call(backend, message)
        except MCPError as exc:
            status, kind = LOST, f"JSON-RPC error {exc.error.code}: {exc.error.message[:80]}"
        except Exception as exc:  # the session itself broke: every such call is lost
            status, kind = LOST, f"{type(exc).__name__}: {str(exc)[:80]}"
        else:
            status, kind = check(backend, message, result)
            detail = error_text(result)[:400] if status != OK else ""
    elapsed = time.perf_counter() - started
    return Outcome(backend.name, status, kind, elapsed * 1000, started - origin, detail)


def check(backend: Backend, message: str, result: types.CallToolResult) -> tuple[str, str]:
    if result.is_error:
        return classify_error(result)
    texts = [c.text for c in result.content if isinstance(c, types.TextContent)]
    if texts == [expected_text(backend, message)]:
        return OK, ""
    return WRONG, f"expected {expected_text(backend, message)!r}, got {texts!r}"[:200]


class Pacer:
    """Poisson arrivals at `rate` per second, shared by all callers (0: no pacing)."""

    def __init__(self, rate: float, rng: random.Random) -> None:
        self.rate = rate
        self._rng = rng
        self._next = anyio.current_time()

    async def wait(self) -> None:
        if self.rate <= 0:
            await anyio.lowlevel.checkpoint()
            return
        self._next += self._rng.expovariate(self.rate)
        await anyio.sleep_until(self._next)


@dataclass
class Load:
    """Calls in flight right now, and the most there ever were."""

    now: int = 0
    peak: int = 0


async def run_calls(
    call: Call, plan: list[Backend], rate: float, rng: random.Random, label: str, load: Load | None = None
) -> list[Outcome]:
    """Make one call per entry of `plan` (the backend to call), with `CONCURRENCY` callers."""
    outcomes: list[Outcome] = []
    pacer = Pacer(rate, rng)
    todo = iter(enumerate(plan))
    origin = time.perf_counter()
    load = load or Load()

    async def caller() -> None:
        for index, backend in todo:
            await pacer.wait()
            load.now += 1
            load.peak = max(load.peak, load.now)
            try:
                outcomes.append(await one_call(call, backend, f"{label} {index} {uuid.uuid4().hex}", origin))
            finally:
                load.now -= 1

    async with anyio.create_task_group() as tg:
        for _ in range(CONCURRENCY):
            tg.start_soon(caller)
    return outcomes


# -- chaos and observation -------------------------------------------------------------------


@dataclass
class Observer:
    """What happens around the gateway: its children over time, its fds and memory, the kills."""

    gateway: int
    seen: dict[_procs.Proc, str | None] = field(default_factory=dict)  # every child process → backend
    kills: list[tuple[float, str]] = field(default_factory=list)
    fds: list[tuple[float, int]] = field(default_factory=list)  # all but sockets
    sockets: list[tuple[float, int]] = field(default_factory=list)
    misses: int = 0  # chaos ticks whose chosen backend had no process to kill
    rss: list[tuple[float, int]] = field(default_factory=list)

    def children(self) -> list[_procs.Proc]:
        """The gateway's live descendants now (recording any not seen before)."""
        found = []
        for pid in _procs.descendants(self.gateway):
            proc = _procs.identify(pid)
            if proc is None or _procs.is_zombie(pid):
                continue
            if proc not in self.seen:
                self.seen[proc] = backend_of(pid)
            found.append(proc)
        return found

    def sample(self, origin: float) -> None:
        now = time.perf_counter() - origin
        self.children()
        fds, rss = _procs.fd_kinds(self.gateway), _procs.rss_kib(self.gateway)
        if fds is not None:
            # Sockets are the clients' connections (HTTP keep-alive): they come and go with the client.
            self.fds.append((now, sum(fds.values()) - fds["socket"]))
            self.sockets.append((now, fds["socket"]))
        if rss is not None:
            self.rss.append((now, rss))

    async def watch(self, origin: float) -> None:
        while True:
            self.sample(origin)
            await anyio.sleep(SAMPLE_INTERVAL)

    async def chaos(self, names: list[str], rng: random.Random, origin: float) -> None:
        """Every 0.5–1 s pick a backend at random and SIGKILL its process, if it has one right now.

        Choosing a backend (not one of the live processes) keeps each backend's kill rate the
        same whatever the others' state: otherwise the last backend still running would draw
        every kill while the rest wait out their restart backoff."""
        while True:
            await anyio.sleep(rng.uniform(*CHAOS_INTERVAL))
            chosen = rng.choice(names)
            victims = [proc for proc in self.children() if self.seen.get(proc) == chosen]
            killed = [victim for victim in victims if _procs.kill(victim)]
            if not killed:
                self.misses += 1
                continue
            self.kills.append((time.perf_counter() - origin, chosen))


def point(samples: list[tuple[float, int]], at: float) -> int | None:
    """The sample taken closest to time `at`."""
    return min(samples, key=lambda s: abs(s[0] - at))[1] if samples else None


# -- phases ----------------------------------------------------------------------------------


async def warm_up(call: Call, servers: list[Backend], limit: float) -> dict[str, float]:
    """Call each backend until it answers; the seconds each took (no entry if it never did)."""
    took: dict[str, float] = {}

    async def until_answered(backend: Backend) -> None:
        started = time.perf_counter()
        with anyio.move_on_after(limit):
            while True:
                outcome = await one_call(call, backend, f"ready {uuid.uuid4().hex}", started)
                if outcome.status == OK:
                    took[backend.name] = time.perf_counter() - started
                    return
                await anyio.sleep(0.2)

    async with anyio.create_task_group() as tg:
        for backend in servers:
            tg.start_soon(until_answered, backend)
    return took


async def calm_phase(
    gateway: Client, servers: list[Backend], mode: Mode, rate: float, rng: random.Random, errlog: TextIO
) -> dict[str, Any]:
    """Latency with nothing killed: interleaved blocks through Quiver and over direct connections."""
    samples: dict[str, list[Outcome]] = {"direct": [], "quiver": []}
    async with AsyncExitStack() as stack:
        sessions: dict[str, Client] = {}
        for backend in servers:
            sessions[backend.name] = await stack.enter_async_context(client(backend.command, backend.protocol, errlog))
        paths = {"direct": via_direct(sessions), "quiver": via_quiver(gateway)}
        for block in range(max(1, mode.calm_calls // CALM_BLOCK)):
            for name in ("direct", "quiver") if block % 2 == 0 else ("quiver", "direct"):
                plan = [rng.choice(servers) for _ in range(CALM_BLOCK)]
                samples[name] += await run_calls(paths[name], plan, rate, rng, f"calm-{name}")
    return {name: latency_summary(outcomes) for name, outcomes in samples.items()}


def latency_summary(outcomes: list[Outcome]) -> dict[str, Any]:
    ok = [o.latency_ms for o in outcomes if o.status == OK]
    return {
        "calls": len(outcomes),
        "ok": len(ok),
        "p50_ms": percentile(ok, 50) if ok else None,
        "p99_ms": percentile(ok, 99) if ok else None,
    }


async def statuses(session: Client) -> list[dict[str, Any]]:
    result = await session.call_tool("list_servers", {})
    servers = (result.structured_content or {}).get("servers", [])
    return [s for s in servers if isinstance(s, dict)]


async def run(mode: Mode, *, http: bool, rate: float, seed: int, workdir: Path, log_level: str) -> dict[str, Any]:
    rng = random.Random(seed)
    servers = backends()
    config = write_config(workdir / "soak.json", servers)
    env = gateway_env(workdir, log_level)
    gateway_log = workdir / "gateway.log"
    results: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).date().isoformat(),
        "machine": machine(),
        "mode": "quick" if mode is QUICK else "full",
        "settings": {
            "transport": "http" if http else "stdio",
            "calls": mode.calls,
            "concurrency": CONCURRENCY,
            "rate_per_s": rate,
            "chaos_interval_s": list(CHAOS_INTERVAL),
            "call_timeout_s": CALL_TIMEOUT,
            "client_deadline_s": CALL_DEADLINE,
            "breaker_threshold": BREAKER_THRESHOLD,
            "breaker_cooldown_s": BREAKER_COOLDOWN,
            "backends": {b.name: b.protocol for b in servers},
            "seed": seed,
            "workdir": str(workdir),
        },
    }
    with gateway_log.open("w") as errlog:
        gateway_cm = http_gateway(config, env, gateway_log) if http else stdio_gateway(config, env, errlog)
        async with gateway_cm as gateway:
            observer = Observer(gateway.pid)
            log(f"gateway pid {gateway.pid} ({gateway.transport}); starting {len(servers)} backends …")
            warm = await warm_up(via_quiver(gateway.session), servers, 60)
            if len(warm) < len(servers):
                raise SetupError(f"backends that never answered: {sorted({b.name for b in servers} - set(warm))}")
            log(f"calm phase: {mode.calm_calls} calls each, direct and through Quiver …")
            with (workdir / "direct.log").open("w") as direct_log:
                results["calm"] = await calm_phase(gateway.session, servers, mode, rate, rng, direct_log)
            log(f"chaos phase: {mode.calls} calls at {rate:g}/s, a SIGKILL every {CHAOS_INTERVAL} s …")
            results |= await chaos_phase(gateway, servers, mode.calls, rate, rng, observer)
            closing = time.perf_counter()
        results["gateway"]["exit_seconds"] = round(time.perf_counter() - closing, 2)
    results["processes"]["alive_after_exit"] = await _survivors(observer)
    results["targets"] = targets(results)
    return results


async def chaos_phase(
    gateway: Gateway, servers: list[Backend], calls: int, rate: float, rng: random.Random, observer: Observer
) -> dict[str, Any]:
    """The calls under chaos, then recovery, and what the gateway process looks like before and after."""
    quiver = via_quiver(gateway.session)
    origin = time.perf_counter()
    observer.sample(origin)
    start_fds, start_sockets, start_rss = observer.fds[-1][1], observer.sockets[-1][1], observer.rss[-1][1]
    start_children = len(observer.children())
    plan = [rng.choice(servers) for _ in range(calls)]
    load = Load()
    async with anyio.create_task_group() as tg:
        tg.start_soon(observer.watch, origin)
        tg.start_soon(observer.chaos, [b.name for b in servers], random.Random(rng.random()), origin)
        outcomes = await run_calls(quiver, plan, rate, rng, "soak", load)
        seconds = time.perf_counter() - origin
        tg.cancel_scope.cancel()

    log("chaos over; waiting until every backend answers again …")
    recovered = await warm_up(quiver, servers, RECOVERY_LIMIT)
    settled = time.perf_counter() - origin
    observer.sample(origin)
    end_fds, end_sockets, end_rss = observer.fds[-1][1], observer.sockets[-1][1], observer.rss[-1][1]
    end_status = await statuses(gateway.session)
    current = set(observer.children())
    orphans = sorted(p.pid for p in observer.seen if p not in current and _procs.is_alive(p))
    return {
        "chaos": summarise(outcomes, seconds, load.peak),
        "recovery": {
            "seconds_after_chaos": {name: round(took, 2) for name, took in recovered.items()},
            "not_recovered": sorted({b.name for b in servers} - set(recovered)),
            "backends_at_end": end_status,
        },
        "gateway": {
            "pid": gateway.pid,
            "alive_at_end": _procs.state(gateway.pid) not in (None, "Z"),
            "fds": {
                "start": start_fds,
                "mid": point(observer.fds, seconds / 2),
                "end": end_fds,
                "min": min(f for _, f in observer.fds),
                "max": max(f for _, f in observer.fds),
            },
            "sockets": {"start": start_sockets, "end": end_sockets, "max": max(n for _, n in observer.sockets)},
            "rss_kib": {
                "start": start_rss,
                "quarters": [point(observer.rss, seconds * q / 4) for q in (1, 2, 3, 4)],
                "end": end_rss,
                "max": max(r for _, r in observer.rss),
            },
            "children_start": start_children,
            "children_end": len(current),
            "seconds_to_settle": round(settled, 1),
        },
        "processes": {
            "backend_processes_seen": sum(1 for name in observer.seen.values() if name),
            "kills": len(observer.kills),
            "chaos_misses": observer.misses,
            "kills_by_backend": dict(Counter(name for _, name in observer.kills)),
            "orphans_before_exit": orphans,
            "zombies_before_exit": await lasting_zombies(gateway.pid),
        },
    }


async def lasting_zombies(pid: int) -> list[int]:
    """Descendants of `pid` that stay zombies (never reaped) for a second."""
    first = {child for child in _procs.descendants(pid) if _procs.is_zombie(child)}
    if first:
        await anyio.sleep(1.0)
    return sorted(child for child in first if _procs.is_zombie(child))


async def _survivors(observer: Observer) -> list[str]:
    """Processes the gateway started that outlive it (after a short grace for their exit)."""
    deadline = time.monotonic() + 3.0
    while True:
        left = [p for p in observer.seen if _procs.is_alive(p)]
        if not left or time.monotonic() > deadline:
            return [f"{p.pid} {observer.seen[p]} {_procs.command_line(p.pid)[:80]}" for p in left]
        await anyio.sleep(0.1)


def summarise(outcomes: list[Outcome], seconds: float, peak: int) -> dict[str, Any]:
    status = Counter(o.status for o in outcomes)
    per_backend: dict[str, dict[str, int]] = {}
    for o in outcomes:
        counts = per_backend.setdefault(o.backend, {OK: 0, ERROR: 0, UNCLEAR: 0, LOST: 0, WRONG: 0})
        counts[o.status] += 1
    kinds = Counter((o.status, o.kind) for o in outcomes if o.status != OK)
    examples = {(o.status, o.kind): o.detail for o in outcomes if o.status != OK}
    tenths: list[list[Outcome]] = [[] for _ in range(10)]
    for o in outcomes:
        tenths[min(9, int(o.started / seconds * 10))].append(o)
    return {
        "calls": len(outcomes),
        "answered": status[OK] + status[ERROR] + status[UNCLEAR],
        "ok": status[OK],
        "clear_errors": status[ERROR],
        "unclear_errors": status[UNCLEAR],
        "lost": status[LOST],
        "wrong": status[WRONG],
        "errors": [
            {"status": s, "kind": k, "count": n, "example": examples[s, k]} for (s, k), n in kinds.most_common()
        ],
        "ok_share_by_tenth": [round(sum(o.status == OK for o in t) / len(t), 2) if t else None for t in tenths],
        "per_backend": per_backend,
        "latency_ok": latency_summary(outcomes),
        "seconds": round(seconds, 1),
        "calls_per_s": round(len(outcomes) / seconds, 1),
        "peak_in_flight": peak,
        "first_lost": [dataclasses.asdict(o) for o in outcomes if o.status in (LOST, WRONG, UNCLEAR)][:5],
    }


def targets(results: dict[str, Any]) -> dict[str, Any]:
    chaos, gateway, procs = results["chaos"], results["gateway"], results["processes"]
    leaked = len(procs["orphans_before_exit"]) + len(procs["zombies_before_exit"]) + len(procs["alive_after_exit"])
    fds = gateway["fds"]
    rss = gateway["rss_kib"]
    checks = {
        "every call answered": (f"{chaos['answered']} / {chaos['calls']}", chaos["answered"] == chaos["calls"]),
        "lost calls": (chaos["lost"], chaos["lost"] == 0),
        "wrong answers": (chaos["wrong"], chaos["wrong"] == 0),
        "unclear errors": (chaos["unclear_errors"], chaos["unclear_errors"] == 0),
        "leaked processes": (leaked, leaked == 0),
        "gateway alive to the end": (gateway["alive_at_end"], gateway["alive_at_end"]),
        "every backend recovered": (
            ", ".join(results["recovery"]["not_recovered"]) or "all",
            not results["recovery"]["not_recovered"],
        ),
        "fds flat (end = start; sockets aside)": (f"{fds['start']} → {fds['end']}", fds["end"] == fds["start"]),
        # Python's allocator keeps some of what it grew; a leak per call would be far larger.
        "memory flat (end ≤ start + 10 %)": (
            f"{rss['start'] / 1024:.1f} → {rss['end'] / 1024:.1f} MiB",
            rss["end"] <= rss["start"] * 1.10,
        ),
    }
    return {name: {"value": value, "met": met} for name, (value, met) in checks.items()}


# -- output ----------------------------------------------------------------------------------


def render(results: dict[str, Any]) -> str:
    info, settings = results["machine"], results["settings"]
    chaos, gateway, procs = results["chaos"], results["gateway"], results["processes"]
    out = [
        f"Quiver soak under chaos — {results['date']}, {info['cpu']}, {info['cores']} cores, {results['mode']} mode",
        f"transport {settings['transport']}; {settings['calls']} calls, {settings['concurrency']} callers, "
        f"{settings['rate_per_s']:g} calls/s; a SIGKILL every {settings['chaos_interval_s'][0]}–"
        f"{settings['chaos_interval_s'][1]} s; breaker {settings['breaker_threshold']} failures / "
        f"{settings['breaker_cooldown_s']:g} s; seed {settings['seed']}",
    ]
    out.append("\nOutcomes under chaos")
    rows: list[list[object]] = [
        ["calls", chaos["calls"]],
        ["answered", chaos["answered"]],
        ["  success (echo matched)", chaos["ok"]],
        ["  clear error result", chaos["clear_errors"]],
        ["  unclear error result", chaos["unclear_errors"]],
        ["lost (no answer / protocol error)", chaos["lost"]],
        ["wrong answers", chaos["wrong"]],
        ["kills (SIGKILL)", procs["kills"]],
        ["chaos ticks whose backend had no process", procs["chaos_misses"]],
        ["backend processes started", procs["backend_processes_seen"]],
        ["peak calls in flight", chaos["peak_in_flight"]],
        ["duration (s)", chaos["seconds"]],
        ["calls/s", chaos["calls_per_s"]],
    ]
    out.append(table(["", "count"], rows))
    out.append("\nError results by code and kind")
    rows = [
        [f"{e['kind']}" + ("" if e["status"] == ERROR else f" [{e['status']}]"), e["count"]] for e in chaos["errors"]
    ]
    out.append(table(["error", "calls"], rows or [["none", 0]]))
    for e in chaos["errors"]:
        out.append(f"  e.g. {e['example'].splitlines()[0][:150] if e['example'] else e['kind']}")
    shares = " ".join("—" if share is None else f"{share:.0%}" for share in chaos["ok_share_by_tenth"])
    out.append(f"\nSuccessful calls by tenth of the run: {shares}")
    out.append("\nPer backend")
    kills = procs["kills_by_backend"]
    recovered = results["recovery"]["seconds_after_chaos"]
    rows = [
        [
            name,
            c[OK],
            c[ERROR],
            c[UNCLEAR] + c[LOST] + c[WRONG],
            kills.get(name, 0),
            f"{recovered[name]:.1f}" if name in recovered else "never",
        ]
        for name, c in sorted(chaos["per_backend"].items())
    ]
    out.append(table(["backend", "ok", "error", "lost/wrong/unclear", "kills", "answers again after (s)"], rows))
    out.append("\nLatency of successful calls (ms)")
    calm = results["calm"]
    rows = [
        ["calm, direct", calm["direct"]["ok"], ms(calm["direct"]["p50_ms"]), ms(calm["direct"]["p99_ms"])],
        ["calm, Quiver", calm["quiver"]["ok"], ms(calm["quiver"]["p50_ms"]), ms(calm["quiver"]["p99_ms"])],
        [
            "under chaos, Quiver",
            chaos["latency_ok"]["ok"],
            ms(chaos["latency_ok"]["p50_ms"]),
            ms(chaos["latency_ok"]["p99_ms"]),
        ],
    ]
    out.append(table(["", "n", "p50", "p99"], rows))
    out.append("\nGateway process")
    fds, rss = gateway["fds"], gateway["rss_kib"]
    rows = [
        [
            "open fds other than sockets (start / mid / end)",
            f"{fds['start']} / {fds['mid']} / {fds['end']}",
        ],
        ["  during the run (min–max)", f"{fds['min']}–{fds['max']}"],
        [
            "open sockets (start / end; max)",
            f"{gateway['sockets']['start']} / {gateway['sockets']['end']}; {gateway['sockets']['max']}",
        ],
        ["RSS MiB (start / end; max)", f"{rss['start'] / 1024:.1f} / {rss['end'] / 1024:.1f}; {rss['max'] / 1024:.1f}"],
        ["RSS MiB at 25 / 50 / 75 / 100 % of the calls", " / ".join(f"{q / 1024:.1f}" for q in rss["quarters"])],
        ["children (start / end)", f"{gateway['children_start']} / {gateway['children_end']}"],
        ["orphans before exit", ", ".join(map(str, procs["orphans_before_exit"])) or "none"],
        ["zombies before exit", ", ".join(map(str, procs["zombies_before_exit"])) or "none"],
        ["alive after the gateway exited", "; ".join(procs["alive_after_exit"]) or "none"],
        ["seconds from closing the session to the gateway's exit", gateway["exit_seconds"]],
    ]
    out.append(table(["", ""], rows))
    out.append("\nTargets" + (" (quick mode)" if results["mode"] == "quick" else ""))
    rows = [[name, t["value"], "met" if t["met"] else "MISSED"] for name, t in results["targets"].items()]
    out.append(table(["target", "value", ""], rows))
    if chaos["first_lost"]:
        out.append("\nFirst calls lost, wrong or unclear:")
        out.extend(f"  {json.dumps(item)}" for item in chaos["first_lost"])
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Quiver soak test: calls while backends are killed at random.")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK.calls} calls instead of {FULL.calls}")
    parser.add_argument("--http", action="store_true", help="serve the gateway with `quiver serve` (streamable HTTP)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of tables")
    parser.add_argument("--calls", type=int, help="number of calls under chaos (overrides the mode)")
    parser.add_argument("--rate", type=float, help="calls per second (0: as fast as possible)")
    parser.add_argument("--seed", type=int, default=7, help="random seed for the call plan and the kills")
    parser.add_argument("--keep", type=Path, help="keep the gateway's and backends' logs in this directory")
    parser.add_argument("--debug", action="store_true", help="run the gateway with QUIVER_LOG_LEVEL=debug")
    args = parser.parse_args(argv)
    mode = QUICK if args.quick else FULL
    if args.calls is not None:
        mode = Mode(calls=args.calls, rate=mode.rate, calm_calls=mode.calm_calls)
    rate = mode.rate if args.rate is None else args.rate
    level = "debug" if args.debug else "info"
    try:
        if args.keep is not None:
            args.keep.mkdir(parents=True, exist_ok=True)
            results = anyio.run(_run, mode, args.http, rate, args.seed, args.keep.resolve(), level)
        else:
            with tempfile.TemporaryDirectory(prefix="quiver-soak-") as tmp:
                results = anyio.run(_run, mode, args.http, rate, args.seed, Path(tmp), level)
    except SetupError as exc:
        log(f"error: {exc}")
        return 2
    print(json.dumps(results, indent=2) if args.json else render(results))
    return 0 if all(t["met"] for t in results["targets"].values()) else 1


async def _run(mode: Mode, http: bool, rate: float, seed: int, workdir: Path, level: str) -> dict[str, Any]:
    return await run(mode, http=http, rate=rate, seed=seed, workdir=workdir, log_level=level)


if __name__ == "__main__":
    sys.exit(main())
