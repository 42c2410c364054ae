"""McpBackend against real server processes: stdio, streamable HTTP and SSE."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import anyio
import pytest
from mcp.shared.exceptions import MCPError

from quiver.backends.mcp import McpBackend
from quiver.config import HttpBackendConfig, SseBackendConfig, StdioBackendConfig
from quiver.errors import BackendUnavailableError, MissingEnvError
from tests.fakes import text_of
from tests.servers import everything_remote, faulty_backend, time_backend

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


@pytest.mark.parametrize("protocol", ["auto", "legacy"])
async def test_stdio_server_in_both_eras(protocol: Literal["auto", "legacy"], tmp_path: Path) -> None:
    backend = McpBackend("time", StdioBackendConfig(**time_backend(), protocol=protocol), log_dir=tmp_path)
    async with backend.lifespan():
        tools = {tool.name for tool in await backend.list_tools()}
        assert tools == {"get_current_time", "convert_time"}
        result = await backend.call_tool("get_current_time", {"timezone": "Asia/Tokyo"})
        assert "Asia/Tokyo" in text_of(result)
        assert not backend.lost.is_set()


@pytest.mark.parametrize(("transport", "config_type"), [("streamableHttp", "http"), ("sse", "sse")])
async def test_remote_server_everything(transport: str, config_type: str) -> None:
    with everything_remote(transport) as url:
        config = HttpBackendConfig(url=url) if config_type == "http" else SseBackendConfig(url=url)
        backend = McpBackend("everything", config)
        async with backend.lifespan():
            names = {tool.name for tool in await backend.list_tools()}
            assert {"echo", "get-sum"} <= names
            result = await backend.call_tool("echo", {"message": f"over {transport}"})
            assert text_of(result) == f"Echo: over {transport}"


async def test_headers_are_interpolated_and_sent() -> None:
    with everything_remote("streamableHttp") as url:
        config = HttpBackendConfig(url=url, headers={"Authorization": "Bearer ${EVERYTHING_TOKEN}"})
        backend = McpBackend("everything", config, environ={"EVERYTHING_TOKEN": "abc"})
        async with backend.lifespan():
            result = await backend.call_tool("echo", {"message": "with headers"})
            assert text_of(result) == "Echo: with headers"


async def test_missing_env_var_fails_before_spawning(tmp_path: Path) -> None:
    config = StdioBackendConfig(**time_backend(env={"TOKEN": "${NOT_SET_ANYWHERE}"}))
    backend = McpBackend("time", config, log_dir=tmp_path, environ={})
    with pytest.raises(MissingEnvError, match="NOT_SET_ANYWHERE"):
        async with backend.lifespan():
            pass


async def test_unknown_command_is_a_clear_error(tmp_path: Path) -> None:
    backend = McpBackend("x", StdioBackendConfig(command="quiver-no-such-command"), log_dir=tmp_path)
    with pytest.raises(BackendUnavailableError, match="command 'quiver-no-such-command' was not found"):
        async with backend.lifespan():
            pass


async def test_process_exit_sets_lost_and_keeps_stderr(tmp_path: Path) -> None:
    backend = McpBackend("faulty", StdioBackendConfig(**faulty_backend()), log_dir=tmp_path)
    async with backend.lifespan():
        with pytest.raises(MCPError, match="Connection closed"):
            await backend.call_tool("crash", {})
        with anyio.fail_after(10):
            await backend.lost.wait()
        assert "crashing on purpose" in (backend.failure_detail() or "")
