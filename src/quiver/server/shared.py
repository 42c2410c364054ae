"""Single-instance mode: several stdio clients share one background gateway.

`quiver stdio --shared` finds the gateway daemon for its config, starting one if there is none
(`quiver shared-daemon`, on a free loopback port), and bridges its own stdin/stdout to the
daemon's streamable HTTP endpoint: the SDK's stdio server transport on one side, its streamable
HTTP client transport on the other, and messages moved unchanged between them. The daemon
stops once no client has been connected for its idle period.

Coordination is by files in `state_dir/shared/`, one set per config file:

- `<key>.json` — the record: the daemon's pid, URL and access token (mode 0600). A record whose
  process is gone is replaced.
- `<key>.lock` — a file lock held while a client looks for a daemon or starts one, so two
  clients starting at once make one daemon.
- `<key>.clients` — every client holds a shared `flock` on it while connected (the kernel drops
  it when the client dies, however it dies). The daemon probes it with a non-blocking exclusive
  lock; when that succeeds for the whole idle period it keeps it, removes the record and stops,
  so a client arriving meanwhile waits for it to go and starts a new one.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import json
import logging
import os
import secrets
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import mcp_types as types
import uvicorn
from mcp.server.auth.middleware.auth_context import AuthContextMiddleware
from mcp.server.auth.middleware.bearer_auth import BearerAuthBackend
from mcp.server.auth.provider import AccessToken
from mcp.shared.message import ClientMessageMetadata, SessionMessage
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware

from quiver._files import write_atomic
from quiver.config.models import QuiverConfig
from quiver.errors import QuiverError, sole_error
from quiver.gateway import Gateway, state_dir
from quiver.ops.status import pid_alive
from quiver.policy.principal import Principal
from quiver.server.auth import AuthSetup, QuiverAccessToken, QuiverTokenVerifier

if TYPE_CHECKING:
    from mcp.client._transport import ReadStream, WriteStream

logger = logging.getLogger(__name__)

SHARED_DIR = "shared"
IDLE_ENV = "QUIVER_SHARED_IDLE_TIMEOUT"
DEFAULT_IDLE = 600.0
LOOPBACK = "127.0.0.1"
# Starting a daemon reads the config and binds a port; backends start lazily.
START_TIMEOUT = 30.0
# A client arriving while the daemon stops waits this long for it (it drains calls, stops backends).
STOP_WAIT = 60.0
# A stopping daemon waits this long to withdraw its record (a stale record is harmless: its pid is dead).
_REMOVE_WAIT = 5.0
# A live daemon listens before it writes its record, so it accepts a connection at once.
_CONNECT_CHECK = 2.0
# How often a waiting client looks again.
_POLL = 0.05
# Connect/write limit towards the daemon; reads have none (a tool call or an event stream may be quiet for long).
_HTTP_TIMEOUT = 30.0
_CLIENT_NAME = "local"


# -- where things are ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SharedHome:
    """The files through which the clients and the daemon of one config find each other."""

    directory: Path
    key: str

    @classmethod
    def of(cls, config: QuiverConfig) -> SharedHome:
        """One daemon per config file (per state dir): different projects never share a gateway."""
        source = str(config.source.resolve()) if config.source is not None else ""
        key = hashlib.sha256(source.encode()).hexdigest()[:16] if source else "default"
        return cls(state_dir(config) / SHARED_DIR, key)

    @property
    def record(self) -> Path:
        return self.directory / f"{self.key}.json"

    @property
    def lock(self) -> Path:
        return self.directory / f"{self.key}.lock"

    @property
    def clients(self) -> Path:
        return self.directory / f"{self.key}.clients"

    @property
    def log(self) -> Path:
        return self.directory / f"{self.key}.log"

    def prepare(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)


@dataclass(frozen=True, slots=True)
class Record:
    pid: int
    url: str
    token: str  # what a client sends as its bearer token (the record is readable by this user only)
    config: str | None
    started: float

    @classmethod
    def read(cls, path: Path) -> Record | None:
        try:
            return cls(**json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError):
            return None

    def write(self, path: Path) -> None:
        write_atomic(path, json.dumps(asdict(self)), mode=0o600)


# -- the client side -------------------------------------------------------------------------


async def serve_shared_stdio(config: QuiverConfig, role: str | None = None) -> None:
    """Serve the client on stdin/stdout through the config's shared daemon (started if needed)."""
    home = SharedHome.of(config)
    idle = _idle_timeout()
    async with _client_lease(home):
        record = await anyio.to_thread.run_sync(ensure_daemon, home, config, idle)
        try:
            await bridge(record.url, _bearer(record.token, role))
        except Exception as exc:
            if _is_transport_error(sole_error(exc)):
                raise QuiverError(
                    f"lost the shared gateway at {record.url} (pid {record.pid})",
                    hint=f"start the client again (it starts a new one); the gateway's log is {home.log}",
                ) from None
            raise


def _idle_timeout() -> float:
    value = os.environ.get(IDLE_ENV)
    if not value:
        return DEFAULT_IDLE
    try:
        return max(0.0, float(value))
    except ValueError:
        raise QuiverError(f"${IDLE_ENV} must be a number of seconds, not '{value}'") from None


@contextlib.asynccontextmanager
async def _client_lease(home: SharedHome) -> AsyncIterator[None]:
    """Be counted as a connected client (a shared flock) for as long as the block runs."""
    home.prepare()
    fd = os.open(home.clients, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        # Refused while the daemon is stopping (or probing for a moment); a lock has no event to wait on.
        for _ in range(round(STOP_WAIT / _POLL)):
            if _try_flock(fd, fcntl.LOCK_SH):
                break
            await anyio.sleep(_POLL)
        else:
            raise QuiverError(
                "the shared gateway is taking too long to stop",
                hint=f"see {home.log}, or stop it (its pid is in {home.record})",
            )
        yield
    finally:
        os.close(fd)


def _try_flock(fd: int, operation: int) -> bool:
    try:
        fcntl.flock(fd, operation | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def ensure_daemon(home: SharedHome, config: QuiverConfig, idle: float) -> Record:
    """The record of the running daemon; one is started when there is none (or only a stale record)."""
    from filelock import FileLock, Timeout

    home.prepare()
    try:
        with FileLock(str(home.lock), timeout=START_TIMEOUT + STOP_WAIT):
            record = Record.read(home.record)
            if record is not None and pid_alive(record.pid) and _listening(record.url):
                return record
            home.record.unlink(missing_ok=True)
            return _start_daemon(home, config, idle)
    except Timeout:
        raise QuiverError(
            "another client has been starting the shared gateway for too long", hint=f"see {home.log}"
        ) from None


def _listening(url: str) -> bool:
    """Whether something accepts connections at `url`: a record's pid may since belong to another process."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.hostname is None or parts.port is None:
        return False
    try:
        with socket.create_connection((parts.hostname, parts.port), timeout=_CONNECT_CHECK):
            return True
    except OSError:
        return False


def _start_daemon(home: SharedHome, config: QuiverConfig, idle: float) -> Record:
    argv = [sys.executable, "-m", "quiver", "shared-daemon", "--idle", repr(idle)]
    if config.source is not None:
        argv += ["--config", str(config.source.resolve())]
    log_flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
    # Its own session: the client's terminal signals and process-group kills do not reach it.
    pid = os.posix_spawn(
        sys.executable,
        argv,
        os.environ,
        file_actions=[
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
            (os.POSIX_SPAWN_OPEN, 2, str(home.log), log_flags, 0o600),
        ],
        setsid=True,
    )
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        record = Record.read(home.record)
        if record is not None and record.pid == pid:
            return record
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            raise QuiverError(f"the shared gateway did not start: {_last_words(home.log)}", hint=f"see {home.log}")
        time.sleep(_POLL)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    raise QuiverError(f"the shared gateway did not start within {START_TIMEOUT:g}s", hint=f"see {home.log}")


def _last_words(log: Path) -> str:
    from quiver.ops.logs import tail

    lines = [line.strip() for line in tail(log, 20) if line.strip()]
    errors = [line for line in lines if line.startswith(("error:", "hint:"))]
    return " ".join(errors or lines[-3:]) or "no output"


def _bearer(token: str, role: str | None) -> str:
    return f"{token}.{role}" if role else token


def _is_transport_error(exc: BaseException) -> bool:
    import httpx2

    return isinstance(exc, httpx2.TransportError | anyio.BrokenResourceError | anyio.ClosedResourceError)


async def bridge(url: str, token: str) -> None:
    """Move messages between this process's stdin/stdout and the MCP endpoint at `url` until either side ends."""
    import httpx2
    from mcp.client.streamable_http import streamable_http_client
    from mcp.server.stdio import stdio_server

    from quiver.server.stdio import STOP_SIGNALS, stdio_wire

    http = httpx2.AsyncClient(
        headers={"authorization": f"Bearer {token}"}, timeout=httpx2.Timeout(_HTTP_TIMEOUT, read=None)
    )
    with stdio_wire() as (reader, writer):
        async with (
            http,
            streamable_http_client(url, http_client=http) as (daemon_read, daemon_write),
            stdio_server(stdin=reader, stdout=writer) as (client_read, client_write),
            anyio.create_task_group() as tg,
        ):

            async def pump(
                source: ReadStream[SessionMessage | Exception], sink: WriteStream[SessionMessage], up: bool
            ) -> None:
                await _pump(source, sink, up=up)
                tg.cancel_scope.cancel()

            async def stop_on_signal() -> None:
                with anyio.open_signal_receiver(*STOP_SIGNALS) as signals:
                    async for _ in signals:
                        tg.cancel_scope.cancel()

            tg.start_soon(stop_on_signal)
            tg.start_soon(pump, daemon_read, client_write, False)
            tg.start_soon(pump, client_read, daemon_write, True)


async def _pump(source: ReadStream[SessionMessage | Exception], sink: WriteStream[SessionMessage], *, up: bool) -> None:
    """Forward every message; towards the daemon, a request of the 2026-07-28 era gets its routing headers.

    The sink is closed when the source ends (or the bridge stops): that is what ends the transport behind it."""
    async with sink:
        async for item in source:
            if isinstance(item, Exception):
                logger.warning("dropped a message %s: %s", "from the client" if up else "from the gateway", item)
                continue
            message = item.message
            metadata = ClientMessageMetadata(headers=_routing_headers(message)) if up else None
            await sink.send(SessionMessage(message, metadata))


def _routing_headers(message: types.JSONRPCMessage) -> dict[str, str] | None:
    """The HTTP headers the streamable HTTP wire wants for a 2026-07-28 request, read off the request itself.

    A 2026-07-28 request carries its protocol version in `_meta`; over HTTP the same version,
    the method and the name (tool, prompt or resource) must also travel as headers. The SDK's
    client session sets them as message metadata for its transport, and so does this bridge.
    Handshake-era messages need none: their session's version is the transport's business.
    """
    from mcp.shared.inbound import (
        MCP_METHOD_HEADER,
        MCP_NAME_HEADER,
        MCP_PROTOCOL_VERSION_HEADER,
        NAME_BEARING_METHODS,
        encode_header_value,
    )

    if not isinstance(message, types.JSONRPCRequest) or not message.params:
        return None
    meta = message.params.get("_meta")
    version = meta.get(types.PROTOCOL_VERSION_META_KEY) if isinstance(meta, dict) else None
    if not isinstance(version, str):
        return None
    headers = {MCP_PROTOCOL_VERSION_HEADER: version, MCP_METHOD_HEADER: message.method}
    name_key = NAME_BEARING_METHODS.get(message.method)
    name = message.params.get(name_key) if name_key is not None else None
    if isinstance(name, str):
        headers[MCP_NAME_HEADER] = encode_header_value(name)
    return headers


# -- the daemon ------------------------------------------------------------------------------


class _ClientTokens(QuiverTokenVerifier):
    """Admits whoever read the record's token (this user's clients); `<token>.<role>` picks a role."""

    def __init__(self, token: str) -> None:
        super().__init__()
        self._token = token.encode()

    async def verify_token(self, token: str) -> AccessToken | None:
        secret, _, role = token.partition(".")
        if not hmac.compare_digest(secret.encode(), self._token):
            return None
        principal = Principal(_CLIENT_NAME, role or None)
        return QuiverAccessToken(
            token=token, client_id=_CLIENT_NAME, subject=_CLIENT_NAME, scopes=[], principal=principal
        )


def _client_auth(token: str) -> AuthSetup:
    verifier = _ClientTokens(token)
    middleware = [
        Middleware(AuthenticationMiddleware, backend=BearerAuthBackend(verifier)),
        Middleware(AuthContextMiddleware),
    ]
    return AuthSetup(middleware, [], verifier)


async def serve_daemon(gateway: Gateway, home: SharedHome, idle: float) -> None:
    """Serve the shared gateway on a free loopback port until unused for `idle` seconds (or a stop signal)."""
    from quiver.server.http import build_app

    settings = gateway.config.gateway.http.model_copy(update={"host": LOOPBACK, "port": 0})
    home.prepare()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    with sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((LOOPBACK, 0))
        sock.listen(128)
        url = f"http://{LOOPBACK}:{sock.getsockname()[1]}{settings.path}"
        token = secrets.token_urlsafe(32)
        server = _Server(
            home,
            uvicorn.Config(
                build_app(gateway, settings, watchdog=True, auth=_client_auth(token)),
                log_level="warning",
                lifespan="on",
                timeout_graceful_shutdown=int(gateway.config.gateway.drain_timeout) or None,
            ),
        )
        source = gateway.config.source
        record = Record(os.getpid(), url, token, str(source) if source else None, time.time())
        gateway.status.serving("shared", url)
        # Listening already: a client that connects before the app is up waits in the backlog.
        record.write(home.record)
        print(f"quiver: shared gateway serving MCP on {url}", file=sys.stderr, flush=True)
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(_stop_when_unused, server, home, idle)
                await server.serve(sockets=[sock])
                tg.cancel_scope.cancel()
        finally:
            _remove_record(home)


class _Server(uvicorn.Server):
    """Withdraws the record as soon as shutdown begins, so no new client picks a daemon on its way out."""

    def __init__(self, home: SharedHome, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.home = home

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        _remove_record(self.home)
        await super().shutdown(sockets)


async def _stop_when_unused(server: _Server, home: SharedHome, idle: float) -> None:
    fd = os.open(home.clients, os.O_RDWR | os.O_CREAT, 0o600)
    unused_since: float | None = None
    while True:
        await anyio.sleep(min(1.0, max(_POLL, idle / 4)))
        if not _try_flock(fd, fcntl.LOCK_EX):
            unused_since = None  # a client holds its lease
            continue
        now = time.monotonic()
        unused_since = now if unused_since is None else unused_since
        if now - unused_since >= idle:
            # The exclusive lock stays held (and `fd` open) until this process exits: a client
            # that arrives now waits for the daemon to go, then starts a new one.
            logger.info("no client for %.0fs; stopping the shared gateway", idle)
            _remove_record(home)
            server.should_exit = True
            return
        fcntl.flock(fd, fcntl.LOCK_UN)


def _remove_record(home: SharedHome) -> None:
    """Remove the record if it is still this daemon's (a client may have replaced a stale one)."""
    from filelock import FileLock, Timeout

    try:
        with FileLock(str(home.lock), timeout=_REMOVE_WAIT):
            record = Record.read(home.record)
            if record is not None and record.pid == os.getpid():
                home.record.unlink(missing_ok=True)
    except Timeout:
        logger.warning("could not remove %s: its lock is held; clients will find the process gone", home.record)
