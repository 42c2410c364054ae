"""`call_tool`: run a downstream tool; its result comes back unchanged."""

from __future__ import annotations

from typing import Any

import mcp_types as types
from pydantic import Field

from quiver.metatools.base import CallContext, MetaArgs, MetaTool
from quiver.metatools.results import forwarded


class CallArgs(MetaArgs):
    id: str = Field(min_length=1, description="Tool id, e.g. 'server.tool'")
    arguments: dict[str, Any] = Field(default_factory=dict, description="Arguments matching the tool's schema")


async def run(args: CallArgs, ctx: CallContext) -> types.CallToolResult | types.InputRequiredResult:
    result = await ctx.gateway.call(
        args.id, args.arguments, progress=ctx.progress, upstream=ctx.upstream, principal=ctx.principal
    )
    return forwarded(result)


TOOL = MetaTool(
    name="call_tool",
    description="Run a tool by id. Arguments are checked against its schema before it is called.",
    args=CallArgs,
    handler=run,
)
