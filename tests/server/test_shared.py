"""`quiver stdio --shared`: stdio clients sharing one background gateway, as real processes."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import anyio
import httpx
import mcp_types as types
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.shared.exceptions import MCPError

from quiver.config.loader import read_config_file
from quiver.server.shared import Record, SharedHome, _routing_headers
from tests.e2e.gateway_proc import stdio_params
from tests.servers import alive, children, free_port, time_backend, write_config

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


@pytest.fixture(autouse=True)
def stop_daemons(tmp_path: Path) -> Iterator[None]:
    """Stop the daemons a test started, whatever became of the test (they would wait 10 minutes)."""
    yield
    for path in (tmp_path / "state" / "shared").glob("*.json"):
        record = Record.read(path)
        if record is not None and "shared-daemon" in commands({record.pid}).get(record.pid, ""):
            os.kill(record.pid, signal.SIGTERM)
            deadline = time.monotonic() + 20
            while alive(record.pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if alive(record.pid):
                os.kill(record.pid, signal.SIGKILL)


def shared_client(config: Path, **env: str) -> StdioServerParameters:
    params = stdio_params(config, "--shared")
    return params.model_copy(update={"env": {**(params.env or {}), **env}})


def home_of(config: Path) -> SharedHome:
    return SharedHome.of(read_config_file(config))


def commands(pids: set[int]) -> dict[int, str]:
    found = {}
    for pid in pids:
        try:
            found[pid] = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
    return found


def time_servers(pids: set[int]) -> set[int]:
    return {pid for pid, command in commands(pids).items() if "mcp-server-time" in command}


async def search_describe_call(client: Client) -> None:
    found = await client.call_tool("search_tools", {"query": "current time in a timezone"})
    assert (found.structured_content or {})["results"][0]["id"] == "time.get_current_time"
    described = await client.call_tool("describe_tools", {"ids": ["time.get_current_time"]})
    assert (described.structured_content or {})["tools"][0]["inputSchema"]["required"] == ["timezone"]
    called = await client.call_tool("call_tool", {"id": "time.get_current_time", "arguments": {"timezone": "UTC"}})
    assert not called.is_error
    assert (called.structured_content or {})["timezone"] == "UTC"


async def wait_for(predicate: Callable[[], bool], limit: float = 20.0) -> None:
    """For state another process owns (a pid, a file): nothing to await but a look every so often."""
    with anyio.fail_after(limit):
        while not predicate():  # noqa: ASYNC110 - another process's state has no event
            await anyio.sleep(0.05)


async def test_two_clients_share_one_gateway_in_both_eras(tmp_path: Path) -> None:
    config = write_config(tmp_path / "quiver.json", {"time": time_backend()})
    eras: dict[str, str] = {}
    both_done = anyio.Event()

    async def session(mode: str) -> None:
        async with Client(shared_client(config), mode=mode, cache=None) as client:
            await search_describe_call(client)
            eras[mode] = client.protocol_version
            if len(eras) == 2:
                both_done.set()
            await both_done.wait()

    async with anyio.create_task_group() as tg:
        # Started together: the lock makes the first one start the daemon and the other wait for it.
        tg.start_soon(session, "legacy")
        tg.start_soon(session, "auto")
        with anyio.fail_after(60):
            await both_done.wait()
        record = Record.read(home_of(config).record)
        assert record is not None
        everything = children(os.getpid())
        daemons = {pid for pid, command in commands(everything).items() if "shared-daemon" in command}
        assert daemons == {record.pid}
        # One backend process for both clients, and it is the daemon's.
        assert time_servers(everything) == time_servers(children(record.pid))
        assert len(time_servers(everything)) == 1
    assert eras == {"legacy": "2025-11-25", "auto": "2026-07-28"}


async def test_the_daemon_stops_after_its_last_client_and_the_idle_period(tmp_path: Path) -> None:
    config = write_config(tmp_path / "quiver.json", {"time": time_backend()})
    home = home_of(config)
    async with Client(shared_client(config, QUIVER_SHARED_IDLE_TIMEOUT="1"), cache=None) as client:
        await search_describe_call(client)
        record = Record.read(home.record)
        assert record is not None
        backends = time_servers(children(record.pid))
        assert len(backends) == 1
    await wait_for(lambda: not alive(record.pid))
    assert not any(alive(pid) for pid in backends)
    assert not home.record.exists()


async def test_a_client_arriving_later_reuses_the_daemon(tmp_path: Path) -> None:
    config = write_config(tmp_path / "quiver.json", {"time": time_backend()})
    home = home_of(config)
    async with Client(shared_client(config), cache=None) as first:
        await search_describe_call(first)
        record = Record.read(home.record)
        assert record is not None
    # The first client is gone; the daemon waits out its idle period for the next one.
    async with Client(shared_client(config), cache=None) as second:
        await search_describe_call(second)
        assert Record.read(home.record) == record


@pytest.mark.parametrize("owner", ["gone", "another process"])
async def test_a_stale_record_is_replaced(owner: str, tmp_path: Path) -> None:
    config = write_config(tmp_path / "quiver.json", {"time": time_backend()})
    home = home_of(config)
    if owner == "gone":
        async with await anyio.open_process([sys.executable, "-c", "pass"]) as gone:
            await gone.wait()
        pid = gone.pid
    else:
        pid = os.getpid()  # alive, but it serves nothing at the recorded URL (a reused pid)
    home.prepare()
    Record(pid, f"http://127.0.0.1:{free_port()}/mcp", "stale-token", str(config), time.time()).write(home.record)
    async with Client(shared_client(config), cache=None) as client:
        await search_describe_call(client)
        record = Record.read(home.record)
        assert record is not None
        assert record.pid != pid
        assert alive(record.pid)


async def test_clients_lose_a_daemon_that_dies_and_the_next_one_starts_anew(tmp_path: Path) -> None:
    config = write_config(tmp_path / "quiver.json", {"time": time_backend()})
    home = home_of(config)
    async with Client(shared_client(config), cache=None) as client:
        await search_describe_call(client)
        dead = Record.read(home.record)
        assert dead is not None
        os.kill(dead.pid, signal.SIGKILL)
        with pytest.raises(MCPError, match="Connection closed"):
            await client.call_tool("list_servers", {})
    async with Client(shared_client(config), cache=None) as client:
        await search_describe_call(client)
        record = Record.read(home.record)
        assert record is not None
        assert record.pid != dead.pid


async def test_the_daemon_admits_only_holders_of_its_token(tmp_path: Path) -> None:
    config = write_config(tmp_path / "quiver.json", {"time": time_backend()})
    async with Client(shared_client(config), cache=None) as client:
        await client.list_tools()
        record = Record.read(home_of(config).record)
        assert record is not None
        body = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
        async with httpx.AsyncClient() as http:
            anonymous = await http.post(record.url, json=body)
            wrong = await http.post(record.url, json=body, headers={"Authorization": "Bearer guess"})
        assert (anonymous.status_code, wrong.status_code) == (401, 401)
        assert (record.url.startswith("http://127.0.0.1:"), oct(home_of(config).record.stat().st_mode & 0o777)) == (
            True,
            "0o600",
        )


async def test_each_client_keeps_its_own_role(tmp_path: Path) -> None:
    config = tmp_path / "quiver.json"
    policy = {"roles": {"clockless": {"allow": ["other.*"]}}}
    config.write_text(json.dumps({"backends": {"time": time_backend()}, "policy": policy}))
    limited = stdio_params(config, "--shared", "--role", "clockless")
    async with Client(shared_client(config), cache=None) as full, Client(limited, cache=None) as restricted:
        await search_describe_call(full)
        found = await restricted.call_tool("search_tools", {"query": "current time in a timezone"})
        ids = [result["id"] for result in (found.structured_content or {})["results"]]
        assert not [tool_id for tool_id in ids if tool_id.startswith("time.")]
        record = Record.read(home_of(config).record)
        assert record is not None


def test_only_2026_requests_get_routing_headers() -> None:
    modern = types.JSONRPCRequest(
        jsonrpc="2.0",
        id=1,
        method="tools/call",
        params={"name": "search_tools", "_meta": {types.PROTOCOL_VERSION_META_KEY: "2026-07-28"}},
    )
    assert _routing_headers(modern) == {
        "mcp-protocol-version": "2026-07-28",
        "mcp-method": "tools/call",
        "mcp-name": "search_tools",
    }
    legacy = types.JSONRPCRequest(jsonrpc="2.0", id=2, method="tools/list", params={})
    assert _routing_headers(legacy) is None
    note = types.JSONRPCNotification(jsonrpc="2.0", method="notifications/initialized")
    assert _routing_headers(note) is None
