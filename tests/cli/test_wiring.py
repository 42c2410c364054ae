"""setup, import, init, add and remove against realistic client configs in a temporary home."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from quiver.cli.wiring import register
from quiver.clients import CLIENTS, Env, jsonc, quiver_command
from quiver.config.loader import read_config_file, user_config_dir
from quiver.config.models import AnyBackendConfig, HttpBackendConfig, SseBackendConfig, StdioBackendConfig

runner = CliRunner()
app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
register(app)

GITHUB_ARGS = ["-y", "@modelcontextprotocol/server-github"]

# Each client's config as people have it: servers of their own, and settings that are none of Quiver's business.
CLIENT_CONFIGS: dict[str, str] = {
    "claude-code": """{
  "numStartups": 12,
  "theme": "dark",
  "mcpServers": {
    "github": {
      "type": "stdio",
      "command": "npx",
      "args": ["-y", "@modelcontextprotocol/server-github"],
      "env": {"GITHUB_PERSONAL_ACCESS_TOKEN": "${GITHUB_TOKEN}"}
    },
    "sentry": {"type": "http", "url": "https://mcp.sentry.dev/mcp"}
  },
  "projects": {"/elsewhere": {"allowedTools": [], "mcpServers": {}}}
}
""",
    "claude-desktop": """{
  "globalShortcut": "Ctrl+Space",
  "mcpServers": {
    "filesystem": {
      "command": "npx",
      "args": ["-y", "@modelcontextprotocol/server-filesystem", "/home/me/Documents"]
    },
    "github": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-github"]}
  }
}
""",
    "cursor": """{
  "mcpServers": {
    "linear": {"url": "https://mcp.linear.app/sse"},
    "puppeteer": {
      "command": "npx",
      "args": ["-y", "@modelcontextprotocol/server-puppeteer"],
      "env": {"PUPPETEER_LAUNCH_OPTIONS": "{\\"headless\\": true}"}
    }
  }
}
""",
    "vscode": """{
  // Ask for the key once; VS Code stores it.
  "inputs": [
    {"type": "promptString", "id": "perplexity-key", "description": "Perplexity API Key", "password": true}
  ],
  "servers": {
    "perplexity": {
      "type": "stdio",
      "command": "npx",
      "args": ["-y", "server-perplexity-ask"],
      "env": {"PERPLEXITY_API_KEY": "${input:perplexity-key}"}
    },
    "fetch": {"type": "stdio", "command": "uvx", "args": ["mcp-server-fetch"]},
    "remote": {
      "type": "http",
      "url": "https://api.example.com/mcp",
      "headers": {"X-Token": "${env:EXAMPLE_TOKEN}"}
    }
  }
}
""",
    "windsurf": """{
  "mcpServers": {
    "context7": {"serverUrl": "https://mcp.context7.com/mcp"},
    "memory": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-memory"], "disabled": true}
  }
}
""",
    "zed": """// Zed settings
//
// For information on how to configure Zed, see the Zed documentation.
{
  "theme": {"mode": "system", "light": "One Light", "dark": "One Dark"},
  "ui_font_size": 16,
  "context_servers": {
    // installed from the extension store
    "mcp-server-github": {"settings": {"github_personal_access_token": "ghp_x"}},
    "time": {"command": "uvx", "args": ["mcp-server-time"], "env": {}},
    "legacy": {"source": "custom", "command": {"path": "node", "args": ["/opt/srv.js"], "env": {"A": "1"}}},
  },
}
""",
    "codex": """# Codex settings
model = "gpt-5-codex"
approval_policy = "on-request"  # ask before running commands

[mcp_servers.docs]
command = "npx"
args = ["-y", "docs-mcp"]

[mcp_servers.figma]
url = "http://127.0.0.1:3845/mcp"
bearer_token_env_var = "FIGMA_TOKEN"

[profiles.fast]
model = "gpt-5-mini"
""",
    "gemini": """{
  "theme": "GitHub",
  "selectedAuthType": "oauth-personal",
  "mcpServers": {
    "pythonTools": {
      "command": "python",
      "args": ["-m", "my_mcp_server"],
      "cwd": "./mcp-servers/python",
      "env": {"API_KEY": "$MY_API_TOKEN"},
      "timeout": 15000,
      "trust": false
    },
    "httpServer": {"httpUrl": "http://localhost:3000/mcp", "headers": {"Authorization": "Bearer x"}},
    "sseServer": {"url": "http://localhost:8080/sse"}
  }
}
""",
    "opencode": """{
  "$schema": "https://opencode.ai/config.json",
  "theme": "opencode",
  "mcp": {
    "jira": {
      "type": "remote",
      "url": "https://jira.example.com/mcp",
      "enabled": true,
      "headers": {"Authorization": "Bearer ${JIRA_TOKEN}"}
    },
    "everything": {
      "type": "local",
      "command": ["npx", "-y", "@modelcontextprotocol/server-everything"],
      "environment": {"X": "1"}
    }
  }
}
""",
}

IMPORTED: dict[str, dict[str, AnyBackendConfig]] = {
    "claude-code": {
        "github": StdioBackendConfig(
            command="npx", args=GITHUB_ARGS, env={"GITHUB_PERSONAL_ACCESS_TOKEN": "${GITHUB_TOKEN}"}
        ),
        "sentry": HttpBackendConfig(url="https://mcp.sentry.dev/mcp"),
    },
    "claude-desktop": {
        "filesystem": StdioBackendConfig(
            command="npx", args=["-y", "@modelcontextprotocol/server-filesystem", "/home/me/Documents"]
        ),
        "github": StdioBackendConfig(command="npx", args=GITHUB_ARGS),
    },
    "cursor": {
        "linear": SseBackendConfig(url="https://mcp.linear.app/sse"),
        "puppeteer": StdioBackendConfig(
            command="npx",
            args=["-y", "@modelcontextprotocol/server-puppeteer"],
            env={"PUPPETEER_LAUNCH_OPTIONS": '{"headless": true}'},
        ),
    },
    "vscode": {
        "fetch": StdioBackendConfig(command="uvx", args=["mcp-server-fetch"]),
        "remote": HttpBackendConfig(url="https://api.example.com/mcp", headers={"X-Token": "${EXAMPLE_TOKEN}"}),
    },
    "windsurf": {
        "context7": HttpBackendConfig(url="https://mcp.context7.com/mcp"),
        "memory": StdioBackendConfig(command="npx", args=["-y", "@modelcontextprotocol/server-memory"], enabled=False),
    },
    "zed": {
        "time": StdioBackendConfig(command="uvx", args=["mcp-server-time"]),
        "legacy": StdioBackendConfig(command="node", args=["/opt/srv.js"], env={"A": "1"}),
    },
    "codex": {
        "docs": StdioBackendConfig(command="npx", args=["-y", "docs-mcp"]),
        "figma": HttpBackendConfig(url="http://127.0.0.1:3845/mcp", headers={"Authorization": "Bearer ${FIGMA_TOKEN}"}),
    },
    "gemini": {
        "pythonTools": StdioBackendConfig(
            command="python", args=["-m", "my_mcp_server"], env={"API_KEY": "$MY_API_TOKEN"}, cwd="./mcp-servers/python"
        ),
        "httpServer": HttpBackendConfig(url="http://localhost:3000/mcp", headers={"Authorization": "Bearer x"}),
        "sseServer": SseBackendConfig(url="http://localhost:8080/sse"),
    },
    "opencode": {
        "jira": HttpBackendConfig(
            url="https://jira.example.com/mcp", headers={"Authorization": "Bearer ${JIRA_TOKEN}"}
        ),
        "everything": StdioBackendConfig(
            command="npx", args=["-y", "@modelcontextprotocol/server-everything"], env={"X": "1"}
        ),
    },
}

SKIPPED = {
    "vscode": ("perplexity", "uses ${input:...} variables"),
    "zed": ("mcp-server-github", "provided by a Zed extension"),
}

URL = "http://127.0.0.1:8765/mcp"
HTTP_ENTRIES: dict[str, dict[str, Any]] = {
    "claude-code": {"type": "http", "url": URL},
    "cursor": {"url": URL},
    "vscode": {"type": "http", "url": URL},
    "windsurf": {"serverUrl": URL},
    "zed": {"url": URL},
    "codex": {"url": URL},
    "gemini": {"httpUrl": URL},
    "opencode": {"type": "remote", "url": URL, "enabled": True},
}


def stdio_entry(client: str, config: Path) -> dict[str, Any]:
    command, *prefix = quiver_command()
    args = [*prefix, "stdio", "--config", str(config.resolve())]
    if client == "opencode":
        return {"type": "local", "command": [command, *args], "enabled": True}
    entry: dict[str, Any] = {"type": "stdio"} if client in ("claude-code", "vscode") else {}
    entry |= {"command": command, "args": args}
    return entry | ({"env": {}} if client == "zed" else {})


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("APPDATA", str(home / "AppData" / "Roaming"))
    for variable in ("CODEX_HOME", "CLAUDE_CONFIG_DIR"):
        monkeypatch.delenv(variable, raising=False)
    return home


@pytest.fixture
def quiver_config(tmp_path: Path) -> Path:
    path = tmp_path / "quiver.yaml"
    path.write_text("# my gateway\nbackends: {}\n")
    return path


def client_file(client: str) -> Path:
    return CLIENTS[client].location(Env.current()).path


def write_client(client: str) -> Path:
    path = client_file(client)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(CLIENT_CONFIGS[client])
    return path


def read(path: Path) -> Any:
    return tomllib.loads(path.read_text()) if path.suffix == ".toml" else jsonc.parse(path.read_text())


def servers(client: str, data: Any) -> Any:
    for key in CLIENTS[client].keys:
        data = data[key]
    return data


def invoke(*args: str, input: str | None = None) -> Any:
    return runner.invoke(app, list(args), input=input)


# setup


@pytest.mark.parametrize("client", sorted(CLIENTS))
def test_setup_prints_the_stdio_entry_in_the_clients_format(client: str, quiver_config: Path) -> None:
    result = invoke("setup", "--client", client)
    assert result.exit_code == 0, result.output
    data = tomllib.loads(result.stdout) if client == "codex" else json.loads(result.stdout)
    assert servers(client, data) == {"quiver": stdio_entry(client, quiver_config)}
    assert str(Env.current().show(client_file(client))) in result.stderr
    assert not client_file(client).exists()


@pytest.mark.parametrize("client", sorted(HTTP_ENTRIES))
def test_setup_prints_the_remote_entry_in_the_clients_format(client: str) -> None:
    result = invoke("setup", "--client", client, "--mode", "http")
    assert result.exit_code == 0, result.output
    data = tomllib.loads(result.stdout) if client == "codex" else json.loads(result.stdout)
    assert servers(client, data) == {"quiver": HTTP_ENTRIES[client]}


def test_setup_http_url_and_headers(quiver_config: Path) -> None:
    quiver_config.write_text("gateway:\n  http: {host: 0.0.0.0, port: 9000}\n")
    result = invoke("setup", "--client", "gemini", "--mode", "http", "-H", "Authorization: Bearer k")
    assert json.loads(result.stdout)["mcpServers"]["quiver"] == {
        "httpUrl": "http://127.0.0.1:9000/mcp",
        "headers": {"Authorization": "Bearer k"},
    }
    result = invoke("setup", "--client", "cursor", "--mode", "http", "--url", "https://gw.example/mcp")
    assert json.loads(result.stdout)["mcpServers"]["quiver"] == {"url": "https://gw.example/mcp"}


@pytest.mark.parametrize("client", sorted(CLIENTS))
def test_setup_write_keeps_the_rest_backs_up_and_is_idempotent(client: str, quiver_config: Path) -> None:
    path = write_client(client)
    before = read(path)
    result = invoke("setup", "--client", client, "--write")
    assert result.exit_code == 0, result.output
    assert "wrote Quiver's entry 'quiver'" in result.stdout
    after = read(path)
    assert servers(client, after).pop("quiver") == stdio_entry(client, quiver_config)
    assert after == before  # every other server and setting as it was
    backup = path.with_name(path.name + ".quiver.bak")
    assert backup.read_text() == CLIENT_CONFIGS[client]
    text = path.read_text()
    if client in ("zed", "vscode", "codex"):  # comments survive
        assert next(line for line in CLIENT_CONFIGS[client].splitlines() if "#" in line or "//" in line) in text

    again = invoke("setup", "--client", client, "--write")
    assert again.exit_code == 0, again.output
    assert "unchanged" in again.stdout
    assert path.read_text() == text


@pytest.mark.parametrize("client", sorted(CLIENTS))
def test_setup_write_creates_a_missing_file(client: str, quiver_config: Path) -> None:
    result = invoke("setup", "--client", client, "--write")
    assert result.exit_code == 0, result.output
    path = client_file(client)
    assert servers(client, read(path)) == {"quiver": stdio_entry(client, quiver_config)}
    assert not path.with_name(path.name + ".quiver.bak").exists()


def test_setup_switches_mode_and_keeps_the_users_keys(quiver_config: Path) -> None:
    path = client_file("cursor")
    path.parent.mkdir(parents=True)
    path.write_text('{"mcpServers": {"quiver": {"command": "quiver", "args": ["stdio"], "autoApprove": ["x"]}}}')
    result = invoke("setup", "--client", "cursor", "--mode", "http", "--write")
    assert result.exit_code == 0, result.output
    assert read(path)["mcpServers"]["quiver"] == {"autoApprove": ["x"], "url": URL}


def test_setup_project_scope_and_claude_code_local_scope(quiver_config: Path, tmp_path: Path) -> None:
    assert invoke("setup", "--client", "cursor", "--scope", "project", "--write").exit_code == 0
    assert "quiver" in read(tmp_path / ".cursor" / "mcp.json")["mcpServers"]
    assert invoke("setup", "--client", "claude-code", "--scope", "local", "--write").exit_code == 0
    user_file = read(client_file("claude-code"))
    assert "quiver" in user_file["projects"][str(tmp_path)]["mcpServers"]


def test_setup_refuses_to_overwrite_another_server_named_quiver(quiver_config: Path) -> None:
    path = client_file("cursor")
    path.parent.mkdir(parents=True)
    path.write_text('{"mcpServers": {"quiver": {"command": "npx", "args": ["quiver-theme-server"]}}}')
    result = invoke("setup", "--client", "cursor", "--write")
    assert result.exit_code == 1
    assert "already has a server named 'quiver' that is not Quiver" in result.stderr
    assert invoke("setup", "--client", "cursor", "--write", "--name", "gateway").exit_code == 0


def test_setup_refuses_to_make_quiver_its_own_backend(tmp_path: Path) -> None:
    (tmp_path / ".mcp.json").write_text('{"mcpServers": {}}')
    result = invoke("setup", "--client", "claude-code", "--scope", "project", "--write")
    assert result.exit_code == 1
    assert "is Quiver's own config" in result.stderr


# import


@pytest.mark.parametrize("client", sorted(CLIENTS))
def test_import_from_each_client(client: str, tmp_path: Path, quiver_config: Path) -> None:
    path = write_client(client)
    result = invoke("import", "--from", client)
    assert result.exit_code == 0, result.output
    assert read_config_file(quiver_config).backends == IMPORTED[client]
    for name in IMPORTED[client]:
        assert f"imported  {name}" in result.stdout
    if client in SKIPPED:
        name, reason = SKIPPED[client]
        line = next(line for line in result.stdout.splitlines() if line.startswith(f"skipped   {name} "))
        assert reason in line
    assert "# my gateway" in quiver_config.read_text()
    assert path.read_text() == CLIENT_CONFIGS[client]  # moving adds to Quiver; the client is left alone

    again = invoke("import", "--from", client)
    assert "0 to import" in again.stdout
    assert "already present (in Quiver's config)" in again.stdout
    assert "nothing new to import" in again.stdout


def test_import_all_dedupes_across_clients_and_skips_quiver(quiver_config: Path) -> None:
    for client in CLIENTS:
        write_client(client)
    assert invoke("setup", "--client", "cursor", "--write").exit_code == 0
    result = invoke("import", "--all")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert any(
        line.startswith("skipped   github ")
        and "claude-desktop" in line
        and "already present (imported from claude-code user config)" in line
        for line in lines
    )
    assert any(line.startswith("skipped   quiver ") and "Quiver's own entry" in line for line in lines)
    backends = read_config_file(quiver_config).backends
    expected = {name: backend for imported in IMPORTED.values() for name, backend in imported.items()}
    expected["github"] = IMPORTED["claude-code"]["github"]
    assert backends == expected


def test_import_reports_a_command_imported_under_another_name(quiver_config: Path) -> None:
    quiver_config.write_text(
        "backends:\n  gh:\n    command: npx\n    args: [-y, '@modelcontextprotocol/server-github']\n"
    )
    write_client("claude-desktop")
    result = invoke("import", "--from", "claude-desktop")
    assert "same command as 'gh' (in Quiver's config)" in result.stdout
    assert set(read_config_file(quiver_config).backends) == {"gh", "filesystem"}


def test_import_dry_run_writes_nothing(quiver_config: Path) -> None:
    write_client("cursor")
    result = invoke("import", "--from", "cursor", "--dry-run")
    assert result.exit_code == 0
    assert "dry run: 2 to import" in result.stdout
    assert quiver_config.read_text() == "# my gateway\nbackends: {}\n"


def test_import_replace_swaps_the_clients_entries_for_quiver(quiver_config: Path) -> None:
    path = write_client("windsurf")
    result = invoke("import", "--from", "windsurf", "--replace")
    assert result.exit_code == 0, result.output
    assert set(read_config_file(quiver_config).backends) == {"context7", "memory"}
    assert read(path)["mcpServers"] == {"quiver": stdio_entry("windsurf", quiver_config)}
    assert path.with_name(path.name + ".quiver.bak").read_text() == CLIENT_CONFIGS["windsurf"]
    assert "removed context7, memory" in result.stdout


def test_import_replace_keeps_what_quiver_does_not_serve(quiver_config: Path) -> None:
    path = write_client("zed")
    assert invoke("import", "--from", "zed", "--replace").exit_code == 0
    assert set(servers("zed", read(path))) == {"mcp-server-github", "quiver"}
    assert "// installed from the extension store" in path.read_text()


def test_import_into_the_user_scope_creates_it(quiver_config: Path) -> None:
    write_client("cursor")
    result = invoke("import", "--from", "cursor", "--scope", "user")
    assert result.exit_code == 0, result.output
    assert set(read_config_file(user_config_dir() / "quiver.yaml").backends) == {"linear", "puppeteer"}


def test_import_with_nothing_to_find() -> None:
    result = invoke("import", "--all")
    assert result.exit_code == 0
    assert "no servers found" in result.stdout


# init


def test_init_writes_a_starter_and_refuses_to_overwrite(tmp_path: Path) -> None:
    result = invoke("init")
    assert result.exit_code == 0, result.output
    config = read_config_file(tmp_path / "quiver.yaml")
    assert config.backends == {}
    again = invoke("init")
    assert again.exit_code == 1
    expected = f"error: {tmp_path / 'quiver.yaml'} already exists; init never overwrites a config"
    assert again.stderr.splitlines()[0] == expected


def test_init_refuses_when_a_quiver_yml_exists(tmp_path: Path) -> None:
    (tmp_path / "quiver.yml").write_text("backends: {}\n")
    assert invoke("init").exit_code == 1
    assert not (tmp_path / "quiver.yaml").exists()


def test_init_offers_to_import_what_clients_have(tmp_path: Path) -> None:
    write_client("cursor")
    declined = invoke("init", input="n\n")
    assert declined.exit_code == 0, declined.output
    assert "found 2 servers" in declined.stdout
    assert read_config_file(tmp_path / "quiver.yaml").backends == {}
    (tmp_path / "quiver.yaml").unlink()
    accepted = invoke("init", input="y\n")
    assert "2 imported" in accepted.stdout
    assert read_config_file(tmp_path / "quiver.yaml").backends == IMPORTED["cursor"]


def test_init_yes_imports_without_asking_into_the_user_scope() -> None:
    write_client("codex")
    result = invoke("init", "--yes", "--scope", "user")
    assert result.exit_code == 0, result.output
    assert read_config_file(user_config_dir() / "quiver.yaml").backends == IMPORTED["codex"]
    assert "next: quiver setup --client codex --write" in result.stdout


# add and remove


def test_add_stdio_with_env_after_double_dash(quiver_config: Path) -> None:
    result = invoke(
        "add",
        "fs",
        "-e",
        "ROOT=/tmp",
        "-e",
        "DEBUG=1",
        "--",
        "npx",
        "-y",
        "@modelcontextprotocol/server-filesystem",
        "/tmp",
    )
    assert result.exit_code == 0, result.output
    assert read_config_file(quiver_config).backends["fs"] == StdioBackendConfig(
        command="npx",
        args=["-y", "@modelcontextprotocol/server-filesystem", "/tmp"],
        env={"ROOT": "/tmp", "DEBUG": "1"},
    )
    assert "# my gateway" in quiver_config.read_text()


def test_add_without_double_dash_passes_the_servers_flags_through(quiver_config: Path) -> None:
    assert invoke("add", "mem", "npx", "-y", "@modelcontextprotocol/server-memory").exit_code == 0
    assert read_config_file(quiver_config).backends["mem"] == StdioBackendConfig(
        command="npx", args=["-y", "@modelcontextprotocol/server-memory"]
    )


def test_add_remote_with_headers(quiver_config: Path) -> None:
    http = invoke(
        "add", "--transport", "http", "sentry", "https://mcp.sentry.dev/mcp", "--header", "Authorization: Bearer x"
    )
    sse = invoke("add", "-t", "sse", "asana", "https://mcp.asana.com/sse", "-H", "X-A: 1", "-H", "X-B:2")
    assert http.exit_code == 0, http.output
    assert sse.exit_code == 0, sse.output
    backends = read_config_file(quiver_config).backends
    assert backends["sentry"] == HttpBackendConfig(
        url="https://mcp.sentry.dev/mcp", headers={"Authorization": "Bearer x"}
    )
    assert backends["asana"] == SseBackendConfig(url="https://mcp.asana.com/sse", headers={"X-A": "1", "X-B": "2"})


def test_add_to_the_user_scope_notes_the_project_config_wins(quiver_config: Path) -> None:
    result = invoke("add", "--scope", "user", "time", "--", "uvx", "mcp-server-time")
    assert result.exit_code == 0, result.output
    assert "time" in read_config_file(user_config_dir() / "quiver.yaml").backends
    assert f"Quiver here loads {quiver_config}" in result.stderr


def test_add_creates_a_project_config_when_there_is_none(tmp_path: Path) -> None:
    assert invoke("add", "time", "--", "uvx", "mcp-server-time").exit_code == 0
    assert "time" in read_config_file(tmp_path / "quiver.yaml").backends


def test_add_to_an_mcp_json_project_config(tmp_path: Path) -> None:
    (tmp_path / ".mcp.json").write_text('{\n  "mcpServers": {}\n}\n')
    assert invoke("add", "time", "--", "uvx", "mcp-server-time").exit_code == 0
    assert json.loads((tmp_path / ".mcp.json").read_text())["mcpServers"]["time"] == {
        "type": "stdio",
        "command": "uvx",
        "args": ["mcp-server-time"],
    }


def test_remove(quiver_config: Path) -> None:
    invoke("add", "time", "--", "uvx", "mcp-server-time")
    result = invoke("remove", "time")
    assert result.exit_code == 0, result.output
    assert read_config_file(quiver_config).backends == {}
    assert quiver_config.with_name("quiver.yaml.bak").exists()


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["add", "time"], "error: missing the command to run"),
        (["add", "a.b", "--", "x"], "error: 'a.b' is not a valid backend name"),
        (["add", "x", "-e", "NOVALUE", "--", "cmd"], "error: --env 'NOVALUE' is not KEY=VALUE"),
        (["add", "-t", "http", "x", "ftp://host"], "error: url: must start with http:// or https://"),
        (["add", "-t", "http", "x", "https://a", "https://b"], "error: a http backend takes one URL"),
        (["add", "-t", "http", "x", "https://a", "-e", "A=1"], "error: --env applies to stdio backends"),
        (["add", "-t", "http", "x", "https://a", "-H", "nocolon"], "error: --header 'nocolon' is not 'Name: value'"),
        (["add", "x", "-H", "A: b", "--", "cmd"], "error: --header applies to http and sse backends"),
        (["add", "-t", "ws", "x", "wss://a"], "error: unknown transport 'ws'"),
        (["add", "x", "--transprt", "http", "https://a"], "error: unknown option '--transprt'"),
        (["add", "-t", "http", "x", "https://a", "--heder", "A: b"], "error: unknown option '--heder'"),
        (["add", "--scope", "local", "x", "--", "cmd"], "error: unknown scope 'local'"),
        (["add", "keep", "--", "other"], "error: backend 'keep' already exists"),
        (["remove", "nope"], "error: no backend 'nope' in"),
        (["setup", "--client", "cursr"], "error: unknown client 'cursr'"),
        (["setup", "--client", "cursor", "--mode", "ws"], "error: unknown mode 'ws'"),
        (["setup", "--client", "windsurf", "--scope", "project"], "error: Windsurf has no project-scope config file"),
        (
            ["setup", "--client", "claude-desktop", "--mode", "http"],
            "error: Claude Desktop's config file only launches",
        ),
        (["setup", "--client", "cursor", "-H", "A: b"], "error: --header applies to --mode http"),
        (["import"], "error: give --from CLIENT or --all"),
        (["import", "--from", "cursor", "--all"], "error: give --from CLIENT or --all"),
    ],
)
def test_invalid_input_is_one_error_line_and_a_hint(quiver_config: Path, args: list[str], error: str) -> None:
    quiver_config.write_text("backends:\n  keep:\n    command: x\n")
    result = invoke(*args)
    assert result.exit_code != 0
    lines = result.stderr.splitlines()
    assert len(lines) == 2, result.stderr
    assert lines[0].startswith(error)
    assert lines[1].startswith("hint: ")
    assert "Traceback" not in result.output


def test_setup_without_any_config_says_to_init() -> None:
    result = invoke("setup", "--client", "cursor")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "error: no Quiver config found to point the client at",
        "hint: create one with `quiver init`",
    ]


def test_a_broken_client_file_is_named_and_left_alone(quiver_config: Path) -> None:
    path = client_file("gemini")
    path.parent.mkdir(parents=True)
    path.write_text('{"mcpServers": {,}}')
    result = invoke("setup", "--client", "gemini", "--write")
    assert result.exit_code == 1
    assert "settings.json: line 1 column 17: invalid JSON" in result.stderr
    assert path.read_text() == '{"mcpServers": {,}}'
