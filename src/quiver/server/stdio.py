"""Serving one local client over stdin/stdout.

The client closing stdin, SIGTERM, SIGINT and SIGHUP all end the session the same way: the
gateway's task group unwinds, and every backend is stopped (stdio servers killed with their
process group) before the process exits.

The wire is read and written by the event loop on private duplicates of fds 0 and 1, not by
worker threads: a thread blocked in `read()` cannot be cancelled (it would hold a signalled
gateway open until the client closed the pipe), and two thread hops per message are most of
what forwarding a call costs. While serving, fd 0 reads /dev/null and fd 1 writes to stderr,
so nothing else in the process (or a child it starts) can read from or write into the wire.
"""

from __future__ import annotations

import os
import signal
import stat
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import anyio

from quiver.gateway import Gateway
from quiver.policy.principal import LOCAL, Principal
from quiver.server.app import GatewayApp

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
_READ_SIZE = 1 << 16


async def serve_stdio(gateway: Gateway, principal: Principal = LOCAL) -> None:
    """Serve the one client on stdin/stdout; it is `principal` (the local user, in a chosen role)."""
    from mcp.server.stdio import stdio_server

    app = GatewayApp(gateway, principal_of=lambda ctx: principal, watchdog=True)
    server = app.server
    with stdio_wire() as (reader, writer):
        async with app.running(), anyio.create_task_group() as tg:
            tg.start_soon(stop_on_signal, gateway, tg.cancel_scope)
            gateway.status.serving("stdio")
            async with stdio_server(stdin=reader, stdout=writer) as (read, write):
                await server.run(read, write, server.create_initialization_options())
            tg.cancel_scope.cancel()


async def stop_on_signal(gateway: Gateway, scope: anyio.CancelScope) -> None:
    """On a stop signal, let calls in flight finish (up to the drain timeout), then stop."""
    with anyio.open_signal_receiver(*STOP_SIGNALS) as signals:
        async for _ in signals:
            with anyio.move_on_after(gateway.config.gateway.drain_timeout):
                await gateway.drain()
            scope.cancel()
            return


@contextmanager
def stdio_wire() -> Iterator[tuple[Any, Any]]:
    """Event-loop streams over fds 0 and 1 when both are pipes or sockets; else the SDK's own (None)."""
    if not (_pollable(0) and _pollable(1)):
        yield None, None
        return
    sys.stdout.flush()
    wire_in, wire_out = os.dup(0), os.dup(1)
    saved_in, saved_out = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDONLY)
    try:
        os.dup2(null, 0)
        os.dup2(2, 1)
        yield PipeLines(wire_in), PipeWriter(wire_out)
    finally:
        sys.stdout.flush()
        os.dup2(saved_in, 0)
        os.dup2(saved_out, 1)
        for fd in (null, saved_in, saved_out, wire_in, wire_out):
            os.close(fd)


def _pollable(fd: int) -> bool:
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


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


class PipeWriter:
    """Writes text to a pipe without blocking the event loop; waits when the pipe is full."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        os.set_blocking(fd, False)

    async def write(self, text: str) -> None:
        data = memoryview(text.encode("utf-8"))
        while data:
            try:
                written = os.write(self._fd, data)
            except BlockingIOError:
                await anyio.wait_writable(self._fd)
                continue
            data = data[written:]

    async def flush(self) -> None:
        """Every write goes straight to the pipe; nothing is buffered."""
