"""Everything besides tools, through the gateway: resources, prompts, completions, subscriptions,
server-to-client requests, progress, cancellation, pinned tools and per-backend endpoints.

Real backends (server-everything from npm, the faulty fixture, mcp-server-time) behind a real
`quiver stdio` / `quiver serve`, spoken to by the SDK client in both protocol eras.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp import Client
from mcp.client.session import ClientRequestContext

from quiver._legacy import legacy_features
from tests.e2e.gateway_proc import quiver_serve, stdio_params
from tests.fakes import text_of, wait_until
from tests.servers import everything_backend, faulty_backend, time_backend, write_config

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

ERAS = ["legacy", "auto"]


class Recorder:
    """A client that answers what backends ask and keeps what it is told."""

    def __init__(self) -> None:
        self.notifications: list[types.ServerNotification] = []
        self.asked: list[str] = []

    async def sampling(
        self, context: ClientRequestContext, params: types.CreateMessageRequestParams
    ) -> types.CreateMessageResult:
        self.asked.append("sampling")
        return types.CreateMessageResult(
            role="assistant", content=types.TextContent(type="text", text="a sampled reply"), model="test-model"
        )

    async def elicitation(self, context: ClientRequestContext, params: types.ElicitRequestParams) -> types.ElicitResult:
        self.asked.append("elicitation")
        return types.ElicitResult(action="accept", content={"color": "teal"})

    async def roots(self, context: ClientRequestContext) -> types.ListRootsResult:
        self.asked.append("roots")
        root = types.Root.model_validate({"uri": "file:///srv/quiver-test", "name": "quiver-test"})
        return types.ListRootsResult(roots=[root])

    async def message(self, message: types.ServerNotification | Exception) -> None:
        if not isinstance(message, Exception):
            self.notifications.append(message)


@asynccontextmanager
async def session(config: Path, mode: str, recorder: Recorder | None = None, **callbacks: Any) -> AsyncIterator[Client]:
    if recorder is not None:
        callbacks = {
            "sampling_callback": recorder.sampling,
            "elicitation_callback": recorder.elicitation,
            "list_roots_callback": recorder.roots,
            "message_handler": recorder.message,
            **callbacks,
        }
    async with Client(stdio_params(config), mode=mode, cache=None, **callbacks) as client:
        yield client


@pytest.fixture
def everything(tmp_path: Path) -> Path:
    return write_config(tmp_path / "quiver.json", {"everything": everything_backend()})


@pytest.mark.parametrize("mode", ERAS)
async def test_resources_prompts_and_completions_are_namespaced_and_reversible(everything: Path, mode: str) -> None:
    async with session(everything, mode) as client:
        resources = (await client.list_resources()).resources
        assert resources
        assert all(resource.uri.startswith("everything+demo://") for resource in resources)
        read = await client.read_resource(resources[0].uri)
        assert read.contents[0].uri == resources[0].uri
        templates = (await client.list_resource_templates()).resource_templates
        text_template = next(t.uri_template for t in templates if "/text/" in t.uri_template)
        assert text_template.startswith("everything+demo://")
        from_template = await client.read_resource(text_template.replace("{resourceId}", "7"))
        assert "7" in str(from_template.contents[0])
        prompts = {prompt.name for prompt in (await client.list_prompts()).prompts}
        assert {"everything__simple-prompt", "everything__args-prompt"} <= prompts
        prompt = await client.get_prompt("everything__args-prompt", {"city": "Lisbon", "state": "Portugal"})
        assert "Lisbon" in str(prompt.messages[0].content)
        completion = await client.complete(
            types.PromptReference(name="everything__completable-prompt"),
            {"name": "department", "value": "E"},
        )
        assert "Engineering" in completion.completion.values
        with pytest.raises(Exception, match="resource not found"):
            await client.read_resource("nobody+demo://nothing")


@pytest.mark.parametrize("mode", ERAS)
async def test_backend_asks_the_calling_client(everything: Path, mode: str) -> None:
    recorder = Recorder()
    async with session(everything, mode, recorder) as client:
        sampled = await client.call_tool(
            "call_tool",
            {"id": "everything.trigger-sampling-request", "arguments": {"prompt": "hello", "maxTokens": 10}},
        )
        assert "a sampled reply" in text_of(sampled), text_of(sampled)
        elicited = await client.call_tool(
            "call_tool", {"id": "everything.trigger-elicitation-request", "arguments": {}}
        )
        assert not elicited.is_error, text_of(elicited)
        roots = await client.call_tool("call_tool", {"id": "everything.get-roots-list", "arguments": {}})
        assert "file:///srv/quiver-test" in text_of(roots)
    # the everything server may also ask for roots on its own once it sees the caller can answer
    assert [asked for asked in recorder.asked if asked != "roots"] == ["sampling", "elicitation"]
    assert "roots" in recorder.asked


@pytest.mark.parametrize("mode", ERAS)
async def test_a_client_without_sampling_gets_the_backend_an_error_not_a_hang(everything: Path, mode: str) -> None:
    async with session(everything, mode) as client:  # declares no sampling capability
        with anyio.fail_after(30):
            result = await client.call_tool(
                "call_tool",
                {"id": "everything.trigger-sampling-request", "arguments": {"prompt": "hello", "maxTokens": 10}},
            )
    assert "does not support sampling" in text_of(result), text_of(result)


async def test_resource_updates_reach_subscribers(everything: Path) -> None:
    recorder = Recorder()
    async with session(everything, "legacy", recorder) as client:
        uri = (await client.list_resources()).resources[0].uri
        with legacy_features():
            await client.subscribe_resource(uri)
        await client.call_tool("call_tool", {"id": "everything.toggle-subscriber-updates", "arguments": {}})

        def updated() -> bool:
            return any(
                isinstance(n, types.ResourceUpdatedNotification) and n.params.uri == uri for n in recorder.notifications
            )

        await wait_until(updated, limit=20)


@pytest.mark.parametrize("mode", ERAS)
async def test_progress_is_relayed_and_keeps_a_long_call_alive(tmp_path: Path, mode: str) -> None:
    config = write_config(tmp_path / "quiver.json", {"faulty": faulty_backend(call_timeout=1.5)})
    seen: list[float] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append(progress)

    async with session(config, mode) as client:
        # 6 × 0.5 s = 3 s in all, twice the call timeout: progress after each step keeps it alive.
        result = await client.call_tool(
            "call_tool",
            {"id": "faulty.slow_with_progress", "arguments": {"steps": 6, "interval": 0.5}},
            progress_callback=on_progress,
        )
        assert text_of(result) == "finished 6 steps", text_of(result)
        assert seen == [1, 2, 3, 4, 5, 6]
        silent = await client.call_tool("call_tool", {"id": "faulty.hang", "arguments": {"seconds": 3}})
        assert silent.is_error
        assert "did not answer within 1.5s" in text_of(silent)


@pytest.mark.parametrize("mode", ERAS)
async def test_cancelling_a_call_cancels_it_downstream(tmp_path: Path, mode: str) -> None:
    config = write_config(tmp_path / "quiver.json", {"faulty": faulty_backend()})
    marker = tmp_path / "cancelled.txt"
    async with session(config, mode) as client:
        await client.call_tool("call_tool", {"id": "faulty.echo", "arguments": {"message": "warm up"}})
        with anyio.move_on_after(1.5):
            await client.call_tool(
                "call_tool", {"id": "faulty.hang", "arguments": {"seconds": 60, "marker": str(marker)}}
            )
        await wait_until(marker.exists, limit=15)
        after = await client.call_tool("call_tool", {"id": "faulty.echo", "arguments": {"message": "still here"}})
        assert text_of(after) == "still here"


async def test_pinned_tools_are_listed_and_callable(tmp_path: Path) -> None:
    config = write_config(tmp_path / "quiver.json", {"time": time_backend()}, pinned=["time.get_current_*"])
    async with session(config, "legacy") as client:
        names = [tool.name for tool in (await client.list_tools()).tools]
        assert names == [
            "search_tools",
            "describe_tools",
            "call_tool",
            "list_servers",
            "install_server",
            "time__get_current_time",
        ]
        called = await client.call_tool("time__get_current_time", {"timezone": "Asia/Tokyo"})
        assert "Asia/Tokyo" in text_of(called)
        not_pinned = await client.call_tool("time__convert_time", {})
        assert not_pinned.is_error


async def test_aggregate_mode_and_per_backend_endpoint(tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "quiver.json", {"time": time_backend(), "everything": everything_backend()}, exposure="aggregate"
    )
    with quiver_serve(config) as served:
        async with Client(served.url, cache=None) as client:
            names = {tool.name for tool in (await client.list_tools()).tools}
            assert {"time__get_current_time", "time__convert_time", "everything__echo"} <= names
            assert "search_tools" not in names
            echoed = await client.call_tool("everything__echo", {"message": "aggregate"})
            assert text_of(echoed) == "Echo: aggregate"
        async with Client(f"{served.url}/time", cache=None) as client:
            names = {tool.name for tool in (await client.list_tools()).tools}
            assert names == {"get_current_time", "convert_time"}
            called = await client.call_tool("get_current_time", {"timezone": "Europe/Oslo"})
            assert "Europe/Oslo" in text_of(called)
        async with Client(f"{served.url}/everything", mode="legacy", cache=None) as client:
            resources = (await client.list_resources()).resources
            assert resources[0].uri.startswith("demo://")  # a backend's own endpoint keeps its own URIs
