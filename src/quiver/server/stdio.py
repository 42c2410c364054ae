"""Serving one local client over stdin/stdout.

The client closing stdin, SIGTERM, SIGINT and SIGHUP all end the session the same way: the
gateway's task group unwinds, and every backend is stopped (stdio servers killed with their
process group) before the process exits.
"""

from __future__ import annotations

import signal

import anyio

from quiver.gateway import Gateway
from quiver.server.handlers import build_server

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


async def serve_stdio(gateway: Gateway) -> None:
    from mcp.server.stdio import stdio_server

    server = build_server(gateway)
    async with gateway.running(), anyio.create_task_group() as tg:
        tg.start_soon(cancel_on_signal, tg.cancel_scope)
        async with stdio_server() as (read, write):
            await server.run(read, write, server.create_initialization_options())
        tg.cancel_scope.cancel()


async def cancel_on_signal(scope: anyio.CancelScope) -> None:
    with anyio.open_signal_receiver(*STOP_SIGNALS) as signals:
        async for _ in signals:
            scope.cancel()
            return
