"""Parked calls for 2026-07-28 clients, driven without a transport."""

from __future__ import annotations

from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp.shared.exceptions import MCPError

from quiver.server.pending import Caller, PendingCalls
from quiver.upstream import Upstream

pytestmark = pytest.mark.anyio

SAMPLING = Caller(types.ClientCapabilities(sampling=types.SamplingCapability()))


def reply(text: str) -> types.CreateMessageResult:
    return types.CreateMessageResult(role="assistant", content=types.TextContent(type="text", text=text), model="m")


async def asks_twice(upstream: Upstream) -> types.Result:
    """A handshake-era backend's call: it asks mid-call, twice in turn."""
    params = types.CreateMessageRequestParams(messages=[], max_tokens=5)
    first = await upstream.create_message(params)
    second = await upstream.create_message(params)
    texts = [getattr(getattr(answer, "content", None), "text", "?") for answer in (first, second)]
    return types.CallToolResult(content=[types.TextContent(type="text", text=" + ".join(texts))])


async def test_a_parked_call_asks_in_rounds_until_it_finishes() -> None:
    calls = PendingCalls()
    async with anyio.create_task_group() as tg:
        await tg.start(calls.serve)
        first = await calls.round(None, None, SAMPLING, asks_twice)
        assert isinstance(first, types.InputRequiredResult)
        assert first.request_state is not None
        assert list(first.input_requests or {}) == ["q1"]
        second = await calls.round(first.request_state, {"q1": reply("one")}, SAMPLING, asks_twice)
        assert isinstance(second, types.InputRequiredResult)
        assert list(second.input_requests or {}) == ["q2"]
        done = await calls.round(second.request_state, {"q2": reply("two")}, SAMPLING, asks_twice)
        assert isinstance(done, types.CallToolResult)
        assert done.content[0].text == "one + two"  # type: ignore[union-attr]
        tg.cancel_scope.cancel()


async def test_a_missing_answer_and_an_unknown_state_are_errors() -> None:
    calls = PendingCalls()
    async with anyio.create_task_group() as tg:
        await tg.start(calls.serve)
        first = await calls.round(None, None, SAMPLING, asks_twice)
        assert isinstance(first, types.InputRequiredResult)
        with pytest.raises(MCPError, match="missing input response 'q1'"):
            await calls.round(first.request_state, {}, SAMPLING, asks_twice)
        with pytest.raises(MCPError, match="expired"):
            await calls.round("p.nonsense", {}, SAMPLING, asks_twice)
        tg.cancel_scope.cancel()


async def test_a_caller_without_the_capability_gets_the_backend_an_error() -> None:
    calls = PendingCalls()
    async with anyio.create_task_group() as tg:
        await tg.start(calls.serve)
        result = await calls.round(None, None, Caller(None), asks_twice)
        assert isinstance(result, types.CallToolResult)
        tg.cancel_scope.cancel()


async def test_a_backends_own_input_request_passes_through_with_its_keys_and_state() -> None:
    seen: list[Any] = []

    async def modern_backend(upstream: Upstream) -> types.Result:
        seen.append(upstream.round)
        if upstream.round is not None and upstream.round.responses:
            return types.CallToolResult(content=[types.TextContent(type="text", text="answered")])
        return types.InputRequiredResult(
            input_requests={"user_name": types.ListRootsRequest()}, request_state="backend-state"
        )

    calls = PendingCalls()
    async with anyio.create_task_group() as tg:
        await tg.start(calls.serve)
        first = await calls.round(None, None, SAMPLING, modern_backend)
        assert isinstance(first, types.InputRequiredResult)
        assert list(first.input_requests or {}) == ["user_name"]
        assert first.request_state == "d.backend-state"
        answer = {"user_name": types.ListRootsResult(roots=[])}
        done = await calls.round(first.request_state, answer, SAMPLING, modern_backend)
        assert isinstance(done, types.CallToolResult)
        assert seen[-1].state == "backend-state"
        tg.cancel_scope.cancel()
