"""`install_server`: install a server that search listed as "not installed", and serve its tools at once."""

from __future__ import annotations

import mcp_types as types
from pydantic import Field

from quiver.metatools.base import CallContext, MetaArgs, MetaTool
from quiver.metatools.results import text_result


class InstallArgs(MetaArgs):
    name: str = Field(min_length=1, description="A server name from a 'not installed' search result")


async def run(args: InstallArgs, ctx: CallContext) -> types.CallToolResult:
    result = await ctx.gateway.install(args.name, principal=ctx.principal, progress=ctx.progress)
    structured: dict[str, object] = {"name": result.name, "tools": result.tools}
    if result.missing_env:
        needs = [var.name for var in result.missing_env]
        structured["needs"] = needs
        lines = [f"installed {result.name}, but it cannot start until these are set:"]
        lines += [f"- {var.name}: {var.description} Get it: {var.obtain}" for var in result.missing_env]
        lines.append(
            f"The user can store them with `quiver secrets set {needs[0]}`; search_tools then finds its tools."
        )
        return text_result("\n".join(lines), structured)
    tools = "its tools" if result.tools is None else f"its {result.tools} tools"
    return text_result(f"installed {result.name}; search_tools now finds {tools}", structured)


TOOL = MetaTool(
    name="install_server",
    description="Install a server that search_tools listed as not installed; its tools become searchable.",
    args=InstallArgs,
    handler=run,
    annotations=types.ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=True),
)
