"""What the gateway benchmark needs besides the measurements: servers, configs, clients, statistics.

The real reference servers are the ones `make setup` installs (PyPI servers in the venv, npm
servers under tools/node). Every process the benchmark starts writes its stderr to one log
file in the run's temporary directory, so the table is not interleaved with server chatter.
"""

from __future__ import annotations

import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import mcp_types as types
from mcp import Client
from mcp.client.stdio import StdioServerParameters, stdio_client

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
NPM_SCOPE = ROOT / "tools" / "node" / "node_modules" / "@modelcontextprotocol"
PASSTHROUGH = Path(__file__).resolve().with_name("passthrough_server.py")

LEGACY_ERA = "legacy"  # the `initialize` handshake (2025-11-25 and earlier)
AUTO_ERA = "auto"  # probe `server/discover` (2026-07-28), fall back to the handshake


class SetupError(RuntimeError):
    """A server or tool the benchmark needs is missing; the message says what to install."""


@dataclass(frozen=True)
class Command:
    """A server process to spawn: what `StdioServerParameters` needs."""

    command: str
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)

    def config_entry(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"command": self.command, "args": self.args}
        if self.env:
            entry["env"] = self.env
        return entry


def pypi_server(name: str) -> str:
    path = VENV_BIN / name
    if not path.exists():
        raise SetupError(f"{name} is not installed in {VENV_BIN}; run `make setup`")
    return str(path)


def npm_server(package: str) -> str:
    script = NPM_SCOPE / package / "dist" / "index.js"
    if not script.exists():
        raise SetupError(f"npm package @modelcontextprotocol/{package} is missing; run `make setup`")
    return str(script)


def node() -> str:
    found = shutil.which("node")
    if found is None:
        raise SetupError("node is not on PATH")
    return found


def time_server() -> Command:
    return Command(pypi_server("mcp-server-time"), ["--local-timezone", "UTC"])


def everything_server() -> Command:
    return Command(node(), [npm_server("server-everything"), "stdio"])


def real_servers(workdir: Path) -> dict[str, Command]:
    """Six real reference servers (three on the Python SDK 2.x, three on the TypeScript SDK 1.x)."""
    files, repo = workdir / "files", workdir / "repo"
    files.mkdir(exist_ok=True)
    (files / "notes.txt").write_text("benchmark file\n")
    _make_repo(repo)
    return {
        "everything": everything_server(),
        "filesystem": Command(node(), [npm_server("server-filesystem"), str(files)]),
        "memory": Command(node(), [npm_server("server-memory")], {"MEMORY_FILE_PATH": str(workdir / "memory.jsonl")}),
        "time": time_server(),
        "git": Command(pypi_server("mcp-server-git"), ["-r", str(repo)]),
        "fetch": Command(pypi_server("mcp-server-fetch")),
    }


def _make_repo(repo: Path) -> None:
    git = shutil.which("git")
    if git is None:
        raise SetupError("git is not on PATH (mcp-server-git needs a repository)")
    repo.mkdir(exist_ok=True)
    (repo / "README.md").write_text("benchmark repository\n")
    who = {"GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.com"}
    env = {**os.environ, **who, "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.com"}
    for cmd in (["init", "-q"], ["add", "README.md"], ["commit", "-q", "-m", "first"]):
        subprocess.run([git, *cmd], cwd=repo, env=env, check=True, capture_output=True)


def write_config(path: Path, backends: dict[str, Command]) -> Path:
    data = {"backends": {name: command.config_entry() for name, command in backends.items()}}
    path.write_text(json.dumps(data, indent=2))
    return path


def quiver(config: Path, dirs: Path) -> Command:
    """`quiver stdio` with its catalog cache and logs under `dirs`."""
    env = {"QUIVER_CACHE_DIR": str(dirs / "cache"), "QUIVER_STATE_DIR": str(dirs / "state")}
    return Command(str(VENV_BIN / "quiver"), ["stdio", "--config", str(config)], env)


def passthrough(downstream: Command, mode: str = AUTO_ERA) -> Command:
    """`bench/passthrough_server.py` in front of `downstream` (which gets the SDK's default environment)."""
    args = [str(PASSTHROUGH), "--downstream-mode", mode, downstream.command, *downstream.args]
    return Command(sys.executable, args)


def client(command: Command, mode: str, errlog: TextIO) -> Client:
    """An SDK `Client` that spawns `command`; no response cache, so every call reaches the server."""
    params = StdioServerParameters(command=command.command, args=command.args, env=command.env or None)
    return Client(stdio_client(params, errlog=errlog), mode=mode, cache=None)


# -- processes -------------------------------------------------------------------------------

PROC = Path("/proc")


def child_pids() -> set[int]:
    """Processes whose parent is this one (Linux `/proc`; empty elsewhere)."""
    found: set[int] = set()
    me = os.getpid()
    for entry in PROC.glob("[0-9]*"):
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == me:
            found.add(int(entry.name))
    return found


def cpu_seconds(pid: int | None) -> float:
    """CPU time all threads of a process have used so far; NaN when unknown.

    Reads the scheduler's nanosecond run-time of each thread (`/proc/PID/task/*/schedstat`);
    the clock-tick counters in `/proc/PID/stat` are too coarse for a millisecond per call.
    """
    if pid is None:
        return math.nan
    total = 0
    try:
        for task in (PROC / str(pid) / "task").iterdir():
            total += int((task / "schedstat").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return math.nan
    return total / 1e9


# -- statistics ------------------------------------------------------------------------------


def percentile(samples: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100), interpolating linearly between order statistics."""
    ordered = sorted(samples)
    if not ordered:
        return math.nan
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary(samples: Sequence[float]) -> dict[str, float]:
    return {
        "n": len(samples),
        "p50": statistics.median(samples),
        "p95": percentile(samples, 95),
        "mean": statistics.fmean(samples),
        "min": min(samples),
    }


# -- reporting -------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    model = platform.processor() or platform.machine()
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        lscpu = ""
    for line in lscpu.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "Model name":
            model = value.strip()
            break
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "system": f"{platform.system()} {platform.release()}",
    }


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain fixed-width table; the first column is left-aligned, the rest right-aligned."""
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        first = row[0].ljust(widths[0])
        rest = [cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)]
        return "  ".join([first, *rest]).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([line(cells[0]), rule, *(line(row) for row in cells[1:])])


def log(message: str) -> None:
    """Progress for the reader, on stderr (stdout carries the results)."""
    print(message, file=sys.stderr, flush=True)


def rotated(items: Sequence[str], turn: int) -> list[str]:
    """`items` started at `turn`: each round runs the variants in another order."""
    shift = turn % len(items)
    return [*items[shift:], *items[:shift]]


def ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


Call = Callable[[str], Awaitable[types.CallToolResult]]


def direct_echo(session: Client) -> Call:
    """server-everything's `echo`, called over a direct session."""
    return lambda message: session.call_tool("echo", {"message": message})


def bench_main(
    argv: list[str] | None,
    description: str,
    quick_help: str,
    run: Callable[[Any], Awaitable[dict[str, Any]]],
    modes: tuple[Any, Any],
    render: Callable[[dict[str, Any]], str],
) -> int:
    """The command line of a benchmark: `--quick` picks the first of `modes`, `--json` the output."""
    import argparse

    import anyio

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of tables")
    args = parser.parse_args(argv)
    quick, full = modes
    try:
        results = anyio.run(run, quick if args.quick else full)
    except SetupError as exc:
        log(f"error: {exc}")
        return 2
    print(json.dumps(results, indent=2) if args.json else render(results))
    return 0
