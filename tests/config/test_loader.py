from __future__ import annotations

from pathlib import Path

import pytest

from quiver.config import (
    HttpBackendConfig,
    SseBackendConfig,
    StdioBackendConfig,
    load_config,
    parse_config,
    read_config_file,
)
from quiver.config.loader import discover_config_path
from quiver.errors import ConfigError

YAML = """
gateway:
  idle_timeout: 30
backends:
  time:
    command: mcp-server-time
    args: [--local-timezone, UTC]
    env: {TZ: UTC}
  remote:
    type: streamable-http
    url: https://example.com/mcp
    headers: {Authorization: "Bearer ${TOKEN}"}
  events:
    type: sse
    url: http://127.0.0.1:9/sse
"""


def test_reads_quiver_yaml_with_every_transport() -> None:
    config = parse_config(YAML, Path("quiver.yaml"))
    assert isinstance(config.backends["time"], StdioBackendConfig)
    assert isinstance(config.backends["remote"], HttpBackendConfig)
    assert isinstance(config.backends["events"], SseBackendConfig)
    assert config.backends["time"].args == ["--local-timezone", "UTC"]
    assert config.gateway.idle_timeout == 30


def test_reads_client_mcp_json_leniently() -> None:
    text = """{
      "mcpServers": {
        "fs": {"command": "npx", "args": ["-y", "x"], "alwaysAllow": ["read"], "disabled": true},
        "web": {"type": "http", "url": "https://example.com/mcp"},
        "plain": {"url": "https://example.com/mcp"}
      },
      "globalShortcut": "Ctrl+Space"
    }"""
    config = parse_config(text, Path(".mcp.json"))
    assert config.backends["fs"].enabled is False
    assert config.enabled_backends().keys() == {"web", "plain"}
    assert isinstance(config.backends["plain"], HttpBackendConfig)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("backends:\n  t:\n    comand: x\n", "quiver.yaml: backends.t.comand: unknown key (did you mean 'command'?)"),
        ("backends:\n  t: {}\n", "backends.t.command: required key is missing"),
        ("backends:\n  t: {command: x, args: 3}\n", "backends.t.args: Input should be a valid list"),
        ("backends:\n  a.b: {command: x}\n", "'a.b' is not a valid backend name"),
        (
            "backends:\n  t: {type: http, url: ftp://x}\n",
            "backends.t.url: must start with http:// or https://",
        ),
        (
            "backends:\n  t: {type: plugin, modules: [x]}\n",
            "quiver.yaml: backends.t.modules: unknown key (did you mean 'module'?)",
        ),
        ("backends:\n  stdio: {type: plugin}\n", "quiver.yaml: backends.stdio.module: required key is missing"),
        ("backends: [\n", "quiver.yaml: line 2 column 1: invalid YAML"),
        ("gateway: {idle_timeout: -1}\n", "gateway.idle_timeout"),
        ("- a\n- b\n", "the top level must be a mapping"),
    ],
)
def test_bad_config_names_file_key_and_reason(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, Path("quiver.yaml"))
    assert expected in caught.value.message
    assert "Traceback" not in str(caught.value)


def test_bad_json_names_line_and_column() -> None:
    with pytest.raises(ConfigError, match=r"\.mcp\.json: line 1 column \d+: invalid JSON"):
        parse_config('{"mcpServers": {"x": {"command": "a",}}}', Path(".mcp.json"))


def test_discovery_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    user = tmp_path / "xdg-config" / "quiver"
    user.mkdir(parents=True)
    (user / "quiver.yaml").write_text("backends: {}\n")
    assert discover_config_path() == user / "quiver.yaml"
    (tmp_path / ".mcp.json").write_text('{"mcpServers": {}}')
    assert discover_config_path() == tmp_path / ".mcp.json"
    (tmp_path / "quiver.yaml").write_text("backends: {}\n")
    assert discover_config_path() == tmp_path / "quiver.yaml"
    other = tmp_path / "other.yaml"
    other.write_text("backends: {}\n")
    monkeypatch.setenv("QUIVER_CONFIG", str(other))
    assert discover_config_path() == other
    explicit = tmp_path / "explicit.json"
    explicit.write_text("{}")
    assert discover_config_path(explicit) == explicit


def test_missing_explicit_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")


def test_no_config_anywhere_is_empty() -> None:
    assert load_config().backends == {}


def test_fingerprint_follows_what_identifies_the_server() -> None:
    base = StdioBackendConfig(command="a", args=["1"])
    assert base.fingerprint() == StdioBackendConfig(command="a", args=["1"], idle_timeout=5).fingerprint()
    assert base.fingerprint() != StdioBackendConfig(command="a", args=["2"]).fingerprint()
    remote = HttpBackendConfig(url="https://x/mcp", headers={"Authorization": "Bearer one"})
    rotated = HttpBackendConfig(url="https://x/mcp", headers={"Authorization": "Bearer two"})
    assert remote.fingerprint() == rotated.fingerprint()  # a rotated credential is the same server


def test_the_policy_may_live_in_a_file_of_its_own(tmp_path: Path) -> None:
    (tmp_path / "policy.yaml").write_text("deny: ['github.*']\nroles:\n  viewer: {read_only: true}\n")
    path = tmp_path / "quiver.yaml"
    path.write_text("backends: {}\npolicy: ./policy.yaml\n")
    config = read_config_file(path)
    assert config.policy.deny == ["github.*"]
    assert config.policy.roles["viewer"].read_only
    assert config.policy_source == (tmp_path / "policy.yaml").resolve()


def test_a_bad_policy_file_is_named_in_the_error(tmp_path: Path) -> None:
    path = tmp_path / "quiver.yaml"
    path.write_text("policy: ./missing.yaml\n")
    with pytest.raises(ConfigError, match=r"policy file .*missing\.yaml cannot be read"):
        read_config_file(path)
    (tmp_path / "policy.yaml").write_text("dney: ['x']\n")
    path.write_text("policy: policy.yaml\n")
    with pytest.raises(ConfigError) as error:
        read_config_file(path)
    assert "policy.yaml" in error.value.message
    assert "did you mean 'deny'" in error.value.message
