"""The MCP config formats of the clients Quiver wires itself into (see docs/CLIENTS.md).

Each class names the client's files per scope and translates one server entry both ways. Most
clients use Claude Desktop's `mcpServers` shape and differ only in how a remote server is written
(`url`, `serverUrl`, `httpUrl`, or a `type`); VS Code, Zed, opencode and Codex have shapes of
their own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

from quiver.clients.base import (
    Client,
    ClientConfigError,
    Env,
    Location,
    Scope,
    Unsupported,
    backend_from,
    enabled_of,
    remote_type,
    stdio_entry,
    stdio_parts,
)
from quiver.config.models import McpBackendConfig, StdioBackendConfig


def _mapping(entry: Any) -> Mapping[str, Any]:
    if not isinstance(entry, Mapping):
        raise Unsupported(f"the entry is a {type(entry).__name__}, not an object")
    return entry


class _McpServers(Client):
    """The `mcpServers` shape: `command`/`args`/`env` for stdio, a URL key for remote servers."""

    url_key: ClassVar[str] = "url"
    typed: ClassVar[bool] = False  # whether entries carry "type": "stdio" / "http" / "sse"

    def render(self, backend: McpBackendConfig) -> dict[str, Any]:
        if isinstance(backend, StdioBackendConfig):
            return stdio_entry(backend, typed=self.typed)
        entry: dict[str, Any] = {"type": backend.type} if self.typed else {}
        entry[self.url_key] = backend.url
        if backend.headers:
            entry["headers"] = dict(backend.headers)
        return entry

    def parse(self, entry: Any, env: Env) -> McpBackendConfig:
        entry = _mapping(entry)
        if "command" in entry:
            return backend_from(stdio_parts(entry) | enabled_of(entry), env)
        url = self.remote_url(entry)
        if url is None:
            raise Unsupported("has neither a command nor a URL")
        kind = self.remote_kind(entry, url)
        return backend_from({"type": kind, "url": url, "headers": entry.get("headers")} | enabled_of(entry), env)

    def remote_url(self, entry: Mapping[str, Any]) -> Any:
        return entry.get(self.url_key, entry.get("url"))

    def remote_kind(self, entry: Mapping[str, Any], url: Any) -> str:
        return remote_type(str(url), entry.get("type") or entry.get("transport"))


class ClaudeCode(_McpServers):
    """Claude Code: `~/.claude.json` (user, and per-project "local"), `.mcp.json` (project)."""

    name = "claude-code"
    title = "Claude Code"
    typed = True

    def files(self, env: Env) -> dict[Scope, list[Path]]:
        user = Path(env.environ.get("CLAUDE_CONFIG_DIR") or env.home) / ".claude.json"
        return {"user": [user], "local": [user], "project": [env.cwd / ".mcp.json"]}

    def location(self, env: Env, scope: Scope | None = None) -> Location:
        found = super().location(env, scope)
        if found.scope == "local":  # private to this project, inside the user file
            return replace(found, keys=("projects", str(env.cwd), "mcpServers"))
        return found


class ClaudeDesktop(_McpServers):
    """Claude Desktop: `claude_desktop_config.json` in the app's settings folder; local servers only."""

    name = "claude-desktop"
    title = "Claude Desktop"

    def files(self, env: Env) -> dict[Scope, list[Path]]:
        return {"user": [env.app_data() / "Claude" / "claude_desktop_config.json"]}

    def render(self, backend: McpBackendConfig) -> dict[str, Any]:
        if not isinstance(backend, StdioBackendConfig):
            raise ClientConfigError(
                "Claude Desktop's config file only launches local (stdio) servers",
                hint="use --mode stdio (remote servers are added in Claude Desktop's Connectors settings)",
            )
        return super().render(backend)


class Cursor(_McpServers):
    """Cursor: `~/.cursor/mcp.json` (user), `.cursor/mcp.json` (project)."""

    name = "cursor"
    title = "Cursor"

    def files(self, env: Env) -> dict[Scope, list[Path]]:
        return {"user": [env.home / ".cursor" / "mcp.json"], "project": [env.cwd / ".cursor" / "mcp.json"]}


class VsCode(_McpServers):
    """VS Code: `.vscode/mcp.json` (project) or the profile's `mcp.json` (user); key `servers`."""

    name = "vscode"
    title = "VS Code"
    keys = ("servers",)
    typed = True
    default_scope = "project"

    def files(self, env: Env) -> dict[Scope, list[Path]]:
        return {"project": [env.cwd / ".vscode" / "mcp.json"], "user": [env.app_data() / "Code" / "User" / "mcp.json"]}


class Windsurf(_McpServers):
    """Windsurf: `~/.codeium/windsurf/mcp_config.json`; a remote server's URL is `serverUrl`."""

    name = "windsurf"
    title = "Windsurf"
    url_key = "serverUrl"
    transport_keys = _McpServers.transport_keys | {"serverUrl"}

    def files(self, env: Env) -> dict[Scope, list[Path]]:
        return {"user": [env.home / ".codeium" / "windsurf" / "mcp_config.json"]}


class Gemini(_McpServers):
    """Gemini CLI: `~/.gemini/settings.json`, `.gemini/settings.json`; `httpUrl` is streamable HTTP."""

    name = "gemini"
    title = "Gemini CLI"
    url_key = "httpUrl"
    transport_keys = _McpServers.transport_keys | {"httpUrl"}

    def files(self, env: Env) -> dict[Scope, list[Path]]:
        return {"user": [env.home / ".gemini" / "settings.json"], "project": [env.cwd / ".gemini" / "settings.json"]}

    def render(self, backend: McpBackendConfig) -> dict[str, Any]:
        entry = super().render(backend)
        if backend.type == "sse":  # Gemini's `url` key is its SSE transport
            entry["url"] = entry.pop("httpUrl")
        return entry

    def remote_kind(self, entry: Mapping[str, Any], url: Any) -> str:
        if entry.get("type") or entry.get("transport"):
            return super().remote_kind(entry, url)
        return "http" if "httpUrl" in entry else "sse"


class Zed(Client):
    """Zed: `context_servers` in `settings.json`, in the flat form Zed's docs show today.

    Older Zed wrote `"command": {"path", "args", "env"}` (and `"source": "custom"`); both are read.
    """

    name = "zed"
    title = "Zed"
    keys = ("context_servers",)
    transport_keys = Client.transport_keys | {"source", "settings"}

    def files(self, env: Env) -> dict[Scope, list[Path]]:
        user = (env.app_data() / "Zed") if env.system == "windows" else (env.config_home() / "zed")
        return {"user": [user / "settings.json"], "project": [env.cwd / ".zed" / "settings.json"]}

    def render(self, backend: McpBackendConfig) -> dict[str, Any]:
        if isinstance(backend, StdioBackendConfig):
            return stdio_entry(backend, always_env=True)
        return {"url": backend.url} | ({"headers": dict(backend.headers)} if backend.headers else {})

    def parse(self, entry: Any, env: Env) -> McpBackendConfig:
        entry = _mapping(entry)
        command = entry.get("command")
        if isinstance(command, Mapping):  # the older nested form
            entry = {**entry, "command": command.get("path"), "args": command.get("args"), "env": command.get("env")}
            command = entry["command"]
        if command is not None:
            return backend_from(stdio_parts(entry) | enabled_of(entry), env)
        if "url" in entry:
            url = str(entry["url"])
            return backend_from({"type": remote_type(url), "url": url, "headers": entry.get("headers")}, env)
        raise Unsupported("is provided by a Zed extension (no command or URL in settings)")


class Codex(Client):
    """Codex: `[mcp_servers.NAME]` tables in `~/.codex/config.toml` (`$CODEX_HOME`)."""

    name = "codex"
    title = "Codex"
    keys = ("mcp_servers",)
    toml = True
    transport_keys = frozenset(
        {"command", "args", "env", "cwd", "url", "http_headers", "env_http_headers", "bearer_token_env_var"}
    )

    def files(self, env: Env) -> dict[Scope, list[Path]]:
        home = Path(env.environ.get("CODEX_HOME") or env.home / ".codex")
        return {"user": [home / "config.toml"], "project": [env.cwd / ".codex" / "config.toml"]}

    def render(self, backend: McpBackendConfig) -> dict[str, Any]:
        if isinstance(backend, StdioBackendConfig):
            return stdio_entry(backend)
        if backend.type == "sse":
            raise ClientConfigError("Codex reaches remote servers over streamable HTTP only", hint="use an HTTP URL")
        return {"url": backend.url} | ({"http_headers": dict(backend.headers)} if backend.headers else {})

    def parse(self, entry: Any, env: Env) -> McpBackendConfig:
        entry = _mapping(entry)
        if "command" in entry:
            return backend_from(stdio_parts(entry) | enabled_of(entry), env)
        if "url" not in entry:
            raise Unsupported("has neither a command nor a url")
        headers = dict(entry.get("http_headers") or {})
        headers |= {name: f"${{{var}}}" for name, var in (entry.get("env_http_headers") or {}).items()}
        if entry.get("bearer_token_env_var"):
            headers["Authorization"] = f"Bearer ${{{entry['bearer_token_env_var']}}}"
        return backend_from({"type": "http", "url": entry["url"], "headers": headers} | enabled_of(entry), env)


class OpenCode(Client):
    """opencode: key `mcp` in `opencode.json`; `type: local` runs `command` (one array), `remote` a URL."""

    name = "opencode"
    title = "opencode"
    keys = ("mcp",)
    transport_keys = frozenset({"type", "command", "environment", "url", "headers"})

    def files(self, env: Env) -> dict[Scope, list[Path]]:
        user = env.config_home() / "opencode"
        return {
            "user": [user / "opencode.json", user / "opencode.jsonc"],
            "project": [env.cwd / "opencode.json", env.cwd / "opencode.jsonc"],
        }

    def render(self, backend: McpBackendConfig) -> dict[str, Any]:
        if isinstance(backend, StdioBackendConfig):
            entry: dict[str, Any] = {"type": "local", "command": [backend.command, *backend.args]}
            if backend.env:
                entry["environment"] = dict(backend.env)
        else:
            entry = {"type": "remote", "url": backend.url}
            if backend.headers:
                entry["headers"] = dict(backend.headers)
        return entry | {"enabled": True}

    def parse(self, entry: Any, env: Env) -> McpBackendConfig:
        entry = _mapping(entry)
        kind = entry.get("type")
        if kind == "local":
            command = entry.get("command")
            if not isinstance(command, list) or not command:
                raise Unsupported("command: must be a non-empty array")
            data = {"type": "stdio", "command": command[0], "args": command[1:], "env": entry.get("environment")}
            return backend_from(data | enabled_of(entry), env)
        if kind == "remote":
            url = str(entry.get("url", ""))
            data = {"type": remote_type(url), "url": url, "headers": entry.get("headers")}
            return backend_from(data | enabled_of(entry), env)
        raise Unsupported(f"type: expected 'local' or 'remote', not {kind!r}")


CLIENTS: dict[str, Client] = {
    client.name: client
    for client in (
        ClaudeCode(),
        ClaudeDesktop(),
        Cursor(),
        VsCode(),
        Windsurf(),
        Zed(),
        Codex(),
        Gemini(),
        OpenCode(),
    )
}
