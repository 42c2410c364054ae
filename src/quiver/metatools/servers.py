"""`list_servers`: the backends behind the gateway, their state and last error."""

from __future__ import annotations

from typing import Any

import mcp_types as types

from quiver.gateway import ServerInfo
from quiver.metatools.base import CallContext, MetaArgs, MetaTool
from quiver.metatools.results import text_result


class ServersArgs(MetaArgs):
    pass


def server_dict(info: ServerInfo) -> dict[str, Any]:
    status = info.status
    data: dict[str, Any] = {"name": status.name, "state": str(status.state), "tools": info.tools}
    if info.description:
        data["description"] = info.description
    if status.last_error:
        data["lastError"] = status.last_error
    if status.breaker != "closed":
        data["breaker"] = str(status.breaker)
    return data


def render_line(data: dict[str, Any]) -> str:
    tools = "? tools" if data["tools"] is None else f"{data['tools']} tools"
    line = f"{data['name']}: {data['state']}, {tools}"
    if "breaker" in data:
        line += f" (breaker {data['breaker']})"
    if "lastError" in data:
        line += f" — {data['lastError']}"
    return line


async def run(args: ServersArgs, ctx: CallContext) -> types.CallToolResult:
    servers = [server_dict(info) for info in ctx.gateway.servers(principal=ctx.principal)]
    text = "\n".join(render_line(s) for s in servers) or "no servers configured"
    return text_result(text, {"servers": servers})


TOOL = MetaTool(
    name="list_servers",
    description="List the servers behind this gateway with state, tool count and last error.",
    args=ServersArgs,
    handler=run,
    annotations=types.ToolAnnotations(read_only_hint=True, open_world_hint=False),
)
