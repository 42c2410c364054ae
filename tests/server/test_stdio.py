"""`quiver stdio` as a real process, spoken to by the SDK client in both protocol eras."""

from __future__ import annotations

import os
from pathlib import Path

import mcp_types as types
import pytest
from mcp import Client

from tests.e2e.gateway_proc import stdio_params
from tests.servers import children, cmdline, time_backend, write_config

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


@pytest.mark.parametrize(("mode", "era"), [("legacy", "2025-11-25"), ("auto", "2026-07-28")])
async def test_search_describe_call_over_stdio(mode: str, era: str, tmp_path: Path) -> None:
    config = write_config(tmp_path / "quiver.json", {"time": time_backend()})
    async with Client(stdio_params(config), mode=mode, cache=None) as client:
        assert client.protocol_version == era
        assert client.instructions is not None
        assert "search_tools" in client.instructions
        names = [tool.name for tool in (await client.list_tools()).tools]
        assert names == ["search_tools", "describe_tools", "call_tool", "list_servers", "install_server"]
        found = await client.call_tool("search_tools", {"query": "current time in a timezone"})
        assert (found.structured_content or {})["results"][0]["id"] == "time.get_current_time"
        described = await client.call_tool("describe_tools", {"ids": ["time.get_current_time"]})
        assert (described.structured_content or {})["tools"][0]["inputSchema"]["required"] == ["timezone"]
        called = await client.call_tool(
            "call_tool", {"id": "time.get_current_time", "arguments": {"timezone": "Europe/Paris"}}
        )
        assert not called.is_error
        assert (called.structured_content or {})["timezone"] == "Europe/Paris"  # downstream result, unchanged
        assert isinstance(called.content[0], types.TextContent)


async def test_initialize_starts_no_backend(tmp_path: Path) -> None:
    backends = {f"time{i}": time_backend(autostart=False) for i in range(20)}
    config = write_config(tmp_path / "quiver.json", backends)
    before = children(os.getpid())
    async with Client(stdio_params(config), mode="legacy", cache=None) as client:
        await client.list_tools()
        await client.call_tool("list_servers", {})
        started = {pid: cmdline(pid) for pid in children(os.getpid()) - before}
        # The gateway and its watchdog, and no backend.
        assert sorted(b"quiver.watchdog" in cmd for cmd in started.values()) == [False, True]
