"""`search_tools`: ranked compact cards for a plain-words query."""

from __future__ import annotations

from dataclasses import replace

import mcp_types as types
from pydantic import Field

from quiver import tokens
from quiver.gateway import MAX_SEARCH_LIMIT, SearchReply
from quiver.metatools.base import CallContext, MetaArgs, MetaTool
from quiver.metatools.results import text_result

# A 5-result reply must stay within 300 tokens as the client receives it. The 2026-07-28 era
# stamps the server's name, title and version into the result's `_meta`: 31 tokens for Quiver's
# (measured through a real client in tests/metatools/test_surface.py), so 4 are left spare.
REPLY_BUDGET = 265
# Summary lengths (tokens) tried in turn when a reply is over budget.
SUMMARY_CAPS = (24, 18, 14, 10, 7)
LAST_SUMMARY_CAPS = (4, 0)
TEXT_FULL, TEXT_NO_SUMMARY, TEXT_IDS = "full", "no-summary", "ids"


class SearchArgs(MetaArgs):
    query: str = Field(min_length=1, description="What you want to do, in plain words")
    limit: int = Field(default=5, ge=1, le=MAX_SEARCH_LIMIT)


async def run(args: SearchArgs, ctx: CallContext) -> types.CallToolResult:
    reply = await ctx.gateway.search(args.query, args.limit, principal=ctx.principal)
    return render(reply)


def render(reply: SearchReply, budget: int = REPLY_BUDGET) -> types.CallToolResult:
    """The reply, with summaries shortened (never dropped first) until it fits `budget` tokens."""
    result = _render(reply, TEXT_FULL)
    for cap in SUMMARY_CAPS:
        if tokens.result_tokens(result) <= budget:
            return result
        cards = [card.with_summary(tokens.shorten(card.summary, cap)) for card in reply.cards]
        result = _render(replace(reply, cards=cards), TEXT_FULL)
    # Still over (long ids, many arguments): the text keeps less, the structured cards stay whole.
    for text in (TEXT_NO_SUMMARY, TEXT_IDS):
        if tokens.result_tokens(result) <= budget:
            return result
        result = _render(replace(reply, cards=cards), text)
    for cap in LAST_SUMMARY_CAPS:
        if tokens.result_tokens(result) <= budget:
            break
        cards = [card.with_summary(tokens.shorten(card.summary, cap)) for card in reply.cards]
        result = _render(replace(reply, cards=cards), TEXT_IDS)
    return result


def _render(reply: SearchReply, text: str) -> types.CallToolResult:
    if text == TEXT_FULL:
        lines = [card.render() for card in reply.cards]
    elif text == TEXT_NO_SUMMARY:
        lines = [card.render(summary=False) for card in reply.cards]
    else:
        lines = [", ".join(card.id for card in reply.cards)] if reply.cards else []
    lines = lines or ["no matching tools"]
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
