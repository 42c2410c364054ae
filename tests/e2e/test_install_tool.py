"""The model installs a server it found in search: install_server through a real MCP session."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mcp import Client

from quiver.config import read_config_file
from quiver.gateway import Gateway
from quiver.server.app import GatewayApp
from tests.fakes import text_of, wait_until
from tests.servers import time_backend, write_config

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


@pytest.mark.timeout(300)
async def test_search_suggests_install_reports_progress_and_the_tools_are_usable_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_config(tmp_path / "quiver.json", {"time": time_backend()})
    monkeypatch.setenv("MEMORY_FILE_PATH", str(tmp_path / "graph.jsonl"))
    app = GatewayApp(Gateway(read_config_file(config), watch=True))
    steps: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        steps.append((progress, total, message))

    async with app.running(), Client(app.server, mode="legacy", cache=None) as client:
        await wait_until(lambda: app.gateway.manifest is not None, 30)
        found = await client.call_tool("search_tools", {"query": "remember facts in a knowledge graph"})
        suggested = [r for r in (found.structured_content or {})["results"] if r["state"] == "not installed"]
        assert suggested[0]["id"] == "memory", found.structured_content
        assert "memory [server, not installed: install_server]" in text_of(found)

        installed = await client.call_tool("install_server", {"name": "memory"}, progress_callback=on_progress)
        assert not installed.is_error, text_of(installed)
        assert (installed.structured_content or {})["tools"] == 9

        again = await client.call_tool("search_tools", {"query": "remember facts in a knowledge graph"})
        ids = [r["id"] for r in (again.structured_content or {})["results"]]
        assert "memory.create_entities" in ids
        assert "memory" not in ids  # no longer suggested
        called = await client.call_tool(
            "call_tool",
            {
                "id": "memory.create_entities",
                "arguments": {"entities": [{"name": "Ada", "entityType": "person", "observations": ["a"]}]},
            },
        )
        assert not called.is_error, text_of(called)

        refused = await client.call_tool("install_server", {"name": "memory"})
        assert refused.is_error
        assert "already configured" in text_of(refused)
        unknown = await client.call_tool("install_server", {"name": "postgress"})
        assert unknown.is_error
        assert "postgres" in text_of(unknown)  # did you mean

    assert "Ada" in (tmp_path / "graph.jsonl").read_text()
    assert steps, "no progress notifications reached the client"
    assert [done for done, _, _ in steps] == sorted(done for done, _, _ in steps)
    assert steps[-1][0] == steps[-1][1]
    registered = json.loads(config.read_text())["backends"]
    assert set(registered) == {"time", "memory"}
