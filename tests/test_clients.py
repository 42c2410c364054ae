"""Client formats: their files per system, both-way translation, and text edits that keep the rest."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from quiver.clients import (
    CLIENTS,
    ClientConfigError,
    ClientFile,
    Env,
    Unsupported,
    discover,
    get_client,
    is_quiver,
    jsonc,
    plan_import,
    quiver_backend,
    replace_file,
    tomledit,
)
from quiver.clients.base import System
from quiver.config.models import HttpBackendConfig, SseBackendConfig, StdioBackendConfig
from quiver.errors import QuiverError


def make_env(tmp_path: Path, system: System = "linux", **environ: str) -> Env:
    return Env(home=tmp_path / "home", cwd=tmp_path / "proj", environ=environ, system=system)


# Where each client's files are.

USER_FILES = {
    ("claude-code", "linux"): "home/.claude.json",
    ("claude-desktop", "linux"): "home/.config/Claude/claude_desktop_config.json",
    ("claude-desktop", "darwin"): "home/Library/Application Support/Claude/claude_desktop_config.json",
    ("claude-desktop", "windows"): "appdata/Claude/claude_desktop_config.json",
    ("cursor", "linux"): "home/.cursor/mcp.json",
    ("vscode", "linux"): "home/.config/Code/User/mcp.json",
    ("vscode", "darwin"): "home/Library/Application Support/Code/User/mcp.json",
    ("vscode", "windows"): "appdata/Code/User/mcp.json",
    ("windsurf", "darwin"): "home/.codeium/windsurf/mcp_config.json",
    ("zed", "linux"): "home/.config/zed/settings.json",
    ("zed", "darwin"): "home/.config/zed/settings.json",
    ("codex", "linux"): "home/.codex/config.toml",
    ("gemini", "linux"): "home/.gemini/settings.json",
    ("opencode", "darwin"): "home/.config/opencode/opencode.json",
}


@pytest.mark.parametrize(("client", "system"), sorted(USER_FILES))
def test_user_file_per_system(tmp_path: Path, client: str, system: System) -> None:
    env = make_env(tmp_path, system, APPDATA=str(tmp_path / "appdata"))
    assert get_client(client).location(env, "user").path == tmp_path / USER_FILES[client, system]


@pytest.mark.parametrize(
    ("client", "relative", "keys"),
    [
        ("claude-code", ".mcp.json", ("mcpServers",)),
        ("cursor", ".cursor/mcp.json", ("mcpServers",)),
        ("vscode", ".vscode/mcp.json", ("servers",)),
        ("zed", ".zed/settings.json", ("context_servers",)),
        ("codex", ".codex/config.toml", ("mcp_servers",)),
        ("gemini", ".gemini/settings.json", ("mcpServers",)),
        ("opencode", "opencode.json", ("mcp",)),
    ],
)
def test_project_file(tmp_path: Path, client: str, relative: str, keys: tuple[str, ...]) -> None:
    location = get_client(client).location(make_env(tmp_path), "project")
    assert (location.path, location.keys) == (tmp_path / "proj" / relative, keys)


def test_environment_overrides_and_xdg(tmp_path: Path) -> None:
    env = make_env(
        tmp_path,
        XDG_CONFIG_HOME=str(tmp_path / "xdg"),
        CODEX_HOME=str(tmp_path / "codex"),
        CLAUDE_CONFIG_DIR=str(tmp_path / "claude"),
    )
    assert get_client("claude-desktop").location(env).path == tmp_path / "xdg/Claude/claude_desktop_config.json"
    assert get_client("zed").location(env).path == tmp_path / "xdg/zed/settings.json"
    assert get_client("opencode").location(env).path == tmp_path / "xdg/opencode/opencode.json"
    assert get_client("codex").location(env).path == tmp_path / "codex/config.toml"
    assert get_client("claude-code").location(env).path == tmp_path / "claude/.claude.json"


def test_claude_code_local_scope_is_the_project_entry_of_the_user_file(tmp_path: Path) -> None:
    location = get_client("claude-code").location(make_env(tmp_path), "local")
    assert location.path == tmp_path / "home/.claude.json"
    assert location.keys == ("projects", str(tmp_path / "proj"), "mcpServers")


def test_opencode_reads_jsonc_when_that_is_what_exists(tmp_path: Path) -> None:
    env = make_env(tmp_path)
    (tmp_path / "proj").mkdir()
    (tmp_path / "proj/opencode.jsonc").write_text("{}")
    assert get_client("opencode").location(env, "project").path.name == "opencode.jsonc"


def test_unknown_scope_and_client_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ClientConfigError, match="Windsurf has no project-scope config file"):
        get_client("windsurf").location(make_env(tmp_path), "project")
    with pytest.raises(QuiverError, match="unknown client 'cursr'"):
        get_client("cursr")


# Translating entries.

STDIO = StdioBackendConfig(command="npx", args=["-y", "pkg"], env={"TOKEN": "${TOKEN}"})
HTTP = HttpBackendConfig(url="https://example.com/mcp", headers={"Authorization": "Bearer ${KEY}"})

RENDERED_HTTP = {
    "claude-code": {"type": "http", "url": HTTP.url, "headers": HTTP.headers},
    "cursor": {"url": HTTP.url, "headers": HTTP.headers},
    "vscode": {"type": "http", "url": HTTP.url, "headers": HTTP.headers},
    "windsurf": {"serverUrl": HTTP.url, "headers": HTTP.headers},
    "zed": {"url": HTTP.url, "headers": HTTP.headers},
    "codex": {"url": HTTP.url, "http_headers": HTTP.headers},
    "gemini": {"httpUrl": HTTP.url, "headers": HTTP.headers},
    "opencode": {"type": "remote", "url": HTTP.url, "headers": HTTP.headers, "enabled": True},
}


@pytest.mark.parametrize("name", sorted(CLIENTS))
def test_stdio_round_trip(tmp_path: Path, name: str) -> None:
    client = CLIENTS[name]
    assert client.parse(client.render(STDIO), make_env(tmp_path)) == STDIO


@pytest.mark.parametrize("name", sorted(RENDERED_HTTP))
def test_remote_entries_use_each_clients_key(tmp_path: Path, name: str) -> None:
    client = CLIENTS[name]
    assert client.render(HTTP) == RENDERED_HTTP[name]
    assert client.parse(RENDERED_HTTP[name], make_env(tmp_path)) == HTTP


def test_claude_desktop_cannot_launch_a_remote_server() -> None:
    with pytest.raises(ClientConfigError, match="only launches local"):
        CLIENTS["claude-desktop"].render(HTTP)


@pytest.mark.parametrize(
    ("client", "entry", "expected"),
    [
        ("gemini", {"url": "https://x.dev/sse"}, SseBackendConfig(url="https://x.dev/sse")),
        ("cursor", {"url": "https://x.dev/sse"}, SseBackendConfig(url="https://x.dev/sse")),
        ("vscode", {"type": "sse", "url": "https://x.dev/events"}, SseBackendConfig(url="https://x.dev/events")),
        (
            "zed",
            {"source": "custom", "command": {"path": "uvx", "args": ["srv"], "env": {"A": "1"}}},
            StdioBackendConfig(command="uvx", args=["srv"], env={"A": "1"}),
        ),
        (
            "codex",
            {"url": "https://x.dev/mcp", "bearer_token_env_var": "TOK", "env_http_headers": {"X-Org": "ORG"}},
            HttpBackendConfig(url="https://x.dev/mcp", headers={"X-Org": "${ORG}", "Authorization": "Bearer ${TOK}"}),
        ),
        (
            "opencode",
            {"type": "local", "command": ["bun", "x", "srv"], "environment": {"A": "1"}, "enabled": False},
            StdioBackendConfig(command="bun", args=["x", "srv"], env={"A": "1"}, enabled=False),
        ),
        (
            "cursor",
            {"command": "node", "args": ["${workspaceFolder}/s.js"], "env": {"K": "${env:K}"}},
            StdioBackendConfig(command="node", args=["{cwd}/s.js"], env={"K": "${K}"}),
        ),
    ],
)
def test_parse_client_specific_forms(
    tmp_path: Path, client: str, entry: dict[str, object], expected: StdioBackendConfig
) -> None:
    env = make_env(tmp_path)
    if isinstance(expected, StdioBackendConfig):
        expected = expected.model_copy(update={"args": [a.replace("{cwd}", str(env.cwd)) for a in expected.args]})
    assert CLIENTS[client].parse(entry, env) == expected


@pytest.mark.parametrize(
    ("client", "entry", "reason"),
    [
        ("zed", {"settings": {"token": "x"}}, "Zed extension"),
        ("vscode", {"type": "stdio", "command": "x", "env": {"K": "${input:key}"}}, "${input:"),
        ("opencode", {"type": "docker"}, "expected 'local' or 'remote'"),
        ("cursor", {"url": "ftp://x"}, "url: must start with http"),
        ("cursor", ["not", "an", "object"], "not an object"),
    ],
)
def test_unsupported_entries_say_why(tmp_path: Path, client: str, entry: object, reason: str) -> None:
    with pytest.raises(Unsupported, match=reason.replace("$", r"\$").replace("{", r"\{")):
        CLIENTS[client].parse(entry, make_env(tmp_path))


def test_merge_keeps_the_users_own_keys_and_swaps_transport() -> None:
    existing = {"command": "old", "args": ["x"], "env": {"A": "1"}, "alwaysAllow": ["t"]}
    merged = CLIENTS["cursor"].merge(existing, HTTP)
    assert merged == {"alwaysAllow": ["t"], "url": HTTP.url, "headers": HTTP.headers}


@pytest.mark.parametrize(
    ("backend", "quiver"),
    [
        (StdioBackendConfig(command="/opt/venv/bin/quiver", args=["stdio"]), True),
        (StdioBackendConfig(command="python3", args=["-m", "quiver", "stdio"]), True),
        (StdioBackendConfig(command="uvx", args=["mcp-quiver", "stdio"]), True),
        (StdioBackendConfig(command="npx", args=["quiver-theme"]), False),
        (HttpBackendConfig(url="http://127.0.0.1:8765/mcp/"), True),
        (HttpBackendConfig(url="https://example.com/mcp"), False),
    ],
)
def test_recognises_quivers_own_entry(backend: StdioBackendConfig, quiver: bool) -> None:
    assert is_quiver(backend, frozenset({"http://127.0.0.1:8765/mcp"})) is quiver


def test_quiver_backend_runs_stdio_with_the_config() -> None:
    backend = quiver_backend("stdio", config=Path("/etc/q.yaml"), url="")
    assert isinstance(backend, StdioBackendConfig)
    assert backend.args[-3:] == ["stdio", "--config", "/etc/q.yaml"]
    assert is_quiver(backend)


# JSONC: one member changes, every other byte stays.

ZED_SETTINGS = """\
// Zed settings
{
  "theme": "One Dark", // my theme
  "context_servers": {
    "other": {"command": "x"}, // keep me
  },
  /* a block
     comment */
  "vim_mode": true,
}
"""


def test_jsonc_add_then_remove_restores_the_text_exactly() -> None:
    added = jsonc.set_member(ZED_SETTINGS, ["context_servers"], "quiver", {"command": "q", "args": ["a"]})
    assert "// my theme" in added
    assert "// keep me" in added
    assert "a block" in added
    assert jsonc.parse(added)["context_servers"]["quiver"] == {"command": "q", "args": ["a"]}
    assert '"args": ["a"]' in added  # plain arrays stay on one line
    assert jsonc.remove_member(added, ["context_servers"], "quiver") == ZED_SETTINGS


def test_jsonc_replace_keeps_neighbours() -> None:
    text = '{\n  "mcpServers": {\n    "a": {"command": "a"},\n    "b": {"command": "b"}\n  },\n  "x": 1\n}\n'
    replaced = jsonc.set_member(text, ["mcpServers"], "a", {"command": "A"})
    assert replaced == text.replace('{"command": "a"}', '{\n      "command": "A"\n    }')


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", {"mcpServers": {"q": 1}}),
        ('{"a": 1}', {"a": 1, "mcpServers": {"q": 1}}),
        ('{\n  "mcpServers": {}\n}', {"mcpServers": {"q": 1}}),
        ('{\n    "projects": {}\n}', {"projects": {}, "mcpServers": {"q": 1}}),
    ],
)
def test_jsonc_creates_missing_containers(text: str, expected: object) -> None:
    assert jsonc.parse(jsonc.set_member(text, ["mcpServers"], "q", 1)) == expected


def test_jsonc_creates_nested_path() -> None:
    result = jsonc.set_member("{}", ["projects", "/p", "mcpServers"], "q", {"command": "x"})
    assert jsonc.parse(result) == {"projects": {"/p": {"mcpServers": {"q": {"command": "x"}}}}}


@pytest.mark.parametrize("key", ["a", "b", "c"])
def test_jsonc_remove_each_position(key: str) -> None:
    text = '{\n  "s": {\n    "a": 1,\n    "b": 2, // bee\n    "c": 3\n  }\n}\n'
    result = jsonc.remove_member(text, ["s"], key)
    assert jsonc.parse(result) == {"s": {k: v for k, v in {"a": 1, "b": 2, "c": 3}.items() if k != key}}
    assert ("// bee" in result) is (key != "b")


def test_jsonc_reports_bad_json_and_non_objects() -> None:
    with pytest.raises(jsonc.JsoncError, match="line 1 column"):
        jsonc.parse('{"a": }')
    with pytest.raises(jsonc.JsoncError, match="'mcpServers' is not an object"):
        jsonc.set_member('{"mcpServers": []}', ["mcpServers"], "q", 1)


# TOML (Codex): one table changes, comments elsewhere stay.

CODEX = """\
# Codex settings
model = "o3"  # the model

[mcp_servers.docs]
command = "npx"
args = ["-y", "docs-mcp"] # pinned

[mcp_servers.docs.env]
API = "1"

[profiles.fast]
model = "o4-mini"
"""


def test_toml_add_replace_remove_keep_the_rest() -> None:
    added = tomledit.set_table(CODEX, ["mcp_servers"], "quiver", {"command": "q", "args": ["stdio"]})
    assert added.startswith(CODEX)
    assert tomllib.loads(added)["mcp_servers"]["quiver"] == {"command": "q", "args": ["stdio"]}
    replaced = tomledit.set_table(
        added, ["mcp_servers"], "quiver", {"url": "http://h/mcp", "http_headers": {"A b": "v"}}
    )
    assert tomllib.loads(replaced)["mcp_servers"]["quiver"] == {"url": "http://h/mcp", "http_headers": {"A b": "v"}}
    assert "# pinned" in replaced
    assert "# the model" in replaced
    assert tomledit.remove_table(replaced, ["mcp_servers"], "quiver") == CODEX


def test_toml_replaces_a_table_with_its_subtables_in_place() -> None:
    result = tomledit.set_table(CODEX, ["mcp_servers"], "docs", {"command": "uvx", "args": ["docs"]})
    assert tomllib.loads(result)["mcp_servers"]["docs"] == {"command": "uvx", "args": ["docs"]}
    assert result.index("[mcp_servers.docs]") < result.index("[profiles.fast]")


def test_toml_refuses_what_it_cannot_rewrite_safely() -> None:
    inline = 'mcp_servers = { quiver = { command = "old" } }\n'
    with pytest.raises(tomledit.TomlEditError, match="edit it by hand"):
        tomledit.set_table(inline, ["mcp_servers"], "quiver", {"command": "new"})


def test_toml_escapes_strings() -> None:
    value = {"command": 'C:\\tools\\"q"', "args": ["tab\there", "ü"]}
    result = tomledit.set_table("", ["mcp_servers"], "q", value)
    assert tomllib.loads(result)["mcp_servers"]["q"] == value


# Files and import planning.


def test_client_file_reports_a_broken_file(tmp_path: Path) -> None:
    env = make_env(tmp_path)
    location = get_client("cursor").location(env)
    location.path.parent.mkdir(parents=True)
    location.path.write_text("{ not json")
    with pytest.raises(ClientConfigError, match=r"mcp\.json: line 1 column 3: invalid JSON"):
        ClientFile.read(location).servers()


def test_replace_file_backs_up_keeps_mode_and_follows_symlinks(tmp_path: Path) -> None:
    real = tmp_path / "dotfiles" / "claude.json"
    real.parent.mkdir()
    real.write_text("old")
    real.chmod(0o600)
    link = tmp_path / ".claude.json"
    link.symlink_to(real)
    backup = replace_file(link, "new")
    assert link.is_symlink()
    assert real.read_text() == "new"
    assert backup == real.with_name("claude.json.quiver.bak")
    assert backup.read_text() == "old"
    assert real.stat().st_mode & 0o777 == 0o600


def test_plan_import_dedupes_by_name_and_by_command(tmp_path: Path) -> None:
    env = make_env(tmp_path)
    desktop = get_client("claude-desktop").location(env)
    desktop.path.parent.mkdir(parents=True)
    desktop.path.write_text(
        """{"mcpServers": {
        "time": {"command": "uvx", "args": ["mcp-server-time"]},
        "clock": {"command": "uvx", "args": ["mcp-server-time"]},
        "fetch": {"command": "uvx", "args": ["mcp-server-fetch"]},
        "git": {"command": "uvx", "args": ["mcp-server-git", "--repo", "."]},
        "quiver": {"command": "quiver", "args": ["stdio"]},
        "my.notes": {"command": "notes-mcp"}
        }}"""
    )
    existing = {
        "fetch": StdioBackendConfig(command="uvx", args=["mcp-server-fetch"]),
        "git": StdioBackendConfig(command="uvx", args=["mcp-server-git"]),
    }
    decisions = plan_import(discover([get_client("claude-desktop")], env), existing, env)
    outcome = {d.found.name: (d.action, d.name, d.reason) for d in decisions}
    assert outcome == {
        "time": ("import", "time", ""),
        "clock": ("skip", "clock", "same command as 'time' (imported from claude-desktop user config)"),
        "fetch": ("skip", "fetch", "already present (in Quiver's config)"),
        "git": ("skip", "git", "name already used by a different server (in Quiver's config)"),
        "quiver": ("skip", "quiver", "Quiver's own entry"),
        "my.notes": ("import", "my-notes", "renamed from 'my.notes'"),
    }
    assert [d.found.name for d in decisions if d.served] == ["time", "clock", "fetch", "my.notes"]
