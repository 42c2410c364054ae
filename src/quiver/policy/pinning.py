"""Rug-pull protection: every approved tool definition is pinned by hash in a lock file.

The first definition of a tool that passes the scan is approved and pinned automatically. A later
definition with another hash (after a restart, or a `tools/list_changed`) is quarantined with a
diff against the pinned one until an operator approves it (`quiver approve`). Approving a tool the
scan flagged pins it too. The lock file is shared by every gateway using the same state directory:
writes take a file lock and replace the file atomically; readers reload it when it changes.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mcp_types as types

from quiver._files import write_atomic

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
# What identifies a definition: everything a client shows to a model, and nothing volatile.
_PINNED_FIELDS = ("name", "title", "description", "inputSchema", "outputSchema", "annotations")


def definition(tool: types.Tool) -> dict[str, Any]:
    dumped = tool.model_dump(by_alias=True, mode="json", exclude_none=True)
    return {key: dumped[key] for key in _PINNED_FIELDS if key in dumped}


def definition_hash(tool: types.Tool) -> str:
    canonical = json.dumps(definition(tool), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def diff(old: dict[str, Any], new: dict[str, Any]) -> str:
    """A unified diff of two definitions, as an operator reads it."""
    before = json.dumps(old, indent=2, sort_keys=True, ensure_ascii=False).splitlines()
    after = json.dumps(new, indent=2, sort_keys=True, ensure_ascii=False).splitlines()
    return "\n".join(difflib.unified_diff(before, after, "approved", "now", lineterm=""))


@dataclass(frozen=True, slots=True)
class Pin:
    hash: str
    definition: dict[str, Any]
    approved_at: float


class PinStore:
    """The lock file of approved definitions, keyed by tool id."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._pins: dict[str, Pin] = {}
        self._stamp: tuple[int, int] | None = None

    def _current(self) -> dict[str, Pin]:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            self._pins, self._stamp = {}, None
            return self._pins
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp != self._stamp:
            self._pins = self._read()
            self._stamp = stamp
        return self._pins

    def _read(self) -> dict[str, Pin]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            return {
                tool_id: Pin(entry["hash"], entry["definition"], float(entry.get("approved_at", 0)))
                for tool_id, entry in data.get("tools", {}).items()
            }
        except (OSError, ValueError, KeyError, TypeError) as exc:
            logger.warning("ignoring unreadable lock file %s: %s", self.path, exc)
            return {}

    def get(self, tool_id: str) -> Pin | None:
        return self._current().get(tool_id)

    def all(self) -> dict[str, Pin]:
        return dict(self._current())

    def pin(self, tools: dict[str, types.Tool]) -> None:
        """Approve these definitions (tool id → tool), replacing whatever was pinned for them."""
        if not tools:
            return
        from filelock import FileLock

        self.path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.path) + ".lock"):
            pins = self._read() if self.path.exists() else {}
            now = time.time()
            for tool_id, tool in tools.items():
                pins[tool_id] = Pin(definition_hash(tool), definition(tool), now)
            data = {
                "version": FORMAT_VERSION,
                "tools": {
                    tool_id: {"hash": pin.hash, "definition": pin.definition, "approved_at": pin.approved_at}
                    for tool_id, pin in sorted(pins.items())
                },
            }
            write_atomic(self.path, json.dumps(data, indent=1, ensure_ascii=False))
        self._stamp = None
