"""The upward MCP server of one surface: SDK low-level `Server` handlers over a `Gateway`.

The SDK owns the protocol in both eras (the `initialize` handshake and 2026-07-28). These
handlers list what the surface shows, map names back to (backend, original), and pass the
caller along as an `Upstream`: handshake-era callers are asked on their request's own
back-channel, 2026-07-28 callers through input-required rounds (`pending`). Downstream
progress is relayed on the caller's progress token.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import mcp_types as types
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import NotificationOptions, Server
from mcp.server.models import InitializationOptions
from mcp.shared.exceptions import MCPError

from quiver._legacy import legacy_features
from quiver.backends.base import ProgressFn
from quiver.errors import BackendCallError, QuiverError, UnknownToolError
from quiver.metatools import INSTRUCTIONS, CallContext
from quiver.metatools.results import error_result, forwarded
from quiver.policy.engine import View
from quiver.policy.principal import LOCAL, Principal
from quiver.server.clients import (
    LOG_LEVEL_KEY,
    Audience,
    SessionUpstream,
    connection_of,
    is_modern,
)
from quiver.server.pending import Caller, Dispatch, PendingCalls
from quiver.server.surfaces import MetaSurface, Surface, rewrite_contents
from quiver.upstream import Upstream

Ctx = ServerRequestContext[Any]
T = TypeVar("T")

SURFACE_INSTRUCTIONS = "Tools of several MCP servers, listed through the Quiver gateway."


class GatewayServer(Server[Any]):
    """A low-level server that advertises list-change notifications (it sends them)."""

    def create_initialization_options(
        self,
        notification_options: NotificationOptions | None = None,
        experimental_capabilities: dict[str, dict[str, Any]] | None = None,
        extensions: dict[str, dict[str, Any]] | None = None,
    ) -> InitializationOptions:
        changes = notification_options or NotificationOptions(
            prompts_changed=True, resources_changed=True, tools_changed=True
        )
        return super().create_initialization_options(changes, experimental_capabilities, extensions)


def build_server(
    surface: Surface,
    audience: Audience,
    pending: PendingCalls,
    *,
    name: str | None = None,
    principal_of: Callable[[Ctx], Principal] = lambda ctx: LOCAL,
) -> Server[Any]:
    from mcp.server.request_state import RequestStateBoundary, RequestStateSecurity
    from mcp.server.subscriptions import ListenHandler

    from quiver import __version__

    gateway = surface.gateway
    metatools = surface.metatools if isinstance(surface, MetaSurface) else None
    listen = ListenHandler(audience.bus)

    async def rounds(ctx: Ctx, params: types.InputResponseRequestParams, dispatch: Dispatch) -> Any:
        audience.track(ctx)
        if is_modern(ctx):
            return await pending.round(
                params.request_state,
                dict(params.input_responses) if params.input_responses else None,
                Caller(ctx.session.client_capabilities),
                dispatch,
            )
        return await dispatch(SessionUpstream(ctx))

    async def list_tools(ctx: Ctx, params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
        audience.track(ctx)
        return types.ListToolsResult(tools=await surface.tools(gateway.view(principal_of(ctx))))

    async def call_tool(
        ctx: Ctx, params: types.CallToolRequestParams
    ) -> types.CallToolResult | types.InputRequiredResult:
        name, arguments, progress = params.name, params.arguments or {}, _progress_relay(ctx)
        principal = principal_of(ctx)
        view = gateway.view(principal)

        async def dispatch(upstream: Upstream) -> types.Result:
            context = CallContext(gateway, progress, upstream, principal)
            if metatools is not None and metatools.has(name):
                return await metatools.call(name, arguments, context)
            tid = await surface.resolve_tool(name, view)
            if tid is None:
                if metatools is not None:  # says which tools this surface offers
                    return await metatools.call(name, arguments, context)
                visible = [n for n in surface.names().tool_ids if surface.tool_id(n, view) is not None]
                return error_result(UnknownToolError(name, _near(name, visible)))
            try:
                result = await gateway.call(
                    str(tid), arguments, progress=progress, upstream=upstream, principal=principal
                )
                return forwarded(result)
            except BackendCallError as exc:
                if exc.error is not None:  # listed directly: the backend's own protocol error, unchanged
                    raise MCPError(code=exc.error.code, message=exc.error.message, data=exc.error.data) from None
                return error_result(exc)
            except Exception as exc:
                return error_result(exc)

        result: types.CallToolResult | types.InputRequiredResult = await rounds(ctx, params, dispatch)
        return result

    async def list_resources(ctx: Ctx, params: types.PaginatedRequestParams | None) -> types.ListResourcesResult:
        audience.track(ctx)
        return types.ListResourcesResult(resources=await surface.resources(gateway.view(principal_of(ctx))))

    async def list_templates(
        ctx: Ctx, params: types.PaginatedRequestParams | None
    ) -> types.ListResourceTemplatesResult:
        audience.track(ctx)
        view = gateway.view(principal_of(ctx))
        return types.ListResourceTemplatesResult(resource_templates=await surface.templates(view))

    async def read_resource(
        ctx: Ctx, params: types.ReadResourceRequestParams
    ) -> types.ReadResourceResult | types.InputRequiredResult:
        backend, uri = await _resource(surface, params.uri, gateway.view(principal_of(ctx)))

        async def dispatch(upstream: Upstream) -> types.Result:
            read = await _downstream(gateway.read_resource(backend, uri, upstream=upstream))
            if isinstance(read, types.InputRequiredResult):
                return read
            return read.model_copy(update={"contents": rewrite_contents(surface, backend, read.contents)})

        result: types.ReadResourceResult | types.InputRequiredResult = await rounds(ctx, params, dispatch)
        return result

    async def subscribe(ctx: Ctx, params: types.SubscribeRequestParams) -> types.EmptyResult:
        backend, uri = await _resource(surface, params.uri, gateway.view(principal_of(ctx)))
        if audience.subscribe(ctx, params.uri):
            await _downstream(gateway.subscribe(backend, uri))
        return types.EmptyResult()

    async def unsubscribe(ctx: Ctx, params: types.UnsubscribeRequestParams) -> types.EmptyResult:
        backend, uri = await _resource(surface, params.uri, gateway.view(principal_of(ctx)))
        if audience.unsubscribe(ctx, params.uri):
            await _downstream(gateway.unsubscribe(backend, uri))
        return types.EmptyResult()

    async def listen_for_changes(
        ctx: Ctx, params: types.SubscriptionsListenRequestParams
    ) -> types.SubscriptionsListenResult:
        """2026-07-28 subscriptions: follow the requested resources downstream for the stream's life."""
        followed = [
            resolved
            for uri in params.notifications.resource_subscriptions or ()
            if (resolved := await surface.resolve_uri(uri, gateway.view(principal_of(ctx)))) is not None
        ]
        for backend, uri in followed:
            await _downstream(gateway.subscribe(backend, uri))
        try:
            return await listen(ctx, params)
        finally:
            for backend, uri in followed:
                if uri not in audience.followed():
                    with contextlib.suppress(QuiverError):
                        await gateway.unsubscribe(backend, uri)

    async def list_prompts(ctx: Ctx, params: types.PaginatedRequestParams | None) -> types.ListPromptsResult:
        audience.track(ctx)
        return types.ListPromptsResult(prompts=await surface.prompts(gateway.view(principal_of(ctx))))

    async def get_prompt(
        ctx: Ctx, params: types.GetPromptRequestParams
    ) -> types.GetPromptResult | types.InputRequiredResult:
        resolved = await surface.resolve_prompt(params.name, gateway.view(principal_of(ctx)))
        if resolved is None:
            raise MCPError(code=types.INVALID_PARAMS, message=f"unknown prompt '{params.name}'")
        backend, name = resolved

        async def dispatch(upstream: Upstream) -> types.Result:
            return await _downstream(gateway.get_prompt(backend, name, params.arguments, upstream=upstream))

        result: types.GetPromptResult | types.InputRequiredResult = await rounds(ctx, params, dispatch)
        return result

    async def complete(ctx: Ctx, params: types.CompleteRequestParams) -> types.CompleteResult:
        ref = params.ref
        argument = {"name": params.argument.name, "value": params.argument.value}
        context = params.context.arguments if params.context is not None else None
        if isinstance(ref, types.PromptReference):
            resolved = await surface.resolve_prompt(ref.name, gateway.view(principal_of(ctx)))
            if resolved is None:
                raise MCPError(code=types.INVALID_PARAMS, message=f"unknown prompt '{ref.name}'")
            backend, original = resolved
            downstream_ref: types.PromptReference | types.ResourceTemplateReference = ref.model_copy(
                update={"name": original}
            )
        else:
            backend, original = await _resource(surface, ref.uri, gateway.view(principal_of(ctx)))
            downstream_ref = ref.model_copy(update={"uri": original})
        return await _downstream(gateway.complete(backend, downstream_ref, argument, context))

    async def set_level(ctx: Ctx, params: types.SetLevelRequestParams) -> types.EmptyResult:
        state = getattr(connection_of(ctx), "state", None)
        if isinstance(state, dict):
            state[LOG_LEVEL_KEY] = params.level
        return types.EmptyResult()

    with legacy_features():  # logging/setLevel is how handshake-era clients choose what they hear
        server = GatewayServer(
            name or gateway.config.gateway.name,
            version=__version__,
            title="Quiver MCP gateway",
            instructions=INSTRUCTIONS if metatools is not None else SURFACE_INSTRUCTIONS,
            on_list_tools=list_tools,
            on_call_tool=call_tool,
            on_list_resources=list_resources,
            on_list_resource_templates=list_templates,
            on_read_resource=read_resource,
            on_subscribe_resource=subscribe,
            on_unsubscribe_resource=unsubscribe,
            on_subscriptions_listen=listen_for_changes,
            on_list_prompts=list_prompts,
            on_get_prompt=get_prompt,
            on_completion=complete,
            on_set_logging_level=set_level,
        )
    server.middleware.append(RequestStateBoundary(RequestStateSecurity.ephemeral(), default_audience=server.name))
    return server


async def _resource(surface: Surface, uri: str, view: View) -> tuple[str, str]:
    resolved = await surface.resolve_uri(uri, view)
    if resolved is None:
        raise MCPError(code=types.INVALID_PARAMS, message=f"resource not found: {uri}")
    return resolved


async def _downstream(request: Awaitable[T]) -> T:
    """Await a backend request; its failure becomes the JSON-RPC error the client receives."""
    try:
        return await request
    except BackendCallError as exc:
        if exc.error is not None:
            raise MCPError(code=exc.error.code, message=exc.error.message, data=exc.error.data) from None
        raise MCPError(code=types.INTERNAL_ERROR, message=str(exc)) from None
    except QuiverError as exc:
        raise MCPError(code=types.INVALID_PARAMS, message=str(exc)) from None


def _near(name: str, names: list[str]) -> list[str]:
    import difflib

    return difflib.get_close_matches(name, names, n=3, cutoff=0.5)


def _progress_relay(ctx: Ctx) -> ProgressFn | None:
    """Forward downstream progress on the caller's token; None when the caller asked for none."""
    if ctx.meta is None or ctx.meta.get("progress_token") is None:
        return None

    async def relay(progress: float, total: float | None, message: str | None) -> None:
        await ctx.session.report_progress(progress, total, message)

    return relay
