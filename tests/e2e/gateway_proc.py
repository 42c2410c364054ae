"""A real gateway process for tests whose client lives in another process.

`quiver_serve` starts `quiver serve` on a free port and yields once it prints its URL; stderr is
drained by a thread the whole time, so a chatty gateway never blocks on a full pipe and a failed
start shows everything it said. On exit the gateway gets SIGTERM, and if it does not stop in time
its whole process group (it and the backends it launched) is killed.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from mcp.client.stdio import StdioServerParameters

READY_PREFIX = "quiver: serving MCP on "
# Starting loads the config and binds a port; backends start lazily, so this is generous.
START_TIMEOUT = 30.0
# A graceful shutdown stops every backend first; a backend ignoring SIGTERM costs a few seconds.
STOP_TIMEOUT = 15.0


def stdio_command(config: Path, *extra: str) -> list[str]:
    """The command a client launches to speak to the gateway over stdio."""
    return [sys.executable, "-m", "quiver", "stdio", "--config", str(config), *extra]


# The SDK's stdio client passes a child only a safe default environment: these keep its isolation.
ISOLATION_ENV = ("QUIVER_CACHE_DIR", "QUIVER_STATE_DIR", "TIKTOKEN_CACHE_DIR")


def stdio_params(config: Path, *extra: str) -> StdioServerParameters:
    """SDK client parameters that launch `quiver stdio` with this test's cache and state dirs."""
    command = stdio_command(config, *extra)
    env = {key: os.environ[key] for key in ISOLATION_ENV if key in os.environ}
    return StdioServerParameters(command=command[0], args=command[1:], env=env)


@dataclass
class ServedGateway:
    url: str
    proc: subprocess.Popen[str]
    stderr: list[str] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode

    def stderr_text(self) -> str:
        return "".join(self.stderr)


@contextmanager
def quiver_serve(config: Path, *extra: str) -> Iterator[ServedGateway]:
    """`quiver serve --port 0` with `config`; yields its /mcp URL and process, then stops it."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "quiver", "serve", "--config", str(config), "--port", "0", *extra],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []
    urls: queue.Queue[str | None] = queue.Queue()

    def drain() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)
            if line.startswith(READY_PREFIX):
                urls.put(line.removeprefix(READY_PREFIX).strip())
        urls.put(None)  # end of stderr: the gateway has gone

    reader = threading.Thread(target=drain, name="quiver-serve-stderr", daemon=True)
    reader.start()
    try:
        try:
            url = urls.get(timeout=START_TIMEOUT)
        except queue.Empty:
            url = None
        if url is None:
            pytest.fail(f"quiver serve did not start (exit {proc.poll()}):\n{''.join(lines)}")
        yield ServedGateway(url, proc, lines)
    finally:
        _stop(proc)
        reader.join(STOP_TIMEOUT)
        assert proc.stderr is not None
        proc.stderr.close()


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        # The gateway leads its own session, so this reaches only it and its backends.
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(STOP_TIMEOUT)
