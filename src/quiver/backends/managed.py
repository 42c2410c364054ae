"""One configured backend over its lifetime: lazy start, restarts, idle stop, and every request.

The connection is owned by one task in the supervisor's task group, started with `tg.start()` by
the first caller that needs it (so a start failure is that caller's error, and a start never
outlives its caller's patience). Requests run concurrently on the live connection, bounded by a
slot count with a bounded wait ("busy" beyond it), guarded by a circuit breaker, and timed out
per backend or per tool (progress pushes a timeout back). Restarts back off, and so does a
backend that keeps dying soon after it starts. A tool call is retried only when that is safe: the
backend died under it and the tool declares itself read-only and idempotent.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio
import anyio.lowlevel
import mcp_types as types
from anyio.abc import TaskGroup, TaskStatus
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from quiver.backends.base import Backend, BackendState, Change, Listing, ProgressFn
from quiver.backends.breaker import Breaker, BreakerState
from quiver.backends.faults import Deadline, describe, is_connection_closed, is_downstream_fault, root_cause
from quiver.config.models import AnyBackendConfig, GatewaySettings
from quiver.errors import BackendCallError, BackendUnavailableError, BusyError, CallTimeoutError, QuiverError
from quiver.inflight import Quiet
from quiver.upstream import Upstream

logger = logging.getLogger(__name__)

T = TypeVar("T")

BackendFactory = Callable[[str, AnyBackendConfig], Backend]

MAX_BACKOFF = 60.0
# A backend that dies within this long of starting is crash-looping: its restarts back off.
CRASH_WINDOW = 30.0
# How long a request that saw its connection close waits for the backend to be marked as exited.
CLOSE_GRACE = 0.5
# Starting again right away helps with a flaky connect; more is the breaker's business.
START_ATTEMPTS = 2
START_RETRY_DELAY = 0.5
RELIST_ATTEMPTS = 3


@dataclass(frozen=True)
class Observers:
    """Who hears what backends say: a fresh listing, a subscribed resource that changed."""

    listed: Callable[[str, Listing, set[Change]], None]
    """(backend, its listing, what the backend announced as changed)"""
    resource_updated: Callable[[str, str], None] = lambda backend, uri: None


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
    breaker: BreakerState
    failures: int


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
        self._factory = factory
        self._observers = observers
        self._tg = task_group
        self.subscriptions: set[str] = set()  # resource URIs some client is subscribed to
        self.breaker = Breaker(1, 1.0)
        self._slots = anyio.Semaphore(1)
        self._waiting = 0
        self.state = BackendState.CONFIGURED
        self.last_error: str | None = None
        self.restarts = 0
        self.in_flight = 0
        self.last_used = 0.0
        self._started_at: float | None = None
        self._starts = 0
        self._failures = 0
        self._early_deaths = 0  # consecutive deaths soon after starting: a crash loop
        self._retry_at = 0.0
        self._start_failure: QuiverError | None = None
        self._backend: Backend | None = None
        self._candidate: Backend | None = None  # the connection being started, for its error detail
        self._stop = anyio.Event()
        self._done = anyio.Event()
        self._done.set()
        self._quiet = Quiet()
        self._lock = anyio.Lock()
        self.configure(config, settings)

    def configure(self, config: AnyBackendConfig, settings: GatewaySettings) -> None:
        """Take (new) settings; the connection, if any, stays."""
        self.config = config
        self.idle_timeout = config.idle_timeout if config.idle_timeout is not None else settings.idle_timeout
        self.call_timeout = config.call_timeout or settings.call_timeout
        self.startup_timeout = config.startup_timeout or settings.startup_timeout
        self.breaker.configure(
            config.breaker_threshold or settings.breaker_threshold,
            config.breaker_cooldown or settings.breaker_cooldown,
        )
        self._slots = anyio.Semaphore(config.max_concurrency or settings.max_concurrency)
        self._max_queue = config.max_queue if config.max_queue is not None else settings.max_queue

    # -- starting -------------------------------------------------------------------------

    async def ensure_running(self) -> Backend:
        """The live connection, starting (or restarting) the backend if it has none."""
        backend = self._backend
        if backend is not None and self.state is BackendState.RUNNING and not backend.lost.is_set():
            return backend
        if self.breaker.state is BreakerState.OPEN:
            raise self._paused()
        async with self._lock:
            backend = self._backend
            if backend is not None and self.state is BackendState.RUNNING and not backend.lost.is_set():
                return backend
            await self._done.wait()  # a stopping connection finishes first
            wait = self._retry_at - time.monotonic()
            if self.state is BackendState.FAILED and wait > 0 and self._start_failure is not None:
                # Within the backoff window the last start error stands; it already says what to fix.
                raise self._start_failure.again()
            for attempt in range(1, START_ATTEMPTS + 1):
                try:
                    return await self._start()
                except QuiverError as error:
                    if not error.retryable or attempt == START_ATTEMPTS:
                        raise
                    logger.info("backend %s did not start (%s); trying once more", self.name, error.message)
                    await anyio.sleep(START_RETRY_DELAY)
            raise AssertionError("unreachable")

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
            self._fail_start(error)
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

    def _fail_start(self, error: QuiverError) -> None:
        """Count a failed start (or a crash soon after one): restarts back off exponentially."""
        self._failures += 1
        self._retry_at = time.monotonic() + min(MAX_BACKOFF, 2.0 ** (self._failures - 1))
        self.state = BackendState.FAILED
        self.last_error = error.message
        self._start_failure = error
        self.breaker.failed(error.message)

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
            self.last_error = f"connection failed: {describe(exc, backend)}"
            logger.warning("backend %s: %s", self.name, self.last_error)
        finally:
            if started:
                self._ended(backend)
            self._backend = None
            self._started_at = None
            self._done.set()

    def _ended(self, backend: Backend) -> None:
        """Record how a running connection ended: stopped on purpose, or died (perhaps crash-looping)."""
        if self._stop.is_set():
            self.state = BackendState.IDLE
            return
        detail = backend.failure_detail()
        if self.last_error is None:
            self.last_error = "exited unexpectedly" + (f": {detail}" if detail else "")
        logger.warning("backend %s %s", self.name, self.last_error)
        now = time.monotonic()
        self._early_deaths = self._early_deaths + 1 if now - (self._started_at or 0.0) < CRASH_WINDOW else 0
        self.state = BackendState.FAILED
        self.breaker.failed(self.last_error)
        if self._early_deaths >= 2:  # the first death restarts at once; a crash loop backs off
            self._retry_at = now + min(MAX_BACKOFF, 2.0 ** (self._early_deaths - 2))
            self._start_failure = BackendUnavailableError(
                f"backend '{self.name}' keeps exiting soon after it starts ({self.last_error})",
                hint=f"check its log (quiver logs {self.name}); Quiver backs off before restarting it",
            )

    async def _serve(self, backend: Backend, relist: MemoryObjectReceiveStream[None], announced: set[Change]) -> None:
        async with anyio.create_task_group() as tg:

            async def until(event: anyio.Event) -> None:
                await event.wait()
                tg.cancel_scope.cancel()

            async def relist_on_change() -> None:
                async for _ in relist:
                    kinds = set(announced)
                    announced.clear()
                    await self._relist(backend, kinds)

            tg.start_soon(until, self._stop)
            tg.start_soon(until, backend.lost)
            tg.start_soon(relist_on_change)

    async def _relist(self, backend: Backend, kinds: set[Change]) -> None:
        for attempt in range(RELIST_ATTEMPTS):
            try:
                self._publish(await backend.listing(), kinds)
                return
            except Exception as exc:
                logger.warning("backend %s: re-listing failed (%s): %s", self.name, attempt + 1, exc)
                await anyio.sleep(2.0**attempt)

    def _publish(self, listing: Listing, announced: set[Change] | None = None) -> None:
        self._observers.listed(self.name, listing, announced or set())

    def _start_error(self, exc: BaseException) -> QuiverError:
        cause = root_cause(exc)
        if isinstance(cause, QuiverError):
            return cause
        if isinstance(cause, TimeoutError):
            reason = f"did not finish starting within {self.startup_timeout:g}s"
        else:
            reason = f"could not start: {describe(cause, self._candidate)}"
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

    async def retire(self, drain_timeout: float) -> None:
        """Stop after the requests in flight finish (or the drain timeout passes)."""
        with anyio.move_on_after(drain_timeout):
            await self._quiet.wait(lambda: self.in_flight)
        await self.stop()

    def idle_for(self, now: float) -> float:
        if self.state is not BackendState.RUNNING or self.in_flight or self.subscriptions:
            return 0.0
        return now - self.last_used

    # -- requests -------------------------------------------------------------------------

    async def call_tool(
        self,
        tool: str,
        arguments: Mapping[str, Any],
        *,
        progress: ProgressFn | None = None,
        upstream: Upstream | None = None,
        definition: types.Tool | None = None,
    ) -> types.CallToolResult | types.InputRequiredResult:
        """Call a tool; the timeout restarts whenever the backend reports progress."""
        report = progress
        timeout = self.config.tool_timeouts.get(tool, self.call_timeout)

        async def attempt() -> types.CallToolResult | types.InputRequiredResult:
            deadline = Deadline(timeout)

            async def relay(progress: float, total: float | None, message: str | None) -> None:
                deadline.extend()
                if report is not None:
                    await report(progress, total, message)

            return await self._use(
                f"the call to '{tool}'",
                lambda backend: backend.call_tool(tool, arguments, progress=relay, upstream=upstream),
                deadline,
            )

        try:
            return await attempt()
        except BackendCallError as error:
            if not (error.lost and _safe_to_repeat(definition)):
                raise
            logger.info("backend %s died during %s; repeating the read-only, idempotent call", self.name, tool)
            return await attempt()

    async def read_resource(
        self, uri: str, *, upstream: Upstream | None = None
    ) -> types.ReadResourceResult | types.InputRequiredResult:
        return await self._use(
            f"reading {uri} from '{self.name}'",
            lambda backend: backend.read_resource(uri, upstream=upstream),
            Deadline(self.call_timeout),
        )

    async def get_prompt(
        self, name: str, arguments: Mapping[str, str] | None, *, upstream: Upstream | None = None
    ) -> types.GetPromptResult | types.InputRequiredResult:
        return await self._use(
            f"prompt '{self.name}.{name}'",
            lambda backend: backend.get_prompt(name, arguments, upstream=upstream),
            Deadline(self.call_timeout),
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
            Deadline(self.call_timeout),
        )

    async def subscribe(self, uri: str) -> None:
        """Follow a resource; the backend stays up (and resubscribes after a restart) while followed."""
        first = uri not in self.subscriptions
        self.subscriptions.add(uri)
        if first:
            try:
                await self._use(f"subscribing to {uri}", lambda b: b.subscribe(uri), Deadline(self.call_timeout))
            except BaseException:
                self.subscriptions.discard(uri)
                raise

    async def unsubscribe(self, uri: str) -> None:
        if uri not in self.subscriptions:
            return
        self.subscriptions.discard(uri)
        if self._backend is not None and self.state is BackendState.RUNNING:
            await self._use(f"unsubscribing from {uri}", lambda b: b.unsubscribe(uri), Deadline(self.call_timeout))

    async def _use(self, what: str, request: Callable[[Backend], Awaitable[T]], deadline: Deadline) -> T:
        """Run one request on the live connection, turning every failure into one clear error."""
        if not self.breaker.admit():
            raise self._paused()
        settled = False
        try:
            await self._take_slot()
            try:
                backend = await self.ensure_running()
                self.in_flight += 1
                try:
                    with deadline.scope():
                        result = await request(backend)
                        self.breaker.succeeded()
                        self._early_deaths = 0  # it served a request: a death now is not a crash loop
                        settled = True
                        return result
                    raise CallTimeoutError(
                        f"{what} did not answer within {deadline.timeout:g}s; the request was cancelled",
                        hint="retry, or raise call_timeout (or tool_timeouts) for this backend in the config",
                    )
                except QuiverError as quiver_error:
                    if quiver_error.code in ("timeout", "backend_failed"):
                        self.breaker.failed(quiver_error.message)
                        settled = True
                    raise
                except Exception as exc:
                    failure = await self._request_error(what, exc, backend)
                    if failure.lost or failure.error is None or failure.error.code == types.INTERNAL_ERROR:
                        # died, broke the protocol, or failed inside: the backend's fault
                        self.breaker.failed(failure.message)
                    else:
                        self.breaker.succeeded()  # it answered, with a protocol-level refusal
                    settled = True
                    raise failure from None
                finally:
                    self.in_flight -= 1
                    self.last_used = time.monotonic()
                    if self.in_flight == 0:
                        self._quiet.ended()
            finally:
                self._slots.release()
        finally:
            if not settled:
                self.breaker.release()

    def _paused(self) -> BackendUnavailableError:
        return BackendUnavailableError(
            f"backend '{self.name}' is failing ({self.breaker.failures} failures in a row;"
            f" last: {self.breaker.last_failure}); requests to it are paused",
            hint=f"Quiver tries it again in {self.breaker.retry_in():.0f}s; `quiver logs {self.name}` may say why",
        )

    async def _request_error(self, what: str, exc: Exception, backend: Backend) -> BackendCallError:
        if is_connection_closed(exc):
            # The session can notice the closed pipe before the owner task marks the backend lost.
            with anyio.move_on_after(CLOSE_GRACE):
                await backend.lost.wait()
        if backend.lost.is_set():
            await anyio.lowlevel.checkpoint()  # let the owner task record why
            detail = backend.failure_detail()
            return BackendCallError(
                f"backend '{self.name}' exited during {what}" + (f" ({detail})" if detail else ""),
                hint="the request may not have completed; the backend restarts on the next call",
                lost=True,
            )
        if not is_downstream_fault(exc):
            raise exc
        return BackendCallError(
            f"backend '{self.name}' failed {what}: {describe(exc, None)}",
            hint="check the arguments with describe_tools, or the backend's log",
            retryable=False,
            error=getattr(root_cause(exc), "error", None),
        )

    async def _take_slot(self) -> None:
        """A place among the backend's concurrent requests (give it back to `_slots`); 'busy' when too many wait."""
        slots = self._slots
        try:
            slots.acquire_nowait()
        except anyio.WouldBlock:
            if self._waiting >= self._max_queue:
                raise BusyError(
                    f"backend '{self.name}' is busy: {self.in_flight} requests running and {self._waiting} waiting",
                    hint="retry shortly, or raise max_concurrency / max_queue for this backend",
                ) from None
            self._waiting += 1
            try:
                await slots.acquire()
            finally:
                self._waiting -= 1

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
            breaker=self.breaker.state,
            failures=self.breaker.failures,
        )


def _safe_to_repeat(tool: types.Tool | None) -> bool:
    annotations = tool.annotations if tool is not None else None
    return bool(annotations and annotations.read_only_hint and annotations.idempotent_hint)


def _offer(stream: MemoryObjectSendStream[None]) -> None:
    """Ask for a re-list; one pending request is enough however many notifications arrive."""
    with contextlib.suppress(anyio.WouldBlock, anyio.ClosedResourceError, anyio.BrokenResourceError):
        stream.send_nowait(None)
