"""A downstream MCP server as a backend: stdio, streamable HTTP or SSE, through the SDK `Client`.

The SDK does the protocol; this module builds the transport from config, watches it so the
supervisor learns when the connection dies, keeps a stdio server's stderr in a log file (its
tail explains most failures), and turns `tools/list_changed` into a callback.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import mcp_types as types

from quiver.backends.base import Backend, ProgressFn
from quiver.backends.watch import watch_transport
from quiver.config.interpolate import resolve_backend
from quiver.config.models import AnyBackendConfig, SseBackendConfig, StdioBackendConfig
from quiver.errors import BackendUnavailableError

if TYPE_CHECKING:
    from mcp import Client
    from mcp.client._transport import Transport

CLIENT_NAME = "quiver"
_STDERR_TAIL_BYTES = 2048
_STDERR_TAIL_LINES = 6


class McpBackend(Backend):
    """One connection to a downstream MCP server described by config."""

    def __init__(
        self,
        name: str,
        config: AnyBackendConfig,
        *,
        log_dir: Path | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(name)
        self.config = config
        self._log_path = log_dir / f"{name}.log" if log_dir is not None else None
        self._log_offset = 0
        self._environ = os.environ if environ is None else environ
        self._client: Client | None = None

    @asynccontextmanager
    async def lifespan(self) -> AsyncIterator[None]:
        from mcp import Client

        resolved = resolve_backend(self.name, self.config, self._environ)
        async with AsyncExitStack() as stack:
            transport = await self._transport(resolved, stack)
            client = Client(
                watch_transport(transport, self.lost.set),
                mode=resolved.protocol,
                cache=None,
                client_info=types.Implementation(name=CLIENT_NAME, version=_version()),
                message_handler=self._on_message,
            )
            self._client = await stack.enter_async_context(client)
            try:
                yield
            finally:
                self._client = None

    async def list_tools(self) -> list[types.Tool]:
        client = self._connected()
        tools: list[types.Tool] = []
        cursor: str | None = None
        while True:
            page = await client.list_tools(cursor=cursor)
            tools.extend(page.tools)
            cursor = page.next_cursor
            if not cursor:
                return tools

    async def call_tool(
        self,
        name: str,
        arguments: Mapping[str, Any],
        *,
        progress: ProgressFn | None = None,
    ) -> types.CallToolResult:
        return await self._connected().call_tool(name, dict(arguments), progress_callback=progress)

    @property
    def server_title(self) -> str | None:
        info = self._client.server_info if self._client is not None else None
        if info is None:
            return None
        return info.description or info.title

    def failure_detail(self) -> str | None:
        """The last lines the server wrote to stderr during this connection."""
        if self._log_path is None:
            return None
        try:
            with self._log_path.open("rb") as log:
                size = log.seek(0, os.SEEK_END)
                start = max(self._log_offset, size - _STDERR_TAIL_BYTES)
                log.seek(start)
                text = log.read().decode("utf-8", errors="replace")
        except OSError:
            return None
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        return " | ".join(lines[-_STDERR_TAIL_LINES:]) or None

    def _connected(self) -> Client:
        if self._client is None:
            raise BackendUnavailableError(f"backend '{self.name}' is not connected")
        return self._client

    async def _on_message(self, message: types.ServerNotification | Exception) -> None:
        if isinstance(message, types.ToolListChangedNotification) and self.tools_changed is not None:
            self.tools_changed()
        await anyio.lowlevel.checkpoint()

    async def _transport(self, config: AnyBackendConfig, stack: AsyncExitStack) -> Transport:
        if isinstance(config, StdioBackendConfig):
            return self._stdio_transport(config, stack)
        import httpx2

        if isinstance(config, SseBackendConfig):
            from mcp.client.sse import sse_client

            return sse_client(config.url, headers=config.headers or None)
        from mcp.client.streamable_http import streamable_http_client

        http = await stack.enter_async_context(
            httpx2.AsyncClient(headers=config.headers, timeout=httpx2.Timeout(30.0, read=300.0))
        )
        return streamable_http_client(config.url, http_client=http)

    def _stdio_transport(self, config: StdioBackendConfig, stack: AsyncExitStack) -> Transport:
        from mcp.client.stdio import StdioServerParameters, stdio_client

        cwd = Path(config.cwd).expanduser() if config.cwd else None
        if cwd is not None and not cwd.is_dir():
            raise BackendUnavailableError(
                f"backend '{self.name}': working directory {cwd} does not exist",
                hint="fix 'cwd' in the config",
            )
        search_path = config.env.get("PATH") or self._environ.get("PATH")
        if shutil.which(config.command, path=search_path) is None and not (cwd and (cwd / config.command).exists()):
            raise BackendUnavailableError(
                f"backend '{self.name}': command '{config.command}' was not found",
                hint="install it, or give the full path in 'command'",
                retryable=False,
            )
        params = StdioServerParameters(command=config.command, args=config.args, env=config.env or None, cwd=cwd)
        return stdio_client(params, errlog=self._open_log(stack))

    def _open_log(self, stack: AsyncExitStack) -> Any:
        if self._log_path is None:
            return stack.enter_context(open(os.devnull, "w"))
        self._log_path.parent.mkdir(parents=True, exist_ok=True)
        log = stack.enter_context(self._log_path.open("a", encoding="utf-8"))
        self._log_offset = log.tell()
        return log


def _version() -> str:
    from quiver import __version__

    return __version__
