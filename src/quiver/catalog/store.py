"""The on-disk catalog cache: each backend's tool list, keyed by the backend's config fingerprint.

One JSON file per (backend, fingerprint), so a config change simply misses the old entry
and several configs (several gateways) can share the directory. Files are replaced
atomically: a reader sees the old list or the new one, never half of either.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mcp_types as types
from pydantic import ValidationError

from quiver._files import write_atomic
from quiver.backends.base import Listing

logger = logging.getLogger(__name__)

FORMAT_VERSION = 2


@dataclass(frozen=True, slots=True)
class Cached:
    listing: Listing
    fetched_at: float


class CatalogStore:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _path(self, backend: str, fingerprint: str) -> Path:
        return self.directory / f"{backend}-{fingerprint}.json"

    def load(self, backend: str, fingerprint: str) -> Cached | None:
        path = self._path(backend, fingerprint)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("version") != FORMAT_VERSION:
                return None
            listing = Listing(
                tools=[types.Tool.model_validate(item) for item in data["tools"]],
                resources=[types.Resource.model_validate(item) for item in data.get("resources", [])],
                templates=[types.ResourceTemplate.model_validate(item) for item in data.get("templates", [])],
                prompts=[types.Prompt.model_validate(item) for item in data.get("prompts", [])],
                server_title=data.get("server_title"),
            )
            return Cached(listing, float(data.get("fetched_at", 0)))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError, ValidationError) as exc:
            logger.warning("ignoring unreadable catalog cache %s: %s", path, exc)
            return None

    def save(self, backend: str, fingerprint: str, listing: Listing) -> None:
        data: dict[str, Any] = {
            "version": FORMAT_VERSION,
            "backend": backend,
            "fingerprint": fingerprint,
            "fetched_at": time.time(),
            "server_title": listing.server_title,
            "tools": _dump(listing.tools),
            "resources": _dump(listing.resources),
            "templates": _dump(listing.templates),
            "prompts": _dump(listing.prompts),
        }
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            write_atomic(self._path(backend, fingerprint), json.dumps(data, ensure_ascii=False))
        except OSError as exc:
            logger.warning("could not write the catalog cache in %s: %s", self.directory, exc)


def _dump(items: list[Any]) -> list[dict[str, Any]]:
    return [item.model_dump(by_alias=True, mode="json", exclude_none=True) for item in items]
