"""Processes for the soak and concurrency benchmarks: servers they start, and what `/proc` says.

Starting: a stdio server under an SDK `Client` (and which process that spawned), `quiver serve`
and server-everything's own streamable HTTP mode on free ports. Reading (Linux `/proc`):
process trees, open file descriptors, resident memory. A process is identified by its pid and
its start time (field 22 of `/proc/PID/stat`), so a pid the kernel hands out again is never
mistaken for the process seen earlier.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import anyio
from anyio.abc import Process
from mcp import Client

from bench._util import VENV_BIN, Command, SetupError, child_pids, client, node, npm_server

PROC = Path("/proc")
READY = re.compile(r"serving MCP on (\S+)")  # what `quiver serve` prints once it listens
STOP_GRACE = 20.0  # seconds a server gets to exit after SIGTERM before it is killed


# -- starting servers ------------------------------------------------------------------------


@asynccontextmanager
async def spawned(command: Command, mode: str, errlog: TextIO) -> AsyncIterator[tuple[Client, int]]:
    """An SDK client of a stdio server it spawns, and the server's pid."""
    before = child_pids()
    async with client(command, mode, errlog) as session:
        new = child_pids() - before
        if len(new) != 1:
            raise SetupError(f"expected one new child process for {command.command}, found {sorted(new)}")
        yield session, new.pop()


@dataclass(frozen=True)
class Served:
    url: str
    pid: int


@asynccontextmanager
async def quiver_serve(config: Path, env: Mapping[str, str], log_path: Path) -> AsyncIterator[Served]:
    """`quiver serve` on a free port, its stderr appended to `log_path`; SIGTERM at the end."""
    argv = [str(VENV_BIN / "quiver"), "serve", "--config", str(config), "--port", "0"]
    with log_path.open("a") as errlog:
        async with _background(argv, env, errlog) as proc:
            with anyio.fail_after(30):
                while not (found := READY.search(await anyio.Path(log_path).read_text(errors="replace"))):
                    if proc.returncode is not None:
                        raise SetupError(f"quiver serve exited with {proc.returncode}; see {log_path}")
                    await anyio.sleep(0.05)
            yield Served(found.group(1), proc.pid)


@asynccontextmanager
async def everything_http(errlog: TextIO) -> AsyncIterator[Served]:
    """server-everything's own streamable HTTP server (`/mcp`) on a free port."""
    port = free_port()
    argv = [node(), npm_server("server-everything"), "streamableHttp"]
    async with _background(argv, {"PORT": str(port)}, errlog) as proc:
        with anyio.fail_after(30):
            while not await _listening(port):
                if proc.returncode is not None:
                    raise SetupError(f"server-everything (streamableHttp) exited with {proc.returncode}")
                await anyio.sleep(0.05)
        yield Served(f"http://127.0.0.1:{port}/mcp", proc.pid)


@asynccontextmanager
async def _background(argv: list[str], env: Mapping[str, str], errlog: TextIO) -> AsyncIterator[Process]:
    proc = await anyio.open_process(
        argv,
        env={**os.environ, **env},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=errlog,
        start_new_session=True,
    )
    try:
        yield proc
    finally:
        with anyio.CancelScope(shield=True):
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
            with anyio.move_on_after(STOP_GRACE) as waited:
                await proc.wait()
            if waited.cancelled_caught:
                print(f"{argv[0]} (pid {proc.pid}) ignored SIGTERM for {STOP_GRACE:g} s; killing it", file=sys.stderr)
                proc.kill()
                await proc.wait()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def _listening(port: int) -> bool:
    try:
        stream = await anyio.connect_tcp("127.0.0.1", port)
    except OSError:
        return False
    await stream.aclose()
    return True


# -- reading /proc ---------------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class Proc:
    """One process as seen once: its pid and when it started (clock ticks since boot)."""

    pid: int
    started: int


def _stat(pid: int) -> list[str] | None:
    """The fields of `/proc/PID/stat` after the command name: state, ppid, ...; None if gone."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()


def parent_map() -> dict[int, list[int]]:
    """Every live process's children, by parent pid."""
    parents: dict[int, list[int]] = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat(int(entry.name))
        if fields is not None:
            parents.setdefault(int(fields[1]), []).append(int(entry.name))
    return parents


def descendants(pid: int) -> set[int]:
    """Every descendant of `pid` (children, their children, ...), zombies included."""
    parents = parent_map()
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def identify(pid: int) -> Proc | None:
    fields = _stat(pid)
    return Proc(pid, int(fields[19])) if fields is not None else None


def state(pid: int) -> str | None:
    """The one-letter scheduler state (`R`, `S`, `Z`, ...), or None if the process is gone."""
    fields = _stat(pid)
    return fields[0] if fields is not None else None


def is_alive(proc: Proc) -> bool:
    """Whether this very process (not a later one with its pid) still runs (zombies do not)."""
    fields = _stat(proc.pid)
    return fields is not None and int(fields[19]) == proc.started and fields[0] != "Z"


def is_zombie(pid: int) -> bool:
    return state(pid) == "Z"


def command_line(pid: int) -> str:
    try:
        raw = (PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def fd_kinds(pid: int) -> dict[str, int] | None:
    """Open file descriptors of `pid` by kind (socket, pipe, file, other), or None when it is gone."""
    kinds = {"socket": 0, "pipe": 0, "file": 0, "other": 0}
    try:
        names = os.listdir(PROC / str(pid) / "fd")
    except OSError:
        return None
    for name in names:
        try:
            target = os.readlink(PROC / str(pid) / "fd" / name)
        except OSError:  # closed since the listing
            continue
        kind = target.partition(":")[0] if not target.startswith("/") else "file"
        kinds[kind if kind in kinds else "other"] += 1
    return kinds


def rss_kib(pid: int) -> int | None:
    """Resident set size of `pid` in KiB (`VmRSS`), or None when it is gone."""
    try:
        for line in (PROC / str(pid) / "status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def kill(proc: Proc) -> bool:
    """SIGKILL this very process; False if it was already gone (or its pid is someone else's now)."""
    if not is_alive(proc):
        return False
    try:
        os.kill(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        return False
    return True
