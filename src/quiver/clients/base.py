"""What every client format shares: where its files are, and the translation to Quiver's models.

A `Client` knows the files an MCP client reads (per scope and operating system) and translates one
server entry both ways: `parse` turns the client's entry into a Quiver backend model, `render`
turns a backend model into the client's entry. Paths come from an `Env` (home, working directory,
environment variables, system), never from the process directly, so tests can use a fake home.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import TypeAdapter, ValidationError

from quiver.config.models import (
    AnyBackendConfig,
    BackendConfig,
    HttpBackendConfig,
    McpBackendConfig,
    SseBackendConfig,
    StdioBackendConfig,
    error_location,
)
from quiver.errors import QuiverError

Scope = Literal["user", "project", "local"]
System = Literal["linux", "darwin", "windows"]

# The name Quiver's own entry has in a client's config.
ENTRY_NAME = "quiver"

_BACKEND = TypeAdapter[AnyBackendConfig](BackendConfig)
_ENV_REFERENCE = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}")


class ClientConfigError(QuiverError):
    """A client's config file cannot be read, or cannot be edited safely."""

    code = "client_config"


class Unsupported(Exception):
    """A client's server entry that has no Quiver equivalent; the message says why."""


@dataclass(frozen=True)
class Env:
    """The facts client paths depend on."""

    home: Path
    cwd: Path
    environ: Mapping[str, str]
    system: System

    @classmethod
    def current(cls) -> Env:
        environ = dict(os.environ)
        home = environ.get("HOME") or environ.get("USERPROFILE") or str(Path.home())
        system: System = "darwin" if sys.platform == "darwin" else "windows" if os.name == "nt" else "linux"
        return cls(Path(home), Path.cwd(), environ, system)

    def config_home(self) -> Path:
        """`$XDG_CONFIG_HOME`, else `~/.config` (also what Zed and opencode use on macOS)."""
        return Path(self.environ.get("XDG_CONFIG_HOME") or self.home / ".config")

    def app_data(self) -> Path:
        """Where desktop (Electron) apps keep settings on this system."""
        if self.system == "darwin":
            return self.home / "Library" / "Application Support"
        if self.system == "windows":
            return Path(self.environ.get("APPDATA") or self.home / "AppData" / "Roaming")
        return self.config_home()

    def show(self, path: Path) -> str:
        """`path` with the home directory written as `~`."""
        try:
            return "~/" + path.relative_to(self.home).as_posix()
        except ValueError:
            return str(path)


@dataclass(frozen=True)
class Location:
    """One place a client keeps servers: a file, and the keys leading to its servers mapping."""

    client: str
    scope: Scope
    path: Path
    keys: tuple[str, ...]
    toml: bool = False


class Client(ABC):
    """One MCP client's config format."""

    name: ClassVar[str]
    title: ClassVar[str]
    keys: ClassVar[tuple[str, ...]] = ("mcpServers",)
    toml: ClassVar[bool] = False
    default_scope: ClassVar[Scope] = "user"
    # Keys of an entry that say how to reach the server; `setup` replaces these and keeps the rest.
    transport_keys: ClassVar[frozenset[str]] = frozenset({"type", "command", "args", "env", "cwd", "url", "headers"})

    @abstractmethod
    def files(self, env: Env) -> dict[Scope, list[Path]]:
        """Candidate files per scope; the first that exists is used, else the first."""

    @abstractmethod
    def render(self, backend: McpBackendConfig) -> dict[str, Any]:
        """The client's entry for `backend`; raise `ClientConfigError` when it cannot reach it."""

    @abstractmethod
    def parse(self, entry: Any, env: Env) -> McpBackendConfig:
        """Quiver's model of the client's entry; raise `Unsupported` when there is none."""

    def scopes(self, env: Env) -> list[Scope]:
        return list(self.files(env))

    def location(self, env: Env, scope: Scope | None = None) -> Location:
        scope = scope or self.default_scope
        candidates = self.files(env).get(scope)
        if not candidates:
            known = ", ".join(self.scopes(env))
            raise ClientConfigError(
                f"{self.title} has no {scope}-scope config file", hint=f"use --scope with one of: {known}"
            )
        path = next((path for path in candidates if path.is_file()), candidates[0])
        return Location(self.name, scope, path, self.keys, self.toml)

    def locations(self, env: Env) -> list[Location]:
        return [self.location(env, scope) for scope in self.scopes(env)]

    def merge(self, existing: Any, backend: McpBackendConfig) -> dict[str, Any]:
        """The entry `setup` writes: the rendered keys, plus what else the user had on it."""
        kept = {}
        if isinstance(existing, Mapping):
            kept = {key: value for key, value in existing.items() if key not in self.transport_keys}
        return kept | self.render(backend)


def backend_from(data: dict[str, Any], env: Env) -> McpBackendConfig:
    """Validate a normalised entry as a Quiver backend, translating client variable syntax."""
    data = {key: value for key, value in data.items() if value is not None}
    data = _variables(data, env)
    try:
        backend = _BACKEND.validate_python(data)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        where = error_location(error["loc"], tag_at=0)
        raise Unsupported(f"{where or 'entry'}: {error['msg'].removeprefix('Value error, ')}") from None
    if not isinstance(backend, StdioBackendConfig | HttpBackendConfig | SseBackendConfig):
        raise Unsupported(f"type '{backend.type}' is not an MCP server a client can run")
    return backend


def _variables(value: Any, env: Env) -> Any:
    """`${env:X}` (VS Code, Cursor) becomes `${X}`; `${workspaceFolder}` the working directory."""
    if isinstance(value, str):
        if "${input:" in value:
            raise Unsupported("uses ${input:...} variables, which only the client can prompt for")
        value = _ENV_REFERENCE.sub(r"${\1}", value)
        return value.replace("${workspaceFolder}", str(env.cwd)).replace("${userHome}", str(env.home))
    if isinstance(value, list):
        return [_variables(item, env) for item in value]
    if isinstance(value, dict):
        return {key: _variables(item, env) for key, item in value.items()}
    return value


def stdio_parts(entry: Mapping[str, Any]) -> dict[str, Any]:
    """The stdio keys of an `mcpServers`-style entry."""
    return {
        "type": "stdio",
        "command": entry.get("command"),
        "args": entry.get("args"),
        "env": entry.get("env"),
        "cwd": entry.get("cwd"),
    }


def enabled_of(entry: Mapping[str, Any]) -> dict[str, Any]:
    disabled = entry.get("disabled") is True or entry.get("enabled") is False
    return {"enabled": False} if disabled else {}


def remote_type(url: str, declared: Any = None) -> str:
    """The transport of a remote entry: as declared, else SSE for an `/sse` endpoint, else HTTP."""
    if declared in ("sse", "http", "streamable-http", "streamableHttp"):
        return "sse" if declared == "sse" else "http"
    return "sse" if url.rstrip("/").endswith("/sse") else "http"


def stdio_entry(backend: StdioBackendConfig, *, typed: bool = False, always_env: bool = False) -> dict[str, Any]:
    entry: dict[str, Any] = {"type": "stdio"} if typed else {}
    entry |= {"command": backend.command, "args": list(backend.args)}
    if backend.env or always_env:
        entry["env"] = dict(backend.env)
    if backend.cwd:
        entry["cwd"] = backend.cwd
    return entry


# What launches Quiver, and how its own entry is recognised among a client's servers.


def quiver_command() -> list[str]:
    """The command line that runs `quiver`: the name when it is on PATH, else an absolute path."""
    if shutil.which("quiver"):
        return ["quiver"]
    beside = Path(sys.executable).parent / ("quiver.exe" if os.name == "nt" else "quiver")
    if beside.is_file():
        return [str(beside)]
    return [sys.executable, "-m", "quiver"]


def quiver_backend(
    mode: Literal["stdio", "http"], *, config: Path | None, url: str, headers: Mapping[str, str] | None = None
) -> McpBackendConfig:
    """The backend that reaches this Quiver: `quiver stdio --config PATH`, or the gateway's URL."""
    if mode == "http":
        return HttpBackendConfig(url=url, headers=dict(headers or {}))
    command, *prefix = quiver_command()
    args = [*prefix, "stdio", *(["--config", str(config)] if config is not None else [])]
    return StdioBackendConfig(command=command, args=args)


def is_quiver(backend: AnyBackendConfig, own_urls: frozenset[str] = frozenset()) -> bool:
    """Whether `backend` is a Quiver gateway (which must never become one of its own backends)."""
    if isinstance(backend, StdioBackendConfig):
        program = Path(backend.command).name.lower().removesuffix(".exe")
        if program == "quiver":
            return True
        args = [arg.lower() for arg in backend.args]
        if "-m" in args and args.index("-m") + 1 < len(args) and args[args.index("-m") + 1] == "quiver":
            return True
        return program in ("uvx", "pipx") and any(arg in ("mcp-quiver", "quiver") for arg in args)
    if isinstance(backend, HttpBackendConfig | SseBackendConfig):
        return backend.url.rstrip("/") in {url.rstrip("/") for url in own_urls}
    return False


def identity(backend: AnyBackendConfig) -> tuple[str, ...]:
    """What makes two entries the same server for import: command and args, or the URL."""
    if isinstance(backend, StdioBackendConfig):
        return ("stdio", backend.command, *backend.args)
    if isinstance(backend, HttpBackendConfig | SseBackendConfig):
        return (backend.type, backend.url.rstrip("/"))
    return (backend.type, backend.fingerprint())
