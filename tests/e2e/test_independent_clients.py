"""Independent, non-Python MCP clients complete search → describe → call through Quiver.

The MCP Inspector CLI (Node 22) and the TypeScript SDK v1 client each drive the meta-tools
against a real gateway process: `quiver stdio` launched by the client, and `quiver serve` over
streamable HTTP. The Inspector runs in both protocol eras (handshake and stateless); the TypeScript
SDK v1 only speaks the handshake era.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.gateway_proc import quiver_serve, stdio_command
from tests.servers import (
    NODE22_BIN,
    NODE_MODULES,
    alive,
    children,
    everything_backend,
    node,
    time_backend,
    write_config,
)

pytestmark = pytest.mark.e2e

META_TOOLS = ["call_tool", "describe_tools", "install_server", "list_servers", "search_tools"]
TIME_ID = "time.get_current_time"
SUM_ID = "everything.get-sum"
TIME_QUERY = "what time is it in a timezone"
# One client run takes a few seconds; a hang must fail well inside the per-test timeout.
CLIENT_TIMEOUT = 30.0
# The newest handshake-era version, which TypeScript SDK v1 asks for and Quiver must accept.
HANDSHAKE_VERSION = "2025-11-25"
# In the stateless era there is no `initialize`, so every result names its server in `_meta`.
STATELESS_SERVER_INFO = "io.modelcontextprotocol/serverInfo"
INSPECTOR = NODE_MODULES / "@modelcontextprotocol" / "inspector"
INSPECTOR_CLI = INSPECTOR / "clients" / "launcher" / "build" / "index.js"
TS_CLIENT = Path(__file__).parent / "clients" / "ts_client.mjs"
# Clients launch stdio servers with a filtered environment; these must reach the gateway.
GATEWAY_ENV = ("QUIVER_CACHE_DIR", "QUIVER_STATE_DIR")


@dataclass(frozen=True)
class Target:
    """How a client reaches the gateway: a command to launch (stdio) or a URL (http)."""

    transport: str
    argv: list[str]


@pytest.fixture
def config(tmp_path: Path) -> Path:
    backends = {"time": time_backend(), "everything": everything_backend()}
    return write_config(tmp_path / "quiver.json", backends)


@pytest.fixture
def gateway_url(config: Path) -> Iterator[str]:
    """`quiver serve` for one test; afterwards it must have exited and stopped its backends."""
    with quiver_serve(config) as gateway:
        yield gateway.url
        backends = children(gateway.pid)
    # uvicorn re-raises SIGTERM after its graceful shutdown; a SIGKILL here means it hung.
    assert gateway.returncode in (0, -signal.SIGTERM), (
        f"quiver serve exited with {gateway.returncode}:\n{gateway.stderr_text()}"
    )
    assert not [pid for pid in backends if alive(pid)], "backends outlived quiver serve"


@pytest.fixture(params=["stdio", "http"])
def target(request: pytest.FixtureRequest, config: Path) -> Target:
    if request.param == "stdio":
        return Target("stdio", stdio_command(config))
    return Target("http", [request.getfixturevalue("gateway_url")])


def run_client(argv: list[str], env: dict[str, str]) -> str:
    """Run a client to completion and return its stdout; a failure shows everything it printed."""
    done = subprocess.run(argv, capture_output=True, text=True, timeout=CLIENT_TIMEOUT, env=env, check=False)
    assert done.returncode == 0, f"{argv} exited with {done.returncode}\nstdout: {done.stdout}\nstderr: {done.stderr}"
    return done.stdout


def inspector(target: Target, era: str, *request: str) -> dict[str, Any]:
    """One Inspector CLI request (`--method ...`) against the gateway; returns the JSON-RPC result."""
    if not INSPECTOR_CLI.exists():
        pytest.fail("the MCP Inspector is missing; run `make setup`")
    forwarded: list[str] = []
    if target.transport == "stdio":
        for name in GATEWAY_ENV:
            forwarded += ["-e", f"{name}={os.environ[name]}"]
    argv = [
        str(NODE22_BIN / "node"),
        str(INSPECTOR_CLI),
        "--cli",
        "-q",
        "--format",
        "json",
        "--protocol-era",
        era,
        *request,
        *forwarded,
        "--",  # the gateway's own `--config` must not be read as the Inspector's
        *target.argv,
    ]
    # The Inspector keeps its storage under HOME; keep it inside the test's directory.
    home = Path.cwd() / "inspector-home"
    reply: dict[str, Any] = json.loads(run_client(argv, {**os.environ, "HOME": str(home)}))
    result: dict[str, Any] = reply["result"]
    return result


def ts_client(target: Target, plan: dict[str, Any]) -> dict[str, Any]:
    """Run the TypeScript SDK client's search → describe → call walk; returns what it saw."""
    argv = [node(), str(TS_CLIENT), json.dumps(plan), target.transport, *target.argv]
    seen: dict[str, Any] = json.loads(run_client(argv, dict(os.environ)))
    return seen


def text_of(result: dict[str, Any]) -> str:
    return "".join(block["text"] for block in result["content"] if block["type"] == "text")


def found_ids(result: dict[str, Any]) -> list[str]:
    return [card["id"] for card in result["structuredContent"]["results"]]


def described(result: dict[str, Any], tool_id: str) -> dict[str, Any]:
    (tool,) = result["structuredContent"]["tools"]
    assert tool["id"] == tool_id
    assert tool_id in text_of(result)
    schema: dict[str, Any] = tool["inputSchema"]
    return schema


def assert_current_utc_time(result: dict[str, Any]) -> None:
    """The time server's answer, passed through unchanged: now, in UTC, as data and as text."""
    assert not result.get("isError"), result
    data = result["structuredContent"]
    assert data["timezone"] == "UTC"
    stamp = datetime.fromisoformat(data["datetime"])
    assert stamp.utcoffset() == timedelta(0)
    assert abs(datetime.now(UTC) - stamp) < timedelta(minutes=5)
    assert data["datetime"] in text_of(result)


@pytest.mark.parametrize("era", ["legacy", "modern"])
def test_inspector_searches_describes_and_calls_through_quiver(target: Target, era: str) -> None:
    listed = inspector(target, era, "--method", "tools/list")
    assert sorted(tool["name"] for tool in listed["tools"]) == META_TOOLS

    call = ("--method", "tools/call", "--tool-name")
    found = inspector(target, era, *call, "search_tools", "--tool-arg", f"query={TIME_QUERY}")
    assert TIME_ID in found_ids(found)
    assert TIME_ID in text_of(found)

    # A --tool-arg value that parses as JSON is sent as that JSON: here a list, below an object.
    schema = described(
        inspector(target, era, *call, "describe_tools", "--tool-arg", f"ids={json.dumps([TIME_ID])}"),
        TIME_ID,
    )
    assert schema["required"] == ["timezone"]
    assert schema["properties"]["timezone"]["type"] == "string"

    called = inspector(target, era, *call, "call_tool", "--tool-arg", f"id={TIME_ID}", 'arguments={"timezone": "UTC"}')
    assert_current_utc_time(called)

    # A handshake-era TypeScript backend behind the gateway, whatever era the client speaks.
    sum_call = json.dumps({"id": SUM_ID, "arguments": {"a": 2, "b": 3}})
    summed = inspector(target, era, *call, "call_tool", "--tool-args-json", sum_call)
    assert not summed.get("isError"), summed
    assert text_of(summed) == "The sum of 2 and 3 is 5."

    if era == "modern":  # the stateless era was really spoken, not the handshake
        for result in (found, called, summed):
            assert result["_meta"][STATELESS_SERVER_INFO]["name"] == "quiver"


def test_typescript_sdk_client_searches_describes_and_calls_through_quiver(target: Target) -> None:
    seen = ts_client(target, {"query": TIME_QUERY, "id": TIME_ID, "arguments": {"timezone": "UTC"}})
    assert seen["server"]["name"] == "quiver"
    assert seen["protocolVersion"] == HANDSHAKE_VERSION
    assert sorted(seen["tools"]) == META_TOOLS
    assert TIME_ID in found_ids(seen["search"])
    assert described(seen["describe"], TIME_ID)["required"] == ["timezone"]
    assert_current_utc_time(seen["call"])


def test_typescript_sdk_client_reaches_a_typescript_backend_through_quiver(target: Target) -> None:
    seen = ts_client(target, {"query": "add two numbers", "id": SUM_ID, "arguments": {"a": 2, "b": 3}})
    assert SUM_ID in found_ids(seen["search"])
    assert sorted(described(seen["describe"], SUM_ID)["required"]) == ["a", "b"]
    assert not seen["call"].get("isError"), seen["call"]
    assert text_of(seen["call"]) == "The sum of 2 and 3 is 5."
