"""One backend connection from one backend's config: the config's type decides the class."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from quiver.backends.base import Backend
from quiver.backends.plugin import PluginBackend
from quiver.config.models import AnyBackendConfig, PluginBackendConfig, RestBackendConfig


def make_backend(
    name: str,
    config: AnyBackendConfig,
    *,
    log_dir: Path | None = None,
    environ: Mapping[str, str] | None = None,
    base_dir: Path | None = None,
) -> Backend:
    """A plugin module or a directory of REST capabilities in this process, or an MCP server through the SDK.

    `log_dir` keeps a stdio server's stderr; `environ` resolves `${VAR}` references; `base_dir`
    (the config file's directory) is where relative paths start."""
    if isinstance(config, PluginBackendConfig):
        return PluginBackend(name, config, base_dir=base_dir)
    if isinstance(config, RestBackendConfig):
        from quiver.backends.rest import RestBackend

        return RestBackend(name, config, environ=environ, base_dir=base_dir)
    from quiver.backends.mcp import McpBackend

    return McpBackend(name, config, log_dir=log_dir, environ=environ)
