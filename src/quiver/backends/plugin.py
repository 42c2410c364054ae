"""A Python module of `@tool` functions as a backend, in Quiver's own process.

Starting the backend imports the module (by import path, or from a `.py` file) in a worker thread
and builds a `FunctionTool` for each marked function; anything wrong with the module or its tools
is the start error, naming the module. Calls run the functions directly: no process, no protocol.
Installed packages publish plugins under the `quiver.plugins` entry-point group.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import logging
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import anyio
import anyio.to_thread
import mcp_types as types

from quiver.backends.base import Backend, ProgressFn
from quiver.config.models import PluginBackendConfig as PluginBackendConfig
from quiver.errors import BackendUnavailableError
from quiver.ids import backend_name_from
from quiver.plugins import FunctionTool, ToolContext, options_of, parse_docstring
from quiver.upstream import Upstream

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "quiver.plugins"
FILE_MODULE_PREFIX = "quiver_plugin_"  # module names for plugins loaded from files, apart from importable ones


class PluginBackend(Backend):
    """The tools of one plugin module; loaded on start, dropped on stop."""

    def __init__(self, name: str, config: PluginBackendConfig, *, base_dir: Path | None = None) -> None:
        super().__init__(name)
        self.config = config.resolved(base_dir) if base_dir is not None else config
        """With relative paths made absolute from `base_dir` (the config file's directory)."""
        self._tools: dict[str, FunctionTool] | None = None
        self._title: str | None = None

    @asynccontextmanager
    async def lifespan(self) -> AsyncIterator[None]:
        # Importing runs the module's code: off the event loop, and abandoned if the start times out.
        load = functools.partial(load_plugin, self.name, self.config)
        module, tools = await anyio.to_thread.run_sync(load, abandon_on_cancel=True)
        self._tools = tools
        self._title = parse_docstring(module.__doc__)[0].split("\n\n")[0] or None
        try:
            yield
        finally:
            self._tools = None

    async def list_tools(self) -> list[types.Tool]:
        return [tool.definition for tool in self._loaded().values()]

    async def call_tool(
        self,
        name: str,
        arguments: Mapping[str, Any],
        *,
        progress: ProgressFn | None = None,
        upstream: Upstream | None = None,
    ) -> types.CallToolResult:
        from mcp.shared.exceptions import MCPError

        tool = self._loaded().get(name)
        if tool is None:
            raise MCPError(code=types.INVALID_PARAMS, message=f"Unknown tool: {name}")
        return await tool.call(arguments, ToolContext(name, self.name, progress))

    @property
    def server_title(self) -> str | None:
        """The first paragraph of the module's docstring."""
        return self._title

    def _loaded(self) -> dict[str, FunctionTool]:
        if self._tools is None:
            from mcp.shared.exceptions import MCPError

            raise MCPError(code=types.CONNECTION_CLOSED, message=f"plugin backend '{self.name}' is not running")
        return self._tools


def load_plugin(backend: str, config: PluginBackendConfig) -> tuple[ModuleType, dict[str, FunctionTool]]:
    """Import the module and build its tools; raises a `BackendUnavailableError` that says what is wrong."""
    where = f"plugin module '{config.module}' of backend '{backend}'"
    try:
        module = _import(backend, config)
    except (Exception, SystemExit) as exc:
        # A module that is not there has no traceback worth reading; one that fails inside does.
        logger.error("%s could not be imported", where, exc_info=None if _not_found(exc, config) else exc)
        raise BackendUnavailableError(
            f"{where} could not be imported: {type(exc).__name__}: {exc}",
            hint=_import_hint(exc, config),
            retryable=False,
        ) from exc
    tools: dict[str, FunctionTool] = {}
    for value in dict.fromkeys(v for v in vars(module).values() if options_of(v) is not None):
        try:
            built = FunctionTool.build(value, options_of(value))
        except ValueError as exc:
            raise BackendUnavailableError(
                f"{where}: {getattr(value, '__qualname__', value)!s} cannot be a tool: {exc}",
                hint="fix the function's signature or its @tool options",
                retryable=False,
            ) from None
        if built.name in tools:
            raise BackendUnavailableError(
                f"{where} has two tools named '{built.name}'",
                hint="give one of them another name with @tool(name=...)",
                retryable=False,
            )
        tools[built.name] = built
    if not tools:
        raise BackendUnavailableError(
            f"{where} defines no tools",
            hint="mark its functions with @tool (from quiver import tool)",
            retryable=False,
        )
    return module, tools


def _not_found(exc: BaseException, config: PluginBackendConfig) -> bool:
    """Whether the plugin's own module (or file) is missing, rather than something it imports."""
    if isinstance(exc, FileNotFoundError):
        return True
    missing = exc.name if isinstance(exc, ModuleNotFoundError) else None
    return missing is not None and f"{config.module}.".startswith(f"{missing}.")


def _import_hint(exc: BaseException, config: PluginBackendConfig) -> str:
    if _not_found(exc, config):
        return "check `module` and `path` in the backend's config: `path` is the directory that holds the module"
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        return f"the module needs '{exc.name}': install it where Quiver runs (in Quiver's own environment)"
    return "fix the module (the traceback is in the gateway's log); it is imported again on next use"


def _import(backend: str, config: PluginBackendConfig) -> ModuleType:
    if config.path is not None:
        entry = str(Path(config.path).expanduser())
        if entry not in sys.path:
            sys.path.insert(0, entry)
    if not config.is_file():
        return importlib.import_module(config.module)
    # A file is executed afresh on every start, so edits take effect when the backend restarts.
    file = config.source_file()
    if file is None or not file.is_file():
        raise FileNotFoundError(f"no such file: {file}")
    name = FILE_MODULE_PREFIX + backend  # never imported by name, so any backend name will do
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise ImportError(f"{file} cannot be loaded as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # for what looks itself up by module name (pydantic, dataclasses, pickle)
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def discover_entry_points() -> dict[str, PluginBackendConfig]:
    """Plugins that installed packages publish under the `quiver.plugins` entry-point group, by backend name.

    Each entry point names a module (`name = package.module`); its name becomes the backend's name,
    and the package's summary its description. The first of two same-named entry points wins.
    """
    from importlib.metadata import entry_points

    found: dict[str, PluginBackendConfig] = {}
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        name = backend_name_from(entry.name)
        if name in found:
            logger.warning("entry point %s=%s ignored: backend '%s' is taken", entry.name, entry.value, name)
            continue
        summary = entry.dist.metadata.get_all("Summary") if entry.dist is not None else None
        found[name] = PluginBackendConfig(module=entry.module, description=summary[0] if summary else None)
    return found
