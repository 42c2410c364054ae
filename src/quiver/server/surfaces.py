"""What one upward endpoint shows: which tools, and how everything is named.

- `MetaSurface` (the default): the meta-tools, plus pinned tools listed directly.
- `AggregateSurface`: every tool of every backend, listed directly and namespaced.
- `BackendSurface`: one backend's tools, resources and prompts under their own names
  (`/mcp/{backend}`).

Every surface also lists the resources, resource templates and prompts of the backends it
shows, namespaced by `naming`, and maps each name back to (backend, original) on the way in.
"""

from __future__ import annotations

import fnmatch
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any

import mcp_types as types

from quiver.backends.base import Change, Listing
from quiver.gateway import Gateway
from quiver.ids import ToolId
from quiver.metatools import MetaTools
from quiver.policy.engine import View
from quiver.server.naming import Names, build_names, identity_names


class Surface(ABC):
    """One endpoint's view of the gateway."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self._names: Names | None = None
        self._names_version = -1

    @abstractmethod
    def backends(self) -> list[str]:
        """The backends this surface shows, in config order."""

    @abstractmethod
    def _build_names(self, listings: Mapping[str, Listing]) -> Names: ...

    @abstractmethod
    def tools_change(self, backend: str) -> bool:
        """Whether a change of `backend`'s tools changes this surface's tool list."""

    def affected(self, backend: str, kinds: set[Change]) -> set[Change]:
        """Which of this surface's lists a change of `backend` touches."""
        if backend not in self.backends():
            return set()
        return {kind for kind in kinds if kind is not Change.TOOLS or self.tools_change(backend)}

    # -- names ----------------------------------------------------------------------------------

    def names(self) -> Names:
        catalog = self.gateway.catalog
        if self._names is None or self._names_version != catalog.version:
            catalog.ensure_loaded()
            listings = catalog.listings()
            self._names = self._build_names({b: listings[b] for b in self.backends() if b in listings})
            self._names_version = catalog.version
        return self._names

    async def listings(self) -> dict[str, Listing]:
        """The shown backends' listings, discovering unknown ones first (bounded wait)."""
        listings = await self.gateway.listings()
        return {backend: listings[backend] for backend in self.backends() if backend in listings}

    # -- tools ----------------------------------------------------------------------------------

    @abstractmethod
    async def tools(self, view: View) -> list[types.Tool]:
        """The tools to list to a caller with this view."""

    def tool_id(self, name: str, view: View) -> ToolId | None:
        """The downstream tool a listed name stands for (None for a meta-tool, a hidden or unknown name)."""
        tid = self.names().tool_ids.get(name)
        if tid is None:
            return None
        entry = self.gateway.catalog.get(str(tid))
        return tid if entry is not None and view.allows_tool(str(tid), entry.tool) else None

    def _renamed_tools(
        self, listings: Mapping[str, Listing], view: View, wanted: set[ToolId] | None = None
    ) -> list[types.Tool]:
        names = self.names()
        tools: list[types.Tool] = []
        for backend, listing in listings.items():
            for tool in listing.tools:
                tid = ToolId(backend, tool.name)
                name = names.tools.get(tid)
                if name is None or (wanted is not None and tid not in wanted):
                    continue
                if view.allows_tool(str(tid), tool):
                    tools.append(tool if name == tool.name else tool.model_copy(update={"name": name}))
        return tools

    # -- resources and prompts -----------------------------------------------------------------

    async def resources(self, view: View) -> list[types.Resource]:
        listings = await self.listings()
        names = self.names()
        return [
            resource.model_copy(update={"uri": names.uri(backend, resource.uri)})
            for backend, listing in listings.items()
            for resource in listing.resources
            if view.allows_backend_item(backend, resource.uri)
        ]

    async def templates(self, view: View) -> list[types.ResourceTemplate]:
        listings = await self.listings()
        names = self.names()
        return [
            template.model_copy(update={"uri_template": names.uri(backend, template.uri_template)})
            for backend, listing in listings.items()
            for template in listing.templates
            if view.allows_backend_item(backend, template.uri_template)
        ]

    async def prompts(self, view: View) -> list[types.Prompt]:
        listings = await self.listings()
        names = self.names()
        prompts: list[types.Prompt] = []
        for backend, listing in listings.items():
            for prompt in listing.prompts:
                name = names.prompts.get((backend, prompt.name))
                if name is not None and view.allows_backend_item(backend, prompt.name):
                    prompts.append(prompt if name == prompt.name else prompt.model_copy(update={"name": name}))
        return prompts

    async def resolve_uri(self, uri: str, view: View) -> tuple[str, str] | None:
        """(backend, original URI), discovering backends never seen if the URI is not known yet."""
        resolved = self.names().resolve_uri(uri, self.backends())
        if resolved is None:
            await self.listings()
            resolved = self.names().resolve_uri(uri, self.backends())
        return resolved if resolved is not None and view.allows_backend_item(*resolved) else None

    async def resolve_prompt(self, name: str, view: View) -> tuple[str, str] | None:
        resolved = self.names().prompt_keys.get(name)
        if resolved is None:
            await self.listings()
            resolved = self.names().prompt_keys.get(name)
        return resolved if resolved is not None and view.allows_backend_item(*resolved) else None

    async def resolve_tool(self, name: str, view: View) -> ToolId | None:
        if name not in self.names().tool_ids:
            await self.listings()
        return self.tool_id(name, view)

    def exposed_uri(self, backend: str, uri: str) -> str:
        return self.names().uri(backend, uri)


class MetaSurface(Surface):
    """The default: meta-tools (search, describe, call, servers), plus pinned tools."""

    def __init__(self, gateway: Gateway, metatools: MetaTools | None = None) -> None:
        super().__init__(gateway)
        self.metatools = metatools or MetaTools.for_config(gateway.config.gateway)
        self.pinned = list(gateway.config.gateway.pinned)

    def backends(self) -> list[str]:
        return self.gateway.supervisor.names()

    def _build_names(self, listings: Mapping[str, Listing]) -> Names:
        return build_names(listings, self.backends(), _unprefixed(self.gateway))

    def tools_change(self, backend: str) -> bool:
        return any(fnmatch.fnmatchcase(backend, pattern.split(".", 1)[0]) for pattern in self.pinned)

    def _pinned_ids(self, listings: Mapping[str, Listing]) -> set[ToolId]:
        return {
            ToolId(backend, tool.name)
            for backend, listing in listings.items()
            for tool in listing.tools
            if any(fnmatch.fnmatchcase(f"{backend}.{tool.name}", pattern) for pattern in self.pinned)
        }

    async def tools(self, view: View) -> list[types.Tool]:
        if not self.pinned:
            return list(self.metatools.definitions)
        listings = await self.listings()
        return [*self.metatools.definitions, *self._renamed_tools(listings, view, self._pinned_ids(listings))]

    def tool_id(self, name: str, view: View) -> ToolId | None:
        if not self.pinned:
            return None
        tid = super().tool_id(name, view)
        if tid is None:
            return None
        listing = self.gateway.catalog.listing(tid.backend)
        return tid if listing is not None and tid in self._pinned_ids({tid.backend: listing}) else None


class AggregateSurface(Surface):
    """Every tool of every backend, namespaced."""

    def backends(self) -> list[str]:
        return self.gateway.supervisor.names()

    def _build_names(self, listings: Mapping[str, Listing]) -> Names:
        return build_names(listings, self.backends(), _unprefixed(self.gateway))

    def tools_change(self, backend: str) -> bool:
        return True

    async def tools(self, view: View) -> list[types.Tool]:
        return self._renamed_tools(await self.listings(), view)


class BackendSurface(Surface):
    """One backend under its own names."""

    def __init__(self, gateway: Gateway, backend: str) -> None:
        super().__init__(gateway)
        self.backend = backend

    def backends(self) -> list[str]:
        return [self.backend]

    def _build_names(self, listings: Mapping[str, Listing]) -> Names:
        return identity_names(self.backend, listings.get(self.backend) or Listing([]))

    def tools_change(self, backend: str) -> bool:
        return True

    async def listings(self) -> dict[str, Listing]:
        listing = self.gateway.catalog.listing(self.backend)
        if listing is None:  # never seen: start it, it lists itself into the catalog
            await self.gateway.supervisor.get(self.backend).ensure_running()
            listing = self.gateway.catalog.listing(self.backend)
        return {self.backend: listing} if listing is not None else {}

    async def tools(self, view: View) -> list[types.Tool]:
        return self._renamed_tools(await self.listings(), view)


def _unprefixed(gateway: Gateway) -> frozenset[str]:
    return frozenset(name for name, config in gateway.config.enabled_backends().items() if not config.namespace)


def rewrite_contents(surface: Surface, backend: str, contents: Sequence[Any]) -> list[Any]:
    """Resource contents read from a backend, with URIs as this surface lists them."""
    return [item.model_copy(update={"uri": surface.exposed_uri(backend, item.uri)}) for item in contents]
