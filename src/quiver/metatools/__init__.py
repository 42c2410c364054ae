"""The meta-tools Quiver exposes upward, and dispatch to them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import mcp_types as types
from pydantic import ValidationError

from quiver.config.models import GatewaySettings
from quiver.errors import QuiverError
from quiver.metatools import call, describe, install, search, servers
from quiver.metatools.base import CallContext, MetaTool
from quiver.metatools.results import error_result

DEFAULT_TOOLS: tuple[MetaTool, ...] = (search.TOOL, describe.TOOL, call.TOOL, servers.TOOL, install.TOOL)

INSTRUCTIONS = (
    "Quiver is a gateway to the tools of many MCP servers. Find a tool with search_tools, read its "
    "schema with describe_tools, run it with call_tool. Tool ids look like 'server.tool'. A server "
    "marked 'not installed' can be added with install_server."
)


class UnknownMetaToolError(QuiverError):
    code = "unknown_tool"


class MetaTools:
    """The upward tool surface: fixed definitions and a dispatcher that never raises."""

    def __init__(self, tools: tuple[MetaTool, ...] = DEFAULT_TOOLS) -> None:
        self._tools = {tool.name: tool for tool in tools}
        self.definitions = [tool.definition() for tool in tools]

    @classmethod
    def for_config(cls, settings: GatewaySettings) -> MetaTools:
        from quiver.metatools.operator import OPERATOR_TOOLS

        tools = tuple(tool for tool in DEFAULT_TOOLS if tool is not install.TOOL or settings.install != "off")
        return cls(tools + OPERATOR_TOOLS if settings.operator_tools else tools)

    def has(self, name: str) -> bool:
        return name in self._tools

    async def call(
        self, name: str, arguments: Mapping[str, Any] | None, ctx: CallContext
    ) -> types.CallToolResult | types.InputRequiredResult:
        tool = self._tools.get(name)
        if tool is None:
            return error_result(
                UnknownMetaToolError(f"unknown tool '{name}'", hint=f"this server offers: {', '.join(self._tools)}")
            )
        try:
            args = tool.args.model_validate(dict(arguments or {}))
        except ValidationError as exc:
            return error_result(_invalid(name, exc))
        try:
            return await tool.handler(args, ctx)
        except Exception as exc:
            return error_result(exc)


def _invalid(name: str, exc: ValidationError) -> QuiverError:
    problems = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(part) for part in error["loc"]) or "arguments"
        message = "unknown argument" if error["type"] == "extra_forbidden" else error["msg"]
        problems.append(f"{where}: {message}")
    return QuiverError(f"invalid arguments for {name}: {'; '.join(problems)}", hint="see the tool's input schema")


__all__ = ["DEFAULT_TOOLS", "INSTRUCTIONS", "CallContext", "MetaTool", "MetaTools"]
