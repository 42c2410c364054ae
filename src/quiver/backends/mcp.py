"""A downstream MCP server as a backend: stdio, streamable HTTP or SSE, through the SDK `Client`.

The SDK does the protocol; this module builds the transport from config, watches it so the
supervisor learns when the connection dies, keeps a stdio server's stderr in a log file (its
tail explains most failures), turns change notifications (handshake era) and
`subscriptions/listen` events (2026-07-28) into callbacks, and routes what the server asks
of its client during a call (sampling, elicitation, roots, log messages) to the `Upstream`
of that call.
"""

from __future__ import annotations

import itertools
import logging
import os
import shutil
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import mcp_types as types

from quiver.backends.base import Backend, Change, Listing, ProgressFn
from quiver.backends.watch import CALLER_CAPABILITIES_KEY, watch_transport
from quiver.config.interpolate import resolve_backend
from quiver.config.models import AnyBackendConfig, HttpBackendConfig, SseBackendConfig, StdioBackendConfig
from quiver.errors import BackendUnavailableError
from quiver.upstream import Upstream, current_upstream, no_caller

if TYPE_CHECKING:
    from mcp import Client
    from mcp.client._transport import Transport
    from mcp.client.session import ClientRequestContext

logger = logging.getLogger(__name__)

CLIENT_NAME = "quiver"
_STDERR_TAIL_BYTES = 2048
_STDERR_TAIL_LINES = 6
_LISTEN_RETRY = 5.0  # seconds before re-opening a dropped subscriptions/listen stream
_CHANGES: dict[type, Change] = {
    types.ToolListChangedNotification: Change.TOOLS,
    types.ResourceListChangedNotification: Change.RESOURCES,
    types.PromptListChangedNotification: Change.PROMPTS,
}


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
        self._calls: dict[int, Upstream] = {}  # in-flight requests and the client each serves
        self._call_ids = itertools.count()
        self._subscriptions: set[str] = set()
        self._subscriptions_changed = anyio.Event()
        self._dumped: tuple[types.ClientCapabilities, dict[str, Any]] | None = None

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
                sampling_callback=self._on_sampling,
                elicitation_callback=self._on_elicitation,
                list_roots_callback=self._on_list_roots,
                logging_callback=self._on_log,
                log_level="debug",  # 2026-07-28 servers log only to requests that opt in; the caller filters
            )
            self._client = await stack.enter_async_context(client)
            try:
                if self._modern:
                    async with anyio.create_task_group() as tg:
                        tg.start_soon(self._listen)
                        yield
                        tg.cancel_scope.cancel()
                else:
                    yield
            finally:
                self._client = None

    # -- listing ------------------------------------------------------------------------------

    async def list_tools(self) -> list[types.Tool]:
        client = self._connected()
        return await _all_pages(lambda cursor: client.list_tools(cursor=cursor), "tools")

    async def listing(self) -> Listing:
        client = self._connected()
        capabilities = client.server_capabilities
        tools = await self.list_tools() if capabilities.tools is not None else []
        resources: list[types.Resource] = []
        templates: list[types.ResourceTemplate] = []
        prompts: list[types.Prompt] = []
        if capabilities.resources is not None:
            resources = await _all_pages(lambda cursor: client.list_resources(cursor=cursor), "resources")
            templates = await _all_pages(
                lambda cursor: client.list_resource_templates(cursor=cursor), "resource_templates"
            )
        if capabilities.prompts is not None:
            prompts = await _all_pages(lambda cursor: client.list_prompts(cursor=cursor), "prompts")
        return Listing(tools, resources, templates, prompts, self.server_title)

    # -- requests -----------------------------------------------------------------------------

    async def call_tool(
        self,
        name: str,
        arguments: Mapping[str, Any],
        *,
        progress: ProgressFn | None = None,
        upstream: Upstream | None = None,
    ) -> types.CallToolResult | types.InputRequiredResult:
        client = self._connected()
        with self._serving(upstream):
            if self._passes_rounds(upstream):
                assert upstream is not None
                assert upstream.round is not None
                return await client.session.call_tool(
                    name,
                    dict(arguments),
                    progress_callback=progress,
                    input_responses=upstream.round.responses,
                    request_state=upstream.round.state,
                    meta=self._caller_meta(upstream),
                    allow_input_required=True,
                )
            return await client.call_tool(
                name, dict(arguments), progress_callback=progress, meta=self._caller_meta(upstream)
            )

    async def read_resource(
        self, uri: str, *, upstream: Upstream | None = None
    ) -> types.ReadResourceResult | types.InputRequiredResult:
        client = self._connected()
        with self._serving(upstream):
            if self._passes_rounds(upstream):
                assert upstream is not None
                assert upstream.round is not None
                return await client.session.read_resource(
                    uri,
                    input_responses=upstream.round.responses,
                    request_state=upstream.round.state,
                    meta=self._caller_meta(upstream),
                    allow_input_required=True,
                )
            return await client.read_resource(uri, cache_mode="bypass", meta=self._caller_meta(upstream))

    async def get_prompt(
        self, name: str, arguments: Mapping[str, str] | None, *, upstream: Upstream | None = None
    ) -> types.GetPromptResult | types.InputRequiredResult:
        client = self._connected()
        args = dict(arguments) if arguments is not None else None
        with self._serving(upstream):
            if self._passes_rounds(upstream):
                assert upstream is not None
                assert upstream.round is not None
                return await client.session.get_prompt(
                    name,
                    args,
                    input_responses=upstream.round.responses,
                    request_state=upstream.round.state,
                    meta=self._caller_meta(upstream),
                    allow_input_required=True,
                )
            return await client.get_prompt(name, args, meta=self._caller_meta(upstream))

    def _passes_rounds(self, upstream: Upstream | None) -> bool:
        """A 2026-07-28 caller and a 2026-07-28 server: input requests travel through unchanged."""
        return upstream is not None and upstream.round is not None and self._modern

    async def complete(
        self,
        ref: types.PromptReference | types.ResourceTemplateReference,
        argument: Mapping[str, str],
        context: Mapping[str, str] | None,
    ) -> types.CompleteResult:
        client = self._connected()
        return await client.complete(ref, dict(argument), dict(context) if context is not None else None)

    async def subscribe(self, uri: str) -> None:
        client = self._connected()
        if self._modern:
            self._subscriptions.add(uri)
            self._subscriptions_changed.set()
            return
        from quiver._legacy import legacy_features

        with legacy_features():
            await client.subscribe_resource(uri)

    async def unsubscribe(self, uri: str) -> None:
        client = self._connected()
        if self._modern:
            self._subscriptions.discard(uri)
            self._subscriptions_changed.set()
            return
        from quiver._legacy import legacy_features

        with legacy_features():
            await client.unsubscribe_resource(uri)

    # -- what the server asks of its client ----------------------------------------------------

    def _serving(self, upstream: Upstream | None) -> _Serving:
        return _Serving(self, upstream)

    def _caller(self) -> Upstream | None:
        """The client a server-to-client request belongs to.

        Where the transport keeps the task context (HTTP, and the 2026-07-28 input-required
        rounds), the call's own upstream is known. Over stdio the SDK reads requests in its
        own task, so the request is matched to the calls in flight on this connection: one
        client's calls are unambiguous; with several clients the oldest call's client is used.
        """
        upstream = current_upstream.get()
        if upstream is not None:
            return upstream
        calls = list(self._calls.values())
        if not calls:
            return None
        if len({id(call.session_key) for call in calls}) > 1:
            logger.info("backend %s asked its client something while several clients' calls were in flight", self.name)
        return calls[0]

    async def _on_sampling(
        self, context: ClientRequestContext, params: types.CreateMessageRequestParams
    ) -> types.CreateMessageResult | types.CreateMessageResultWithTools | types.ErrorData:
        caller = self._caller()
        return await caller.create_message(params) if caller is not None else no_caller("sampling")

    async def _on_elicitation(
        self, context: ClientRequestContext, params: types.ElicitRequestParams
    ) -> types.ElicitResult | types.ErrorData:
        caller = self._caller()
        return await caller.elicit(params) if caller is not None else no_caller("elicitation")

    async def _on_list_roots(self, context: ClientRequestContext) -> types.ListRootsResult | types.ErrorData:
        caller = self._caller()
        return await caller.list_roots() if caller is not None else no_caller("roots/list")

    async def _on_log(self, params: types.LoggingMessageNotificationParams) -> None:
        caller = self._caller()
        if caller is not None:
            await caller.log(params)
        else:
            logger.debug("backend %s log (%s): %s", self.name, params.level, params.data)

    async def _on_message(self, message: types.ServerNotification | Exception) -> None:
        change = _CHANGES.get(type(message))
        if change is not None and self.changed is not None:
            self.changed(change)
        elif isinstance(message, types.ResourceUpdatedNotification) and self.resource_updated is not None:
            self.resource_updated(str(message.params.uri))
        await anyio.lowlevel.checkpoint()

    async def _listen(self) -> None:
        """2026-07-28: change events come on a `subscriptions/listen` stream, re-opened as subscriptions change."""
        from mcp.client.subscriptions import (
            ListenNotSupportedError,
            PromptsListChanged,
            ResourcesListChanged,
            ResourceUpdated,
            ToolsListChanged,
        )
        from mcp.shared.exceptions import MCPError

        kinds: dict[type, Change] = {
            ToolsListChanged: Change.TOOLS,
            ResourcesListChanged: Change.RESOURCES,
            PromptsListChanged: Change.PROMPTS,
        }
        client = self._connected()
        while True:
            self._subscriptions_changed = anyio.Event()
            try:
                async with (
                    client.listen(
                        tools_list_changed=True,
                        prompts_list_changed=True,
                        resources_list_changed=True,
                        resource_subscriptions=sorted(self._subscriptions),
                    ) as subscription,
                    anyio.create_task_group() as tg,
                ):

                    async def relisten(scope: anyio.CancelScope = tg.cancel_scope) -> None:
                        await self._subscriptions_changed.wait()
                        scope.cancel()

                    tg.start_soon(relisten)
                    async for event in subscription:
                        if isinstance(event, ResourceUpdated):
                            if self.resource_updated is not None:
                                self.resource_updated(event.uri)
                        elif self.changed is not None and type(event) in kinds:
                            self.changed(kinds[type(event)])
                    tg.cancel_scope.cancel()
            except (ListenNotSupportedError, MCPError) as exc:
                if isinstance(exc, MCPError) and exc.code != types.METHOD_NOT_FOUND:
                    logger.info("backend %s: subscriptions/listen failed: %s", self.name, exc)
                    await anyio.sleep(_LISTEN_RETRY)
                    continue
                return  # the server offers no change notifications
            except Exception as exc:
                logger.info("backend %s: subscriptions/listen dropped: %s", self.name, exc)
                await anyio.sleep(_LISTEN_RETRY)
            if not self._subscriptions_changed.is_set():
                await anyio.sleep(_LISTEN_RETRY)

    # -- connection -----------------------------------------------------------------------------

    def _caller_meta(self, upstream: Upstream | None) -> Any:
        """Request `_meta` naming the caller's own capabilities (applied by `watch_transport`).

        Only a 2026-07-28 connection carries capabilities per request; a handshake-era backend
        learnt the gateway's at `initialize`."""
        if upstream is None or upstream.capabilities is None or not self._modern:
            return None
        capabilities = upstream.capabilities
        if self._dumped is None or self._dumped[0] is not capabilities:  # one dump per caller session
            self._dumped = (capabilities, capabilities.model_dump(by_alias=True, mode="json", exclude_none=True))
        return {CALLER_CAPABILITIES_KEY: self._dumped[1]}

    @property
    def _modern(self) -> bool:
        from mcp_types.version import MODERN_PROTOCOL_VERSIONS

        return self._client is not None and self._client.protocol_version in MODERN_PROTOCOL_VERSIONS

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

    async def _transport(self, config: AnyBackendConfig, stack: AsyncExitStack) -> Transport:
        if isinstance(config, StdioBackendConfig):
            return self._stdio_transport(config, stack)
        import httpx2

        if isinstance(config, SseBackendConfig):
            from mcp.client.sse import sse_client

            return sse_client(config.url, headers=config.headers or None)
        if not isinstance(config, HttpBackendConfig):
            raise BackendUnavailableError(f"backend '{self.name}' is a {config.type} backend, not an MCP server")
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
                f"backend '{self.name}': working directory {cwd} does not exist", hint="fix 'cwd' in the config"
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


class _Serving:
    """Marks a request as in flight for an upstream, for routing what the server asks meanwhile."""

    def __init__(self, backend: McpBackend, upstream: Upstream | None) -> None:
        self._backend = backend
        self._upstream = upstream
        self._key = -1
        self._token: Any = None

    def __enter__(self) -> None:
        if self._upstream is None:
            return
        self._key = next(self._backend._call_ids)
        self._backend._calls[self._key] = self._upstream
        self._token = current_upstream.set(self._upstream)

    def __exit__(self, *exc: object) -> None:
        if self._upstream is None:
            return
        self._backend._calls.pop(self._key, None)
        current_upstream.reset(self._token)


async def _all_pages(fetch: Any, attribute: str) -> list[Any]:
    items: list[Any] = []
    cursor: str | None = None
    while True:
        page = await fetch(cursor)
        items.extend(getattr(page, attribute))
        cursor = page.next_cursor
        if not cursor:
            return items


def _version() -> str:
    from quiver import __version__

    return __version__
