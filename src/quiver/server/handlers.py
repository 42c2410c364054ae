"""The upward MCP server: SDK low-level `Server` handlers over a `Gateway`.

The SDK owns the protocol (both eras: the `initialize` handshake and 2026-07-28); these
handlers only list the meta-tools and dispatch calls to them, relaying downstream progress
to the caller's own progress token.
"""

from __future__ import annotations

from typing import Any

import mcp_types as types
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server

from quiver.backends.base import ProgressFn
from quiver.gateway import Gateway
from quiver.metatools import INSTRUCTIONS, CallContext, MetaTools


def build_server(gateway: Gateway, metatools: MetaTools | None = None) -> Server[Any]:
    tools = metatools or MetaTools()
    listing = types.ListToolsResult(tools=tools.definitions)

    async def list_tools(
        ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return listing

    async def call_tool(ctx: ServerRequestContext[Any], params: types.CallToolRequestParams) -> types.CallToolResult:
        context = CallContext(gateway=gateway, progress=_progress_relay(ctx))
        return await tools.call(params.name, params.arguments, context)

    from quiver import __version__

    return Server(
        gateway.config.gateway.name,
        version=__version__,
        title="Quiver MCP gateway",
        instructions=INSTRUCTIONS,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )


def _progress_relay(ctx: ServerRequestContext[Any]) -> ProgressFn | None:
    """Forward downstream progress on the caller's token; None when the caller asked for none."""
    if ctx.meta is None or ctx.meta.get("progress_token") is None:
        return None

    async def relay(progress: float, total: float | None, message: str | None) -> None:
        await ctx.session.report_progress(progress, total, message)

    return relay
