"""Typed config: backends (one model per transport) and gateway settings.

Loading (files, discovery, env) lives in `loader.py`; everything downstream receives these
models. Backend entries accept the `mcpServers` shape clients already use (`command`/`args`/
`env`/`cwd`, or `type` + `url`/`headers`), plus Quiver's own lifecycle keys.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator

from quiver.config.policy import AuthConfig, PolicyConfig
from quiver.errors import ConfigError
from quiver.ids import check_backend_name

# Spellings of the streamable HTTP transport seen in client configs.
HTTP_TYPE_ALIASES = ("http", "streamable-http", "streamable_http", "streamableHttp")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class BackendBase(_Strict):
    """Keys every backend accepts, whatever its transport."""

    title: str | None = None
    description: str | None = Field(default=None, description="What the backend is for; searched.")
    enabled: bool = True
    autostart: bool = Field(default=False, description="Start with the gateway instead of on first use.")
    idle_timeout: float | None = Field(
        default=None, ge=0, description="Seconds without calls before the backend stops; 0 = never."
    )
    call_timeout: float | None = Field(default=None, gt=0, description="Seconds a tool call may take.")
    startup_timeout: float | None = Field(default=None, gt=0, description="Seconds to connect and list.")
    tool_timeouts: dict[str, float] = Field(
        default_factory=dict, description="Seconds per tool name, where one tool needs longer (or shorter)."
    )
    max_concurrency: int | None = Field(default=None, gt=0, description="Calls running at once on this backend.")
    max_queue: int | None = Field(default=None, ge=0, description="Calls waiting for a slot before 'busy'.")
    breaker_threshold: int | None = Field(
        default=None, gt=0, description="Consecutive failures that open the circuit breaker."
    )
    breaker_cooldown: float | None = Field(default=None, gt=0, description="Seconds the breaker stays open.")
    namespace: bool = Field(
        default=True,
        description="Prefix this backend's names where tools, prompts and resources are listed side by side.",
    )
    protocol: Literal["auto", "legacy"] = Field(
        default="auto",
        description="'auto' negotiates the newest era; 'legacy' forces the initialize handshake.",
    )

    def identity(self) -> dict[str, Any]:
        """The keys that decide which server this is (and so which tools it has)."""
        raise NotImplementedError

    def fingerprint(self) -> str:
        """A short stable hash of `identity()`: a cached tool list is valid while it matches."""
        blob = json.dumps(self.identity(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


class StdioBackendConfig(BackendBase):
    type: Literal["stdio"] = "stdio"
    command: str = Field(min_length=1)
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    cwd: str | None = None

    def identity(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "command": self.command,
            "args": self.args,
            "env": self.env,
            "cwd": self.cwd,
        }


class _RemoteBackend(BackendBase):
    type: str
    url: str = Field(min_length=1)
    headers: dict[str, str] = Field(default_factory=dict)

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://", "${")):
            raise ValueError("must start with http:// or https://")
        return value

    def identity(self) -> dict[str, Any]:
        # Header values usually hold credentials: identify by header names only.
        return {"type": self.type, "url": self.url, "headers": sorted(self.headers)}


class HttpBackendConfig(_RemoteBackend):
    type: Literal["http"] = "http"

    @field_validator("type", mode="before")
    @classmethod
    def _normalise_type(cls, value: object) -> object:
        return "http" if value in HTTP_TYPE_ALIASES else value


class SseBackendConfig(_RemoteBackend):
    type: Literal["sse"] = "sse"


class RestBackendConfig(BackendBase):
    """A directory of capability files served as one backend."""

    type: Literal["rest"] = "rest"
    dir: str = Field(min_length=1, description="Directory of capability files (*.yaml, *.yml, *.json).")
    base_url: str | None = Field(default=None, description="Prefix for capability URLs that start with '/'.")
    headers: dict[str, str] = Field(default_factory=dict, description="Sent with every request; ${VAR} allowed.")
    timeout: float = Field(default=30.0, gt=0, description="Seconds a request may take by default.")

    def identity(self) -> dict[str, Any]:
        # The files are watched live, so their contents are not part of the identity. Header values
        # usually hold credentials: identify by header names only.
        return {
            "type": self.type,
            "dir": self.dir,
            "base_url": self.base_url,
            "headers": sorted(self.headers),
            "timeout": self.timeout,
        }


class PluginBackendConfig(BackendBase):
    """A module of `@tool` functions, imported into the gateway's process."""

    type: Literal["plugin"] = "plugin"
    module: str = Field(
        min_length=1, description="An import path (`my_tools`, `pkg.tools`) or the path of a `.py` file."
    )
    path: str | None = Field(
        default=None, description="A directory put first on sys.path (and the base of a relative file path)."
    )

    def is_file(self) -> bool:
        """Whether `module` names a file rather than an import path."""
        return self.module.endswith(".py") or "/" in self.module or os.sep in self.module

    def resolved(self, base: Path) -> PluginBackendConfig:
        """This config with a relative `path` (or, without one, a relative file `module`) made absolute from `base`."""
        update: dict[str, str] = {}
        if self.path is not None and not Path(self.path).expanduser().is_absolute():
            update["path"] = str(base / self.path)
        elif self.path is None and self.is_file() and not Path(self.module).expanduser().is_absolute():
            update["module"] = str(base / self.module)
        return self.model_copy(update=update)

    def source_file(self) -> Path | None:
        """The module's own file, found without importing (or running) anything; None when not found."""
        if self.is_file():
            file = Path(self.module).expanduser()
            return file if file.is_absolute() or self.path is None else Path(self.path).expanduser() / file
        search = [*([str(Path(self.path).expanduser())] if self.path else []), *sys.path]
        parts = self.module.split(".")
        spec = None
        for depth in range(1, len(parts) + 1):  # each package's own search path, as importing would use
            spec = importlib.machinery.PathFinder.find_spec(".".join(parts[:depth]), search)
            if spec is None:
                return None
            search = list(spec.submodule_search_locations or [])
        return Path(spec.origin) if spec is not None and spec.has_location and spec.origin else None

    def identity(self) -> dict[str, Any]:
        # The module's source is part of what decides its tools: an edited file misses the catalog cache.
        file = self.source_file()
        try:
            digest = hashlib.sha256(file.read_bytes()).hexdigest()[:16] if file is not None else None
        except OSError:
            digest = None
        return {"type": self.type, "module": self.module, "path": self.path, "source": digest}


def _backend_kind(data: Any) -> str:
    if isinstance(data, BaseModel):
        return str(getattr(data, "type", "stdio"))
    if not isinstance(data, dict):
        return "stdio"
    kind = data.get("type") or data.get("transport")
    if kind in HTTP_TYPE_ALIASES:
        return "http"
    if kind in ("stdio", "sse", "rest", "plugin"):
        return str(kind)
    if kind is None and "url" in data and "command" not in data:
        return "http"
    return "stdio"


McpBackendConfig = StdioBackendConfig | HttpBackendConfig | SseBackendConfig
"""Backends that are MCP servers (what client config files can hold)."""
AnyBackendConfig = McpBackendConfig | RestBackendConfig | PluginBackendConfig

BACKEND_KINDS = ("stdio", "http", "sse", "rest", "plugin")
"""The tags of the backend union, which pydantic puts into the location of a validation error."""


def error_location(loc: Sequence[str | int], *, tag_at: int) -> str:
    """A validation error's location as the file spells it: the union's tag (at `tag_at`) left out."""
    parts = list(loc)
    if len(parts) > tag_at and parts[tag_at] in BACKEND_KINDS:
        del parts[tag_at]
    return ".".join(str(part) for part in parts)


BackendConfig = Annotated[
    Annotated[StdioBackendConfig, Tag("stdio")]
    | Annotated[HttpBackendConfig, Tag("http")]
    | Annotated[SseBackendConfig, Tag("sse")]
    | Annotated[RestBackendConfig, Tag("rest")]
    | Annotated[PluginBackendConfig, Tag("plugin")],
    Discriminator(_backend_kind),
]


class HttpSettings(_Strict):
    host: str = Field(default="127.0.0.1", description="Interface to bind; loopback unless told otherwise.")
    port: int = Field(default=8765, ge=0, le=65535)
    path: str = "/mcp"


class GatewaySettings(_Strict):
    name: str = "quiver"
    idle_timeout: float = Field(default=600.0, ge=0, description="Default for backends; 0 = never stop.")
    call_timeout: float = Field(default=120.0, gt=0)
    startup_timeout: float = Field(default=30.0, gt=0)
    max_concurrency: int = Field(default=64, gt=0, description="Default calls running at once per backend.")
    max_queue: int = Field(default=256, ge=0, description="Default calls waiting per backend before 'busy'.")
    breaker_threshold: int = Field(default=5, gt=0)
    breaker_cooldown: float = Field(default=30.0, gt=0)
    drain_timeout: float = Field(default=10.0, ge=0, description="Seconds in-flight calls get to finish on shutdown.")
    discover_on_search: bool = Field(
        default=True,
        description="A search starts backends whose tools are not cached yet, lists them and stops them.",
    )
    discovery_timeout: float = Field(default=15.0, gt=0, description="How long a search waits for discovery.")
    max_discovery_concurrency: int = Field(default=4, ge=1)
    exposure: Literal["meta", "aggregate"] = Field(
        default="meta",
        description="'meta': the meta-tools (search, describe, call, servers); 'aggregate': every tool listed.",
    )
    pinned: list[str] = Field(
        default_factory=list,
        description="Tool ids (globs allowed) listed next to the meta-tools and callable directly.",
    )
    suggest_servers: bool = Field(
        default=True, description="Search also finds servers from the manifest that are not installed yet."
    )
    semantic_search: bool | None = Field(
        default=None,
        description="Rank with the local embedding model: null uses it when the semantic extra is installed,"
        " false keeps search lexical, true refuses to start without it.",
    )
    install: Literal["local", "everyone", "off"] = Field(
        default="local",
        description="Who may install manifest servers with the install_server meta-tool: the local user"
        " (stdio, or HTTP without credentials on loopback), every caller, or nobody (the tool is not listed).",
    )
    plugin_entry_points: bool = Field(
        default=True, description="Serve the plugins installed packages publish under the quiver.plugins entry points."
    )
    operator_tools: bool = Field(
        default=False, description="Add list_calls and cancel_call to the meta-tools (for operators)."
    )
    tracing: bool = Field(
        default=False, description="OpenTelemetry spans for downstream calls (needs the `otel` extra)."
    )
    backend_endpoints: bool = Field(default=True, description="Serve each backend alone at /mcp/{backend} (HTTP).")
    cache_dir: str | None = Field(default=None, description="Catalog cache; default: the user cache dir.")
    state_dir: str | None = Field(default=None, description="Backend logs; default: the user state dir.")
    http: HttpSettings = Field(default_factory=HttpSettings)


class QuiverConfig(_Strict):
    backends: dict[str, BackendConfig] = Field(default_factory=dict)
    gateway: GatewaySettings = Field(default_factory=GatewaySettings)
    policy: PolicyConfig = Field(default_factory=PolicyConfig)
    auth: AuthConfig = Field(default_factory=AuthConfig)
    source: Path | None = Field(default=None, exclude=True, description="The file this was read from.")
    policy_source: Path | None = Field(default=None, exclude=True, description="The policy's own file, if any.")

    @field_validator("backends")
    @classmethod
    def _valid_names(cls, value: dict[str, BackendBase]) -> dict[str, BackendBase]:
        for name in value:
            try:
                check_backend_name(name)
            except ConfigError as exc:
                raise ValueError(f"{exc.message}; {exc.hint}") from None
        return value

    def enabled_backends(self) -> dict[str, AnyBackendConfig]:
        return {name: backend for name, backend in self.backends.items() if backend.enabled}
