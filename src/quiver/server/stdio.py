"""Serving one local client over stdin/stdout.

The client closing stdin, SIGTERM, SIGINT and SIGHUP all end the session the same way: the
gateway's task group unwinds, and every backend is stopped (stdio servers killed with their
process group) before the process exits. Stdin is read without a worker thread, because a
thread blocked in `read()` cannot be cancelled and would hold a signalled gateway open
until the client happened to close the pipe.
"""

from __future__ import annotations

import os
import signal
import stat
import sys
from typing import Any

import anyio

from quiver.gateway import Gateway
from quiver.server.handlers import build_server

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
_READ_SIZE = 1 << 16


async def serve_stdio(gateway: Gateway) -> None:
    from mcp.server.stdio import stdio_server

    server = build_server(gateway)
    async with gateway.running(), anyio.create_task_group() as tg:
        tg.start_soon(cancel_on_signal, tg.cancel_scope)
        async with stdio_server(stdin=_stdin_lines()) as (read, write):
            await server.run(read, write, server.create_initialization_options())
        tg.cancel_scope.cancel()


async def cancel_on_signal(scope: anyio.CancelScope) -> None:
    with anyio.open_signal_receiver(*STOP_SIGNALS) as signals:
        async for _ in signals:
            scope.cancel()
            return


def _stdin_lines() -> Any:
    """Stdin as lines read by the event loop (a pipe or socket); else None, the SDK's default."""
    try:
        fd = sys.stdin.fileno()
        mode = os.fstat(fd).st_mode
    except (AttributeError, OSError, ValueError):
        return None
    if not (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or stat.S_ISCHR(mode)):
        return None
    return PipeLines(fd)


class PipeLines:
    """Async iteration over the lines of a pipe, cancellable at every wait."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._buffer = b""
        self._eof = False
        os.set_blocking(fd, False)

    def __aiter__(self) -> PipeLines:
        return self

    async def __anext__(self) -> str:
        scanned = 0
        while (end := self._buffer.find(b"\n", scanned)) < 0:
            scanned = len(self._buffer)
            if self._eof:
                if not self._buffer:
                    raise StopAsyncIteration
                line, self._buffer = self._buffer, b""
                return line.decode("utf-8", errors="replace")
            await anyio.wait_readable(self._fd)
            try:
                chunk = os.read(self._fd, _READ_SIZE)
            except BlockingIOError:
                continue
            if chunk:
                self._buffer += chunk
            else:
                self._eof = True
        line, self._buffer = self._buffer[: end + 1], self._buffer[end + 1 :]
        return line.decode("utf-8", errors="replace")
