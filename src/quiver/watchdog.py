"""A watchdog process that kills a gateway's backends if the gateway itself is killed.

A gateway stops its stdio backends (whole process groups) whenever it exits in an orderly way.
When it cannot — SIGKILL, an OOM kill, a crash — the backends, each in its own session, would
live on. So a gateway starts this small companion in a session of its own, holding one end of a
pipe. The watchdog keeps a list of the gateway's descendants (read from /proc) and, when the pipe
reaches end-of-file because the gateway is gone, terminates every process group it saw that is
still alive. Linux only (it reads /proc); elsewhere the gateway runs without it.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from contextlib import suppress
from pathlib import Path

POLL = 0.5  # seconds between looks at the gateway's descendants
GRACE = 1.0  # seconds between SIGTERM and SIGKILL
PROC = Path("/proc")


def supported() -> bool:
    return sys.platform.startswith("linux") and PROC.is_dir()


def start(gateway_pid: int | None = None) -> subprocess.Popen[bytes] | None:
    """Start a watchdog for this process; it lives as long as the returned pipe stays open."""
    if not supported():
        return None
    return subprocess.Popen(
        [sys.executable, "-m", "quiver.watchdog", str(gateway_pid or os.getpid())],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # a signal to the gateway's process group must not reach it
        close_fds=True,
    )


def stop(process: subprocess.Popen[bytes] | None) -> None:
    """An orderly exit: the backends are already gone, so the watchdog just leaves."""
    if process is None:
        return
    with suppress(OSError):
        if process.stdin is not None:
            process.stdin.close()
    with suppress(subprocess.TimeoutExpired):
        process.wait(timeout=5)


def _stat(pid: int) -> tuple[int, int, int] | None:
    """(parent pid, process group, start time) of a live process."""
    try:
        fields = (PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    if fields[0] == "Z":
        return None
    return int(fields[1]), int(fields[2]), int(fields[19])


def descendants(root: int) -> dict[int, tuple[int, int]]:
    """Every live descendant of `root`: pid → (process group, start time)."""
    children: dict[int, list[int]] = {}
    info: dict[int, tuple[int, int]] = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        stat = _stat(int(entry.name))
        if stat is not None:
            children.setdefault(stat[0], []).append(int(entry.name))
            info[int(entry.name)] = (stat[1], stat[2])
    found: dict[int, tuple[int, int]] = {}
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found and child in info:
                found[child] = info[child]
                todo.append(child)
    return found


def _kill_groups(seen: dict[int, tuple[int, int]]) -> None:
    alive = {pid: group for pid, (group, started) in seen.items() if (_stat(pid) or (0, 0, -1))[2] == started}
    groups = {group for group in alive.values() if group != os.getpgrp()}
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for group in groups:
            with suppress(ProcessLookupError, PermissionError):
                os.killpg(group, sig)
        for pid in alive:
            with suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        if sig is signal.SIGTERM:
            time.sleep(GRACE)


def main(argv: list[str]) -> int:
    gateway = int(argv[1])
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)  # only the end of the pipe ends the watch
    seen: dict[int, tuple[int, int]] = {}
    stdin = sys.stdin.fileno()
    while True:
        readable, _, _ = select.select([stdin], [], [], POLL)
        if readable and not os.read(stdin, 4096):
            break  # the gateway closed the pipe, or is gone
        current = descendants(gateway)
        current.pop(os.getpid(), None)
        seen = {pid: info for pid, info in {**seen, **current}.items() if _stat(pid) is not None}
    if _stat(gateway) is None or argv[2:] == ["--always"]:
        _kill_groups(seen)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
