"""Opt-in operator tools (`gateway.operator_tools: true`): see the calls in flight, cancel one."""

from __future__ import annotations

import mcp_types as types
from pydantic import Field

from quiver.errors import QuiverError
from quiver.metatools.base import CallContext, MetaArgs, MetaTool
from quiver.metatools.results import text_result


class ListCallsArgs(MetaArgs):
    pass


class CancelCallArgs(MetaArgs):
    call_id: str = Field(min_length=1, description="An id from list_calls")


async def list_calls(args: ListCallsArgs, ctx: CallContext) -> types.CallToolResult:
    calls = ctx.gateway.in_flight.list()
    lines = [f"{c['id']} {c['tool']} by {c['principal']}, {c['seconds']}s" for c in calls] or ["no calls in flight"]
    return text_result("\n".join(lines), {"calls": calls})


async def cancel_call(args: CancelCallArgs, ctx: CallContext) -> types.CallToolResult:
    if not ctx.gateway.in_flight.cancel(args.call_id, by=ctx.principal.name):
        raise QuiverError(f"no call '{args.call_id}' is in flight", hint="list_calls shows the calls in flight")
    return text_result(f"cancelled {args.call_id}", {"cancelled": args.call_id})


OPERATOR_TOOLS = (
    MetaTool(
        name="list_calls",
        description="Operators: list the tool calls in flight through this gateway.",
        args=ListCallsArgs,
        handler=list_calls,
        annotations=types.ToolAnnotations(read_only_hint=True, open_world_hint=False),
    ),
    MetaTool(
        name="cancel_call",
        description="Operators: cancel a call in flight by its id (from list_calls).",
        args=CancelCallArgs,
        handler=cancel_call,
        annotations=types.ToolAnnotations(destructive_hint=True, open_world_hint=False),
    ),
)
