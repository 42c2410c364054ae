"""Quiver: an MCP gateway that puts many MCP servers behind a handful of meta-tools.

The public API is imported lazily so that `quiver stdio` answers `initialize` without paying
for modules the first answer does not need.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from quiver.backends.base import Backend
    from quiver.config.loader import load_config
    from quiver.errors import QuiverError
    from quiver.gateway import Gateway
    from quiver.plugins import ToolContext, tool

_EXPORTS = {
    "Backend": "quiver.backends.base",
    "Gateway": "quiver.gateway",
    "QuiverError": "quiver.errors",
    "ToolContext": "quiver.plugins",
    "load_config": "quiver.config.loader",
    "tool": "quiver.plugins",
}

__all__ = ["Backend", "Gateway", "QuiverError", "ToolContext", "__version__", "load_config", "tool"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'quiver' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
