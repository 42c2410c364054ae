"""Who may call the HTTP endpoints: API keys and OAuth bearer JWTs, checked by the SDK's auth middleware.

`QuiverTokenVerifier` turns a bearer credential into an SDK `AccessToken` that carries a
`Principal`; the SDK's middleware puts it in the request scope and in a context variable, so a
handler reads the caller back with `current_principal()` (or `principal_from_request()` given the
HTTP request). `build_auth` assembles everything an HTTP app needs from the `auth:` config.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import anyio.to_thread
import jwt
from mcp.server.auth.middleware.auth_context import AuthContextMiddleware, get_access_token
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser, BearerAuthBackend, RequireAuthMiddleware
from mcp.server.auth.provider import AccessToken, TokenVerifier
from mcp.server.auth.routes import build_resource_metadata_url, create_protected_resource_routes
from mcp.server.context import ServerRequestContext
from pydantic import AnyHttpUrl, ConfigDict, TypeAdapter, ValidationError
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import HTTPConnection
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from quiver.config.policy import AuthConfig, OAuthConfig
from quiver.errors import ConfigError
from quiver.policy.keys import KEY_PREFIX, KeyStore
from quiver.policy.principal import LOCAL, Principal

logger = logging.getLogger(__name__)

# Asymmetric algorithms only: with HS* anyone holding the (public) JWKS could mint tokens.
JWT_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
# Tolerated clock difference between the issuer and this machine for `exp`, `nbf` and `iat`.
CLOCK_LEEWAY = 30.0
# A JWKS fetch runs while a request waits: an issuer slower than this counts as down.
JWKS_TIMEOUT = 10.0
# How long fetched keys are trusted before the next fetch; an unknown `kid` refetches sooner.
JWKS_LIFESPAN = 300.0

# Issuers compare as exact strings (RFC 8414): `https://issuer.example` must not gain a trailing slash.
_URL = TypeAdapter(AnyHttpUrl, config=ConfigDict(url_preserve_empty_path=True))


def _url(value: str, what: str) -> AnyHttpUrl:
    try:
        return _URL.validate_python(value)
    except ValidationError:
        raise ConfigError(f"{what} '{value}' is not an http(s) URL", hint="write it as https://host/path") from None


class QuiverAccessToken(AccessToken):
    """An SDK access token that also says which principal it stands for."""

    principal: Principal


def current_principal() -> Principal:
    """The caller of the request being handled: the authenticated principal, else `LOCAL`.

    Reads the SDK's auth context variable, which the SDK carries from the HTTP request to the MCP
    handler; over stdio there is no token, so the caller is `LOCAL` (whose role, None, the policy
    reads as its default role).
    """
    token = get_access_token()
    return token.principal if isinstance(token, QuiverAccessToken) else LOCAL


def principal_from_request(request: HTTPConnection) -> Principal:
    """The caller of an HTTP request (e.g. a handler context's `ctx.request`), else `LOCAL`."""
    user = request.scope.get("user")
    if isinstance(user, AuthenticatedUser) and isinstance(user.access_token, QuiverAccessToken):
        return user.access_token.principal
    return LOCAL


def principal_of(ctx: ServerRequestContext[Any]) -> Principal:
    """The caller of an MCP request: from its HTTP request when it came over HTTP, else the auth context."""
    if isinstance(ctx.request, HTTPConnection):
        return principal_from_request(ctx.request)
    return current_principal()


class QuiverTokenVerifier(TokenVerifier):
    """Accepts Quiver API keys and, when OAuth is configured, JWTs signed with the issuer's keys.

    It authenticates only: what a principal's role admits is the policy's business (which shows
    an unknown role nothing).
    """

    def __init__(
        self,
        *,
        key_store: KeyStore | None = None,
        oauth: OAuthConfig | None = None,
        audience: str | None = None,
    ) -> None:
        self._keys = key_store
        self._jwt = _JwtChecker(oauth, audience) if oauth is not None else None
        # A key is granted what OAuth callers must hold, so the endpoint's scope check admits it;
        # what a key may do is governed by its role, not by scopes.
        self._key_scopes = list(oauth.required_scopes) if oauth is not None else []

    async def verify_token(self, token: str) -> AccessToken | None:
        if self._keys is not None and token.startswith(KEY_PREFIX):
            principal = self._keys.verify(token)
            if principal is None:
                return None
            return QuiverAccessToken(
                token=token,
                client_id=principal.name,
                subject=principal.name,
                scopes=self._key_scopes,
                principal=principal,
            )
        if self._jwt is not None:
            return await self._jwt.verify(token)
        return None


class _JwtChecker:
    """Bearer JWTs: signature by a key from the issuer's JWKS, `exp`/`nbf`, `iss`, `aud`; scopes and role read."""

    def __init__(self, oauth: OAuthConfig, audience: str | None) -> None:
        if audience is None:
            raise ConfigError(
                "OAuth needs an audience: without one, tokens the issuer minted for other services would be accepted",
                hint="set auth.oauth.audience (or auth.oauth.resource_url) to this gateway's identifier",
            )
        self._oauth = oauth
        self._audience = audience
        jwks_url = oauth.jwks_url or oauth.issuer.rstrip("/") + "/.well-known/jwks.json"
        self._jwks = jwt.PyJWKClient(jwks_url, lifespan=JWKS_LIFESPAN, timeout=JWKS_TIMEOUT)

    async def verify(self, token: str) -> QuiverAccessToken | None:
        try:
            # PyJWKClient fetches with blocking I/O: keep it off the event loop.
            key = await anyio.to_thread.run_sync(self._jwks.get_signing_key_from_jwt, token)
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=list(JWT_ALGORITHMS),
                audience=self._audience,
                issuer=self._oauth.issuer,
                leeway=CLOCK_LEEWAY,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.PyJWKClientConnectionError as exc:
            logger.warning("cannot fetch the OAuth issuer's keys: %s", exc)
            return None
        except jwt.PyJWTError as exc:
            logger.info("refusing a bearer token: %s", exc)
            return None
        role = claims.get(self._oauth.role_claim)
        if role is not None and not isinstance(role, str):
            logger.info("refusing a bearer token: claim '%s' is not a string", self._oauth.role_claim)
            return None
        subject = str(claims["sub"])
        client = claims.get("azp") or claims.get("client_id") or subject
        return QuiverAccessToken(
            token=token,
            client_id=str(client),
            subject=subject,
            scopes=_scopes(claims),
            expires_at=int(claims["exp"]),
            resource=self._audience,
            claims=claims,
            principal=Principal(subject, role, "oauth"),
        )


def _scopes(claims: Mapping[str, Any]) -> list[str]:
    """Scopes from `scope` (RFC 9068: space-separated) or `scp` (a list, as some issuers send)."""
    for name in ("scope", "scp"):
        value = claims.get(name)
        if isinstance(value, str):
            return value.split()
        if isinstance(value, list):
            return [item for item in value if isinstance(item, str)]
    return []


class ApiKeyHeaderMiddleware:
    """Lets clients send a key as `X-API-Key: <key>`: it becomes `Authorization: Bearer <key>`.

    An `Authorization` header, when present, wins; the key header is then ignored.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            headers: list[tuple[bytes, bytes]] = list(scope["headers"])
            names = {name.lower() for name, _ in headers}
            key = next((value for name, value in headers if name.lower() == b"x-api-key"), None)
            if key is not None and b"authorization" not in names:
                scope = {**scope, "headers": [*headers, (b"authorization", b"Bearer " + key.strip())]}
        await self.app(scope, receive, send)


@dataclass(frozen=True)
class AuthSetup:
    """What an HTTP app needs: app-wide middleware, extra routes, and a wrapper for each MCP endpoint."""

    middleware: list[Middleware] = field(default_factory=list)
    routes: list[BaseRoute] = field(default_factory=list)
    verifier: QuiverTokenVerifier | None = None
    required_scopes: list[str] = field(default_factory=list)
    resource_metadata_url: str | None = None

    @property
    def enabled(self) -> bool:
        return self.verifier is not None

    def protect(self, app: ASGIApp) -> ASGIApp:
        """`app` behind a check: no valid credential → 401, missing scope → 403, both with `WWW-Authenticate`."""
        if self.verifier is None:
            return app
        metadata = _URL.validate_python(self.resource_metadata_url) if self.resource_metadata_url else None
        protected: ASGIApp = RequireAuthMiddleware(app, self.required_scopes, metadata)
        return protected


def build_auth(
    auth: AuthConfig,
    key_store: KeyStore | None,
    resource_url: str | None,
) -> AuthSetup:
    """The auth pieces for `auth`; with auth off, pieces that change nothing.

    `resource_url` is this gateway's MCP endpoint as clients reach it; `auth.oauth.resource_url`,
    when set, takes precedence. With OAuth on it names the resource in the protected-resource
    metadata and is the default audience.
    """
    if not auth.enabled:
        return AuthSetup()
    if auth.api_keys and key_store is None:
        raise ConfigError("auth.api_keys is on but no key store was given")
    oauth = auth.oauth
    resource = (oauth.resource_url if oauth is not None else None) or resource_url
    verifier = QuiverTokenVerifier(
        key_store=key_store if auth.api_keys else None,
        oauth=oauth,
        audience=(oauth.audience or resource) if oauth is not None else None,
    )
    middleware: list[Middleware] = []
    if auth.api_keys:
        middleware.append(Middleware(ApiKeyHeaderMiddleware))
    middleware += [
        Middleware(AuthenticationMiddleware, backend=BearerAuthBackend(verifier)),
        Middleware(AuthContextMiddleware),
    ]
    if oauth is None:
        return AuthSetup(middleware, [], verifier)
    if resource is None:
        return AuthSetup(middleware, [], verifier, list(oauth.required_scopes))
    routes: list[BaseRoute] = list(
        create_protected_resource_routes(
            resource_url=_url(resource, "the resource URL"),
            authorization_servers=[_url(oauth.issuer, "auth.oauth.issuer")],
            scopes_supported=list(oauth.required_scopes) or None,
            resource_name="Quiver MCP gateway",
        )
    )
    metadata_url = str(build_resource_metadata_url(_url(resource, "the resource URL")))
    return AuthSetup(middleware, routes, verifier, list(oauth.required_scopes), metadata_url)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, auth: AuthConfig) -> None:
    """Refuse to expose the gateway beyond this machine unless every request must authenticate."""
    if not is_loopback(host) and not auth.enabled:
        raise ConfigError(
            f"refusing to serve on {host}: only loopback addresses may be served without authentication",
            hint="bind to 127.0.0.1 (the default), or configure authentication (auth.api_keys or auth.oauth)",
        )
