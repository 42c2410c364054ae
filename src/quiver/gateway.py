"""The gateway as a library: config in, search / describe / call / servers out.

Transports (stdio, HTTP) and the CLI are thin layers over `Gateway`; all of them see the
same catalog, the same supervisor and the same search engine.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
from anyio.abc import TaskGroup

from quiver.backends.base import Backend, BackendState, Listing, ProgressFn
from quiver.backends.supervisor import BackendFactory, BackendStatus, ManagedBackend, Observers, Supervisor
from quiver.catalog import Card, Catalog, CatalogStore, ToolEntry
from quiver.catalog.validation import problems
from quiver.config.models import AnyBackendConfig, QuiverConfig
from quiver.errors import InvalidArgumentsError, QuiverError, UnknownBackendError, UnknownToolError
from quiver.ids import ToolId
from quiver.upstream import Upstream

logger = logging.getLogger(__name__)

APP_NAME = "quiver"
CACHE_DIR_ENV = "QUIVER_CACHE_DIR"
STATE_DIR_ENV = "QUIVER_STATE_DIR"
MAX_SEARCH_LIMIT = 20


@dataclass(frozen=True, slots=True)
class SearchReply:
    cards: list[Card]
    pending: list[str] = field(default_factory=list)  # backends still being discovered
    failed: list[str] = field(default_factory=list)  # backends whose tools could not be listed


@dataclass(frozen=True, slots=True)
class ServerInfo:
    status: BackendStatus
    tools: int | None
    description: str | None


def cache_dir(config: QuiverConfig) -> Path:
    if os.environ.get(CACHE_DIR_ENV):
        return Path(os.environ[CACHE_DIR_ENV]).expanduser()
    if config.gateway.cache_dir:
        return Path(config.gateway.cache_dir).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir(APP_NAME, appauthor=False))


def state_dir(config: QuiverConfig) -> Path:
    if os.environ.get(STATE_DIR_ENV):
        return Path(os.environ[STATE_DIR_ENV]).expanduser()
    if config.gateway.state_dir:
        return Path(config.gateway.state_dir).expanduser()
    import platformdirs

    return Path(platformdirs.user_state_dir(APP_NAME, appauthor=False))


class Gateway:
    """Everything behind the meta-tools. Use inside `async with gateway.running():`."""

    def __init__(
        self,
        config: QuiverConfig,
        *,
        backend_factory: BackendFactory | None = None,
        store: CatalogStore | None = None,
    ) -> None:
        self.config = config
        backends = config.enabled_backends()
        if store is None:
            store = CatalogStore(cache_dir(config) / "catalog")
        self.catalog = Catalog(backends, store)
        self.log_dir = state_dir(config) / "logs"
        self.resource_observers: list[Callable[[str, str], None]] = []
        """Told (backend, uri) when a subscribed resource changes."""
        self.supervisor = Supervisor(
            config,
            backend_factory or self._make_backend,
            Observers(listed=self.catalog.update, resource_updated=self._resource_updated),
        )
        self._tg: TaskGroup | None = None
        self._discovery: anyio.Event | None = None

    def _resource_updated(self, backend: str, uri: str) -> None:
        for observer in self.resource_observers:
            observer(backend, uri)

    def _make_backend(self, name: str, config: AnyBackendConfig) -> Backend:
        from quiver.backends.mcp import McpBackend

        return McpBackend(name, config, log_dir=self.log_dir)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[Gateway]:
        async with self.supervisor.running(), anyio.create_task_group() as tg:
            self._tg = tg
            try:
                yield self
            finally:
                tg.cancel_scope.cancel()
                self._tg = None

    # -- search ---------------------------------------------------------------------------

    async def search(self, query: str, limit: int = 5) -> SearchReply:
        limit = max(1, min(limit, MAX_SEARCH_LIMIT))
        self.catalog.ensure_loaded()
        pending = await self._wait_for_discovery()
        entries = self.catalog.search(query, limit)
        failed = [s.name for s in self.supervisor.statuses() if s.state is BackendState.FAILED]
        return SearchReply([self._card(entry) for entry in entries], pending, failed)

    def _card(self, entry: ToolEntry) -> Card:
        state = self.supervisor.get(entry.backend).state
        return entry.card("running" if state is BackendState.RUNNING else "not started")

    def _uncached(self) -> list[str]:
        return [name for name in self.supervisor.names() if not self.catalog.knows(name)]

    async def _wait_for_discovery(self) -> list[str]:
        """Start backends whose tools are unknown (once), and wait a bounded time for them."""
        settings = self.config.gateway
        if not settings.discover_on_search or not self._uncached():
            return []
        if self._discovery is None and self._tg is not None:
            self._discovery = anyio.Event()
            self._tg.start_soon(self._discover, self._uncached(), self._discovery)
        if self._discovery is not None:
            with anyio.move_on_after(settings.discovery_timeout):
                await self._discovery.wait()
        return [
            name
            for name in self._uncached()
            if self.supervisor.get(name).state in (BackendState.STARTING, BackendState.CONFIGURED)
        ]

    async def _discover(self, names: Sequence[str], done: anyio.Event) -> None:
        limiter = anyio.Semaphore(self.config.gateway.max_discovery_concurrency)

        async def discover(name: str) -> None:
            managed = self.supervisor.get(name)
            async with limiter:
                was_running = managed.state is BackendState.RUNNING
                try:
                    await managed.ensure_running()
                except QuiverError as exc:
                    logger.info("discovering %s failed: %s", name, exc.message)
                    return
                if not was_running and managed.in_flight == 0:
                    await managed.stop()

        try:
            async with anyio.create_task_group() as tg:
                for name in names:
                    tg.start_soon(discover, name)
        finally:
            done.set()

    async def refresh(self, names: Sequence[str] | None = None) -> dict[str, int | QuiverError]:
        """Start the given backends (default: all), list and cache their tools, stop them again."""
        results: dict[str, int | QuiverError] = {}
        targets = list(names) if names else self.supervisor.names()
        for name in targets:
            self.supervisor.get(name)  # unknown names fail before anything starts

        async def refresh_one(name: str) -> None:
            managed = self.supervisor.get(name)
            was_running = managed.state is BackendState.RUNNING
            try:
                await managed.ensure_running()
                results[name] = self.catalog.count(name) or 0
            except QuiverError as exc:
                results[name] = exc
            if not was_running:
                await managed.stop()

        async with anyio.create_task_group() as tg:
            for name in targets:
                tg.start_soon(refresh_one, name)
        return {name: results[name] for name in targets}

    # -- describe -------------------------------------------------------------------------

    async def describe(self, ids: Sequence[str]) -> list[dict[str, Any]]:
        """Exact downstream definitions; starts the backends involved to get fresh schemas."""
        self.catalog.ensure_loaded()
        parsed = [self._parse(tool_id) for tool_id in ids]
        start_errors: dict[str, QuiverError] = {}

        async def warm(name: str) -> None:
            try:
                await self.supervisor.get(name).ensure_running()
            except QuiverError as exc:
                start_errors[name] = exc

        async with anyio.create_task_group() as tg:
            for name in dict.fromkeys(tid.backend for tid in parsed if tid.backend in self.supervisor):
                tg.start_soon(warm, name)
        described: list[dict[str, Any]] = []
        for raw, tid in zip(ids, parsed, strict=True):
            try:
                entry = self._resolve(tid, raw)
            except QuiverError as exc:
                described.append({"id": raw, "error": (start_errors.get(tid.backend) or exc).to_dict()})
                continue
            definition = entry.tool.model_dump(by_alias=True, mode="json", exclude_none=True)
            item: dict[str, Any] = {"id": entry.key, **definition}
            if tid.backend in start_errors:
                item["note"] = f"from cache; the backend did not start: {start_errors[tid.backend].message}"
            described.append(item)
        return described

    # -- call -----------------------------------------------------------------------------

    async def call(
        self,
        tool_id: str,
        arguments: Mapping[str, Any],
        *,
        progress: ProgressFn | None = None,
        upstream: Upstream | None = None,
    ) -> types.CallToolResult | types.InputRequiredResult:
        """Validate, start the backend if needed, call, and return the downstream result."""
        tid = self._parse(tool_id)
        managed = self._managed(tid, tool_id)
        entry = self.catalog.get(str(tid))
        if entry is None and not self.catalog.knows(tid.backend):
            self.catalog.ensure_loaded()
            entry = self.catalog.get(str(tid))
        if entry is not None:
            self._validate(entry, arguments)
        await managed.ensure_running()
        fresh = self.catalog.get(str(tid))
        if fresh is None:
            raise UnknownToolError(tool_id, self.catalog.suggest(tool_id))
        if fresh is not entry:
            self._validate(fresh, arguments)
        return await managed.call_tool(tid.tool, arguments, progress=progress, upstream=upstream)

    async def input_schema(self, tool_id: str) -> Mapping[str, Any]:
        """The tool's input schema if it can be found (for the CLI to type `key=value` args); else {}."""
        try:
            described = (await self.describe([tool_id]))[0]
        except QuiverError:
            return {}
        schema = described.get("inputSchema")
        return schema if isinstance(schema, dict) else {}

    def _validate(self, entry: ToolEntry, arguments: Mapping[str, Any]) -> None:
        found = problems(entry.validator(), entry.tool.input_schema, arguments)
        if found:
            raise InvalidArgumentsError(entry.key, found)

    # -- resources, prompts, completions ----------------------------------------------------

    async def listings(self) -> dict[str, Listing]:
        """What every backend offers (tools, resources, templates, prompts), as far as known.

        Backends never seen are discovered first, within the search's discovery time."""
        self.catalog.ensure_loaded()
        await self._wait_for_discovery()
        return self.catalog.listings()

    async def read_resource(
        self, backend: str, uri: str, *, upstream: Upstream | None = None
    ) -> types.ReadResourceResult | types.InputRequiredResult:
        return await self.supervisor.get(backend).read_resource(uri, upstream=upstream)

    async def get_prompt(
        self, backend: str, name: str, arguments: Mapping[str, str] | None, *, upstream: Upstream | None = None
    ) -> types.GetPromptResult | types.InputRequiredResult:
        return await self.supervisor.get(backend).get_prompt(name, arguments, upstream=upstream)

    async def complete(
        self,
        backend: str,
        ref: types.PromptReference | types.ResourceTemplateReference,
        argument: Mapping[str, str],
        context: Mapping[str, str] | None,
    ) -> types.CompleteResult:
        return await self.supervisor.get(backend).complete(ref, argument, context)

    async def subscribe(self, backend: str, uri: str) -> None:
        await self.supervisor.get(backend).subscribe(uri)

    async def unsubscribe(self, backend: str, uri: str) -> None:
        await self.supervisor.get(backend).unsubscribe(uri)

    # -- servers --------------------------------------------------------------------------

    def servers(self) -> list[ServerInfo]:
        self.catalog.ensure_loaded()
        configs = self.config.enabled_backends()
        return [
            ServerInfo(status, self.catalog.count(status.name), configs[status.name].description)
            for status in self.supervisor.statuses()
        ]

    # -- ids ------------------------------------------------------------------------------

    def _parse(self, tool_id: str) -> ToolId:
        try:
            return ToolId.parse(tool_id)
        except UnknownToolError:
            self.catalog.ensure_loaded()
            raise UnknownToolError(tool_id, self.catalog.suggest(tool_id)) from None

    def _managed(self, tid: ToolId, raw: str) -> ManagedBackend:
        try:
            return self.supervisor.get(tid.backend)
        except UnknownBackendError:
            self.catalog.ensure_loaded()
            raise UnknownToolError(raw, self.catalog.suggest(raw)) from None

    def _resolve(self, tid: ToolId, raw: str) -> ToolEntry:
        self._managed(tid, raw)
        return self.catalog.resolve(str(tid))
