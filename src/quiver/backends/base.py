"""The `Backend` interface: one live connection to a source of tools.

A backend object lives for one connection. `lifespan()` connects and disconnects; inside
it `list_tools()` and `call_tool()` work from any task, concurrently. When the connection
ends on its own (the process exits, the stream closes), `lost` is set. Starting, stopping,
restarting and timeouts are the supervisor's job, not the backend's.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

import anyio
import mcp_types as types


class ProgressFn(Protocol):
    """Receives downstream progress."""

    async def __call__(self, progress: float, total: float | None, message: str | None) -> None: ...


class BackendState(enum.StrEnum):
    """Where a backend is in its lifecycle; `list_servers` shows these words."""

    CONFIGURED = "configured"  # never started
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    IDLE = "idle"  # stopped after being idle (or on request); starts again on use
    FAILED = "failed"  # start failed or the connection died; starts again on use, with backoff


class Backend(ABC):
    """A connection to one backend; see the module docstring for the contract."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.lost = anyio.Event()
        self.tools_changed: Callable[[], None] | None = None
        """Set by the owner; called when the backend says its tool list changed."""

    @abstractmethod
    def lifespan(self) -> AbstractAsyncContextManager[None]:
        """Connect on enter, disconnect (and kill what was started) on exit."""

    @abstractmethod
    async def list_tools(self) -> list[types.Tool]:
        """Every tool the backend offers now."""

    @abstractmethod
    async def call_tool(
        self,
        name: str,
        arguments: Mapping[str, Any],
        *,
        progress: ProgressFn | None = None,
    ) -> types.CallToolResult:
        """Call one tool; protocol-level failures raise, tool failures come back as `isError`."""

    def failure_detail(self) -> str | None:
        """Anything the backend said about why it failed (e.g. the tail of its stderr)."""
        return None

    @property
    def server_title(self) -> str | None:
        """The title or description the server announced about itself, if any."""
        return None
