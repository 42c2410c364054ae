"""Serving clients over streamable HTTP: `/mcp`, `/mcp/{backend}`, `/healthz`; loopback by default.

The SDK's session manager speaks both protocol eras and keeps DNS-rebinding protection on;
this module adds the routes around it (one session manager per served surface) and ties the
gateway's lifetime to the app's.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from quiver.config.models import HttpSettings
from quiver.errors import ConfigError
from quiver.gateway import Gateway
from quiver.server.app import GatewayApp

logger = logging.getLogger(__name__)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(settings: HttpSettings) -> None:
    """Refuse to expose the gateway beyond this machine without authentication."""
    if not is_loopback(settings.host):
        raise ConfigError(
            f"refusing to serve on {settings.host}: only loopback addresses may be served without authentication",
            hint="bind to 127.0.0.1 (the default), or configure authentication before serving on other interfaces",
        )


def _security() -> Any:
    from mcp.server.transport_security import TransportSecuritySettings

    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=["127.0.0.1:*", "localhost:*", "[::1]:*"],
        allowed_origins=["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"],
    )


class _BackendEndpoints:
    """`/mcp/{backend}`: each backend alone, with a session manager started on first use."""

    def __init__(self, app: GatewayApp) -> None:
        self._app = app
        self._handlers: dict[str, Any] = {}
        self._stack: AsyncExitStack | None = None

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            self._stack = stack
            try:
                yield
            finally:
                self._stack = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        backend = scope.get("path_params", {}).get("backend", "")
        handler = await self._handler(backend)
        if handler is None:
            response = JSONResponse({"error": f"unknown backend '{backend}'"}, status_code=404)
            await response(scope, receive, send)
            return
        await handler(scope, receive, send)

    async def _handler(self, backend: str) -> Any:
        from mcp.server.streamable_http_manager import StreamableHTTPASGIApp, StreamableHTTPSessionManager

        handler = self._handlers.get(backend)
        if handler is None and self._stack is not None:
            server = self._app.backend_server(backend)
            if server is None:
                return None
            manager = StreamableHTTPSessionManager(app=server, security_settings=_security())
            await self._stack.enter_async_context(manager.run())
            handler = self._handlers[backend] = StreamableHTTPASGIApp(manager)
        return handler


def build_app(gateway: Gateway, settings: HttpSettings) -> Starlette:
    from mcp.server.streamable_http_manager import StreamableHTTPASGIApp, StreamableHTTPSessionManager

    app = GatewayApp(gateway)
    manager = StreamableHTTPSessionManager(app=app.server, security_settings=_security())
    endpoints = _BackendEndpoints(app)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    @asynccontextmanager
    async def lifespan(starlette: Starlette) -> AsyncIterator[None]:
        async with app.running(), manager.run(), endpoints.running():
            yield

    routes = [
        Route(settings.path, endpoint=StreamableHTTPASGIApp(manager)),
        Route("/healthz", endpoint=healthz, methods=["GET"]),
    ]
    if gateway.config.gateway.backend_endpoints:
        routes.append(Route(settings.path.rstrip("/") + "/{backend}", endpoint=endpoints))
    return Starlette(routes=routes, lifespan=lifespan)


async def serve_http(
    gateway: Gateway, settings: HttpSettings, *, on_ready: Callable[[str], None] | None = None
) -> None:
    """Serve until SIGTERM/SIGINT; `on_ready` gets the URL once the port accepts connections."""
    import uvicorn

    check_bind(settings)
    sock = _listen(settings.host, settings.port)
    port = sock.getsockname()[1]
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    config = uvicorn.Config(build_app(gateway, settings), log_level="warning", lifespan="on")
    (on_ready or _print_ready)(f"http://{host}:{port}{settings.path}")
    with sock:
        await uvicorn.Server(config).serve(sockets=[sock])


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host.strip("[]"), port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"cannot listen on {host}:{port}: {exc.strerror}",
            hint="choose another port with --port (0 picks a free one)",
        ) from None
    return sock


def _print_ready(url: str) -> None:
    print(f"quiver: serving MCP on {url}", file=sys.stderr, flush=True)
