"""The gate every tool definition passes on its way into the catalog.

Each definition is checked against its pin (`pinning`) and, when it has none, scanned for
poisoning (`scanning`). A definition that changed since approval, or that the scan flags at the
quarantine severity, is quarantined: hidden from everyone until `quiver approve`. A clean first
definition is pinned on the spot.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import mcp_types as types

from quiver.config.policy import PolicyConfig
from quiver.ids import ToolId
from quiver.policy.pinning import PinStore, definition, definition_hash, diff

logger = logging.getLogger(__name__)

_SEVERITY_ORDER = {"none": 0, "low": 1, "medium": 2, "high": 3}


@dataclass(frozen=True)
class Quarantine:
    tool_id: str
    kind: Literal["scan", "changed"]
    reasons: list[str]
    diff: str | None = None


@dataclass
class Guard:
    config: PolicyConfig
    pins: PinStore | None
    _held: dict[str, Quarantine] = field(default_factory=dict)
    _tools: dict[str, types.Tool] = field(default_factory=dict)

    def review(self, backend: str, tools: Sequence[types.Tool], siblings: Sequence[str] = ()) -> None:
        """Decide, for every tool of `backend`, whether it may be used; pin clean first sightings."""
        for key in [key for key in self._held if ToolId.parse(key).backend == backend]:
            del self._held[key]
        to_pin: dict[str, types.Tool] = {}
        from quiver.policy.scanning import sibling_names

        names = sibling_names([*siblings, *(tool.name for tool in tools)])  # once, not per tool
        for tool in tools:
            tool_id = str(ToolId(backend, tool.name))
            self._tools[tool_id] = tool
            held = self._check(backend, tool_id, tool, names)
            if held is not None:
                self._held[tool_id] = held
                logger.warning("quarantined %s: %s", tool_id, "; ".join(held.reasons))
            elif self.pins is not None and self.config.pinning and self.pins.get(tool_id) is None:
                to_pin[tool_id] = tool
        if self.pins is not None and to_pin:
            try:
                self.pins.pin(to_pin)
            except OSError as exc:
                logger.warning("could not write the lock file %s: %s", self.pins.path, exc)

    def _check(self, backend: str, tool_id: str, tool: types.Tool, siblings: frozenset[str]) -> Quarantine | None:
        pin = self.pins.get(tool_id) if self.pins is not None else None
        if pin is not None:
            if pin.hash == definition_hash(tool) or not self.config.pinning:
                return None  # approved as it is (or changes are not being watched)
            return Quarantine(
                tool_id,
                "changed",
                ["the definition changed since it was approved"],
                diff(pin.definition, definition(tool)),
            )
        if not self.config.scanning.enabled:
            return None
        try:
            from quiver.policy.scanning import scan_tool

            result = scan_tool(tool, server=backend, siblings=siblings)
        except Exception as exc:  # a scanner fault must not let an unscanned tool through
            logger.exception("scanning %s failed", tool_id)
            return Quarantine(tool_id, "scan", [f"the scan could not complete ({type(exc).__name__})"])
        if _SEVERITY_ORDER[result.severity] < _SEVERITY_ORDER[self.config.scanning.quarantine]:
            return None
        reasons = [f"{f.code} {f.severity}: {f.message}" for f in result.findings]
        return Quarantine(tool_id, "scan", reasons)

    def quarantined(self, tool_id: str) -> bool:
        if tool_id not in self._held:
            return False
        self.refresh()  # approved meanwhile, perhaps by `quiver approve` in another process
        return tool_id in self._held

    def held(self) -> list[Quarantine]:
        return sorted(self._held.values(), key=lambda q: q.tool_id)

    def approve(self, tool_ids: Sequence[str]) -> list[str]:
        """Pin the current definitions of these quarantined tools; returns the ids approved."""
        approved = {tool_id: self._tools[tool_id] for tool_id in tool_ids if tool_id in self._tools}
        if self.pins is not None:
            self.pins.pin(approved)
        for tool_id in approved:
            self._held.pop(tool_id, None)
        return list(approved)

    def refresh(self) -> None:
        """Re-check held tools against the lock file (another process may have approved them)."""
        for tool_id, held in list(self._held.items()):
            tool = self._tools.get(tool_id)
            pin = self.pins.get(tool_id) if self.pins is not None else None
            if tool is not None and pin is not None and pin.hash == definition_hash(tool):
                del self._held[tool_id]
                logger.info("%s was approved; it is visible again (%s)", tool_id, held.kind)
