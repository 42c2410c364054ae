"""HTTP authentication against real servers: API keys, OAuth JWTs from a local JWKS, the 401/403 answers.

The MCP server behind the auth pieces is a small SDK server whose one tool reports who called
it, so each test also proves the principal reaches the handler. Servers run in uvicorn on a
socket bound before they start, so a client can connect at once: the kernel queues it.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import httpx2
import jwt
import mcp_types as types
import pytest
import uvicorn
from cryptography.hazmat.primitives.asymmetric import rsa
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp, StreamableHTTPSessionManager
from starlette.applications import Starlette
from starlette.requests import HTTPConnection
from starlette.routing import Route

from quiver.config.policy import AuthConfig, OAuthConfig
from quiver.errors import ConfigError
from quiver.policy.keys import KeyStore
from quiver.server.auth import (
    AuthSetup,
    build_auth,
    check_bind,
    current_principal,
    principal_from_request,
    principal_of,
)

ISSUER = "https://issuer.example"
AUDIENCE = "quiver-test"
SCOPE = "mcp:tools"
KID = "test-key"
ACCEPT = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}},
}

pytestmark = pytest.mark.anyio


# -- servers ---------------------------------------------------------------------------------


@contextmanager
def serving(build: Callable[[str], Starlette]) -> Iterator[str]:
    """Serve the app `build(base_url)` returns in a uvicorn thread; yields the base URL."""
    sock = socket.socket()
    # Inherited by accepted connections: without it each small response waits ~40 ms for a delayed ACK.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    config = uvicorn.Config(build(base), log_level="warning", lifespan="on", ws="none")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
        assert not thread.is_alive()


def whoami_server() -> Server[Any]:
    """One tool, `whoami`: the caller's principal, read both ways the gateway can read it."""

    async def list_tools(
        ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return types.ListToolsResult(tools=[types.Tool(name="whoami", input_schema={"type": "object"})])

    async def call_tool(ctx: ServerRequestContext[Any], params: types.CallToolRequestParams) -> types.CallToolResult:
        principal = current_principal()
        assert isinstance(ctx.request, HTTPConnection)
        assert principal_from_request(ctx.request) == principal_of(ctx) == principal
        text = f"{principal.name}|{principal.role}|{principal.via}"
        return types.CallToolResult(content=[types.TextContent(type="text", text=text)])

    return Server("whoami", on_list_tools=list_tools, on_call_tool=call_tool)


def mcp_app(setup: AuthSetup) -> Starlette:
    manager = StreamableHTTPSessionManager(app=whoami_server())

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with manager.run():
            yield

    routes = [Route("/mcp", endpoint=setup.protect(StreamableHTTPASGIApp(manager))), *setup.routes]
    return Starlette(routes=routes, middleware=setup.middleware, lifespan=lifespan)


@dataclass
class Issuer:
    """A test RSA key, its JWKS served over HTTP, and a way to sign tokens with it."""

    key: rsa.RSAPrivateKey
    jwks_url: str

    def token(self, *, key: rsa.RSAPrivateKey | None = None, kid: str = KID, **overrides: Any) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": ISSUER,
            "sub": "user-42",
            "aud": AUDIENCE,
            "iat": now,
            "exp": now + 300,
            "scope": f"openid {SCOPE}",
            "quiver_role": "reader",
        }
        claims.update(overrides)
        claims = {name: value for name, value in claims.items() if value is not None}
        return jwt.encode(claims, key or self.key, algorithm="RS256", headers={"kid": kid})


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def issuer() -> Iterator[Issuer]:
    key = new_key()
    jwk = jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    body = json.dumps({"keys": [{**jwk, "kid": KID, "alg": "RS256", "use": "sig"}]}).encode()

    class JwksHandler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    with ThreadingHTTPServer(("127.0.0.1", 0), JwksHandler) as http:
        thread = threading.Thread(target=http.serve_forever, daemon=True)
        thread.start()
        try:
            yield Issuer(key, f"http://127.0.0.1:{http.server_address[1]}/jwks.json")
        finally:
            http.shutdown()
            thread.join(timeout=10)


@pytest.fixture
def store(tmp_path: Path) -> KeyStore:
    return KeyStore(tmp_path / "state" / "api-keys.json")


@pytest.fixture
def keys_only(store: KeyStore) -> Iterator[str]:
    with serving(lambda base: mcp_app(build_auth(AuthConfig(api_keys=True), store, f"{base}/mcp"))) as base:
        yield base


@pytest.fixture
def with_oauth(store: KeyStore, issuer: Issuer) -> Iterator[str]:
    oauth = OAuthConfig(issuer=ISSUER, jwks_url=issuer.jwks_url, audience=AUDIENCE, required_scopes=[SCOPE])
    config = AuthConfig(api_keys=True, oauth=oauth)
    with serving(lambda base: mcp_app(build_auth(config, store, f"{base}/mcp"))) as base:
        yield base


# -- clients ---------------------------------------------------------------------------------


async def whoami(base: str, headers: Mapping[str, str], mode: str = "auto") -> str:
    """Initialize, list the tools and call `whoami` with the SDK client, sending `headers`."""
    async with (
        httpx2.AsyncClient(headers=dict(headers), timeout=30) as http,
        Client(streamable_http_client(f"{base}/mcp", http_client=http), mode=mode, cache=None) as client,
    ):
        tools = await client.list_tools()
        assert [tool.name for tool in tools.tools] == ["whoami"]
        result = await client.call_tool("whoami", {})
        content = result.content[0]
        assert isinstance(content, types.TextContent)
        return content.text


async def post(base: str, headers: Mapping[str, str] | None = None, body: Any = INITIALIZE) -> httpx.Response:
    async with httpx.AsyncClient(timeout=30) as http:
        return await http.post(f"{base}/mcp", json=body, headers={**ACCEPT, **(headers or {})})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# -- API keys --------------------------------------------------------------------------------


async def test_no_credentials_get_401_with_www_authenticate(keys_only: str) -> None:
    response = await post(keys_only)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer ")
    assert response.json()["error"] == "invalid_token"
    assert (await post(keys_only, bearer("qv_not-a-key"))).status_code == 401
    assert (await post(keys_only, {"Authorization": "Basic dXNlcjpwYXNz"})).status_code == 401


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_a_valid_key_is_served_as_its_principal(keys_only: str, store: KeyStore, mode: str) -> None:
    key = store.create("ci", "reader")
    assert await whoami(keys_only, bearer(key), mode) == "ci|reader|api_key"


async def test_the_x_api_key_header_works(keys_only: str, store: KeyStore) -> None:
    key = store.create("ci")
    assert await whoami(keys_only, {"X-API-Key": key}) == "ci|None|api_key"
    assert (await post(keys_only, {"X-API-Key": "qv_wrong"})).status_code == 401


async def test_a_revoked_key_stops_working_on_the_running_server(keys_only: str, store: KeyStore) -> None:
    key = store.create("ci")
    opened = await post(keys_only, bearer(key))
    assert opened.status_code == 200
    session = {"Mcp-Session-Id": opened.headers["mcp-session-id"]}
    KeyStore(store.path).revoke("ci")
    assert (await post(keys_only, bearer(key))).status_code == 401
    ping = {"jsonrpc": "2.0", "id": 2, "method": "ping"}
    assert (await post(keys_only, {**bearer(key), **session}, ping)).status_code == 401


# -- OAuth -----------------------------------------------------------------------------------


async def test_a_jwt_from_the_issuer_is_served_as_its_subject(with_oauth: str, issuer: Issuer) -> None:
    assert await whoami(with_oauth, bearer(issuer.token())) == "user-42|reader|oauth"
    listed = issuer.token(scope=None, scp=["mcp:tools"], quiver_role=None)
    assert await whoami(with_oauth, bearer(listed), "legacy") == "user-42|None|oauth"


async def test_api_keys_still_work_beside_oauth(with_oauth: str, store: KeyStore) -> None:
    key = store.create("ci", "admin")
    assert await whoami(with_oauth, {"X-API-Key": key}) == "ci|admin|api_key"


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({"aud": "someone-else"}, id="wrong audience"),
        pytest.param({"exp": int(time.time()) - 3600}, id="expired"),
        pytest.param({"nbf": int(time.time()) + 3600}, id="not yet valid"),
        pytest.param({"iss": "https://evil.example"}, id="wrong issuer"),
        pytest.param({"sub": None}, id="no subject"),
        pytest.param({"exp": None}, id="no expiry"),
        pytest.param({"quiver_role": ["admin"]}, id="role not a string"),
    ],
)
async def test_invalid_jwts_get_401(with_oauth: str, issuer: Issuer, overrides: dict[str, Any]) -> None:
    response = await post(with_oauth, bearer(issuer.token(**overrides)))
    assert response.status_code == 401
    assert "resource_metadata=" in response.headers["www-authenticate"]


async def test_forged_jwts_get_401(with_oauth: str, issuer: Issuer) -> None:
    forged = issuer.token(key=new_key())
    unknown_kid = issuer.token(key=new_key(), kid="other")
    claims = jwt.decode(issuer.token(), options={"verify_signature": False})
    symmetric = jwt.encode(claims, "s" * 32, algorithm="HS256", headers={"kid": KID})
    header = {"alg": "none", "typ": "JWT", "kid": KID}
    parts = [jwt.utils.base64url_encode(json.dumps(part).encode()).decode() for part in (header, claims)]
    unsigned = ".".join(parts) + "."
    for token in (forged, unknown_kid, symmetric, unsigned, "not.a.jwt"):
        assert (await post(with_oauth, bearer(token))).status_code == 401, token


async def test_a_jwt_without_the_required_scope_gets_403(with_oauth: str, issuer: Issuer) -> None:
    response = await post(with_oauth, bearer(issuer.token(scope="openid")))
    assert response.status_code == 403
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]


async def test_the_protected_resource_metadata_answers(with_oauth: str) -> None:
    response = await post(with_oauth)
    challenge = response.headers["www-authenticate"]
    assert f'resource_metadata="{with_oauth}/.well-known/oauth-protected-resource/mcp"' in challenge
    async with httpx.AsyncClient() as http:
        metadata = (await http.get(f"{with_oauth}/.well-known/oauth-protected-resource/mcp")).json()
    assert metadata["resource"] == f"{with_oauth}/mcp"
    assert metadata["authorization_servers"] == [ISSUER]
    assert metadata["scopes_supported"] == [SCOPE]


async def test_an_unreachable_jwks_refuses_tokens(store: KeyStore, issuer: Issuer) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{closed.getsockname()[1]}/jwks.json"
    oauth = OAuthConfig(issuer=ISSUER, jwks_url=dead, audience=AUDIENCE)
    with serving(lambda base: mcp_app(build_auth(AuthConfig(oauth=oauth), store, f"{base}/mcp"))) as base:
        assert (await post(base, bearer(issuer.token()))).status_code == 401


# -- configuration ---------------------------------------------------------------------------


def test_without_auth_nothing_changes() -> None:
    setup = build_auth(AuthConfig(), None, "http://127.0.0.1:1/mcp")
    assert not setup.enabled
    assert setup.middleware == []
    assert setup.routes == []
    app = Starlette()
    assert setup.protect(app) is app


def test_oauth_needs_an_audience() -> None:
    with pytest.raises(ConfigError, match="audience"):
        build_auth(AuthConfig(oauth=OAuthConfig(issuer=ISSUER)), None, None)
    resource = "https://gateway.example/mcp"
    setup = build_auth(AuthConfig(oauth=OAuthConfig(issuer=ISSUER)), None, resource)
    assert setup.resource_metadata_url == "https://gateway.example/.well-known/oauth-protected-resource/mcp"


def test_api_keys_need_a_store() -> None:
    with pytest.raises(ConfigError, match="key store"):
        build_auth(AuthConfig(api_keys=True), None, None)


def test_only_loopback_may_be_served_without_auth() -> None:
    for host in ("127.0.0.1", "localhost", "::1", "[::1]"):
        check_bind(host, AuthConfig())
    for host in ("0.0.0.0", "192.168.1.10", "::", "example.com"):
        with pytest.raises(ConfigError, match=f"refusing to serve on {host}"):
            check_bind(host, AuthConfig())
        check_bind(host, AuthConfig(api_keys=True))
