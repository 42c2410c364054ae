"""Backends that misbehave, a gateway that is killed, a config edited under load: real processes."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import anyio
import pytest
from mcp import Client

from quiver.config import QuiverConfig
from quiver.errors import BackendCallError, BackendUnavailableError
from quiver.gateway import Gateway
from tests.e2e.gateway_proc import stdio_params
from tests.fakes import eventually, text_of, wait_until
from tests.servers import alive, children, cmdline, faulty_backend, gateway_process, time_backend, write_config

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


def gateway(**backends: dict[str, object]) -> Gateway:
    return Gateway(QuiverConfig.model_validate({"backends": backends}))


def backend_pid(gw: Gateway) -> int:
    pids = [pid for pid in children(os.getpid()) if b"faulty_server" in cmdline(pid)]
    assert len(pids) == 1, pids
    return pids[0]


async def test_a_backend_killed_mid_call_costs_that_call_only() -> None:
    gw = gateway(faulty=faulty_backend(call_timeout=20))
    async with gw.running():
        await gw.call("faulty.echo", {"message": "warm"})
        victim = backend_pid(gw)
        async with anyio.create_task_group() as tg:

            async def kill_soon() -> None:
                await anyio.sleep(0.5)
                os.kill(victim, signal.SIGKILL)

            tg.start_soon(kill_soon)
            with anyio.fail_after(10), pytest.raises(BackendCallError, match="exited during the call to 'hang'"):
                await gw.call("faulty.hang", {"seconds": 60})
        assert text_of(await gw.call("faulty.echo", {"message": "after"})) == "after"
        assert backend_pid(gw) != victim


async def test_a_backend_that_will_not_start_opens_the_breaker_and_recovers_after_the_cooldown(tmp_path: Path) -> None:
    trouble = tmp_path / "trouble"
    trouble.write_text("on")
    gw = gateway(faulty=faulty_backend("--exit-while", str(trouble), breaker_threshold=2, breaker_cooldown=2))
    async with gw.running():
        for attempt in range(2):
            if attempt:
                await anyio.sleep(1.1)  # past the restart backoff (1s after the first failure)
            with pytest.raises(BackendUnavailableError, match="trouble file is still there"):
                await gw.call("faulty.echo", {"message": "x"})
        with pytest.raises(BackendUnavailableError, match="requests to it are paused"):
            await gw.call("faulty.echo", {"message": "x"})
        assert gw.supervisor.get("faulty").status().breaker == "open"
        trouble.unlink()
        await anyio.sleep(2.1)
        assert text_of(await gw.call("faulty.echo", {"message": "back"})) == "back"
        assert gw.supervisor.get("faulty").status().breaker == "closed"


async def test_a_backend_writing_garbage_fails_clearly_and_others_are_untouched() -> None:
    gw = gateway(garbage=faulty_backend("--only-garbage", startup_timeout=3), time=time_backend())
    async with gw.running():
        with anyio.fail_after(20), pytest.raises(BackendUnavailableError, match="did not finish starting"):
            await gw.call("garbage.echo", {"message": "x"})
        assert "UTC" in text_of(await gw.call("time.get_current_time", {"timezone": "UTC"}))


async def test_no_child_survives_when_the_gateway_is_killed(tmp_path: Path) -> None:
    config = write_config(tmp_path / "quiver.json", {"faulty": faulty_backend(), "time": time_backend()})
    before = children(os.getpid())
    async with Client(stdio_params(config), mode="legacy", cache=None) as client:
        for tool_id, arguments in (("faulty.echo", {"message": "x"}), ("time.get_current_time", {"timezone": "UTC"})):
            assert not (await client.call_tool("call_tool", {"id": tool_id, "arguments": arguments})).is_error
        gateway_pid = gateway_process(before)
        backends = {pid for pid in children(gateway_pid) if b"quiver.watchdog" not in cmdline(pid)}
        assert len(backends) >= 2
        os.kill(gateway_pid, signal.SIGKILL)
        await wait_until(lambda: not any(alive(pid) for pid in backends), limit=10)


async def test_editing_the_config_under_load_keeps_calls_and_the_session(tmp_path: Path) -> None:
    path = tmp_path / "quiver.json"
    write_config(path, {"faulty": faulty_backend(), "time": time_backend()})
    async with Client(stdio_params(path), mode="legacy", cache=None) as client:
        await client.call_tool("call_tool", {"id": "faulty.echo", "arguments": {"message": "warm"}})
        results: list[str] = []

        async def slow_call() -> None:
            result = await client.call_tool("call_tool", {"id": "faulty.hang", "arguments": {"seconds": 2}})
            results.append(text_of(result))

        async with anyio.create_task_group() as tg:
            for _ in range(3):
                tg.start_soon(slow_call)
            await anyio.sleep(0.3)
            # Add a backend and change the time server's args while the calls run.
            write_config(
                path,
                {
                    "faulty": faulty_backend(),
                    "time": time_backend(args=["--local-timezone", "Europe/Paris"]),
                    "clock": time_backend(),
                },
            )
        assert results == ["done", "done", "done"]

        async def clock_listed() -> bool:
            servers = await client.call_tool("list_servers", {})
            return "clock" in {s["name"] for s in (servers.structured_content or {})["servers"]}

        await eventually(clock_listed, limit=10)
        called = await client.call_tool("call_tool", {"id": "clock.get_current_time", "arguments": {"timezone": "UTC"}})
        assert "UTC" in text_of(called)
        path.write_text("{ this is not valid json")  # rejected: the last good config stays
        await anyio.sleep(1)
        again = await client.call_tool("call_tool", {"id": "clock.get_current_time", "arguments": {"timezone": "UTC"}})
        assert "UTC" in text_of(again)


def test_watchdog_module_runs_standalone() -> None:
    import subprocess

    out = subprocess.run([sys.executable, "-m", "quiver.watchdog", str(os.getpid())], input=b"", timeout=10)
    assert out.returncode == 0
    assert json is not None
