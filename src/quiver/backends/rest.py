"""REST APIs as tools: a directory of capability files, each turning HTTP requests into MCP tools.

A capability file (YAML or JSON) names a tool, the request it makes (method, URL template,
parameters, body, headers, auth) and what of the response to keep. `RestBackend` lists the
capabilities as tools, sends the requests with one `httpx.AsyncClient` per connection, and
watches the directory so edits show up live. `${VAR}` references resolve at call time against
the environment (where Quiver's secrets are injected); their values never appear in results.
The file format is described in docs/CAPABILITIES.md.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus, urlsplit, urlunsplit

import anyio
import httpx
import mcp_types as types
from anyio.abc import TaskStatus

from quiver.backends.base import Backend, Change, ProgressFn
from quiver.backends.capabilities import (
    FILE_SUFFIXES,
    PLACEHOLDER,
    Capability,
    compiled_projection,
    load_directory,
    tool_of,
)
from quiver.config.interpolate import interpolate
from quiver.config.models import RestBackendConfig as RestBackendConfig
from quiver.errors import ConfigError
from quiver.upstream import Upstream

logger = logging.getLogger(__name__)

# Read at most this much of any response; a projection needs the whole document in memory.
MAX_READ_BYTES = 16 * 1024 * 1024
ERROR_EXCERPT_CHARS = 300
MAX_REDIRECTS = 5
# Shorter values are not masked: they would blank out ordinary words in error excerpts.
MIN_SECRET_LENGTH = 4
MASK = "***"
# Edits arrive as bursts of events (create, write, rename); they are grouped before re-reading.
WATCH_DEBOUNCE_MS = 400
WATCH_STEP_MS = 50
WATCH_TIMEOUT_MS = 5_000
WATCH_POLL_MS = 300  # used only where the file system gives no change events

_REFERENCE = re.compile(r"\$?\$\{[^}]*\}")
_JSON_TYPE = re.compile(r"^application/(?:[\w.\-]+\+)?json\b|^text/json\b", re.IGNORECASE)
_TEXT_TYPE = re.compile(r"^text/|^application/(?:[\w.\-]+\+)?(?:xml|javascript|yaml|x-yaml)\b", re.IGNORECASE)


# -- requests ------------------------------------------------------------------------------------


class ArgumentProblem(Exception):
    """Arguments that cannot make a request (a required one is missing)."""


@dataclass
class Prepared:
    """A request ready to send, with what an error may show of it."""

    request: httpx.Request
    secrets: list[str] = field(default_factory=list)
    secret_headers: set[str] = field(default_factory=set)
    """Headers that carry credentials: dropped when a redirect leaves the API's origin."""

    @property
    def shown(self) -> str:
        """The URL without credentials: no user info, and secret values masked."""
        parts = urlsplit(str(self.request.url))
        host = parts.hostname or ""
        netloc = f"{host}:{parts.port}" if parts.port else host
        return redact(urlunsplit((parts.scheme, netloc, parts.path, parts.query, "")), self.secrets)


class RequestBuilder:
    """Turns a capability and arguments into an `httpx.Request`, resolving `${VAR}` as it goes."""

    def __init__(self, backend: str, config: RestBackendConfig, environ: Mapping[str, str]) -> None:
        self.backend = backend
        self.config = config
        self.environ = environ

    def build(
        self, client: httpx.AsyncClient, capability: Capability, source: str, arguments: Mapping[str, Any]
    ) -> Prepared:
        _check_required(capability, arguments)
        secrets: list[str] = []
        secret_headers: set[str] = set()

        def sub(value: str, where: str) -> str:
            return interpolate(value, self.environ, backend=self.backend, where=where)

        url = self._url(capability, source, arguments, secrets)
        headers: dict[str, str] = {}
        for origin, configured in (("backend config", self.config.headers), (source, capability.headers)):
            for key, template in configured.items():
                headers[key] = sub(template, f"{origin}: headers.{key}")
                if "${" in template:
                    secrets.append(headers[key])
                    secret_headers.add(key)
        query: list[tuple[str, str | int | float | bool | None]] = []
        for param in capability.parameters:
            value = arguments.get(param.key)
            if value is None:
                continue
            if param.in_ == "query":
                items = value if isinstance(value, list) else [value]
                query.extend((param.name, _text(item)) for item in items)
            elif param.in_ == "header":
                headers[param.name] = _text(value)
        secret_headers |= self._authenticate(capability, source, headers, query, secrets, sub)
        json_body, form_body = self._body(capability, arguments)
        request = client.build_request(
            capability.method,
            url,
            params=query or None,
            headers=headers,
            json=json_body,
            data=form_body,
            timeout=capability.timeout or self.config.timeout,
        )
        return Prepared(request, secrets, secret_headers)

    def _url(self, capability: Capability, source: str, arguments: Mapping[str, Any], secrets: list[str]) -> str:
        def resolve(match: re.Match[str]) -> str:
            value = interpolate(match.group(0), self.environ, backend=self.backend, where=f"{source}: url")
            if match.start() > 0 and not match.group(0).startswith("$$"):
                secrets.append(value)  # past the base URL, a value from the environment may be a key
            return value

        url = _REFERENCE.sub(resolve, capability.url)
        if not url.startswith(("http://", "https://")):
            if self.config.base_url is None:
                raise ArgumentProblem(f"url '{url}' is relative, and the backend has no base_url")
            base = interpolate(self.config.base_url, self.environ, backend=self.backend, where="base_url")
            url = base.rstrip("/") + "/" + url.lstrip("/")
        names = {p.name: p.key for p in capability.parameters if p.in_ == "path"}
        return PLACEHOLDER.sub(lambda m: quote(_text(arguments[names[m.group(1)]]), safe=""), url)

    def _authenticate(
        self,
        capability: Capability,
        source: str,
        headers: dict[str, str],
        query: list[tuple[str, str | int | float | bool | None]],
        secrets: list[str],
        sub: Callable[[str, str], str],
    ) -> set[str]:
        """Add the credentials; the names of the headers that now carry them."""
        auth = capability.auth
        if auth is None:
            return set()
        if auth.bearer is not None:
            token = sub(auth.bearer, f"{source}: auth.bearer")
            headers["Authorization"] = f"Bearer {token}"
            secrets.append(token)
            return {"Authorization"}
        if auth.basic is not None:
            username = sub(auth.basic.username, f"{source}: auth.basic.username")
            password = sub(auth.basic.password, f"{source}: auth.basic.password")
            encoded = base64.b64encode(f"{username}:{password}".encode()).decode()
            headers["Authorization"] = f"Basic {encoded}"
            secrets += [password, encoded]
            return {"Authorization"}
        if auth.api_key is not None:
            key = sub(auth.api_key.value, f"{source}: auth.api_key.value")
            secrets.append(key)
            if auth.api_key.in_ == "header":
                headers[auth.api_key.name] = key
                return {auth.api_key.name}
            query.append((auth.api_key.name, key))
        return set()

    def _body(self, capability: Capability, arguments: Mapping[str, Any]) -> tuple[Any, Any]:
        """(json, form data) for the request; both None when there is no body."""
        if capability.body is not None:
            value = arguments.get(capability.body.argument)
            if value is None:
                return None, None
            if capability.body.content_type == "application/x-www-form-urlencoded":
                fields = value if isinstance(value, Mapping) else {}
                return None, {key: _text(item) for key, item in fields.items()}
            return value, None
        fields = {p.name: arguments[p.key] for p in capability.parameters if p.in_ == "body" and p.key in arguments}
        if fields or any(p.in_ == "body" and p.required for p in capability.parameters):
            return fields, None
        return None, None


def _check_required(capability: Capability, arguments: Mapping[str, Any]) -> None:
    missing = [p.key for p in capability.parameters if (p.required or p.in_ == "path") and arguments.get(p.key) is None]
    body = capability.body
    if body is not None and body.required and arguments.get(body.argument) is None:
        missing.append(body.argument)
    if missing:
        raise ArgumentProblem(f"missing required argument {', '.join(repr(key) for key in missing)}")


def _text(value: Any) -> str:
    """A parameter value as it goes in a URL or header."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return str(value)


def redact(text: str, secrets: list[str]) -> str:
    """`text` with every secret value (raw or URL-encoded) replaced by a mask."""
    forms = {form for secret in secrets for form in (secret, quote(secret, safe=""), quote_plus(secret))}
    for form in sorted(forms, key=len, reverse=True):
        if len(form) >= MIN_SECRET_LENGTH:
            text = text.replace(form, MASK)
    return text


# -- responses -----------------------------------------------------------------------------------


def error_result(message: str, hint: str | None = None) -> types.CallToolResult:
    text = message if hint is None else f"{message}\nhint: {hint}"
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)], is_error=True)


_STATUS_HINTS = {
    400: "check the arguments against the tool's schema",
    401: "check the credentials this capability uses (its auth and the variables it names)",
    403: "the credentials were accepted but may not do this; check their scopes",
    404: "check the path parameters; the resource may not exist",
    405: "the API does not accept this method here; check the capability file",
    409: "the request conflicts with the resource's current state",
    422: "check the arguments against the tool's schema",
    429: "rate limited; retry later",
}


def http_error(prepared: Prepared, response: httpx.Response, body: bytes) -> types.CallToolResult:
    request = prepared.request
    excerpt = " ".join(body[: ERROR_EXCERPT_CHARS * 4].decode("utf-8", errors="replace").split())
    if len(excerpt) > ERROR_EXCERPT_CHARS:
        excerpt = excerpt[:ERROR_EXCERPT_CHARS] + "…"
    status = response.status_code
    message = f"{request.method} {prepared.shown} returned HTTP {status} {response.reason_phrase}".rstrip()
    if excerpt:
        message += f": {redact(excerpt, prepared.secrets)}"
    hint = _STATUS_HINTS.get(status)
    if hint is None and status >= 500:
        hint = "the API failed on its side; retry later"
    if status == 429 and "retry-after" in response.headers:
        hint = f"rate limited; retry after {response.headers['retry-after']}s"
    return error_result(message, hint)


def render(capability: Capability, response: httpx.Response, body: bytes, complete: bool) -> types.CallToolResult:
    """A successful response as tool content: projected JSON (structured if an object), text or an image."""
    limit = capability.response.max_bytes
    content_type = response.headers.get("content-type", "").split(";")[0].strip()
    if capability.method == "HEAD" or not body:
        summary = {"status": response.status_code, "headers": _plain_headers(response)}
        return types.CallToolResult(content=[_text_block(json.dumps(summary))], structured_content=summary)
    if content_type.startswith("image/") and complete and len(body) <= limit:
        data = base64.b64encode(body).decode()
        return types.CallToolResult(content=[types.ImageContent(type="image", data=data, mime_type=content_type)])
    if complete and (_JSON_TYPE.match(content_type) or (not content_type and body.lstrip()[:1] in (b"{", b"["))):
        try:
            data = json.loads(body)
        except ValueError:
            pass
        else:
            if capability.response.projection is not None:
                data = compiled_projection(capability.response.projection).search(data)
            text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
            capped = cap(text, limit)
            structured = data if isinstance(data, dict) and capped == text else None
            return types.CallToolResult(content=[_text_block(capped)], structured_content=structured)
    if _TEXT_TYPE.match(content_type) or not content_type or _JSON_TYPE.match(content_type):
        text = body.decode(response.encoding or "utf-8", errors="replace")
        return types.CallToolResult(content=[_text_block(cap(text, limit, complete=complete))])
    size = f"{len(body)} bytes" if complete else f"more than {MAX_READ_BYTES} bytes"
    return types.CallToolResult(content=[_text_block(f"{size} of {content_type} (binary; not shown)")])


def cap(text: str, limit: int, *, complete: bool = True) -> str:
    """`text` cut to `limit` UTF-8 bytes, saying so when it was cut."""
    encoded = text.encode()
    if len(encoded) <= limit and complete:
        return text
    total = f"{len(encoded)}" if complete else f"more than {len(encoded)}"
    kept = encoded[:limit].decode("utf-8", errors="ignore")
    return (
        f"{kept}\n[cut at {limit} of {total} bytes; narrow the request, or set response.projection"
        " (or response.max_bytes) in the capability file]"
    )


def _text_block(text: str) -> types.TextContent:
    return types.TextContent(type="text", text=text)


_SHOWN_HEADERS = ("content-type", "content-length", "etag", "last-modified", "location")


def _plain_headers(response: httpx.Response) -> dict[str, str]:
    return {name: response.headers[name] for name in _SHOWN_HEADERS if name in response.headers}


async def read_capped(response: httpx.Response, limit: int) -> tuple[bytes, bool]:
    """Up to `limit` bytes of the body, and whether that was all of it."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            return b"".join(chunks)[:limit], False
    return b"".join(chunks), True


async def _exchange(client: httpx.AsyncClient, prepared: Prepared) -> tuple[httpx.Response, bytes, bool]:
    """Send, following redirects; credentials in custom headers never follow one to another origin.

    (httpx drops `Authorization` on such a redirect, but not an API key header.)"""
    request = prepared.request
    origin = request.url.copy_with(path="/", query=None, fragment=None)
    for _ in range(MAX_REDIRECTS + 1):
        response = await client.send(request, stream=True)
        try:
            follow = response.next_request
            if follow is None:
                body, complete = await read_capped(response, MAX_READ_BYTES)
                return response, body, complete
        finally:
            await response.aclose()
        if follow.url.copy_with(path="/", query=None, fragment=None) != origin:
            for name in prepared.secret_headers:
                follow.headers.pop(name, None)
        request = follow
    raise httpx.TooManyRedirects(f"more than {MAX_REDIRECTS} redirects", request=request)


# -- the backend ---------------------------------------------------------------------------------


class RestBackend(Backend):
    """The capabilities of one directory, served as tools over one HTTP client."""

    def __init__(
        self,
        name: str,
        config: RestBackendConfig,
        *,
        environ: Mapping[str, str] | None = None,
        base_dir: Path | None = None,
    ) -> None:
        super().__init__(name)
        self.config = config
        directory = Path(config.dir).expanduser()
        self.directory = directory if directory.is_absolute() or base_dir is None else base_dir / directory
        self._builder = RequestBuilder(name, config, os.environ if environ is None else environ)
        self._files: dict[Path, list[Capability]] = {}
        self._index: dict[str, tuple[Capability, Path]] = {}
        self._client: httpx.AsyncClient | None = None

    @asynccontextmanager
    async def lifespan(self) -> AsyncIterator[None]:
        if not self.directory.is_dir():
            raise ConfigError(
                f"backend '{self.name}': capability directory {self.directory} does not exist",
                hint="create it, or fill it with `quiver import-openapi SPEC --prefix NAME --out DIR`",
            )
        self._set(load_directory(self.directory, has_base_url=self.config.base_url is not None))
        from quiver import __version__

        headers = {"User-Agent": f"quiver/{__version__}"}
        stop = anyio.Event()
        async with httpx.AsyncClient(headers=headers) as client, anyio.create_task_group() as tg:
            await tg.start(self._watch, stop)
            self._client = client
            try:
                yield
            finally:
                self._client = None
                stop.set()  # the watch thread sees it within a step and returns

    async def list_tools(self) -> list[types.Tool]:
        return [tool_of(capability) for capability, _ in self._index.values()]

    async def call_tool(
        self,
        name: str,
        arguments: Mapping[str, Any],
        *,
        progress: ProgressFn | None = None,
        upstream: Upstream | None = None,
    ) -> types.CallToolResult:
        client = self._client
        if client is None:
            raise RuntimeError(f"backend '{self.name}' is not connected")
        found = self._index.get(name)
        if found is None:
            return error_result(f"'{self.name}' has no tool '{name}'", "the capability file may have been removed")
        capability, path = found
        try:
            prepared = self._builder.build(client, capability, path.name, arguments)
        except ArgumentProblem as exc:
            return error_result(f"cannot call '{name}': {exc}", "describe the tool for its exact schema")
        return await self._send(client, capability, prepared)

    async def _send(
        self, client: httpx.AsyncClient, capability: Capability, prepared: Prepared
    ) -> types.CallToolResult:
        request = prepared.request
        what = f"{request.method} {prepared.shown}"
        timeout = capability.timeout or self.config.timeout
        try:
            with anyio.fail_after(timeout):  # httpx's timeout bounds each read; this bounds the whole call
                response, body, complete = await _exchange(client, prepared)
        except (httpx.TimeoutException, TimeoutError):
            return error_result(
                f"{what} did not answer within {timeout:g}s",
                "retry, or raise `timeout` in the capability file (or on the backend)",
            )
        except httpx.ConnectError as exc:
            reason = redact(str(exc) or type(exc).__name__, prepared.secrets)
            return error_result(
                f"could not connect to {prepared.shown}: {reason}", "check the URL and that the API is up"
            )
        except httpx.HTTPError as exc:
            reason = redact(str(exc) or type(exc).__name__, prepared.secrets)
            return error_result(f"{what} failed: {reason}", "retry; if it persists, check the API")
        if response.status_code >= 400:
            return http_error(prepared, response, body)
        return render(capability, response, body, complete)

    # -- the directory -----------------------------------------------------------------------

    def _set(self, files: dict[Path, list[Capability]]) -> None:
        self._files = files
        self._index = {capability.name: (capability, path) for path, caps in files.items() for capability in caps}

    def reload(self) -> bool:
        """Read the directory again; tell the owner (and return True) when the tools changed."""
        files = load_directory(self.directory, has_base_url=self.config.base_url is not None, previous=self._files)
        if files == self._files:
            return False
        self._set(files)
        logger.info("backend %s: capabilities reloaded (%d tools)", self.name, len(self._index))
        if self.changed is not None:
            self.changed(Change.TOOLS)
        return True

    async def _watch(self, stop: anyio.Event, *, task_status: TaskStatus[None]) -> None:
        # `watchfiles.awatch` gives no signal once its watch is in place, and a change made before
        # then would be missed; its Rust watcher does, and it stops promptly on `stop`.
        from watchfiles._rust_notify import RustNotify

        try:
            notify = RustNotify([str(self.directory)], False, False, WATCH_POLL_MS, False, True)
        except Exception as exc:  # e.g. the system's limit on watches is reached: serve without reloading
            logger.warning("backend %s: cannot watch %s, edits need a restart: %s", self.name, self.directory, exc)
            task_status.started()
            return
        with notify:
            task_status.started()
            while True:
                try:
                    changes = await anyio.to_thread.run_sync(
                        notify.watch, WATCH_DEBOUNCE_MS, WATCH_STEP_MS, WATCH_TIMEOUT_MS, stop
                    )
                except Exception as exc:  # the directory went away, or the watcher broke
                    logger.warning("backend %s: watching %s stopped: %s", self.name, self.directory, exc)
                    self.lost.set()
                    return
                if changes == "stop":
                    return
                if not self.directory.is_dir():
                    logger.warning("backend %s: capability directory %s is gone", self.name, self.directory)
                    self.lost.set()  # the supervisor restarts it, and the start says what is missing
                    return
                if isinstance(changes, set) and any(Path(path).suffix in FILE_SUFFIXES for _, path in changes):
                    self.reload()
