"""Deciding which of the clients' servers move into Quiver's config, and why others do not.

`discover` lists every server in every file a client reads. `plan_import` decides, entry by entry:
a server is imported unless Quiver already has it (same name and definition), already runs the
same command or URL under another name, has a different server under that name, is Quiver itself,
or cannot be expressed as a Quiver backend. A name Quiver cannot use is turned into one it can.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from quiver.clients.base import Client, Env, Location, Unsupported, identity, is_quiver
from quiver.clients.files import ClientFile
from quiver.config.models import AnyBackendConfig, McpBackendConfig
from quiver.ids import backend_name_from


@dataclass(frozen=True)
class Found:
    """A server entry as it stands in a client's config."""

    client: Client
    location: Location
    name: str
    entry: Any


@dataclass(frozen=True)
class Decision:
    """What import does with one found entry.

    `served` is true when Quiver serves the server afterwards (imported now, or already there), so
    `import --replace` may take the entry out of the client; Quiver's own entry is not served, it stays.
    """

    found: Found
    action: Literal["import", "skip"]
    name: str
    backend: McpBackendConfig | None
    reason: str = ""
    served: bool = False


def discover(clients: Iterable[Client], env: Env) -> list[Found]:
    """Every server entry in the existing config files of `clients`, in file order."""
    found = []
    for client in clients:
        seen: set[tuple[str, tuple[str, ...]]] = set()
        for location in client.locations(env):
            key = (str(location.path), location.keys)
            if key in seen or not location.path.is_file():
                continue
            seen.add(key)
            for name, entry in ClientFile.read(location).servers().items():
                found.append(Found(client, location, str(name), entry))
    return found


def plan_import(
    found: Iterable[Found],
    existing: Mapping[str, AnyBackendConfig],
    env: Env,
    own_urls: frozenset[str] = frozenset(),
) -> list[Decision]:
    """Decide each entry in order; earlier entries win over later duplicates."""
    names: dict[str, AnyBackendConfig] = dict(existing)
    origin = dict.fromkeys(existing, "in Quiver's config")
    by_identity = {identity(backend): name for name, backend in existing.items()}
    decisions = []
    for item in found:
        try:
            backend = item.client.parse(item.entry, env)
        except Unsupported as exc:
            decisions.append(Decision(item, "skip", item.name, None, f"not importable: {exc}"))
            continue
        if is_quiver(backend, own_urls):
            decisions.append(Decision(item, "skip", item.name, backend, "Quiver's own entry"))
            continue
        name = backend_name_from(item.name)
        key = identity(backend)
        if key in by_identity:
            same = by_identity[key]
            reason = "already present" if same == name else f"same command as '{same}'"
            reason += f" ({origin[same]})"
            decisions.append(Decision(item, "skip", name, backend, reason, served=True))
            continue
        if name in names:
            reason = f"name already used by a different server ({origin[name]})"
            decisions.append(Decision(item, "skip", name, backend, reason))
            continue
        renamed = f"renamed from '{item.name}'" if name != item.name else ""
        decisions.append(Decision(item, "import", name, backend, renamed, served=True))
        names[name] = backend
        origin[name] = f"imported from {item.client.name} {item.location.scope} config"
        by_identity[key] = name
    return decisions
