"""The upward surface: exactly five meta-tools, within the token budget, errors as results."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import mcp_types as types
import pytest
from mcp import Client

from quiver import tokens
from quiver.config import QuiverConfig
from quiver.config.models import GatewaySettings
from quiver.gateway import Gateway
from quiver.metatools import INSTRUCTIONS, MetaTools, search
from quiver.server.app import GatewayApp
from tests.fakes import FakeWorld, tool

pytestmark = pytest.mark.anyio

SURFACE_BUDGET = 600  # issue 7: the default surface, install_server included
SEARCH_REPLY_BUDGET = 300


@asynccontextmanager
async def connected(world: FakeWorld, mode: str, backends: int = 2) -> AsyncIterator[Client]:
    names = [f"server{i}" for i in range(backends)]
    config = QuiverConfig.model_validate({"backends": {name: {"command": "fake"} for name in names}})
    app = GatewayApp(Gateway(config, backend_factory=world.factory))
    async with app.running(), Client(app.server, mode=mode, cache=None) as client:
        yield client


FIVE = ["search_tools", "describe_tools", "call_tool", "list_servers", "install_server"]


def test_default_surface_is_the_five_meta_tools_within_budget() -> None:
    definitions = MetaTools().definitions
    assert [t.name for t in definitions] == FIVE
    assert tokens.tools_list_tokens(definitions, INSTRUCTIONS) <= SURFACE_BUDGET


def test_install_off_drops_the_install_tool() -> None:
    settings = GatewaySettings(install="off")
    assert [t.name for t in MetaTools.for_config(settings).definitions] == FIVE[:4]


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_surface_does_not_grow_with_backends(mode: str) -> None:
    world = FakeWorld()
    for i in range(200):
        world.tools[f"server{i}"] = [tool(f"tool_{j}", "A tool " * 30, ("x",), x="string") for j in range(20)]
    async with connected(world, mode, backends=200) as client:
        listed = (await client.list_tools()).tools
        assert [t.name for t in listed] == FIVE
        assert tokens.tools_list_tokens(listed, client.instructions) <= SURFACE_BUDGET


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_search_describe_call_in_both_eras(mode: str) -> None:
    world = FakeWorld()
    world.tools["server0"] = [tool("echo", "Echo a message back", ("message",), message="string")]
    world.tools["server1"] = [tool(f"other_{i}", f"Unrelated thing number {i}") for i in range(30)]
    async with connected(world, mode) as client:
        found = await client.call_tool("search_tools", {"query": "echo a message", "limit": 5})
        assert not found.is_error
        results = (found.structured_content or {})["results"]
        assert results[0]["id"] == "server0.echo"
        assert results[0]["required"] == ["message"]
        assert "server0.echo(message)" in found.content[0].text  # type: ignore[union-attr]
        assert tokens.result_tokens(found) <= SEARCH_REPLY_BUDGET
        described = await client.call_tool("describe_tools", {"ids": ["server0.echo"]})
        schema = (described.structured_content or {})["tools"][0]["inputSchema"]
        assert schema["required"] == ["message"]
        called = await client.call_tool("call_tool", {"id": "server0.echo", "arguments": {"message": "hi"}})
        assert called.content == [types.TextContent(type="text", text="echo: hi")]
        assert not called.is_error


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_a_reply_that_needs_shortening_fits_the_budget_as_the_client_receives_it(mode: str) -> None:
    # Long descriptions and two required arguments each: the reply has to be cut to fit, and the
    # modern era's `_meta` stamp (server info) must fit inside the budget too.
    world = FakeWorld()
    summary = "Shows the commit logs of a repository with authors, dates, messages and the files they touched"
    world.tools["server0"] = [
        tool(f"git_{name}", f"{summary} ({name})", ("repo_path", "revision"), repo_path="string", revision="string")
        for name in ("log", "show", "diff", "commit", "status", "blame")
    ]
    async with connected(world, mode) as client:
        found = await client.call_tool("search_tools", {"query": "show the commit logs", "limit": 5})
    assert len((found.structured_content or {})["results"]) == 5
    assert tokens.result_tokens(found) <= SEARCH_REPLY_BUDGET
    # Whatever the cards, the renderer's own budget plus what the protocol adds must fit.
    sent = found.model_dump(by_alias=True, mode="json", exclude_none=True)
    added = tokens.count_json(sent) - tokens.count_json({k: v for k, v in sent.items() if k != "_meta"})
    assert search.REPLY_BUDGET + added <= SEARCH_REPLY_BUDGET


@pytest.mark.parametrize(
    ("name", "arguments", "expected"),
    [
        ("call_tool", {"id": "server0.ehco", "arguments": {}}, "did you mean 'server0.echo'"),
        ("call_tool", {"id": "server0.echo", "arguments": {"message": 1}}, "1 is not of type 'string'"),
        ("call_tool", {"arguments": {}}, "invalid arguments for call_tool: id: Field required"),
        ("search_tools", {"query": "x", "limit": 500}, "limit"),
        ("describe_tools", {"ids": []}, "ids"),
        ("no_such_meta_tool", {}, "this server offers: search_tools"),
    ],
)
async def test_bad_input_is_an_error_result_with_a_hint(name: str, arguments: dict[str, object], expected: str) -> None:
    world = FakeWorld()
    world.tools["server0"] = [tool("echo", "Echo", ("message",), message="string")]
    async with connected(world, "legacy") as client:
        await client.call_tool("search_tools", {"query": "echo"})  # discover
        result = await client.call_tool(name, arguments)
    assert result.is_error
    text = result.content[0].text  # type: ignore[union-attr]
    assert expected in text
    assert "Traceback" not in text


async def test_unexpected_failure_is_reported_without_internals() -> None:
    world = FakeWorld()

    async def explode(arguments: object) -> str:
        raise ZeroDivisionError("secret internals")

    world.tools["server0"] = [tool("boom")]
    world.handlers["server0.boom"] = explode
    async with connected(world, "legacy") as client:
        result = await client.call_tool("call_tool", {"id": "server0.boom"})
        assert result.is_error
        text = result.content[0].text  # type: ignore[union-attr]
        assert "secret internals" not in text
        again = await client.call_tool("list_servers", {})  # still serving
        assert not again.is_error
