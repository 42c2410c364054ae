"""`describe_tools`: the exact downstream definitions (input and output schemas)."""

from __future__ import annotations

import mcp_types as types
from pydantic import Field

from quiver.metatools.base import CallContext, MetaArgs, MetaTool
from quiver.metatools.results import compact_json, text_result

MAX_IDS = 20


class DescribeArgs(MetaArgs):
    ids: list[str] = Field(min_length=1, max_length=MAX_IDS, description="Tool ids from search_tools")


async def run(args: DescribeArgs, ctx: CallContext) -> types.CallToolResult:
    tools = await ctx.gateway.describe(args.ids, principal=ctx.principal)
    return text_result("\n".join(compact_json(tool) for tool in tools), {"tools": tools})


TOOL = MetaTool(
    name="describe_tools",
    description="Get the exact input and output schemas of tools by id.",
    args=DescribeArgs,
    handler=run,
    annotations=types.ToolAnnotations(read_only_hint=True, open_world_hint=False),
)
