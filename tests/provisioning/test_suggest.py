"""Search suggests manifest servers that are not installed, ranked against the tools there are."""

from __future__ import annotations

from typing import Any

import pytest
from mcp import Client

from quiver import tokens
from quiver.config import QuiverConfig
from quiver.errors import NotAllowedError, QuiverError
from quiver.gateway import Gateway
from quiver.policy.principal import Principal
from quiver.provisioning.manifest import load_manifest
from quiver.provisioning.suggest import installable
from quiver.server.app import GatewayApp
from tests.fakes import FakeWorld, tool, wait_until

pytestmark = pytest.mark.anyio


def world_with_clock() -> FakeWorld:
    world = FakeWorld()
    world.tools["clock"] = [
        tool("get_current_time", "Get the current time in a time zone", ("timezone",), timezone="string"),
        tool("convert_time", "Convert a time between time zones", ("time",), time="string"),
    ]
    return world


def gateway(world: FakeWorld, **settings: Any) -> Gateway:
    config = QuiverConfig.model_validate({"backends": {"clock": {"command": "fake"}}, "gateway": settings})
    return Gateway(config, backend_factory=world.factory)


async def ready(gw: Gateway) -> None:
    await wait_until(lambda: gw.manifest is not None, 30)


async def test_a_task_no_tool_covers_finds_a_server_to_install_with_what_it_needs() -> None:
    gw = gateway(world_with_clock())
    async with gw.running():
        await ready(gw)
        reply = await gw.search("open a pull request on my github repository")
    not_installed = [card for card in reply.cards if card.state == "not installed"]
    assert not_installed, reply.cards
    assert not_installed[0].id == "github"
    assert not_installed[0].needs == ["GITHUB_PERSONAL_ACCESS_TOKEN"]
    assert "github [server, not installed: install_server; needs GITHUB_PERSONAL_ACCESS_TOKEN]" in (
        not_installed[0].render()
    )
    assert len(not_installed) <= 2


async def test_tools_that_fit_come_first_and_configured_servers_are_not_suggested() -> None:
    gw = gateway(world_with_clock())
    async with gw.running():
        await ready(gw)
        reply = await gw.search("get the current time in Tokyo")
    assert reply.cards[0].id == "clock.get_current_time"
    ids = [card.id for card in reply.cards]
    assert ids.index("clock.get_current_time") < min(
        (i for i, card in enumerate(reply.cards) if card.state == "not installed"), default=len(ids)
    )


def test_a_server_configured_under_another_name_is_not_suggested() -> None:
    manifest = load_manifest()
    time_entry = next(
        entry for entry in manifest if entry.install.pypi and entry.install.pypi.package == "mcp-server-time"
    )
    config = QuiverConfig.model_validate({"backends": {"clock": {"command": "uvx", "args": ["mcp-server-time"]}}})
    names = {server.name for server in installable(manifest, config.backends)}
    assert time_entry.name not in names
    assert len(names) == len(manifest) - 1


async def test_suggestions_can_be_turned_off() -> None:
    gw = gateway(world_with_clock(), suggest_servers=False)
    async with gw.running():
        await ready(gw)
        reply = await gw.search("open a pull request on my github repository")
    assert all(card.state != "not installed" for card in reply.cards)


async def test_a_reply_with_server_cards_stays_within_the_search_budget() -> None:
    world = world_with_clock()
    app = GatewayApp(gateway(world))
    async with app.running(), Client(app.server, mode="legacy", cache=None) as client:
        await ready(app.gateway)
        found = await client.call_tool("search_tools", {"query": "query a postgres database with sql", "limit": 5})
    results = (found.structured_content or {})["results"]
    assert any(result["state"] == "not installed" for result in results)
    assert tokens.result_tokens(found) <= 300


async def test_only_the_local_user_may_install_unless_the_config_says_otherwise() -> None:
    gw = gateway(world_with_clock())
    async with gw.running():
        with pytest.raises(NotAllowedError, match="not allowed") as denied:
            await gw.install("github", principal=Principal("ci-bot", None, "api_key"))
        assert "quiver install" in (denied.value.hint or "")
        with pytest.raises(QuiverError, match="'clock' is already configured"):
            await gw.install("clock")
    off = gateway(world_with_clock(), install="off")
    async with off.running():
        with pytest.raises(NotAllowedError):
            await off.install("github")


async def test_servers_that_outrank_every_tool_never_cut_the_tools_short() -> None:
    # Many manifest servers fit "postgres database sql" far better than these tools do; the reply
    # still lists `limit` tools, and the servers come on top of them (at most two).
    world = FakeWorld()
    world.tools["notes"] = [
        tool(f"note_{i}", f"Keep note number {i} of a long list of things, stored in a small local database")
        for i in range(8)
    ]
    config = QuiverConfig.model_validate({"backends": {"notes": {"command": "fake"}}})
    gw = Gateway(config, backend_factory=world.factory)
    async with gw.running():
        await ready(gw)
        reply = await gw.search("query a postgres database with sql", 5)
        tools_only = gw.catalog.search("query a postgres database with sql", 5)
    tool_cards = [card for card in reply.cards if card.state != "not installed"]
    server_cards = [card for card in reply.cards if card.state == "not installed"]
    assert len(tool_cards) == 5, reply.cards
    assert 1 <= len(server_cards) <= 2
    assert [entry.key for entry in tools_only] == [card.id for card in tool_cards]


async def test_the_first_search_waits_for_the_manifest_still_loading() -> None:
    # `quiver search` and a session's first search_tools come right after start-up, while the
    # manifest is still being read: they get the suggestions too.
    gw = Gateway(QuiverConfig.model_validate({"backends": {}}), backend_factory=FakeWorld().factory)
    async with gw.running():
        assert gw.manifest is None
        reply = await gw.search("open a pull request on my github repository")
    assert "github" in [card.id for card in reply.cards if card.state == "not installed"]


async def test_a_tool_id_of_a_server_not_installed_says_how_to_install_it() -> None:
    gw = gateway(world_with_clock())
    async with gw.running():
        with pytest.raises(QuiverError) as raised:
            await gw.call("github.create_pull_request", {})
        described = await gw.describe(["github.create_pull_request", "clock.nope"])
    assert raised.value.code == "unknown_tool"
    assert "'github' is a server that is not installed" in raised.value.message
    assert raised.value.hint == "install it with install_server (name 'github') or `quiver install github`"
    assert "not installed" in described[0]["error"]["message"]
    assert "not installed" not in described[1]["error"]["message"]


async def test_a_server_sharing_one_word_with_the_task_is_not_suggested() -> None:
    gw = Gateway(QuiverConfig.model_validate({"backends": {}}), backend_factory=FakeWorld().factory)
    async with gw.running():
        await ready(gw)
        github = await gw.search("open a pull request on my github repository")
        translate = await gw.search("translate text to french")
    # `open-meteo` shares only "open" with the first task; nothing in the manifest translates.
    ids = [card.id for card in github.cards]
    assert ids[0] == "github"
    assert "open-meteo" not in ids
    assert translate.cards == []
