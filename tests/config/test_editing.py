"""Editing Quiver's config: one backend changes, comments and other keys stay, nothing invalid is written."""

from __future__ import annotations

from pathlib import Path

import pytest

from quiver.config.editing import ConfigEditor, entry_of, scope_path, target_path
from quiver.config.loader import read_config_file, user_config_dir
from quiver.config.models import HttpBackendConfig, SseBackendConfig, StdioBackendConfig
from quiver.errors import ConfigError

CONFIG = """\
# Team gateway
gateway:
  idle_timeout: 30   # seconds

backends:
  # the clock
  time:
    command: mcp-server-time
    args:
      - --local-timezone
      - UTC
    description: "Time and zones"
  git:
    command: uvx
    args: [mcp-server-git]  # pinned later

policy: {}
"""

FETCH = StdioBackendConfig(command="uvx", args=["mcp-server-fetch"], env={"UA": "quiver"})


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "quiver.yaml"
    path.write_text(CONFIG)
    return path


def test_add_keeps_comments_order_and_other_keys(config: Path) -> None:
    editor = ConfigEditor(config)
    editor.set_backend("fetch", FETCH)
    backup = editor.save()
    text = config.read_text()
    for kept in ("# Team gateway", "# seconds", "# the clock", "# pinned later", '"Time and zones"'):
        assert kept in text
    assert text.startswith(CONFIG.split("policy")[0].rstrip("\n"))
    assert (
        "  fetch:\n    command: uvx\n    args: [mcp-server-fetch]\n    env:\n      UA: quiver\n\npolicy: {}\n" in text
    )
    loaded = read_config_file(config)
    assert list(loaded.backends) == ["time", "git", "fetch"]
    assert loaded.backends["fetch"] == FETCH
    assert loaded.gateway.idle_timeout == 30
    assert backup == config.with_name("quiver.yaml.bak")
    assert backup.read_text() == CONFIG


def test_new_sequences_follow_the_files_indentation(tmp_path: Path) -> None:
    path = tmp_path / "quiver.yaml"
    path.write_text("backends:\n    a:\n        command: x\n        args:\n        - one\n")
    editor = ConfigEditor(path)
    editor.set_backend("b", StdioBackendConfig(command="y", args=["p", "q"]))
    editor.save()
    assert path.read_text().endswith("    b:\n        command: y\n        args: [p, q]\n")


def test_replace_and_remove(config: Path) -> None:
    editor = ConfigEditor(config)
    editor.set_backend("git", HttpBackendConfig(url="https://git.example/mcp", headers={"X-Key": "${KEY}"}))
    assert editor.remove_backend("time")
    assert not editor.remove_backend("nope")
    editor.save()
    loaded = read_config_file(config)
    assert list(loaded.backends) == ["git"]
    assert loaded.backends["git"] == HttpBackendConfig(url="https://git.example/mcp", headers={"X-Key": "${KEY}"})
    assert "# Team gateway" in config.read_text()
    assert config.read_text().endswith("\n\npolicy: {}\n")


def test_removing_the_last_backend_leaves_an_empty_mapping(tmp_path: Path) -> None:
    path = tmp_path / "quiver.yaml"
    path.write_text("backends:\n  a:\n    command: x\n")
    editor = ConfigEditor(path)
    editor.remove_backend("a")
    editor.save()
    assert read_config_file(path).backends == {}


@pytest.mark.parametrize("text", ["", "# just a comment\n", "backends:\n", "backends: {}\n"])
def test_adds_to_empty_files(tmp_path: Path, text: str) -> None:
    path = tmp_path / "quiver.yaml"
    path.write_text(text)
    editor = ConfigEditor(path)
    editor.set_backend("sse", SseBackendConfig(url="http://127.0.0.1:9/sse"))
    editor.save()
    assert read_config_file(path).backends == {"sse": SseBackendConfig(url="http://127.0.0.1:9/sse")}
    assert "backends:\n  sse:\n    type: sse\n" in path.read_text()


def test_creates_a_missing_file_and_its_directory(tmp_path: Path) -> None:
    path = tmp_path / "new" / "dir" / "quiver.yaml"
    editor = ConfigEditor(path)
    editor.set_backend("fetch", FETCH)
    assert editor.save() is None
    assert read_config_file(path).backends == {"fetch": FETCH}


def test_mcp_servers_spelling_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "quiver.yaml"
    path.write_text("mcpServers:\n  a:\n    command: x\n")
    editor = ConfigEditor(path)
    editor.set_backend("b", FETCH)
    editor.save()
    assert "backends" not in path.read_text()
    assert list(read_config_file(path).backends) == ["a", "b"]


def test_mcp_json_is_edited_in_place(tmp_path: Path) -> None:
    path = tmp_path / ".mcp.json"
    text = '{\n  "mcpServers": {\n    "a": {"type": "stdio", "command": "x"}\n  },\n  "other": true\n}\n'
    path.write_text(text)
    editor = ConfigEditor(path)
    editor.set_backend("b", HttpBackendConfig(url="https://b.example/mcp"))
    editor.save()
    assert path.read_text() == text.replace(
        '"x"}\n', '"x"},\n    "b": {\n      "type": "http",\n      "url": "https://b.example/mcp"\n    }\n'
    )
    editor = ConfigEditor(path)
    editor.remove_backend("b")
    editor.save()
    assert path.read_text() == text


def test_an_invalid_result_is_never_written(config: Path) -> None:
    editor = ConfigEditor(config)
    editor.set_backend("bad.name", FETCH)
    with pytest.raises(ConfigError, match=r"'bad\.name' is not a valid backend name"):
        editor.save()
    assert config.read_text() == CONFIG
    assert not config.with_name("quiver.yaml.bak").exists()


def test_a_concurrent_change_is_not_overwritten(config: Path) -> None:
    editor = ConfigEditor(config)
    editor.set_backend("fetch", FETCH)
    config.write_text(CONFIG + "# edited meanwhile\n")
    with pytest.raises(ConfigError, match="changed while it was being edited"):
        editor.save()
    assert config.read_text().endswith("# edited meanwhile\n")


def test_a_broken_file_is_reported_not_edited(tmp_path: Path) -> None:
    path = tmp_path / "quiver.yaml"
    path.write_text("backends: [\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        ConfigEditor(path)


def test_entry_of_writes_only_what_differs_from_defaults() -> None:
    assert entry_of(StdioBackendConfig(command="x")) == {"command": "x"}
    assert entry_of(StdioBackendConfig(command="x"), typed=True) == {"type": "stdio", "command": "x"}
    backend = HttpBackendConfig(url="https://h/mcp", description="d", autostart=True)
    assert entry_of(backend) == {"type": "http", "url": "https://h/mcp", "description": "d", "autostart": True}


def test_scopes(tmp_path: Path) -> None:
    assert scope_path("user") == user_config_dir() / "quiver.yaml"
    assert scope_path("project") == tmp_path / "quiver.yaml"
    (tmp_path / ".mcp.json").write_text("{}")
    assert scope_path("project") == tmp_path / ".mcp.json"
    (tmp_path / "quiver.yml").write_text("")
    assert scope_path("project") == tmp_path / "quiver.yml"


def test_target_is_the_config_quiver_loads_by_default(tmp_path: Path) -> None:
    user = user_config_dir() / "quiver.yaml"
    assert target_path() == tmp_path / "quiver.yaml"  # nothing anywhere: a new project file
    user.parent.mkdir(parents=True)
    user.write_text("backends: {}\n")
    assert target_path() == user
    assert target_path(scope="project") == tmp_path / "quiver.yaml"
    assert target_path(config="other.yaml") == tmp_path / "other.yaml"
