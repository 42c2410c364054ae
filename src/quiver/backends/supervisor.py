"""Lifecycles of all backends: lazy start, idle stop, restart with backoff, call timeouts.

Each backend's connection is owned by one task in the supervisor's task group, started with
`tg.start()` by the first caller that needs it (so a start failure is that caller's error,
and a start never outlives its caller's patience). Calls run concurrently on the live
connection; nothing on the call path takes a lock once the backend is running.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio
import anyio.lowlevel
import mcp_types as types
from anyio.abc import TaskGroup, TaskStatus
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from quiver.backends.base import Backend, BackendState, Change, Listing, ProgressFn
from quiver.config.models import AnyBackendConfig, GatewaySettings, QuiverConfig
from quiver.errors import (
    BackendCallError,
    BackendUnavailableError,
    CallTimeoutError,
    QuiverError,
    UnknownBackendError,
)
from quiver.upstream import Upstream

logger = logging.getLogger(__name__)

T = TypeVar("T")

BackendFactory = Callable[[str, AnyBackendConfig], Backend]


@dataclass(frozen=True)
class Observers:
    """Who hears what backends say: a fresh listing, a subscribed resource that changed."""

    listed: Callable[[str, Listing, set[Change]], None]
    """(backend, its listing, what the backend announced as changed)"""
    resource_updated: Callable[[str, str], None] = lambda backend, uri: None


MAX_BACKOFF = 60.0
# Idle checks run this often at most; a tighter idle timeout gets a proportionally tighter check.
MAX_REAP_INTERVAL = 15.0


@dataclass(frozen=True, slots=True)
class BackendStatus:
    name: str
    type: str
    state: BackendState
    last_error: str | None
    restarts: int
    in_flight: int
    uptime: float | None
    retry_in: float | None


class ManagedBackend:
    """One configured backend and whatever connection it has right now."""

    def __init__(
        self,
        name: str,
        config: AnyBackendConfig,
        settings: GatewaySettings,
        factory: BackendFactory,
        observers: Observers,
        task_group: TaskGroup,
    ) -> None:
        self.name = name
        self.config = config
        self._factory = factory
        self._observers = observers
        self._tg = task_group
        self.subscriptions: set[str] = set()  # resource URIs some client is subscribed to
        self.idle_timeout = config.idle_timeout if config.idle_timeout is not None else settings.idle_timeout
        self.call_timeout = config.call_timeout or settings.call_timeout
        self.startup_timeout = config.startup_timeout or settings.startup_timeout
        self.state = BackendState.CONFIGURED
        self.last_error: str | None = None
        self.restarts = 0
        self.in_flight = 0
        self.last_used = 0.0
        self._started_at: float | None = None
        self._starts = 0
        self._failures = 0
        self._retry_at = 0.0
        self._start_failure: QuiverError | None = None
        self._backend: Backend | None = None
        self._candidate: Backend | None = None  # the connection being started, for its error detail
        self._stop = anyio.Event()
        self._done = anyio.Event()
        self._done.set()
        self._lock = anyio.Lock()

    # -- starting -------------------------------------------------------------------------

    async def ensure_running(self) -> Backend:
        """The live connection, starting (or restarting) the backend if it has none."""
        backend = self._backend
        if backend is not None and self.state is BackendState.RUNNING and not backend.lost.is_set():
            return backend
        async with self._lock:
            backend = self._backend
            if backend is not None and self.state is BackendState.RUNNING and not backend.lost.is_set():
                return backend
            await self._done.wait()  # a stopping connection finishes first
            wait = self._retry_at - time.monotonic()
            if self.state is BackendState.FAILED and wait > 0 and self._start_failure is not None:
                # Within the backoff window the last start error stands; it already says what to fix.
                raise self._start_failure
            return await self._start()

    async def _start(self) -> Backend:
        self.state = BackendState.STARTING
        self._stop = anyio.Event()
        self._done = anyio.Event()
        try:
            with anyio.fail_after(self.startup_timeout):
                backend: Backend = await self._tg.start(self._run)
        except BaseException as exc:
            self._done.set()
            error = self._start_error(exc)
            self._failures += 1
            self._retry_at = time.monotonic() + min(MAX_BACKOFF, 2.0 ** (self._failures - 1))
            self.state = BackendState.FAILED
            self.last_error = error.message
            self._start_failure = error
            if isinstance(exc, Exception):
                raise error from None
            raise
        self._failures = 0
        self._retry_at = 0.0
        self.last_error = None
        self._start_failure = None
        if self._starts:
            self.restarts += 1
        self._starts += 1
        return backend

    async def _run(self, *, task_status: TaskStatus[Backend]) -> None:
        backend = self._candidate = self._factory(self.name, self.config)
        relist_send, relist_receive = anyio.create_memory_object_stream[None](1)
        announced: set[Change] = set()

        def on_change(change: Change) -> None:
            announced.add(change)
            _offer(relist_send)

        backend.changed = on_change
        backend.resource_updated = lambda uri: self._observers.resource_updated(self.name, uri)
        started = False
        try:
            async with relist_send, relist_receive, backend.lifespan():
                self._publish(await backend.listing())
                for uri in sorted(self.subscriptions):  # a restarted backend resumes what clients follow
                    await backend.subscribe(uri)
                self._backend = backend
                self._started_at = time.monotonic()
                self.last_used = time.monotonic()
                self.state = BackendState.RUNNING
                started = True
                task_status.started(backend)
                await self._serve(backend, relist_receive, announced)
        except Exception as exc:
            if not started:
                raise
            self.last_error = f"connection failed: {_describe(exc, backend)}"
            logger.warning("backend %s: %s", self.name, self.last_error)
        finally:
            self._backend = None
            self._started_at = None
            if started:
                self.state = BackendState.IDLE if self._stop.is_set() else BackendState.FAILED
                if self.state is BackendState.FAILED and self.last_error is None:
                    detail = backend.failure_detail()
                    self.last_error = "exited unexpectedly" + (f": {detail}" if detail else "")
                    logger.warning("backend %s %s", self.name, self.last_error)
            self._done.set()

    async def _serve(self, backend: Backend, relist: MemoryObjectReceiveStream[None], announced: set[Change]) -> None:
        async with anyio.create_task_group() as tg:

            async def until(event: anyio.Event) -> None:
                await event.wait()
                tg.cancel_scope.cancel()

            async def relist_on_change() -> None:
                async for _ in relist:
                    kinds = set(announced)
                    announced.clear()
                    try:
                        self._publish(await backend.listing(), kinds)
                    except Exception as exc:
                        logger.warning("backend %s: re-listing failed: %s", self.name, exc)

            tg.start_soon(until, self._stop)
            tg.start_soon(until, backend.lost)
            tg.start_soon(relist_on_change)

    def _publish(self, listing: Listing, announced: set[Change] | None = None) -> None:
        self._observers.listed(self.name, listing, announced or set())

    def _start_error(self, exc: BaseException) -> QuiverError:
        cause = _root_cause(exc)
        if isinstance(cause, QuiverError):
            return cause
        if isinstance(cause, TimeoutError):
            reason = f"did not finish starting within {self.startup_timeout:g}s"
        else:
            reason = f"could not start: {_describe(cause, self._candidate)}"
        return BackendUnavailableError(
            f"backend '{self.name}' {reason}",
            hint=f"check the command and its log (quiver logs {self.name}); it is retried on next use",
        )

    # -- stopping -------------------------------------------------------------------------

    async def stop(self) -> None:
        """Disconnect (killing a stdio server's process group) and wait until it is gone."""
        if self.state in (BackendState.RUNNING, BackendState.STARTING):
            self.state = BackendState.STOPPING
            self._stop.set()
        await self._done.wait()

    def idle_for(self, now: float) -> float:
        if self.state is not BackendState.RUNNING or self.in_flight or self.subscriptions:
            return 0.0
        return now - self.last_used

    # -- calling --------------------------------------------------------------------------

    async def call_tool(
        self,
        tool: str,
        arguments: Mapping[str, Any],
        *,
        progress: ProgressFn | None = None,
        upstream: Upstream | None = None,
    ) -> types.CallToolResult | types.InputRequiredResult:
        """Call a tool; the timeout restarts whenever the backend reports progress."""
        deadline = _Deadline(self.call_timeout)
        report = progress

        async def relay(progress: float, total: float | None, message: str | None) -> None:
            deadline.extend()
            if report is not None:
                await report(progress, total, message)

        return await self._use(
            f"the call to '{tool}'",
            lambda backend: backend.call_tool(tool, arguments, progress=relay, upstream=upstream),
            deadline,
        )

    async def read_resource(
        self, uri: str, *, upstream: Upstream | None = None
    ) -> types.ReadResourceResult | types.InputRequiredResult:
        return await self._use(
            f"reading {uri} from '{self.name}'",
            lambda backend: backend.read_resource(uri, upstream=upstream),
            _Deadline(self.call_timeout),
        )

    async def get_prompt(
        self, name: str, arguments: Mapping[str, str] | None, *, upstream: Upstream | None = None
    ) -> types.GetPromptResult | types.InputRequiredResult:
        return await self._use(
            f"prompt '{self.name}.{name}'",
            lambda backend: backend.get_prompt(name, arguments, upstream=upstream),
            _Deadline(self.call_timeout),
        )

    async def complete(
        self,
        ref: types.PromptReference | types.ResourceTemplateReference,
        argument: Mapping[str, str],
        context: Mapping[str, str] | None,
    ) -> types.CompleteResult:
        return await self._use(
            f"completion on '{self.name}'",
            lambda backend: backend.complete(ref, argument, context),
            _Deadline(self.call_timeout),
        )

    async def subscribe(self, uri: str) -> None:
        """Follow a resource; the backend stays up (and resubscribes after a restart) while followed."""
        first = uri not in self.subscriptions
        self.subscriptions.add(uri)
        if first:
            try:
                await self._use(f"subscribing to {uri}", lambda b: b.subscribe(uri), _Deadline(self.call_timeout))
            except BaseException:
                self.subscriptions.discard(uri)
                raise

    async def unsubscribe(self, uri: str) -> None:
        if uri not in self.subscriptions:
            return
        self.subscriptions.discard(uri)
        backend = self._backend
        if backend is not None and self.state is BackendState.RUNNING:
            await self._use(f"unsubscribing from {uri}", lambda b: b.unsubscribe(uri), _Deadline(self.call_timeout))

    async def _use(self, what: str, request: Callable[[Backend], Awaitable[T]], deadline: _Deadline) -> T:
        """Run one request on the live connection, turning every failure into one clear error."""
        backend = await self.ensure_running()
        self.in_flight += 1
        try:
            with deadline.scope():
                return await request(backend)
            raise CallTimeoutError(
                f"{what} did not answer within {deadline.timeout:g}s; the request was cancelled",
                hint="retry, or raise call_timeout for this backend in the config",
            )
        except QuiverError:
            raise
        except Exception as exc:
            if backend.lost.is_set():
                await anyio.lowlevel.checkpoint()  # let the owner task record why
                detail = backend.failure_detail()
                raise BackendCallError(
                    f"backend '{self.name}' exited during {what}" + (f" ({detail})" if detail else ""),
                    hint="the request may not have completed; the backend restarts on the next call",
                ) from None
            if not _is_downstream_fault(exc):
                raise
            raise BackendCallError(
                f"backend '{self.name}' failed {what}: {_describe(exc, None)}",
                hint="check the arguments with describe_tools, or the backend's log",
                retryable=False,
                error=getattr(_root_cause(exc), "error", None),
            ) from None
        finally:
            self.in_flight -= 1
            self.last_used = time.monotonic()

    def status(self) -> BackendStatus:
        now = time.monotonic()
        return BackendStatus(
            name=self.name,
            type=self.config.type,
            state=self.state,
            last_error=self.last_error,
            restarts=self.restarts,
            in_flight=self.in_flight,
            uptime=now - self._started_at if self._started_at is not None else None,
            retry_in=max(0.0, self._retry_at - now) if self.state is BackendState.FAILED else None,
        )


class Supervisor:
    """All configured backends, with one task group owning their connections."""

    def __init__(self, config: QuiverConfig, factory: BackendFactory, observers: Observers) -> None:
        self.config = config
        self._factory = factory
        self._observers = observers
        self._backends: dict[str, ManagedBackend] = {}
        self._tg: TaskGroup | None = None

    @asynccontextmanager
    async def running(self) -> AsyncIterator[Supervisor]:
        async with anyio.create_task_group() as tg:
            self._tg = tg
            self._backends = {
                name: ManagedBackend(name, cfg, self.config.gateway, self._factory, self._observers, tg)
                for name, cfg in self.config.enabled_backends().items()
            }
            for managed in self._backends.values():
                if managed.config.autostart:
                    tg.start_soon(_start_quietly, managed)
            tg.start_soon(self._reap_idle)
            try:
                yield self
            finally:
                with anyio.CancelScope(shield=True):
                    await self.stop_all()
                tg.cancel_scope.cancel()
        self._tg = None

    def __contains__(self, name: str) -> bool:
        return name in self._backends

    def names(self) -> list[str]:
        return list(self._backends)

    def get(self, name: str) -> ManagedBackend:
        try:
            return self._backends[name]
        except KeyError:
            import difflib

            raise UnknownBackendError(name, difflib.get_close_matches(name, self._backends, n=3)) from None

    def statuses(self) -> list[BackendStatus]:
        return [managed.status() for managed in self._backends.values()]

    async def stop_all(self) -> None:
        async with anyio.create_task_group() as tg:
            for managed in self._backends.values():
                tg.start_soon(managed.stop)

    async def _reap_idle(self) -> None:
        timeouts = [m.idle_timeout for m in self._backends.values() if m.idle_timeout > 0]
        if not timeouts:
            return
        interval = min(MAX_REAP_INTERVAL, max(0.05, min(timeouts) / 4))
        while True:
            await anyio.sleep(interval)
            now = time.monotonic()
            for managed in self._backends.values():
                if managed.idle_timeout > 0 and managed.idle_for(now) >= managed.idle_timeout:
                    logger.info("backend %s idle for %.0fs; stopping it", managed.name, managed.idle_timeout)
                    assert self._tg is not None
                    self._tg.start_soon(managed.stop)


async def _start_quietly(managed: ManagedBackend) -> None:
    try:
        await managed.ensure_running()
    except QuiverError as exc:
        logger.warning("autostart of %s failed: %s", managed.name, exc.message)


def _offer(stream: MemoryObjectSendStream[None]) -> None:
    """Ask for a re-list; one pending request is enough however many notifications arrive."""
    with contextlib.suppress(anyio.WouldBlock, anyio.ClosedResourceError, anyio.BrokenResourceError):
        stream.send_nowait(None)


class _Deadline:
    """A request timeout that progress from the backend pushes back."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._scope: anyio.CancelScope | None = None

    def scope(self) -> anyio.CancelScope:
        self._scope = anyio.move_on_after(self.timeout)
        return self._scope

    def extend(self) -> None:
        if self._scope is not None:
            self._scope.deadline = anyio.current_time() + self.timeout


def _is_downstream_fault(exc: BaseException) -> bool:
    """Whether `exc` is something a backend did (a protocol error, a bad reply, a broken link)."""
    from mcp.shared.exceptions import MCPError
    from pydantic import ValidationError

    faults = (MCPError, ValidationError, OSError, anyio.BrokenResourceError, anyio.ClosedResourceError)
    return isinstance(_root_cause(exc), faults) or type(exc).__module__.startswith("httpx")


def _root_cause(exc: BaseException) -> BaseException:
    """The first leaf of an exception group (task groups wrap what went wrong inside them)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def _describe(exc: BaseException, backend: Backend | None) -> str:
    exc = _root_cause(exc)
    text = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc) or type(exc).__name__
    detail = backend.failure_detail() if backend is not None else None
    if detail and detail not in text:
        text += f" ({detail})"
    return text
