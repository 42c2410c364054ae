"""The `Backend` interface: one live connection to a source of tools (and resources and prompts).

A backend object lives for one connection. `lifespan()` connects and disconnects; inside
it the other methods work from any task, concurrently. When the connection ends on its own
(the process exits, the stream closes), `lost` is set. Starting, stopping, restarting and
timeouts are the supervisor's job, not the backend's. Calls carry the `Upstream` they serve,
so what a server asks of its client during a call reaches the right client.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

import anyio
import mcp_types as types

from quiver.upstream import Upstream


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


class Change(enum.StrEnum):
    """What a backend said changed."""

    TOOLS = "tools"
    RESOURCES = "resources"
    PROMPTS = "prompts"


@dataclass(frozen=True)
class Listing:
    """Everything a backend offers, as of one listing."""

    tools: list[types.Tool]
    resources: list[types.Resource] = field(default_factory=list)
    templates: list[types.ResourceTemplate] = field(default_factory=list)
    prompts: list[types.Prompt] = field(default_factory=list)
    server_title: str | None = None


class Backend(ABC):
    """A connection to one backend; see the module docstring for the contract."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.lost = anyio.Event()
        self.changed: Callable[[Change], None] | None = None
        """Set by the owner; called when the backend says a list of its changed."""
        self.resource_updated: Callable[[str], None] | None = None
        """Set by the owner; called with a subscribed resource's URI when the backend says it changed."""

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
        upstream: Upstream | None = None,
    ) -> types.CallToolResult | types.InputRequiredResult:
        """Call one tool; protocol-level failures raise, tool failures come back as `isError`.

        An `InputRequiredResult` comes back only to a 2026-07-28 caller (`upstream.round`)."""

    async def listing(self) -> Listing:
        """Tools, and resources, templates and prompts where the backend has them."""
        return Listing(await self.list_tools(), server_title=self.server_title)

    async def read_resource(
        self, uri: str, *, upstream: Upstream | None = None
    ) -> types.ReadResourceResult | types.InputRequiredResult:
        raise _unsupported(self.name, "resources")

    async def subscribe(self, uri: str) -> None:
        raise _unsupported(self.name, "resource subscriptions")

    async def unsubscribe(self, uri: str) -> None:
        raise _unsupported(self.name, "resource subscriptions")

    async def get_prompt(
        self, name: str, arguments: Mapping[str, str] | None, *, upstream: Upstream | None = None
    ) -> types.GetPromptResult | types.InputRequiredResult:
        raise _unsupported(self.name, "prompts")

    async def complete(
        self,
        ref: types.PromptReference | types.ResourceTemplateReference,
        argument: Mapping[str, str],
        context: Mapping[str, str] | None,
    ) -> types.CompleteResult:
        return types.CompleteResult(completion=types.Completion(values=[]))

    def failure_detail(self) -> str | None:
        """Anything the backend said about why it failed (e.g. the tail of its stderr)."""
        return None

    @property
    def server_title(self) -> str | None:
        """The title or description the server announced about itself, if any."""
        return None


def _unsupported(backend: str, what: str) -> Exception:
    from mcp.shared.exceptions import MCPError

    return MCPError(code=types.METHOD_NOT_FOUND, message=f"backend '{backend}' does not offer {what}")
