"""Faults with real server processes: a crash mid-call, a failed start, a hang, cleanup on exit."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from contextlib import AsyncExitStack
from pathlib import Path

import anyio
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from quiver.config import QuiverConfig
from quiver.errors import BackendCallError, BackendUnavailableError, CallTimeoutError
from quiver.gateway import Gateway
from tests.fakes import text_of, wait_until
from tests.servers import (
    alive,
    children,
    everything_backend,
    faulty_backend,
    gateway_process,
    time_backend,
    write_config,
)

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


def gateway(**backends: dict[str, object]) -> Gateway:
    return Gateway(QuiverConfig.model_validate({"backends": backends}))


async def test_backend_exiting_mid_call_costs_one_clear_error_and_restarts() -> None:
    gw = gateway(faulty=faulty_backend())
    async with gw.running():
        first_pid = text_of(await gw.call("faulty.pid", {}))
        with pytest.raises(BackendCallError) as caught:
            await gw.call("faulty.crash", {})
        assert "exited during the call to 'crash'" in caught.value.message
        assert "crashing on purpose" in caught.value.message  # the server's own last words
        assert caught.value.hint is not None
        second_pid = text_of(await gw.call("faulty.pid", {}))
        assert second_pid != first_pid
        assert gw.supervisor.get("faulty").status().restarts == 1


async def test_backend_that_exits_at_start_reports_why() -> None:
    gw = gateway(faulty=faulty_backend("--exit-at-start"))
    async with gw.running():
        with pytest.raises(BackendUnavailableError) as caught:
            await gw.call("faulty.echo", {"message": "x"})
    assert "backend 'faulty' could not start" in caught.value.message
    assert "missing a licence file" in caught.value.message


async def test_garbage_on_stdout_does_not_break_the_connection() -> None:
    gw = gateway(faulty=faulty_backend("--garbage"))
    async with gw.running():
        assert text_of(await gw.call("faulty.echo", {"message": "still fine"})) == "still fine"


async def test_hung_backend_times_out_while_others_answer() -> None:
    gw = gateway(faulty=faulty_backend(call_timeout=2), time=time_backend())
    async with gw.running():
        await gw.call("faulty.echo", {"message": "warm"})
        await gw.call("time.get_current_time", {"timezone": "UTC"})
        answered: list[str] = []

        async def hang() -> None:
            with pytest.raises(CallTimeoutError):
                await gw.call("faulty.hang", {})
            answered.append("hang")

        async with anyio.create_task_group() as tg:
            tg.start_soon(hang)
            for _ in range(5):
                await gw.call("time.get_current_time", {"timezone": "UTC"})
            answered.append("time")
        assert answered == ["time", "hang"]
        # The backend survived the cancelled call and keeps serving.
        assert text_of(await gw.call("faulty.echo", {"message": "after"})) == "after"


@pytest.mark.parametrize("ending", ["client-closes", "SIGTERM", "SIGINT"])
async def test_no_child_process_survives_the_gateway(ending: str, tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "quiver.json",
        {"time": time_backend(), "everything": everything_backend(), "faulty": faulty_backend()},
    )
    params = StdioServerParameters(command=sys.executable, args=["-m", "quiver", "stdio", "--config", str(config)])
    before = children(os.getpid())
    stack = AsyncExitStack()
    client = await stack.enter_async_context(Client(params, mode="legacy", cache=None))
    try:
        for tool_id, arguments in (
            ("time.get_current_time", {"timezone": "UTC"}),
            ("everything.echo", {"message": "x"}),
            ("faulty.echo", {"message": "x"}),
        ):
            result = await client.call_tool("call_tool", {"id": tool_id, "arguments": arguments})
            assert not result.is_error, text_of(result)
        pid = gateway_process(before)
        backend_pids = children(pid)
        assert len(backend_pids) >= 3
        if ending != "client-closes":
            os.kill(pid, getattr(signal, ending))
            await wait_until(lambda: not alive(pid), limit=10)  # the gateway exits by itself
    finally:
        with contextlib.suppress(Exception):
            await stack.aclose()  # after a signal the link is already gone
    await wait_until(lambda: not any(alive(p) for p in backend_pids), limit=10)


def test_cli_call_leaves_no_children(tmp_path: Path) -> None:
    config = write_config(tmp_path / "quiver.json", {"faulty": faulty_backend()})
    out = subprocess.run(
        [sys.executable, "-m", "quiver", "call", "faulty.pid", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    backend_pid = int(out.stdout.strip())
    assert not alive(backend_pid)
