"""A bare MCP pass-through on the same SDK as Quiver: the cost of forwarding alone.

One low-level `Server` over stdio with one tool, `forward(name, arguments)`, which hands every
call to a downstream SDK `Client` and returns its result unchanged: no catalog, no argument
validation, no lifecycle management. The gateway benchmark puts it beside Quiver so that
Quiver's overhead can be compared with the least any SDK-based forwarder pays.

    python bench/passthrough_server.py [--downstream-mode auto|legacy] COMMAND [ARG ...]
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import anyio
import mcp_types as types
from mcp import Client
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server

TOOL = types.Tool(
    name="forward",
    description="Call a tool of the downstream server by name; its result comes back unchanged.",
    input_schema={
        "type": "object",
        "properties": {"name": {"type": "string"}, "arguments": {"type": "object"}},
        "required": ["name"],
    },
)


def build_server(downstream: Client) -> Server[Any]:
    listing = types.ListToolsResult(tools=[TOOL])

    async def list_tools(
        ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return listing

    async def call_tool(ctx: ServerRequestContext[Any], params: types.CallToolRequestParams) -> types.CallToolResult:
        arguments = params.arguments or {}
        return await downstream.call_tool(str(arguments["name"]), dict(arguments.get("arguments") or {}))

    return Server(
        "passthrough",
        version="0.1.0",
        # The negotiated downstream era, so the benchmark can report it.
        instructions=f"downstream protocol {downstream.protocol_version}",
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )


async def serve(command: str, args: list[str], mode: str) -> None:
    # The SDK's default environment for the child, exactly as Quiver's backends get it.
    params = StdioServerParameters(command=command, args=args)
    async with Client(stdio_client(params, errlog=sys.stderr), mode=mode, cache=None) as downstream:
        server = build_server(downstream)
        async with stdio_server() as (read, write):
            await server.run(read, write, server.create_initialization_options())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--downstream-mode", choices=("auto", "legacy"), default="auto")
    parser.add_argument("command")
    parser.add_argument("args", nargs=argparse.REMAINDER)
    ns = parser.parse_args(argv)
    anyio.run(serve, ns.command, ns.args, ns.downstream_mode)


if __name__ == "__main__":
    main()
