"""Typed config: backends (one model per transport) and gateway settings.

Loading (files, discovery, env) lives in `loader.py`; everything downstream receives these
models. Backend entries accept the `mcpServers` shape clients already use (`command`/`args`/
`env`/`cwd`, or `type` + `url`/`headers`), plus Quiver's own lifecycle keys.
"""

from __future__ import annotations

import hashlib
import json
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


def _backend_kind(data: Any) -> str:
    if isinstance(data, BaseModel):
        return str(getattr(data, "type", "stdio"))
    if not isinstance(data, dict):
        return "stdio"
    kind = data.get("type") or data.get("transport")
    if kind in HTTP_TYPE_ALIASES:
        return "http"
    if kind in ("stdio", "sse"):
        return str(kind)
    if kind is None and "url" in data and "command" not in data:
        return "http"
    return "stdio"


AnyBackendConfig = StdioBackendConfig | HttpBackendConfig | SseBackendConfig

BackendConfig = Annotated[
    Annotated[StdioBackendConfig, Tag("stdio")]
    | Annotated[HttpBackendConfig, Tag("http")]
    | Annotated[SseBackendConfig, Tag("sse")],
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
