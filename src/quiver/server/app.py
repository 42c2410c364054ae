"""One gateway behind its upward servers: the main surface, per-backend surfaces, notifications.

Transports (stdio, HTTP) run a `GatewayApp`: it owns the gateway's lifetime, the parked calls
of 2026-07-28 clients, and the task that turns catalog changes and resource updates into
notifications for the clients of every surface they touch.
"""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from quiver import watchdog
from quiver.backends.base import Change
from quiver.gateway import Gateway
from quiver.policy.principal import LOCAL, Principal
from quiver.server.clients import Audience
from quiver.server.handlers import build_server
from quiver.server.pending import PendingCalls
from quiver.server.surfaces import AggregateSurface, BackendSurface, MetaSurface, Surface

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Listed:
    backend: str
    kinds: set[Change]


@dataclass(frozen=True)
class _Updated:
    backend: str
    uri: str


class GatewayApp:
    """The gateway and the MCP servers that show it."""

    def __init__(
        self,
        gateway: Gateway,
        *,
        principal_of: Callable[[Any], Principal] | None = None,
        watchdog: bool = False,
    ) -> None:
        self.gateway = gateway
        self._watchdog = watchdog
        self.principal_of = principal_of or (lambda ctx: LOCAL)
        self.pending = PendingCalls()
        self._surfaces: list[tuple[Surface, Audience]] = []
        exposure = gateway.config.gateway.exposure
        self.server = self._serve(MetaSurface(gateway) if exposure == "meta" else AggregateSurface(gateway))
        self._backend_servers: dict[str, Any] = {}
        self._events: MemoryObjectSendStream[_Listed | _Updated] | None = None
        gateway.catalog.observers.append(lambda backend, kinds: self._post(_Listed(backend, kinds)))
        gateway.resource_observers.append(lambda backend, uri: self._post(_Updated(backend, uri)))

    def _serve(self, surface: Surface, name: str | None = None) -> Any:
        audience = Audience()
        self._surfaces.append((surface, audience))
        return build_server(surface, audience, self.pending, name=name, principal_of=self.principal_of)

    def backend_server(self, backend: str) -> Any:
        """The server of `/mcp/{backend}`: that backend alone, under its own names."""
        if backend not in self.gateway.supervisor:
            return None
        server = self._backend_servers.get(backend)
        if server is None:
            server = self._backend_servers[backend] = self._serve(BackendSurface(self.gateway, backend), backend)
        return server

    @asynccontextmanager
    async def running(self) -> AsyncIterator[GatewayApp]:
        send, receive = anyio.create_memory_object_stream[_Listed | _Updated](math.inf)
        guard = watchdog.start() if self._watchdog else None  # kills the backends if this process is killed
        try:
            async with send, receive, self.gateway.running(), anyio.create_task_group() as tg:
                self._events = send
                await tg.start(self.pending.serve)
                tg.start_soon(self._deliver, receive)
                try:
                    yield self
                finally:
                    self._events = None
                    tg.cancel_scope.cancel()
        finally:
            watchdog.stop(guard)

    def _post(self, event: _Listed | _Updated) -> None:
        if self._events is None:  # not serving: nobody to tell
            return
        with suppress(anyio.ClosedResourceError, anyio.BrokenResourceError):
            self._events.send_nowait(event)

    async def _deliver(self, events: MemoryObjectReceiveStream[_Listed | _Updated]) -> None:
        async for event in events:
            for surface, audience in list(self._surfaces):
                try:
                    if isinstance(event, _Listed):
                        kinds = surface.affected(event.backend, event.kinds)
                        if kinds:
                            await audience.changed(sorted(kinds))
                    elif event.backend in surface.backends():
                        await audience.resource_updated(surface.exposed_uri(event.backend, event.uri))
                except Exception:  # one surface's delivery problem must not stop the others
                    logger.exception("delivering a change notification failed")
