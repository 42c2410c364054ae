"""Lifecycle behaviour of the supervisor, driven through the Gateway with in-process fakes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp.shared.exceptions import MCPError

from quiver.backends.base import BackendState, Change
from quiver.config import QuiverConfig
from quiver.errors import (
    BackendCallError,
    BackendUnavailableError,
    BusyError,
    CallTimeoutError,
    InvalidArgumentsError,
)
from quiver.gateway import Gateway
from tests.fakes import FakeWorld, connection_closed, tool, wait_until

pytestmark = pytest.mark.anyio


def make(world: FakeWorld, **backends: dict[str, Any]) -> Gateway:
    config = QuiverConfig.model_validate(
        {"backends": {name: {"command": "fake", **spec} for name, spec in backends.items()}}
    )
    for name in backends:
        world.tools.setdefault(name, [tool("echo", "Echo a message", ("message",), message="string")])
    return Gateway(config, backend_factory=world.factory)


async def test_nothing_starts_until_used_except_autostart() -> None:
    world = FakeWorld()
    gateway = make(world, lazy={}, eager={"autostart": True})
    async with gateway.running():
        await wait_until(lambda: world.starts.get("eager") == 1)
        assert "lazy" not in world.starts
        await gateway.call("lazy.echo", {"message": "hi"})
        assert world.starts["lazy"] == 1


async def test_concurrent_first_calls_start_once() -> None:
    world = FakeWorld()
    world.start_delay["a"] = 0.1
    gateway = make(world, a={})
    async with gateway.running(), anyio.create_task_group() as tg:
        for i in range(10):
            tg.start_soon(gateway.call, "a.echo", {"message": str(i)})
    assert world.starts["a"] == 1


async def test_idle_backend_stops_and_starts_again_on_use() -> None:
    world = FakeWorld()
    gateway = make(world, a={"idle_timeout": 0.2})
    async with gateway.running():
        await gateway.call("a.echo", {"message": "x"})
        managed = gateway.supervisor.get("a")
        await wait_until(lambda: managed.state is BackendState.IDLE)
        assert "a" not in world.live
        await gateway.call("a.echo", {"message": "y"})
        assert world.starts["a"] == 2


async def test_busy_backend_is_not_stopped_for_idleness() -> None:
    world = FakeWorld()

    async def slow(arguments: Mapping[str, Any]) -> str:
        await anyio.sleep(0.6)
        return "done"

    world.handlers["a.echo"] = slow
    gateway = make(world, a={"idle_timeout": 0.1})
    async with gateway.running():
        result = await gateway.call("a.echo", {"message": "x"})
    assert result.content[0].text == "done"  # type: ignore[union-attr]
    assert world.starts["a"] == 1


async def test_backend_that_dies_mid_call_gives_a_clear_error_and_restarts() -> None:
    world = FakeWorld()

    async def crash(arguments: Mapping[str, Any]) -> str:
        world.live["a"].die()
        raise connection_closed()

    world.handlers["a.echo"] = crash
    gateway = make(world, a={})
    async with gateway.running():
        with pytest.raises(BackendCallError, match="exited during the call to 'echo'"):
            await gateway.call("a.echo", {"message": "x"})
        del world.handlers["a.echo"]
        result = await gateway.call("a.echo", {"message": "again"})
        assert result.content[0].text == "echo: again"  # type: ignore[union-attr]
        assert world.starts["a"] == 2
        assert gateway.supervisor.get("a").status().restarts == 1


async def test_failed_start_backs_off_then_retries() -> None:
    world = FakeWorld()
    world.start_error["a"] = RuntimeError("port in use")
    gateway = make(world, a={})
    async with gateway.running():
        with pytest.raises(BackendUnavailableError, match="could not start: port in use"):
            await gateway.call("a.echo", {"message": "x"})
        with pytest.raises(BackendUnavailableError, match="port in use"):
            await gateway.call("a.echo", {"message": "x"})
        assert world.starts["a"] == 2  # tried twice at once, then nothing inside the backoff window
        status = gateway.supervisor.get("a").status()
        assert status.state is BackendState.FAILED
        assert status.last_error is not None
        assert "port in use" in status.last_error
        del world.start_error["a"]
        await anyio.sleep((status.retry_in or 0) + 0.05)
        await gateway.call("a.echo", {"message": "x"})
        assert world.starts["a"] == 3


async def test_slow_start_times_out() -> None:
    world = FakeWorld()
    world.start_delay["a"] = 10
    gateway = make(world, a={"startup_timeout": 0.2})
    async with gateway.running():
        with pytest.raises(BackendUnavailableError, match=r"did not finish starting within 0\.2s"):
            await gateway.call("a.echo", {"message": "x"})


async def test_hung_call_times_out_without_blocking_other_backends() -> None:
    world = FakeWorld()

    async def hang(arguments: Mapping[str, Any]) -> str:
        await anyio.sleep_forever()
        return ""

    world.handlers["slow.echo"] = hang
    gateway = make(world, slow={"call_timeout": 0.5}, fast={})
    finished: list[str] = []
    async with gateway.running():

        async def call_slow() -> None:
            with pytest.raises(CallTimeoutError, match=r"did not answer within 0\.5s"):
                await gateway.call("slow.echo", {"message": "x"})
            finished.append("slow")

        async with anyio.create_task_group() as tg:
            tg.start_soon(call_slow)
            await anyio.sleep(0.05)
            await gateway.call("fast.echo", {"message": "y"})
            finished.append("fast")
    assert finished == ["fast", "slow"]


async def test_bad_arguments_for_a_cached_tool_never_start_the_backend() -> None:
    world = FakeWorld()
    gateway = make(world, a={})
    async with gateway.running():
        await gateway.refresh(["a"])
    starts = world.starts["a"]
    again = Gateway(gateway.config, backend_factory=world.factory)
    async with again.running():
        with pytest.raises(InvalidArgumentsError, match="argument 'message' is required"):
            await again.call("a.echo", {})
    assert world.starts["a"] == starts


async def test_tool_list_change_reaches_the_catalog() -> None:
    world = FakeWorld()
    gateway = make(world, a={})
    async with gateway.running():
        await gateway.call("a.echo", {"message": "x"})
        world.tools["a"] = [tool("echo"), tool("shout", "Shout a message loudly")]
        backend = world.live["a"]
        assert backend.changed is not None
        backend.changed(Change.TOOLS)
        await wait_until(lambda: gateway.catalog.get("a.shout") is not None)
        reply = await gateway.search("shout loudly", 1)
        assert [card.id for card in reply.cards] == ["a.shout"]


async def test_shutdown_stops_every_backend() -> None:
    world = FakeWorld()
    gateway = make(world, a={}, b={})
    async with gateway.running():
        await gateway.call("a.echo", {"message": "x"})
        await gateway.call("b.echo", {"message": "x"})
        assert set(world.live) == {"a", "b"}
    assert world.live == {}


async def test_too_many_concurrent_calls_get_a_clear_busy_error() -> None:
    world = FakeWorld()
    release = anyio.Event()

    async def slow(arguments: Mapping[str, Any]) -> str:
        await release.wait()
        return "done"

    world.handlers["a.echo"] = slow
    gateway = make(world, a={"max_concurrency": 2, "max_queue": 1})
    outcomes: list[str] = []
    async with gateway.running():
        await gateway.supervisor.get("a").ensure_running()

        async def call() -> None:
            try:
                await gateway.call("a.echo", {"message": "x"})
                outcomes.append("ok")
            except BusyError as exc:
                outcomes.append(exc.code)

        async with anyio.create_task_group() as tg:
            for _ in range(5):
                tg.start_soon(call)
            await wait_until(lambda: outcomes.count("busy") == 2)
            release.set()
    assert sorted(outcomes) == ["busy", "busy", "ok", "ok", "ok"]


async def test_the_breaker_opens_after_repeated_failures_and_recovers_after_the_cooldown() -> None:
    world = FakeWorld()
    failing = True

    async def flaky(arguments: Mapping[str, Any]) -> str:
        if failing:
            raise MCPError(code=-32603, message="internal trouble")
        return "fine"

    world.handlers["a.echo"] = flaky
    gateway = make(world, a={"breaker_threshold": 2, "breaker_cooldown": 0.3})
    async with gateway.running():
        for _ in range(2):
            with pytest.raises(BackendCallError, match="internal trouble"):
                await gateway.call("a.echo", {"message": "x"})
        with pytest.raises(BackendUnavailableError, match="requests to it are paused"):
            await gateway.call("a.echo", {"message": "x"})
        assert gateway.supervisor.get("a").status().breaker == "open"
        failing = False
        await anyio.sleep(0.35)
        result = await gateway.call("a.echo", {"message": "x"})
        assert result.content[0].text == "fine"  # type: ignore[union-attr]
        assert gateway.supervisor.get("a").status().breaker == "closed"


async def test_a_crash_loop_backs_off() -> None:
    world = FakeWorld()

    async def crash(arguments: Mapping[str, Any]) -> str:
        world.live["a"].die()
        raise connection_closed()

    world.handlers["a.echo"] = crash
    gateway = make(world, a={"breaker_threshold": 100})
    async with gateway.running():
        with pytest.raises(BackendCallError, match="exited during"):
            await gateway.call("a.echo", {"message": "x"})
        with pytest.raises(BackendCallError, match="exited during"):  # the first death restarts at once
            await gateway.call("a.echo", {"message": "x"})
        with pytest.raises(BackendUnavailableError, match="keeps exiting soon after it starts"):
            await gateway.call("a.echo", {"message": "x"})
        assert world.starts["a"] == 2


async def test_read_only_idempotent_calls_are_repeated_when_the_backend_dies_under_them() -> None:
    world = FakeWorld()
    calls = 0

    async def dies_once(arguments: Mapping[str, Any]) -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            world.live["a"].die()
            raise connection_closed()
        return "second time lucky"

    safe = types.ToolAnnotations(read_only_hint=True, idempotent_hint=True)
    world.tools["a"] = [tool("lookup", "Look up").model_copy(update={"annotations": safe})]
    world.handlers["a.lookup"] = dies_once
    gateway = make(world, a={})
    async with gateway.running():
        result = await gateway.call("a.lookup", {})
    assert result.content[0].text == "second time lucky"  # type: ignore[union-attr]
    assert world.starts["a"] == 2


async def test_per_tool_timeouts_override_the_backend_timeout() -> None:
    world = FakeWorld()

    async def slowish(arguments: Mapping[str, Any]) -> str:
        await anyio.sleep(0.3)
        return "done"

    world.handlers["a.echo"] = slowish
    gateway = make(world, a={"call_timeout": 0.1, "tool_timeouts": {"echo": 2}})
    async with gateway.running():
        result = await gateway.call("a.echo", {"message": "x"})
    assert result.content[0].text == "done"  # type: ignore[union-attr]
