"""One client session through the gateway to every real reference server.

PyPI servers (time, git, fetch) and npm servers (everything, filesystem, memory) over stdio,
plus server-everything as remote backends over streamable HTTP and SSE; the gateway itself is
reached over stdio and over streamable HTTP.
"""

from __future__ import annotations

import http.server
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from tests.e2e.gateway_proc import quiver_serve
from tests.fakes import text_of
from tests.servers import (
    everything_backend,
    everything_remote,
    node,
    npm_server_script,
    pypi_server,
    time_backend,
    write_config,
)

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


class _Page(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"<html><body><h1>Quiver test page</h1><p>fetched through the gateway</p></body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def web_page() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/page"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def world(tmp_path: Path, web_page: str) -> Iterator[tuple[Path, dict[str, tuple[str, dict[str, Any], str]]]]:
    """A config with every real server, and per backend: (tool, arguments, text expected in the result)."""
    repo = tmp_path / "repo"
    repo.mkdir()
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@e", "GIT_COMMITTER_NAME": "t"}
    env["GIT_COMMITTER_EMAIL"] = "t@e"
    (repo / "a.txt").write_text("a\n")
    for cmd in (["init", "-q"], ["add", "a.txt"], ["commit", "-q", "-m", "The very first commit"]):
        subprocess.run(["git", *cmd], cwd=repo, env=env, check=True)
    files = tmp_path / "files"
    files.mkdir()
    (files / "hello.txt").write_text("hello from the filesystem server\n")
    with ExitStack() as stack:
        http_url = stack.enter_context(everything_remote("streamableHttp"))
        sse_url = stack.enter_context(everything_remote("sse"))
        backends = {
            "time": time_backend(),
            "git": {"command": pypi_server("mcp-server-git"), "args": ["-r", str(repo)]},
            "fetch": {
                "command": pypi_server("mcp-server-fetch"),
                "args": ["--allow-private-ips", "--ignore-robots-txt"],
            },
            "everything": everything_backend(),
            "filesystem": {"command": node(), "args": [npm_server_script("server-filesystem"), str(files)]},
            "memory": {
                "command": node(),
                "args": [npm_server_script("server-memory")],
                "env": {"MEMORY_FILE_PATH": str(tmp_path / "memory.jsonl")},
            },
            "remote": {"type": "http", "url": http_url},
            "legacy-sse": {"type": "sse", "url": sse_url},
        }
        config = write_config(tmp_path / "quiver.json", backends)
        calls: dict[str, tuple[str, dict[str, Any], str]] = {
            "time": ("get_current_time", {"timezone": "Asia/Tokyo"}, "Asia/Tokyo"),
            "git": ("git_log", {"repo_path": str(repo)}, "The very first commit"),
            "fetch": ("fetch", {"url": web_page}, "fetched through the gateway"),
            "everything": ("echo", {"message": "stdio"}, "Echo: stdio"),
            "filesystem": ("read_text_file", {"path": str(files / "hello.txt")}, "hello from the filesystem"),
            "memory": (
                "create_entities",
                {"entities": [{"name": "Ada", "entityType": "person", "observations": ["programmer"]}]},
                "Ada",
            ),
            "remote": ("echo", {"message": "streamable http"}, "Echo: streamable http"),
            "legacy-sse": ("echo", {"message": "sse"}, "Echo: sse"),
        }
        yield config, calls


async def walk(client: Client, calls: dict[str, tuple[str, dict[str, Any], str]]) -> None:
    servers = await client.call_tool("list_servers", {})
    assert {s["name"] for s in (servers.structured_content or {})["servers"]} == set(calls)
    for backend, (tool, arguments, expected) in calls.items():
        tool_id = f"{backend}.{tool}"
        described = await client.call_tool("describe_tools", {"ids": [tool_id]})
        definition = (described.structured_content or {})["tools"][0]
        assert "error" not in definition, definition
        assert definition["name"] == tool
        called = await client.call_tool("call_tool", {"id": tool_id, "arguments": arguments})
        assert not called.is_error, text_of(called)
        assert expected in text_of(called), (tool_id, text_of(called))
    found = await client.call_tool("search_tools", {"query": "read the contents of a text file", "limit": 5})
    ids = [r["id"] for r in (found.structured_content or {})["results"]]
    assert "filesystem.read_text_file" in ids
    found = await client.call_tool("search_tools", {"query": "show the git commit log", "limit": 5})
    assert "git.git_log" in [r["id"] for r in (found.structured_content or {})["results"]]


async def test_every_real_server_through_quiver_stdio(world: tuple[Path, Any]) -> None:
    config, calls = world
    env = {key: os.environ[key] for key in ("QUIVER_CACHE_DIR", "QUIVER_STATE_DIR", "TIKTOKEN_CACHE_DIR")}
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "quiver", "stdio", "--config", str(config)], env=env
    )
    async with Client(params, mode="legacy", cache=None) as client:
        await walk(client, calls)


async def test_every_real_server_through_quiver_http(world: tuple[Path, Any]) -> None:
    config, calls = world
    with quiver_serve(config) as served:
        async with Client(served.url, cache=None) as client:
            await walk(client, calls)
