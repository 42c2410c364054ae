"""Serving clients over streamable HTTP (`/mcp`), bound to loopback by default.

The SDK's session manager speaks both protocol eras and keeps DNS-rebinding protection on;
this module adds the routes around it and ties the gateway's lifetime to the app's.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from quiver.config.models import HttpSettings
from quiver.errors import ConfigError
from quiver.gateway import Gateway
from quiver.server.handlers import build_server

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


def build_app(gateway: Gateway, settings: HttpSettings) -> Starlette:
    from mcp.server.streamable_http_manager import StreamableHTTPASGIApp, StreamableHTTPSessionManager
    from mcp.server.transport_security import TransportSecuritySettings

    server = build_server(gateway)
    security = TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=["127.0.0.1:*", "localhost:*", "[::1]:*"],
        allowed_origins=["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"],
    )
    manager = StreamableHTTPSessionManager(app=server, security_settings=security)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with gateway.running(), manager.run():
            yield

    routes = [
        Route(settings.path, endpoint=StreamableHTTPASGIApp(manager)),
        Route("/healthz", endpoint=healthz, methods=["GET"]),
    ]
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
