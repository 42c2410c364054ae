"""Opt-in operator tools: list the calls in flight and cancel one, leaving the others alone."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import anyio
import pytest
from mcp import Client

from quiver.config import QuiverConfig
from quiver.gateway import Gateway
from quiver.server.app import GatewayApp
from tests.fakes import FakeWorld, text_of, tool, wait_until

pytestmark = pytest.mark.anyio


def world() -> FakeWorld:
    fake = FakeWorld()
    fake.tools["slow"] = [tool("wait", "Wait a while", ("seconds",), seconds="number")]

    async def wait(arguments: Mapping[str, Any]) -> str:
        await anyio.sleep(float(arguments["seconds"]))
        return "waited"

    fake.handlers["slow.wait"] = wait
    return fake


def app(fake: FakeWorld, operator_tools: bool) -> GatewayApp:
    config = QuiverConfig.model_validate(
        {"backends": {"slow": {"command": "fake"}}, "gateway": {"operator_tools": operator_tools}}
    )
    return GatewayApp(Gateway(config, backend_factory=fake.factory))


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_an_operator_lists_calls_in_flight_and_cancels_one(mode: str) -> None:
    gateway_app = app(world(), operator_tools=True)
    results: dict[str, str] = {}
    async with gateway_app.running(), Client(gateway_app.server, mode=mode, cache=None) as client:
        names = [t.name for t in (await client.list_tools()).tools]
        assert names[-2:] == ["list_calls", "cancel_call"]

        async def call(label: str, seconds: float) -> None:
            result = await client.call_tool("call_tool", {"id": "slow.wait", "arguments": {"seconds": seconds}})
            results[label] = text_of(result)

        async with anyio.create_task_group() as tg:
            tg.start_soon(call, "long", 60)
            tg.start_soon(call, "short", 1.5)
            await wait_until(lambda: len(gateway_app.gateway.in_flight) == 2)
            listed = await client.call_tool("list_calls", {})
            calls = (listed.structured_content or {})["calls"]
            assert [c["tool"] for c in calls] == ["slow.wait", "slow.wait"]
            assert all(c["principal"] == "local" for c in calls)
            cancelled = await client.call_tool("cancel_call", {"call_id": calls[0]["id"]})
            assert not cancelled.is_error, text_of(cancelled)
        unknown = await client.call_tool("cancel_call", {"call_id": "nope"})
    assert "was cancelled by local" in results["long"]
    assert results["short"] == "waited"  # the other call was left alone
    assert unknown.is_error
    assert "list_calls shows the calls in flight" in text_of(unknown)


async def test_operator_tools_are_off_by_default() -> None:
    gateway_app = app(world(), operator_tools=False)
    async with gateway_app.running(), Client(gateway_app.server, mode="legacy", cache=None) as client:
        names = [t.name for t in (await client.list_tools()).tools]
        assert "list_calls" not in names
        refused = await client.call_tool("list_calls", {})
    assert refused.is_error
