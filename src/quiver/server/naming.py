"""How backends' tools, prompts and resources are named where they are listed directly.

When several backends are listed side by side (aggregate mode, pinned tools, resources and
prompts), every name is namespaced by its backend so that nothing collides, and the mapping
back is exact:

- tools and prompts: `<backend>__<name>`, with characters outside `[A-Za-z0-9_-]` replaced so
  the name is valid for every LLM API, and kept within 64 characters by a stable shortening
  (a prefix plus a hash of the full id); two names that would coincide both get the hash.
- resource URIs and URI templates: `<backend>+<uri>` (a backend name never holds `+`).

A backend configured with `namespace: false` keeps its own names and URIs, unless another
backend already uses one of them. A single backend's own endpoint (`/mcp/{backend}`) uses the
backend's names unchanged.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from quiver.backends.base import Listing
from quiver.ids import ToolId

MAX_NAME = 64
SEPARATOR = "__"
URI_SEPARATOR = "+"
_HASH_CHARS = 8
_INVALID = re.compile(r"[^A-Za-z0-9_-]")


def shortened(name: str, full: str) -> str:
    """`name` made valid and at most 64 characters; the hash of `full` keeps it unique."""
    clean = _INVALID.sub("_", name) or "_"
    if len(clean) <= MAX_NAME:
        return clean
    return _hashed(clean, full)


def _hashed(clean: str, full: str) -> str:
    digest = hashlib.sha256(full.encode()).hexdigest()[:_HASH_CHARS]
    return f"{clean[: MAX_NAME - _HASH_CHARS - 1]}_{digest}"


@dataclass
class Names:
    """One surface's names for tools and prompts, and the way back."""

    tools: dict[ToolId, str] = field(default_factory=dict)
    tool_ids: dict[str, ToolId] = field(default_factory=dict)
    prompts: dict[tuple[str, str], str] = field(default_factory=dict)
    prompt_keys: dict[str, tuple[str, str]] = field(default_factory=dict)
    unprefixed: frozenset[str] = frozenset()
    uris: dict[str, tuple[str, str]] = field(default_factory=dict)  # unprefixed URIs only

    def uri(self, backend: str, uri: str) -> str:
        """How `backend`'s `uri` (or URI template) is listed."""
        if backend in self.unprefixed and self.uris.get(uri) == (backend, uri):
            return uri
        return f"{backend}{URI_SEPARATOR}{uri}"

    def resolve_uri(self, uri: str, backends: Sequence[str]) -> tuple[str, str] | None:
        """(backend, original URI) for a listed URI, or None."""
        known = self.uris.get(uri)
        if known is not None:
            return known
        backend, sep, rest = uri.partition(URI_SEPARATOR)
        if sep and backend in backends:
            return backend, rest
        if len(self.unprefixed) == 1:  # e.g. a URI expanded from an unprefixed backend's template
            return next(iter(self.unprefixed)), uri
        return None


def build_names(
    listings: Mapping[str, Listing],
    order: Sequence[str],
    unprefixed: frozenset[str] = frozenset(),
    *,
    verbatim: bool = False,
) -> Names:
    """Names for every tool and prompt of `listings`, backends taken in config `order`."""
    names = Names(unprefixed=unprefixed)
    tool_items = [
        (ToolId(backend, tool.name), tool.name) for backend in order for tool in _listing(listings, backend).tools
    ]
    names.tools = _assign(tool_items, unprefixed, verbatim)
    names.tool_ids = {name: tid for tid, name in names.tools.items()}
    prompt_items = [
        (ToolId(backend, prompt.name), prompt.name)
        for backend in order
        for prompt in _listing(listings, backend).prompts
    ]
    prompts = _assign(prompt_items, unprefixed, verbatim)
    names.prompts = {(tid.backend, tid.tool): name for tid, name in prompts.items()}
    names.prompt_keys = {name: key for key, name in names.prompts.items()}
    for backend in order:
        if backend not in unprefixed:
            continue
        listing = _listing(listings, backend)
        for uri in [str(r.uri) for r in listing.resources] + [t.uri_template for t in listing.templates]:
            names.uris.setdefault(uri, (backend, uri))
    return names


def identity_names(backend: str, listing: Listing) -> Names:
    """A single backend's names, unchanged (its own endpoint)."""
    return build_names({backend: listing}, [backend], frozenset({backend}), verbatim=True)


def _listing(listings: Mapping[str, Listing], backend: str) -> Listing:
    return listings.get(backend) or Listing([])


def _assign(items: Sequence[tuple[ToolId, str]], unprefixed: frozenset[str], verbatim: bool) -> dict[ToolId, str]:
    """Deterministic names: own names first for unprefixed backends, hashes for any collision."""
    wanted: dict[ToolId, str] = {}
    taken: set[str] = set()
    for tid, own in items:
        valid = verbatim or (not _INVALID.search(own) and len(own) <= MAX_NAME)
        if tid.backend in unprefixed and own not in taken and valid:
            wanted[tid] = own
            taken.add(own)
    prefixed = {tid: shortened(f"{tid.backend}{SEPARATOR}{own}", str(tid)) for tid, own in items if tid not in wanted}
    counts: dict[str, int] = {}
    for name in [*wanted.values(), *prefixed.values()]:
        counts[name] = counts.get(name, 0) + 1
    for tid, name in prefixed.items():
        wanted[tid] = _hashed(_INVALID.sub("_", name), str(tid)) if counts[name] > 1 else name
    return wanted
