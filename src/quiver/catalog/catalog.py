"""Every known tool of every backend, running or not, with its search index.

Filled from the on-disk cache (lazily, on first use, so `initialize` never waits for it) and
from live backends whenever they list their tools. Lookups on the call path are dict reads.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import mcp_types as types

from quiver.backends.base import Change, Listing
from quiver.catalog.models import ToolEntry
from quiver.catalog.store import CatalogStore
from quiver.config.models import AnyBackendConfig
from quiver.errors import UnknownToolError
from quiver.ids import ToolId
from quiver.search import BackendInfo, SearchDoc, SearchEngine

MAX_SUGGESTIONS = 3
# Manifest servers live in the search index under a segment no backend can be named.
INSTALLABLE_SEGMENT = "(installable)"
INSTALLABLE_PREFIX = "install:"
# A server is suggested only when it scores at least this share of the best match: a weak
# keyword overlap ("ping" in a hosting provider's keywords) is noise next to a tool that fits.
SUGGEST_SCORE_RATIO = 0.45
# ... and when it shares at least this many of the task's own words (all of a shorter task's):
# one shared word ("open" for "open a pull request" in `open-meteo`) is a coincidence.
SUGGEST_MIN_SHARED_TERMS = 2


@dataclass(frozen=True, slots=True)
class Installable:
    """A server Quiver knows how to install, as search sees it."""

    name: str
    title: str
    description: str
    needs: tuple[str, ...] = ()
    keywords: tuple[str, ...] = ()

    @property
    def text(self) -> str:
        return " ".join([self.description, *self.keywords])


class Catalog:
    def __init__(
        self,
        backends: Mapping[str, AnyBackendConfig],
        store: CatalogStore | None = None,
        engine: SearchEngine | None = None,
        reviewer: Callable[[str, list[types.Tool]], None] | None = None,
    ) -> None:
        self._configs = dict(backends)
        self._reviewer = reviewer
        self._store = store
        self.engine = engine if engine is not None else SearchEngine()
        self._entries: dict[str, ToolEntry] = {}
        self._by_backend: dict[str, list[ToolEntry]] = {}
        self._listings: dict[str, Listing] = {}
        self._loaded = False
        self._installable: dict[str, Installable] = {}
        self._installable_terms: dict[str, frozenset[str]] = {}
        self.version = 0  # bumped on every change, for views derived from the catalog
        self.observers: list[Callable[[str, set[Change]], None]] = []
        """Told (backend, what changed) whenever a backend's listing changes."""

    # -- filling --------------------------------------------------------------------------

    def ensure_loaded(self) -> None:
        """Read cached tool lists for every backend that has not listed live yet (once)."""
        if self._loaded:
            return
        self._loaded = True
        if self._store is None:
            return
        for name, config in self._configs.items():
            if name in self._by_backend:
                continue
            cached = self._store.load(name, config.fingerprint())
            if cached is not None:
                self._install(name, cached.listing)

    def configure(self, backends: Mapping[str, AnyBackendConfig]) -> None:
        """Follow a new config: forget backends that went or whose identity changed, load new ones' cache."""
        old = self._configs
        self._configs = dict(backends)
        for name in list(self._listings):
            if name not in backends or backends[name].fingerprint() != old[name].fingerprint():
                self._forget(name)
        if self._loaded and self._store is not None:
            for name, config in backends.items():
                if name not in self._listings and (cached := self._store.load(name, config.fingerprint())):
                    self._install(name, cached.listing)
                    self._tell(name, _changes(None, cached.listing))

    def _forget(self, backend: str) -> None:
        listing = self._listings.pop(backend)
        for entry in self._by_backend.pop(backend, ()):
            self._entries.pop(entry.key, None)
        self.engine.remove_backend(backend)
        self.version += 1
        self._tell(backend, _changes(None, listing))

    def _tell(self, backend: str, changed: set[Change]) -> None:
        for observer in self.observers:
            observer(backend, changed)

    def update(self, backend: str, listing: Listing, announced: set[Change] | None = None) -> None:
        """A backend listed what it offers: replace what was known, index it, cache it, tell observers.

        What the backend `announced` as changed is passed on even when the listing looks the same:
        clients refetch, and the backend knows best."""
        previous = self._listings.get(backend)
        changed = _changes(previous, listing) | (announced or set())
        if previous is not None and not changed and previous.server_title == listing.server_title:
            return
        self._install(backend, listing)
        config = self._configs.get(backend)
        if self._store is not None and config is not None:
            self._store.save(backend, config.fingerprint(), listing)
        self._tell(backend, changed)

    def _install(self, backend: str, listing: Listing) -> None:
        if self._reviewer is not None:  # before anything of it becomes visible
            self._reviewer(backend, listing.tools)
        self.version += 1
        for old in self._by_backend.get(backend, ()):
            self._entries.pop(old.key, None)
        self._listings[backend] = listing
        server_title = listing.server_title
        entries = [ToolEntry(ToolId(backend, tool.name), tool) for tool in listing.tools]
        self._by_backend[backend] = entries
        for entry in entries:
            self._entries[entry.key] = entry
        config = self._configs.get(backend)
        info = BackendInfo(
            name=backend,
            title=config.title if config is not None else None,
            description=(config.description if config is not None else None) or server_title,
        )
        self.engine.set_backend(
            info,
            [
                SearchDoc(
                    id=entry.key,
                    backend=backend,
                    name=entry.tool.name,
                    title=entry.tool.title,
                    description=entry.tool.description or "",
                    input_schema=entry.tool.input_schema,
                )
                for entry in entries
            ],
        )

    # -- reading --------------------------------------------------------------------------

    def listing(self, backend: str) -> Listing | None:
        return self._listings.get(backend)

    def listings(self) -> dict[str, Listing]:
        return dict(self._listings)

    def knows(self, backend: str) -> bool:
        """Whether the backend's tools are known (cached or live)."""
        return backend in self._by_backend

    def tools_of(self, backend: str) -> list[ToolEntry]:
        return list(self._by_backend.get(backend, ()))

    def count(self, backend: str) -> int | None:
        entries = self._by_backend.get(backend)
        return None if entries is None else len(entries)

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> ToolEntry | None:
        return self._entries.get(key)

    def resolve(self, key: str, *, allow: Callable[[str], bool] | None = None) -> ToolEntry:
        """The entry for a tool id, or `UnknownToolError` with the nearest visible ids."""
        entry = self._entries.get(key)
        if entry is not None and (allow is None or allow(entry.key)):
            return entry
        raise UnknownToolError(key, self.suggest(key, allow=allow))

    def suggest(self, key: str, *, allow: Callable[[str], bool] | None = None) -> list[str]:
        visible = [k for k in self._entries if allow is None or allow(k)]
        _, _, tool_part = key.partition(".")
        same_name = [k for k in visible if k.partition(".")[2] in (key, tool_part)]
        if same_name:
            return same_name[:MAX_SUGGESTIONS]
        return difflib.get_close_matches(key, visible, n=MAX_SUGGESTIONS, cutoff=0.5)

    def search(self, query: str, limit: int, *, allow: Callable[[str], bool] | None = None) -> list[ToolEntry]:
        """The best `limit` tools (servers not installed never take a tool's place)."""
        hits = self.engine.search(query, limit, allow=self._tools_only(allow) if self._installable else allow)
        return [self._entries[hit.id] for hit in hits if hit.id in self._entries]

    @staticmethod
    def _tools_only(allow: Callable[[str], bool] | None) -> Callable[[str], bool]:
        def admit(key: str) -> bool:
            return not key.startswith(INSTALLABLE_PREFIX) and (allow is None or allow(key))

        return admit

    # -- servers that could be installed ---------------------------------------------------

    def set_installable(self, servers: Sequence[Installable]) -> None:
        """Servers from the manifest that are not configured: searched with the tools, in their own segment."""
        self._installable = {server.name: server for server in servers}
        analyzer = self.engine.analyzer
        self._installable_terms = {
            server.name: frozenset(analyzer.tokenize(" ".join((server.name, server.title, server.text))))
            for server in servers
        }
        docs = [
            SearchDoc(
                id=INSTALLABLE_PREFIX + server.name,
                backend=INSTALLABLE_SEGMENT,
                name=server.name,
                title=server.title,
                description=server.text,
            )
            for server in servers
        ]
        self.engine.set_backend(BackendInfo(INSTALLABLE_SEGMENT), docs)

    def installable(self, name: str) -> Installable | None:
        """The server not installed that search would suggest under this name, if any."""
        return self._installable.get(name)

    def search_all(
        self, query: str, limit: int, *, allow: Callable[[str], bool] | None = None, installable: int = 0
    ) -> tuple[list[ToolEntry], list[Installable]]:
        """The best tools, plus up to `installable` servers not installed that outrank every tool.

        Both kinds are ranked together, and a server is suggested only when it matches the task
        better than the best tool already there: next to a tool that fits, a server that shares a
        word or two with the task ("knowledge" in a documentation server's name) is noise."""
        if not installable or not self._installable:
            return self.search(query, limit, allow=allow), []

        def admit(key: str) -> bool:
            return key.startswith(INSTALLABLE_PREFIX) or allow is None or allow(key)

        tools: list[ToolEntry] = []
        servers: list[Installable] = []
        # Deep enough that `limit` tools come back even when every server outranks them.
        hits = self.engine.search(query, limit + len(self._installable), allow=admit)
        floor = hits[0].score * SUGGEST_SCORE_RATIO if hits else 0.0
        own = {term for term, weight in self.engine.analyzer.query_terms(query).items() if weight >= 1.0}
        shared = min(SUGGEST_MIN_SHARED_TERMS, len(own))
        for hit in hits:
            if hit.id.startswith(INSTALLABLE_PREFIX):
                name = hit.id.removeprefix(INSTALLABLE_PREFIX)
                server = self._installable.get(name)
                if (
                    server is not None
                    and not tools
                    and len(servers) < installable
                    and hit.score >= floor
                    and len(own & self._installable_terms[name]) >= shared
                ):
                    servers.append(server)
            elif hit.id in self._entries and len(tools) < limit:
                tools.append(self._entries[hit.id])
        return tools, servers


def _changes(previous: Listing | None, current: Listing) -> set[Change]:
    if previous is None:
        return {kind for kind, items in _kinds(current).items() if items}
    before = _kinds(previous)
    return {kind for kind, items in _kinds(current).items() if items != before[kind]}


def _kinds(listing: Listing) -> dict[Change, list[Any]]:
    return {
        Change.TOOLS: listing.tools,
        Change.RESOURCES: [*listing.resources, *listing.templates],
        Change.PROMPTS: listing.prompts,
    }
