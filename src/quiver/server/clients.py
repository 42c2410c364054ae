"""The clients connected to one surface: their upstreams, and telling them what changed.

Handshake-era clients keep a connection: their requests can be answered with server-to-client
requests on the calling request's own stream, and change notifications go out on each
connection. 2026-07-28 clients have no connection to speak of: they receive changes on
`subscriptions/listen` streams, fed from one event bus per surface.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import mcp_types as types
from mcp.server.context import ServerRequestContext
from mcp.server.subscriptions import (
    InMemorySubscriptionBus,
    PromptsListChanged,
    ResourcesListChanged,
    ResourceUpdated,
    ServerEvent,
    ToolsListChanged,
)
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from quiver._legacy import legacy_features
from quiver.backends.base import Change
from quiver.upstream import Upstream

logger = logging.getLogger(__name__)

_LOG_LEVELS: tuple[types.LoggingLevel, ...] = (
    "debug",
    "info",
    "notice",
    "warning",
    "error",
    "critical",
    "alert",
    "emergency",
)
LOG_LEVEL_KEY = "quiver.log_level"  # where a connection's logging/setLevel choice is kept


def is_modern(ctx: ServerRequestContext[Any]) -> bool:
    return ctx.protocol_version in MODERN_PROTOCOL_VERSIONS


def connection_of(ctx: ServerRequestContext[Any]) -> Any:
    """The SDK's per-client connection behind a request (the session object is per request)."""
    return getattr(ctx.session, "_connection", ctx.session)


def capability_supported(ctx: ServerRequestContext[Any], capability: str) -> bool:
    capabilities = ctx.session.client_capabilities
    return capabilities is not None and getattr(capabilities, capability, None) is not None


class SessionUpstream(Upstream):
    """A handshake-era client: asked on the back-channel of the request being served."""

    def __init__(self, ctx: ServerRequestContext[Any]) -> None:
        self._ctx = ctx
        self.capabilities = ctx.session.client_capabilities

    @property
    def session_key(self) -> object:
        return connection_of(self._ctx)

    def supports(self, capability: str) -> bool:
        return capability_supported(self._ctx, capability)

    async def request(self, request: types.ServerRequest, result_type: type[Any]) -> Any:
        from mcp.shared.message import ServerMessageMetadata

        metadata = ServerMessageMetadata(related_request_id=self._ctx.request_id)
        return await self._ctx.session.send_request(request, result_type, metadata=metadata)

    async def log(self, params: types.LoggingMessageNotificationParams) -> None:
        state = getattr(connection_of(self._ctx), "state", {})
        threshold = state.get(LOG_LEVEL_KEY, "debug")
        if _LOG_LEVELS.index(params.level) < _LOG_LEVELS.index(threshold):
            return
        try:
            with legacy_features():
                await self._ctx.session.send_log_message(
                    params.level, params.data, params.logger, related_request_id=self._ctx.request_id
                )
        except Exception as exc:  # the request may have ended; a lost log line is not an error
            logger.debug("could not relay a log message: %s", exc)


_EVENTS: dict[Change, tuple[types.ServerNotification, ServerEvent]] = {
    Change.TOOLS: (types.ToolListChangedNotification(), ToolsListChanged()),
    Change.RESOURCES: (types.ResourceListChangedNotification(), ResourcesListChanged()),
    Change.PROMPTS: (types.PromptListChangedNotification(), PromptsListChanged()),
}


class Audience:
    """Who to tell when a surface's lists change or a subscribed resource is updated."""

    def __init__(self) -> None:
        self.bus = InMemorySubscriptionBus()
        self._connections: dict[int, Any] = {}
        self._subscribers: dict[str, dict[int, Any]] = {}  # exposed URI -> connections

    def track(self, ctx: ServerRequestContext[Any]) -> None:
        """Remember a handshake-era client's connection until it closes."""
        if is_modern(ctx):
            return
        connection = connection_of(ctx)
        key = id(connection)
        if key in self._connections:
            return
        self._connections[key] = connection
        stack = getattr(connection, "exit_stack", None)
        if stack is not None:
            stack.callback(self._forget, key)

    def _forget(self, key: int) -> None:
        self._connections.pop(key, None)
        for subscribers in self._subscribers.values():
            subscribers.pop(key, None)

    def subscribe(self, ctx: ServerRequestContext[Any], uri: str) -> bool:
        """Record a handshake-era subscription; True when it is the first for `uri`."""
        self.track(ctx)
        connection = connection_of(ctx)
        subscribers = self._subscribers.setdefault(uri, {})
        first = not subscribers
        subscribers[id(connection)] = connection
        return first

    def unsubscribe(self, ctx: ServerRequestContext[Any], uri: str) -> bool:
        """Drop a subscription; True when nobody follows `uri` any more."""
        subscribers = self._subscribers.get(uri, {})
        subscribers.pop(id(connection_of(ctx)), None)
        if subscribers:
            return False
        self._subscribers.pop(uri, None)
        return True

    def followed(self) -> set[str]:
        return {uri for uri, subscribers in self._subscribers.items() if subscribers}

    async def changed(self, kinds: Iterable[Change]) -> None:
        for kind in kinds:
            notification, event = _EVENTS[kind]
            await self._notify(self._connections.values(), notification)
            await self.bus.publish(event)

    async def resource_updated(self, uri: str) -> None:
        notification = types.ResourceUpdatedNotification(params=types.ResourceUpdatedNotificationParams(uri=uri))
        await self._notify(self._subscribers.get(uri, {}).values(), notification)
        await self.bus.publish(ResourceUpdated(uri))

    async def _notify(self, connections: Iterable[Any], notification: types.ServerNotification) -> None:
        data = notification.model_dump(by_alias=True, mode="json", exclude_none=True)
        for connection in list(connections):
            try:
                await connection.outbound.notify(data["method"], data.get("params"))
            except Exception as exc:  # a client gone mid-notification costs nobody else anything
                logger.debug("could not notify a client: %s", exc)
