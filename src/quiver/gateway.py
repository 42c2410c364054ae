"""The gateway as a library: config in, search / describe / call / servers out.

Transports (stdio, HTTP) and the CLI are thin layers over `Gateway`; all of them see the
same catalog, the same supervisor and the same search engine.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import mcp_types as types
from anyio.abc import TaskGroup

from quiver.backends.base import Backend, BackendState, Listing, ProgressFn
from quiver.backends.supervisor import (
    BackendFactory,
    BackendStatus,
    Changes,
    ManagedBackend,
    Observers,
    Supervisor,
)
from quiver.catalog import NOT_INSTALLED, Card, Catalog, CatalogStore, ToolEntry, summarize
from quiver.config.models import AnyBackendConfig, QuiverConfig
from quiver.config.policy import PolicyConfig
from quiver.errors import (
    InvalidArgumentsError,
    NotAllowedError,
    QuiverError,
    ShuttingDownError,
    UnknownBackendError,
    UnknownToolError,
)
from quiver.ids import ToolId
from quiver.inflight import InFlight
from quiver.metrics import Metrics
from quiver.ops.status import StatusWriter, status_path
from quiver.policy.audit import AuditLog
from quiver.policy.engine import Policy, View
from quiver.policy.guard import Guard
from quiver.policy.limits import Continuations
from quiver.policy.pinning import PinStore
from quiver.policy.pipeline import CallRequest, Pipeline, Step
from quiver.policy.principal import LOCAL, Principal
from quiver.policy.ratelimit import RateLimiter
from quiver.policy.redaction import Redactor
from quiver.policy.steps import AuditStep, LimitsStep, RateLimitStep, RedactionStep
from quiver.search import SearchEngine
from quiver.tracing import Tracing
from quiver.upstream import Upstream

if TYPE_CHECKING:
    from quiver.provisioning.installer import InstallResult
    from quiver.provisioning.manifest import Manifest

logger = logging.getLogger(__name__)

APP_NAME = "quiver"
CACHE_DIR_ENV = "QUIVER_CACHE_DIR"
STATE_DIR_ENV = "QUIVER_STATE_DIR"
MAX_SEARCH_LIMIT = 20
MAX_INSTALLABLE_CARDS = 2  # servers not installed, shown only when they outrank every tool there is
# A search that may suggest servers waits this long for the manifest still loading at start-up
# (about a second), so the first search of a session, or of `quiver search`, covers it too.
MANIFEST_WAIT = 5.0
PINS_FILE = "pins.json"
CONTINUE_TOOL = "quiver.continue"  # pages of a capped result; named in the cap's own note
AUDIT_FILE = "audit.db"
EMBEDDINGS_FILE = "search-embeddings.npz"


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
        watch: bool = False,
    ) -> None:
        self.config = config
        self._watch = watch
        backends = config.enabled_backends()
        if store is None:
            store = CatalogStore(cache_dir(config) / "catalog")
        self.guard = Guard(config.policy, PinStore(state_dir(config) / PINS_FILE))
        self.policy = Policy(config.policy, quarantined=self.guard.quarantined)
        # Tool embeddings (with the semantic extra) are kept across restarts next to the catalog.
        engine = SearchEngine(
            semantic=config.gateway.semantic_search, embedding_cache=cache_dir(config) / EMBEDDINGS_FILE
        )
        self.catalog = Catalog(backends, store, engine=engine, reviewer=self._review)
        self._warming = anyio.Lock()
        self.log_dir = state_dir(config) / "logs"
        self.audit = AuditLog(state_dir(config) / AUDIT_FILE) if config.policy.audit else None
        self.continuations = Continuations()
        self.pipeline = Pipeline(self._steps())
        self.resource_observers: list[Callable[[str, str], None]] = []
        """Told (backend, uri) when a subscribed resource changes."""
        self.supervisor = Supervisor(
            config,
            backend_factory or self._make_backend,
            Observers(listed=self.catalog.update, resource_updated=self._resource_updated),
        )
        self.metrics = Metrics()
        self.metrics.collect_from(self)
        self.tracing = Tracing(config.gateway.tracing)
        self.manifest: Manifest | None = None
        self._manifest_loaded = anyio.Event()
        self.status = StatusWriter(self, status_path(state_dir(config)))
        self._tg: TaskGroup | None = None
        self._stop_watching = anyio.Event()
        self._discovery: anyio.Event | None = None
        self.draining = False
        self.ready = False
        self.in_flight = InFlight()

    def _steps(self) -> list[Step]:
        """The policy chain, outermost first: audit, rate limit, output limits, redaction."""
        policy = self.config.policy
        steps: list[Step] = []
        if self.audit is not None:
            steps.append(AuditStep(self.audit))
        if policy.rate_limit is not None or any(role.rate_limit for role in policy.roles.values()):
            steps.append(RateLimitStep(RateLimiter(lambda principal: self.view(principal).rate_limit)))
        if _has_limits(policy):
            steps.append(LimitsStep(self.continuations))
        steps.append(RedactionStep(Redactor.from_config(policy.redaction, secrets=config_secrets(self.config))))
        return steps

    def _review(self, backend: str, tools: list[types.Tool]) -> None:
        # Shadowing rules look for other tools named in a description: every tool Quiver knows.
        others = [
            str(ToolId(name, tool.name))
            for name, listing in self.catalog.listings().items()
            if name != backend
            for tool in listing.tools
        ]
        self.guard.review(backend, tools, others)
        self.policy.invalidate()

    def view(self, principal: Principal = LOCAL) -> View:
        return self.policy.view(principal.role)

    def visible(self, view: View) -> Callable[[str], bool]:
        """Whether a tool id is visible to `view` (unknown ids are not)."""

        def allow(key: str) -> bool:
            entry = self.catalog.get(key)
            return entry is not None and view.allows_tool(key, entry.tool)

        return allow

    def _resource_updated(self, backend: str, uri: str) -> None:
        for observer in self.resource_observers:
            observer(backend, uri)

    def _make_backend(self, name: str, config: AnyBackendConfig) -> Backend:
        from quiver import secrets
        from quiver.backends.factory import make_backend

        config_dir = self.config.source.parent if self.config.source is not None else None
        environ = secrets.environment(config_dir)
        return make_backend(name, config, log_dir=self.log_dir, environ=environ, base_dir=config_dir)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[Gateway]:
        async with self.supervisor.running(), anyio.create_task_group() as tg:
            self._tg = tg
            tg.start_soon(self.status.run)
            if self.audit is not None:
                tg.start_soon(self.audit.run)
            if self._watch and self.config.source is not None:
                self._stop_watching = anyio.Event()
                tg.start_soon(self.watch, self.config.source)
            if self.config.gateway.suggest_servers or self.config.gateway.install != "off":
                self._manifest_loaded = anyio.Event()
                tg.start_soon(self._load_manifest)
            self.ready = True
            try:
                yield self
            finally:
                self.ready = False
                self._stop_watching.set()  # the watcher's thread would otherwise hold shutdown for seconds
                tg.cancel_scope.cancel()
                self._tg = None

    # -- servers from the manifest ------------------------------------------------------------

    async def _load_manifest(self) -> None:
        """Read the manifest off the event loop (it is ~1 s of validation), then let search suggest from it."""
        from quiver.provisioning.manifest import ManifestError, load_manifest

        try:
            self.manifest = await anyio.to_thread.run_sync(load_manifest)
        except ManifestError as exc:
            logger.error("the server manifest is unusable, so search suggests no servers: %s", exc)
            return
        finally:
            self._manifest_loaded.set()
        self._suggest_servers()
        await self._warm_search(None)  # with a model: embed the manifest's servers now, not at the first search

    def _suggest_servers(self) -> None:
        from quiver.provisioning.suggest import installable

        wanted = self.manifest is not None and self.config.gateway.suggest_servers
        manifest = self.manifest
        self.catalog.set_installable(installable(manifest, self.config.backends) if manifest and wanted else [])

    async def _manifest_ready(self) -> None:
        """Wait (a bounded time) for the manifest still being read at start-up."""
        if self.manifest is None and self._tg is not None:
            with anyio.move_on_after(MANIFEST_WAIT):
                await self._manifest_loaded.wait()

    async def _manifest_for_unknown(self, ids: Sequence[str]) -> None:
        """Before an id of no configured backend is refused, know whether it names a server to install."""
        if any(raw.partition(".")[0] not in self.supervisor for raw in ids):
            await self._manifest_ready()

    def may_install(self, principal: Principal) -> bool:
        """Whether this caller may install servers (and so whether search suggests any)."""
        mode = self.config.gateway.install
        return mode == "everyone" or (mode == "local" and principal.via == "local")

    async def install(
        self, name: str, *, principal: Principal = LOCAL, progress: ProgressFn | None = None
    ) -> InstallResult:
        """Install a manifest server, register it in the config file, and start serving it (no restart)."""
        if not self.may_install(principal):
            raise NotAllowedError(
                "installing servers is not allowed for this caller",
                hint="an operator can run `quiver install NAME`, or set gateway.install: everyone in the config",
            )
        if name in self.config.backends:
            raise QuiverError(f"'{name}' is already configured", hint="search_tools finds its tools")
        from quiver.config.editing import target_path
        from quiver.config.loader import read_config_file
        from quiver.provisioning.installer import install_and_register

        source = self.config.source
        result = await install_and_register(name, config=str(source) if source else None, progress=progress)
        self.reload(read_config_file(source or target_path(None)))
        return result

    def reload(self, config: QuiverConfig) -> Changes:
        """Apply an edited config without a restart: unchanged backends keep running.

        Raises `ConfigError` (and changes nothing) when the new config cannot be applied."""
        policy = Policy(config.policy, quarantined=self.guard.quarantined)  # validates roles first
        changes = self.supervisor.configure(config)
        self.config = config
        self.guard.config = config.policy
        self.policy = policy
        self.pipeline = Pipeline(self._steps())
        self.catalog.configure(config.enabled_backends())
        self._discovery = None  # new backends get discovered by the next search
        self._suggest_servers()
        logger.info(
            "config reloaded: added %s, removed %s, restarted %s",
            changes.added or "-",
            changes.removed or "-",
            changes.restarted or "-",
        )
        return changes

    async def watch(self, path: Path) -> None:
        """Reload whenever the config file (or its policy file) changes; an invalid edit is rejected and logged."""
        from watchfiles import awatch

        from quiver.config.loader import read_config_file

        files = [path, *([self.config.policy_source] if self.config.policy_source else [])]
        async for _ in awatch(*files, debounce=200, recursive=False, stop_event=self._stop_watching):
            try:
                self.reload(read_config_file(path))
            except QuiverError as exc:
                logger.error("config edit rejected, the last good config stays in force: %s", exc)

    async def drain(self) -> None:
        """Refuse new calls and wait for those in flight to finish (callers bound the wait)."""
        self.draining = True
        self.ready = False
        await self.in_flight.wait_quiet()

    # -- search ---------------------------------------------------------------------------

    async def search(self, query: str, limit: int = 5, *, principal: Principal = LOCAL) -> SearchReply:
        started = time.perf_counter()
        limit = max(1, min(limit, MAX_SEARCH_LIMIT))
        self.catalog.ensure_loaded()
        pending = await self._wait_for_discovery()
        suggest = MAX_INSTALLABLE_CARDS if self.config.gateway.suggest_servers and self.may_install(principal) else 0
        if suggest:
            await self._manifest_ready()
        await self._warm_search(query)
        entries, servers = self.catalog.search_all(
            query, limit, allow=self.visible(self.view(principal)), installable=suggest
        )
        failed = [s.name for s in self.supervisor.statuses() if s.state is BackendState.FAILED]
        self.metrics.observe_search(time.perf_counter() - started)
        cards = [self._card(entry) for entry in entries]
        cards += [Card(s.name, summarize(s.description), [], NOT_INSTALLED, needs=list(s.needs)) for s in servers]
        return SearchReply(cards, pending, failed)

    async def _warm_search(self, query: str | None) -> None:
        """The embedding model's work for the next search, in a worker thread, one at a time.

        A model that cannot be used (a broken install, unreadable weights) costs the semantic
        stage, not search: it goes on by words."""
        async with self._warming:
            try:
                await self.catalog.engine.warm(query)
            except (QuiverError, OSError, ValueError) as exc:
                logger.error("the embedding model cannot be used; search goes on by words only: %s", exc)
                self.catalog.engine.drop_semantic()

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

    async def describe(self, ids: Sequence[str], *, principal: Principal = LOCAL) -> list[dict[str, Any]]:
        """Exact downstream definitions; starts the backends involved to get fresh schemas."""
        self.catalog.ensure_loaded()
        allow = self.visible(self.view(principal))
        await self._manifest_for_unknown(ids)
        parsed = [self._parse(tool_id, allow) for tool_id in ids]
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
                entry = self._resolve(tid, raw, allow)
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
        principal: Principal = LOCAL,
    ) -> types.CallToolResult | types.InputRequiredResult:
        """Check access, validate, start the backend if needed, call, and apply policy to the result."""
        if self.draining:
            raise ShuttingDownError("the gateway is shutting down", hint="retry in a moment")
        if tool_id == CONTINUE_TOOL:
            return self._continue(arguments, principal)
        with self.in_flight.track(tool_id, principal.name):
            return await self._call(tool_id, arguments, progress, upstream, principal)
        raise AssertionError("unreachable: a cancelled call raises CallCancelledError")

    def _continue(self, arguments: Mapping[str, Any], principal: Principal) -> types.CallToolResult:
        """The next page of a result that output limits cut (`quiver.continue`)."""
        handle, page = arguments.get("handle"), arguments.get("page", 2)
        if not isinstance(handle, str) or not isinstance(page, int):
            raise InvalidArgumentsError(CONTINUE_TOOL, ["'handle' (string) and 'page' (integer) are required"])
        return self.continuations.page(handle, page, principal=principal.name)

    async def _call(
        self,
        tool_id: str,
        arguments: Mapping[str, Any],
        progress: ProgressFn | None,
        upstream: Upstream | None,
        principal: Principal,
    ) -> types.CallToolResult | types.InputRequiredResult:
        view = self.view(principal)
        allow = self.visible(view)
        await self._manifest_for_unknown([tool_id])
        tid = self._parse(tool_id, allow)
        managed = self._managed(tid, tool_id, allow)
        key = str(tid)
        entry = self.catalog.get(key)
        if entry is None and not self.catalog.knows(tid.backend):
            self.catalog.ensure_loaded()
            entry = self.catalog.get(key)
        if entry is not None:
            if not allow(key):
                raise UnknownToolError(tool_id, self.catalog.suggest(tool_id, allow=allow))
            self._validate(entry, arguments)
        with (
            self.metrics.track_call(tid.backend, tid.tool) as timer,
            self.tracing.call_span(tid.backend, tid.tool) as span,
        ):
            await managed.ensure_running()
            fresh = self.catalog.get(key)
            if fresh is None or not allow(key):
                raise UnknownToolError(tool_id, self.catalog.suggest(tool_id, allow=allow))
            if fresh is not entry:
                self._validate(fresh, arguments)
            request = CallRequest(principal, view, key, arguments)
            result = await self.pipeline.run(
                request,
                lambda: managed.call_tool(
                    tid.tool, arguments, progress=progress, upstream=upstream, definition=fresh.tool
                ),
            )
            timer.set_result(result)
            span.set_result(result)
            return result

    async def input_schema(self, tool_id: str, *, principal: Principal = LOCAL) -> Mapping[str, Any]:
        """The tool's input schema if it can be found (for the CLI to type `key=value` args); else {}."""
        try:
            described = (await self.describe([tool_id], principal=principal))[0]
        except QuiverError:
            return {}
        schema = described.get("inputSchema")
        return schema if isinstance(schema, dict) else {}

    def _validate(self, entry: ToolEntry, arguments: Mapping[str, Any]) -> None:
        found = entry.validator().problems(arguments)
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

    def servers(self, *, principal: Principal = LOCAL) -> list[ServerInfo]:
        """Every backend with its state; tool counts count only what the caller may see."""
        self.catalog.ensure_loaded()
        configs = self.config.enabled_backends()
        allow = self.visible(self.view(principal))
        infos = []
        for status in self.supervisor.statuses():
            known = self.catalog.knows(status.name)
            count = sum(1 for entry in self.catalog.tools_of(status.name) if allow(entry.key)) if known else None
            infos.append(ServerInfo(status, count, configs[status.name].description))
        return infos

    # -- ids ------------------------------------------------------------------------------

    def _parse(self, tool_id: str, allow: Callable[[str], bool]) -> ToolId:
        try:
            return ToolId.parse(tool_id)
        except UnknownToolError:
            raise self._unknown_backend(tool_id, allow) from None

    def _managed(self, tid: ToolId, raw: str, allow: Callable[[str], bool]) -> ManagedBackend:
        try:
            return self.supervisor.get(tid.backend)
        except UnknownBackendError:
            raise self._unknown_backend(raw, allow) from None

    def _unknown_backend(self, raw: str, allow: Callable[[str], bool]) -> UnknownToolError:
        """The error for an id whose backend is not configured: near ids, or the server to install."""
        self.catalog.ensure_loaded()
        server = self.catalog.installable(raw.partition(".")[0])
        if server is None:
            return UnknownToolError(raw, self.catalog.suggest(raw, allow=allow))
        return UnknownToolError(raw, not_installed=server.name)

    def _resolve(self, tid: ToolId, raw: str, allow: Callable[[str], bool]) -> ToolEntry:
        self._managed(tid, raw, allow)
        return self.catalog.resolve(str(tid), allow=allow)


def _has_limits(policy: PolicyConfig) -> bool:
    limits = [policy.limits, *(role.limits for role in policy.roles.values())]
    return any(limit.max_result_bytes or limit.max_result_tokens for limit in limits)


_SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSWORD|PASSWD|KEY|AUTH|CREDENTIAL|COOKIE|SESSION", re.IGNORECASE)


def config_secrets(config: QuiverConfig) -> list[str]:
    """Values from Quiver's own config that must never show: stored secrets, header values, secret-named env."""
    from quiver import secrets
    from quiver.config.interpolate import resolve_backend
    from quiver.config.models import PluginBackendConfig, StdioBackendConfig

    config_dir = config.source.parent if config.source is not None else None
    environ = secrets.environment(config_dir)
    found = [*secrets.store("user").load().values(), *secrets.store("project", config_dir=config_dir).load().values()]
    for name, backend in config.enabled_backends().items():
        try:
            resolved = resolve_backend(name, backend, environ)
        except QuiverError:
            continue
        if isinstance(resolved, StdioBackendConfig):
            found += [value for key, value in resolved.env.items() if _SECRET_NAME.search(key)]
        elif not isinstance(resolved, PluginBackendConfig):
            found += list(resolved.headers.values())
    return [value for value in dict.fromkeys(found) if value]
