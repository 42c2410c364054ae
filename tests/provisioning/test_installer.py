"""Installing manifest servers: real npm and PyPI installs, verified, registered, and undone on failure."""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
import typer
from typer.testing import CliRunner

from quiver.cli.install import register
from quiver.config.loader import read_config_file
from quiver.config.models import HttpBackendConfig, StdioBackendConfig
from quiver.gateway import Gateway
from quiver.provisioning import parse_manifest
from quiver.provisioning.installer import (
    STEPS,
    AlreadyInstalledError,
    Installer,
    InstallError,
    install_and_register,
    servers_dir,
)
from tests.fakes import text_of
from tests.servers import children, everything_remote

runner = CliRunner()
app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
register(app)

CONFIG_TEXT = """\
# The servers behind the gateway.
backends:
  other:
    command: echo   # added by hand; installs must keep it
    args: [hello]
"""
THINKING = "@modelcontextprotocol/server-sequential-thinking"
THINKING_VERSION = "2026.8.31"
REGISTRY_TIMEOUT = 240  # seconds: a cold npm or pip cache is slow, a warm one takes a few seconds


@pytest.fixture(autouse=True)
def servers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Installs go to this test's own data dir."""
    monkeypatch.setenv("QUIVER_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data" / "servers"


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "quiver.yaml"
    path.write_text(CONFIG_TEXT)
    return path


def manifest_text(*entries: str) -> str:
    return "version: 1\nservers:\n" + "".join(entries)


def npm_entry(name: str, package: str, version: str, bin_name: str, env: str = "") -> str:
    return f"""\
  - name: {name}
    title: {name.title()}
    description: A test entry for {package}.
    categories: [utility]
    install: {{npm: {{package: "{package}", version: "{version}", bin: {bin_name}}}}}
    homepage: https://example.com/{name}
{env}"""


def pypi_entry(name: str, package: str, version: str) -> str:
    return f"""\
  - name: {name}
    title: {name.title()}
    description: A test entry for {package}.
    categories: [utility]
    install: {{pypi: {{package: "{package}", version: "{version}"}}}}
    homepage: https://example.com/{name}
"""


def thinking_entry(name: str = "thinker", version: str = THINKING_VERSION, env: str = "") -> str:
    return npm_entry(name, THINKING, version, "mcp-server-sequential-thinking", env)


def write_manifest(tmp_path: Path, *entries: str) -> Path:
    path = tmp_path / "manifest.yaml"
    path.write_text(manifest_text(*entries))
    return path


def invoke(*args: str) -> Any:
    return runner.invoke(app, list(args))


def leftovers(root: Path) -> set[str]:
    """Everything in the servers dir except lock files."""
    return {p.name for p in root.iterdir() if not p.name.endswith(".lock")} if root.exists() else set()


async def search_and_call(
    config: Path, query: str, tool_id: str, arguments: dict[str, Any]
) -> tuple[list[str], types.CallToolResult]:
    """Through a gateway on the written config: what a search finds, and what a call returns."""
    gateway = Gateway(read_config_file(config))
    async with gateway.running():
        reply = await gateway.search(query, 5)
        result = await gateway.call(tool_id, arguments)
    assert isinstance(result, types.CallToolResult)
    return [card.id for card in reply.cards], result


# -- without a registry -------------------------------------------------------------------------


def test_servers_dir_is_under_the_data_dir(servers: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert servers_dir() == servers
    monkeypatch.delenv("QUIVER_DATA_DIR")
    assert servers_dir().parts[-2:] == ("quiver", "servers")


def test_unknown_server_suggests_names_and_changes_nothing(config: Path, servers: Path) -> None:
    result = invoke("install", "sequentialthinking", "--config", str(config))
    assert result.exit_code == 1
    assert "no server named 'sequentialthinking'" in result.stderr
    assert "did you mean 'sequential-thinking'" in result.stderr
    assert config.read_text() == CONFIG_TEXT
    assert leftovers(servers) == set()


def test_a_registered_name_is_refused_before_installing(tmp_path: Path, servers: Path) -> None:
    config = tmp_path / "quiver.yaml"
    config.write_text("backends:\n  memory:\n    command: my-memory-server\n")
    before = config.read_bytes()
    result = invoke("install", "memory", "--config", str(config))
    assert result.exit_code == 1
    assert "backend 'memory' is already in" in result.stderr
    assert "--force" in result.stderr
    assert config.read_bytes() == before
    assert leftovers(servers) == set()


@pytest.mark.anyio
async def test_missing_npm_says_to_install_node(tmp_path: Path, servers: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    installer = Installer(parse_manifest(manifest_text(thinking_entry())))
    with pytest.raises(InstallError) as caught:
        await installer.install("thinker")
    assert "npm was not found" in caught.value.message
    assert caught.value.hint is not None
    assert "Node.js" in caught.value.hint
    assert leftovers(servers) == set()


@pytest.mark.anyio
async def test_an_unreachable_registry_is_retryable_and_leaves_nothing(
    servers: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("npm_config_registry", f"http://127.0.0.1:{port}/")
    monkeypatch.setenv("npm_config_fetch_retries", "0")
    monkeypatch.setenv("npm_config_cache", str(servers.parent / "npm-cache"))  # no cached copy to fall back on
    installer = Installer(parse_manifest(manifest_text(thinking_entry())))
    with pytest.raises(InstallError) as caught:
        await installer.install("thinker")
    assert THINKING in caught.value.message
    assert caught.value.retryable
    assert caught.value.hint is not None
    assert "registry could not be reached" in caught.value.hint
    assert leftovers(servers) == set()


def test_uninstalling_what_is_not_installed_is_an_error(config: Path) -> None:
    result = invoke("uninstall", "memory", "--config", str(config))
    assert result.exit_code == 1
    assert "'memory' is not installed" in result.stderr
    result = invoke("uninstall", "other", "--config", str(config))  # added by hand: not Quiver's to remove
    assert result.exit_code == 1
    assert config.read_text() == CONFIG_TEXT
    result = invoke("uninstall", "../etc", "--config", str(config))
    assert result.exit_code == 1
    assert "not a server name" in result.stderr


# -- against the real registries ----------------------------------------------------------------


@pytest.mark.e2e
@pytest.mark.timeout(REGISTRY_TIMEOUT)
def test_install_npm_server_then_search_and_call_it(
    config: Path, servers: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = invoke("install", "memory", "--config", str(config))
    assert result.exit_code == 0, result.output
    assert "started it: 9 tools" in result.stdout
    assert f"added backend 'memory' to {config}" in result.stdout
    backend = read_config_file(config).backends["memory"]
    assert isinstance(backend, StdioBackendConfig)
    assert backend.command == str(servers / "memory" / "node_modules" / ".bin" / "mcp-server-memory")
    assert backend.description is not None
    assert "knowledge graph" in backend.description
    assert "added by hand; installs must keep it" in config.read_text()  # the rest of the file is as it was

    memory_file = tmp_path / "graph.jsonl"
    monkeypatch.setenv("MEMORY_FILE_PATH", str(memory_file))  # reaches it through ${MEMORY_FILE_PATH:-}
    found, called = anyio.run(
        search_and_call,
        config,
        "remember facts about people in a knowledge graph",
        "memory.create_entities",
        {"entities": [{"name": "Ada", "entityType": "person", "observations": ["wrote the first program"]}]},
    )
    assert "memory.create_entities" in found
    assert not called.is_error, text_of(called)
    assert "Ada" in memory_file.read_text()


@pytest.mark.e2e
@pytest.mark.timeout(REGISTRY_TIMEOUT)
def test_install_pypi_server_in_a_venv_of_its_own(config: Path, servers: Path) -> None:
    result = invoke("install", "time", "--config", str(config))
    assert result.exit_code == 0, result.output
    assert "started it: 2 tools" in result.stdout
    venv = servers / "time" / "venv"
    assert read_config_file(config).backends["time"].model_dump()["command"] == str(venv / "bin" / "mcp-server-time")
    # Its own environment with its own mcp, apart from Quiver's.
    assert (venv / "pyvenv.cfg").is_file()
    assert list((venv / "lib").glob("python*/site-packages/mcp-*.dist-info"))
    assert not venv.is_relative_to(sys.prefix)

    found, called = anyio.run(
        search_and_call, config, "what time is it in another timezone", "time.get_current_time", {"timezone": "UTC"}
    )
    assert "time.get_current_time" in found
    assert not called.is_error, text_of(called)
    assert "UTC" in text_of(called)


@pytest.mark.e2e
@pytest.mark.timeout(REGISTRY_TIMEOUT)
@pytest.mark.parametrize(
    ("entry", "package"),
    [
        (npm_entry("ghost", "@quiver-e2e/no-such-server", "1.0.0", "ghost"), "@quiver-e2e/no-such-server@1.0.0"),
        (pypi_entry("ghost", "quiver-e2e-no-such-server", "1.0.0"), "quiver-e2e-no-such-server==1.0.0"),
    ],
    ids=["npm", "pypi"],
)
def test_a_failed_install_leaves_config_and_folder_as_they_were(
    config: Path, servers: Path, tmp_path: Path, entry: str, package: str
) -> None:
    before = config.read_bytes()
    result = invoke("install", "ghost", "--config", str(config), "--manifest", str(write_manifest(tmp_path, entry)))
    assert result.exit_code == 1
    assert f"could not install 'ghost': {'npm' if '@' in package else 'pip'} failed on {package}" in result.stderr
    assert "hint: the registry has no" in result.stderr
    assert "package name or version is wrong; nothing was installed or registered" in result.stderr
    assert config.read_bytes() == before
    assert not (tmp_path / "quiver.yaml.bak").exists()
    assert leftovers(servers) == set()


@pytest.mark.e2e
@pytest.mark.timeout(REGISTRY_TIMEOUT)
def test_a_server_that_does_not_start_is_not_installed(config: Path, servers: Path, tmp_path: Path) -> None:
    # A real package whose executable is not an MCP server: it prints and exits.
    manifest = write_manifest(tmp_path, npm_entry("notmcp", "which", "5.0.0", "node-which"))
    result = invoke("install", "notmcp", "--config", str(config), "--manifest", str(manifest))
    assert result.exit_code == 1
    assert "'notmcp' was installed but did not start" in result.stderr
    assert config.read_text() == CONFIG_TEXT
    assert leftovers(servers) == set()


@pytest.mark.e2e
@pytest.mark.timeout(REGISTRY_TIMEOUT)
def test_unset_required_variable_registers_and_says_how_to_set_it(
    config: Path, servers: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("QUIVER_E2E_TOKEN", raising=False)
    env = """\
    env:
      - name: QUIVER_E2E_TOKEN
        description: The token the server signs in with.
        obtain: https://example.com/tokens
        required: true
        secret: true
"""
    manifest = write_manifest(tmp_path, thinking_entry(env=env))
    result = invoke("install", "thinker", "--config", str(config), "--manifest", str(manifest))
    assert result.exit_code == 0, result.output
    assert "not started: it needs QUIVER_E2E_TOKEN" in result.stdout
    assert "QUIVER_E2E_TOKEN: The token the server signs in with." in result.stdout
    assert "get it: https://example.com/tokens" in result.stdout
    assert "set it: quiver secrets set QUIVER_E2E_TOKEN" in result.stdout
    backend = read_config_file(config).backends["thinker"]
    assert isinstance(backend, StdioBackendConfig)
    assert backend.env == {"QUIVER_E2E_TOKEN": "${QUIVER_E2E_TOKEN}"}
    assert Path(backend.command).exists()

    # Once it is set, an update starts it.
    monkeypatch.setenv("QUIVER_E2E_TOKEN", "t0k3n")
    result = invoke("update", "thinker", "--config", str(config), "--manifest", str(manifest))
    assert result.exit_code == 0, result.output
    assert "started it: 1 tool" in result.stdout


@pytest.mark.e2e
@pytest.mark.timeout(REGISTRY_TIMEOUT)
def test_update_keeps_the_entry_and_uninstall_removes_it(config: Path, servers: Path) -> None:
    assert invoke("install", "sequential-thinking", "--config", str(config)).exit_code == 0
    installed = config.read_bytes()
    first = (servers / "sequential-thinking").resolve()

    result = invoke("update", "sequential-thinking", "--config", str(config))
    assert result.exit_code == 0, result.output
    assert "updated sequential-thinking" in result.stdout
    second = (servers / "sequential-thinking").resolve()
    assert second != first
    assert not first.exists()  # the old version went once the new one was in place
    assert config.read_bytes() == installed

    result = invoke("update", "--all", "--config", str(config))
    assert result.exit_code == 0, result.output
    assert config.read_bytes() == installed

    result = invoke("uninstall", "sequential-thinking", "--config", str(config))
    assert result.exit_code == 0, result.output
    assert "removed backend 'sequential-thinking'" in result.stdout
    assert "sequential-thinking" not in read_config_file(config).backends
    assert "other" in read_config_file(config).backends
    assert leftovers(servers) == set()

    result = invoke("uninstall", "sequential-thinking", "--config", str(config))
    assert result.exit_code == 1
    assert "'sequential-thinking' is not installed" in result.stderr


@pytest.mark.e2e
@pytest.mark.timeout(REGISTRY_TIMEOUT)
@pytest.mark.anyio
async def test_progress_rises_to_total_and_a_failed_update_keeps_the_old_install(servers: Path) -> None:
    reports: list[tuple[float, float, str]] = []

    async def progress(done: float, total: float, message: str) -> None:
        reports.append((done, total, message))

    installer = Installer(parse_manifest(manifest_text(thinking_entry())))
    result = await installer.install("thinker", progress=progress)
    assert result.tools == 1
    done = [report[0] for report in reports]
    assert done == sorted(set(done))  # strictly rising
    assert {report[1] for report in reports} == {STEPS}
    assert done[0] == 0
    assert done[-1] == STEPS
    assert reports[-1][2] == "installed thinker: 1 tool"
    assert all(report[2] for report in reports)

    current = (servers / "thinker").resolve()
    broken = Installer(parse_manifest(manifest_text(thinking_entry(version="0.0.0-no-such-version"))))
    with pytest.raises(InstallError, match="no-such-version"):
        await broken.update("thinker")
    assert (servers / "thinker").resolve() == current
    assert result.command is not None
    assert await anyio.Path(result.command).exists()
    assert leftovers(servers) == {"thinker", current.name}


@pytest.mark.e2e
@pytest.mark.timeout(REGISTRY_TIMEOUT)
@pytest.mark.anyio
async def test_installs_of_one_server_at_once_take_turns(servers: Path) -> None:
    manifest = parse_manifest(manifest_text(thinking_entry()))
    results = []

    async def install() -> None:
        results.append(await Installer(manifest).install("thinker"))

    async with anyio.create_task_group() as tg:
        tg.start_soon(install)
        tg.start_soon(install)
    assert [result.tools for result in results] == [1, 1]
    assert Installer(manifest).installed() == ["thinker"]
    assert leftovers(servers) == {"thinker", (servers / "thinker").resolve().name}


@pytest.mark.e2e
@pytest.mark.timeout(REGISTRY_TIMEOUT)
@pytest.mark.anyio
async def test_a_timed_out_install_stops_npm_and_leaves_nothing(servers: Path) -> None:
    installer = Installer(parse_manifest(manifest_text(thinking_entry())), timeout=1.0)
    with pytest.raises(InstallError) as caught:
        await installer.install("thinker")
    assert "did not finish within 1 s" in caught.value.message
    assert caught.value.retryable
    assert leftovers(servers) == set()
    assert not _npm_children()


@pytest.mark.e2e
@pytest.mark.anyio
async def test_a_hosted_server_is_verified_and_registered(config: Path, servers: Path, tmp_path: Path) -> None:
    with everything_remote("streamableHttp") as url:
        remote = f"""\
  - name: hosted
    title: Hosted
    description: A hosted test server.
    categories: [developer]
    install: {{remote: {{url: "{url}", transport: http}}}}
    transport: http
    homepage: https://example.com/hosted
"""
        manifest = parse_manifest(manifest_text(remote))
        result = await install_and_register("hosted", config=str(config), installer=Installer(manifest))
        assert result.tools is not None
        assert result.tools > 0
        assert result.path is None
        backend = read_config_file(config).backends["hosted"]
        assert isinstance(backend, HttpBackendConfig)
        assert backend.url == url
        with pytest.raises(AlreadyInstalledError):
            await install_and_register("hosted", config=str(config), installer=Installer(manifest))
    assert leftovers(servers) == set()


def _npm_children() -> Sequence[int]:
    found = []
    for pid in children(os.getpid()):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"npm" in cmdline:
            found.append(pid)
    return found
