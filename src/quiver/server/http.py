"""Serving clients over streamable HTTP: `/mcp`, `/mcp/{backend}`, `/healthz`, `/readyz`.

The SDK's session manager speaks both protocol eras and keeps DNS-rebinding protection on for
loopback binds; this module adds the routes around it (one session manager per served surface),
authentication (API keys and OAuth bearer tokens, `server/auth.py`), and ties the gateway's
lifetime to the app's. A non-loopback bind is refused unless authentication is configured.
"""

from __future__ import annotations

import logging
import socket
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
from anyio.abc import TaskGroup, TaskStatus
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from quiver.config.models import HttpSettings
from quiver.errors import ConfigError
from quiver.gateway import Gateway, state_dir
from quiver.metrics import metrics_endpoint
from quiver.server.app import GatewayApp
from quiver.server.auth import AuthSetup, build_auth, check_bind, is_loopback, principal_of

logger = logging.getLogger(__name__)


def _security(settings: HttpSettings) -> Any:
    from mcp.server.transport_security import TransportSecuritySettings

    if not is_loopback(settings.host):
        # Served beyond this machine (authenticated): the Host header is whatever clients use.
        return TransportSecuritySettings(enable_dns_rebinding_protection=False)
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=["127.0.0.1:*", "localhost:*", "[::1]:*"],
        allowed_origins=["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"],
    )


class _BackendEndpoints:
    """`/mcp/{backend}`: each backend alone, with a session manager started on first use.

    Session managers are started in the app's own task group (never in a request's task), so
    they stop with the app."""

    def __init__(self, app: GatewayApp, settings: HttpSettings) -> None:
        self._app = app
        self._settings = settings
        self._handlers: dict[str, Any] = {}
        self._tg: TaskGroup | None = None
        self._lock = anyio.Lock()

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        async with anyio.create_task_group() as tg:
            self._tg = tg
            try:
                yield
            finally:
                self._tg = None
                tg.cancel_scope.cancel()

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

        async with self._lock:
            handler = self._handlers.get(backend)
            if handler is None and self._tg is not None:
                server = self._app.backend_server(backend)
                if server is None:
                    return None
                manager = StreamableHTTPSessionManager(app=server, security_settings=_security(self._settings))
                await self._tg.start(_run_manager, manager)
                handler = self._handlers[backend] = StreamableHTTPASGIApp(manager)
            return handler


async def _run_manager(manager: Any, *, task_status: TaskStatus[None]) -> None:
    async with manager.run():
        task_status.started()
        await anyio.sleep_forever()


def build_app(
    gateway: Gateway, settings: HttpSettings, *, watchdog: bool = False, auth: AuthSetup | None = None
) -> Starlette:
    from mcp.server.streamable_http_manager import StreamableHTTPASGIApp, StreamableHTTPSessionManager

    auth = auth or AuthSetup()
    app = GatewayApp(gateway, watchdog=watchdog, principal_of=principal_of)
    manager = StreamableHTTPSessionManager(app=app.server, security_settings=_security(settings))
    endpoints = _BackendEndpoints(app, settings)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        ready = gateway.ready and not gateway.draining
        return JSONResponse({"ready": ready}, status_code=200 if ready else 503)

    @asynccontextmanager
    async def lifespan(starlette: Starlette) -> AsyncIterator[None]:
        async with app.running(), manager.run(), endpoints.running():
            yield

    routes: list[BaseRoute] = [
        Route(settings.path, endpoint=auth.protect(StreamableHTTPASGIApp(manager))),
        Route("/healthz", endpoint=healthz, methods=["GET"]),
        Route("/readyz", endpoint=readyz, methods=["GET"]),
        Route("/metrics", endpoint=auth.protect(metrics_endpoint(gateway.metrics)), methods=["GET"]),
        *auth.routes,
    ]
    if gateway.config.gateway.backend_endpoints:
        routes.append(Route(settings.path.rstrip("/") + "/{backend}", endpoint=auth.protect(endpoints)))
    return Starlette(routes=routes, middleware=auth.middleware, lifespan=lifespan)


async def serve_http(
    gateway: Gateway, settings: HttpSettings, *, on_ready: Callable[[str], None] | None = None
) -> None:
    """Serve until SIGTERM/SIGINT; `on_ready` gets the URL once the port accepts connections."""
    import uvicorn

    from quiver.policy.keys import KEYS_FILE, KeyStore

    config = gateway.config
    check_bind(settings.host, config.auth)
    sock = _listen(settings.host, settings.port)
    port = sock.getsockname()[1]
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    url = f"http://{host}:{port}{settings.path}"
    gateway.status.serving("http", url)
    keys = KeyStore(state_dir(config) / KEYS_FILE) if config.auth.api_keys else None
    server_config = uvicorn.Config(
        build_app(gateway, settings, watchdog=True, auth=build_auth(config.auth, keys, url)),
        log_level="warning",
        lifespan="on",
        timeout_graceful_shutdown=int(config.gateway.drain_timeout) or None,
    )
    (on_ready or _print_ready)(url)
    with sock:
        await uvicorn.Server(server_config).serve(sockets=[sock])


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Small MCP messages must not wait for a delayed ACK (about 40 ms each otherwise).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
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
