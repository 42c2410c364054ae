"""`search_tools`: ranked compact cards for a plain-words query."""

from __future__ import annotations

import mcp_types as types
from pydantic import Field

from quiver.gateway import MAX_SEARCH_LIMIT, SearchReply
from quiver.metatools.base import CallContext, MetaArgs, MetaTool
from quiver.metatools.results import text_result


class SearchArgs(MetaArgs):
    query: str = Field(min_length=1, description="What you want to do, in plain words")
    limit: int = Field(default=5, ge=1, le=MAX_SEARCH_LIMIT)


async def run(args: SearchArgs, ctx: CallContext) -> types.CallToolResult:
    reply = await ctx.gateway.search(args.query, args.limit)
    return render(reply)


def render(reply: SearchReply) -> types.CallToolResult:
    lines = [card.render() for card in reply.cards] or ["no matching tools"]
    structured: dict[str, object] = {"results": [card.to_dict() for card in reply.cards]}
    if reply.pending:
        structured["pending"] = reply.pending
        lines.append(f"still starting (search again shortly): {', '.join(reply.pending)}")
    if reply.failed:
        structured["failed"] = reply.failed
        lines.append(f"unavailable (see list_servers): {', '.join(reply.failed)}")
    return text_result("\n".join(lines), structured)


TOOL = MetaTool(
    name="search_tools",
    description=(
        "Find tools across all servers by describing the task. Returns ids with one-line summaries and "
        "required args; then describe_tools for schemas and call_tool to run."
    ),
    args=SearchArgs,
    handler=run,
    annotations=types.ToolAnnotations(read_only_hint=True, open_world_hint=False),
)
