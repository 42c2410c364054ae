"""`quiver demo`: a scripted client session through a real gateway in front of real servers.

It writes a throw-away config for the reference servers it can find (PyPI servers from this
environment, npm servers from a local node_modules), launches `quiver stdio` as a child
process exactly as an MCP client would, and walks search → describe → call for a few tasks.
It ends with what the gateway's tool surface costs in context against listing every tool.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import anyio
import mcp_types as types
from rich.console import Console
from rich.table import Table

from quiver.errors import QuiverError

NPM_SCOPE = "@modelcontextprotocol"
DEFAULT_NODE_MODULES = Path("tools/node/node_modules")


@dataclass(frozen=True)
class Task:
    query: str
    expected: str
    arguments: dict[str, Any]


def _pypi_command(name: str) -> str | None:
    local = Path(sys.executable).parent / name
    return str(local) if local.exists() else shutil.which(name)


def demo_backends(node_modules: Path, workdir: Path) -> dict[str, dict[str, Any]]:
    backends: dict[str, dict[str, Any]] = {}
    if time_cmd := _pypi_command("mcp-server-time"):
        backends["time"] = {
            "command": time_cmd,
            "args": ["--local-timezone", "UTC"],
            "description": "Time zones",
        }
    if git_cmd := _pypi_command("mcp-server-git"):
        backends["git"] = {
            "command": git_cmd,
            "args": ["-r", str(workdir / "repo")],
            "description": "Git repository",
        }
    if fetch_cmd := _pypi_command("mcp-server-fetch"):
        backends["fetch"] = {"command": fetch_cmd, "description": "Fetch web pages"}
    node = shutil.which("node")
    npm = {
        "everything": ("server-everything", ["stdio"]),
        "filesystem": ("server-filesystem", [str(workdir / "files")]),
        "memory": ("server-memory", []),
    }
    for name, (package, args) in npm.items():
        script = node_modules / NPM_SCOPE / package / "dist" / "index.js"
        if node and script.exists():
            backends[name] = {"command": node, "args": [str(script), *args]}
    if "memory" in backends:
        backends["memory"]["env"] = {"MEMORY_FILE_PATH": str(workdir / "memory.jsonl")}
    return backends


def _prepare_workdir(workdir: Path) -> None:
    files = workdir / "files"
    files.mkdir()
    (files / "notes.txt").write_text("Quiver demo: the gateway found this file through search.\n")
    repo = workdir / "repo"
    repo.mkdir()
    git = shutil.which("git")
    if git:
        env = {**os.environ, "GIT_AUTHOR_NAME": "demo", "GIT_AUTHOR_EMAIL": "demo@example.com"}
        env |= {"GIT_COMMITTER_NAME": "demo", "GIT_COMMITTER_EMAIL": "demo@example.com"}
        (repo / "README.md").write_text("demo repository\n")
        for cmd in (["init", "-q"], ["add", "README.md"], ["commit", "-q", "-m", "First commit of the demo"]):
            subprocess.run([git, *cmd], cwd=repo, env=env, check=True, capture_output=True)


def _tasks(workdir: Path, names: set[str]) -> list[Task]:
    tasks = [
        Task("what time is it in Tokyo right now", "time.get_current_time", {"timezone": "Asia/Tokyo"}),
        Task("list the files in a directory", "filesystem.list_directory", {"path": str(workdir / "files")}),
        Task("show the commit history of the repository", "git.git_log", {"repo_path": str(workdir / "repo")}),
        Task(
            "remember a fact about a person in the knowledge graph",
            "memory.create_entities",
            {"entities": [{"name": "Ada", "entityType": "person", "observations": ["wrote the first program"]}]},
        ),
        Task("echo a message back", "everything.echo", {"message": "hello through the gateway"}),
    ]
    return [task for task in tasks if task.expected.split(".")[0] in names]


async def run_demo(node_modules: str | None) -> None:
    from mcp import Client
    from mcp.client.stdio import StdioServerParameters

    from quiver import tokens

    console = Console()
    modules = Path(node_modules) if node_modules else DEFAULT_NODE_MODULES
    with tempfile.TemporaryDirectory(prefix="quiver-demo-") as tmp:
        workdir = Path(tmp)
        _prepare_workdir(workdir)
        backends = demo_backends(modules.resolve(), workdir)
        if not backends:
            raise QuiverError(
                "no reference servers found for the demo",
                hint="run `make demo`: it installs them (PyPI servers in .venv, npm servers in tools/node)",
            )
        config = workdir / "quiver.yaml"
        config.write_text(json.dumps({"backends": backends}, indent=2))
        env = {
            **os.environ,
            "QUIVER_CACHE_DIR": str(workdir / "cache"),
            "QUIVER_STATE_DIR": str(workdir / "state"),
        }
        console.print(f"[bold]Quiver demo[/]: a client session through the gateway, {len(backends)} real servers")
        console.print(f"backends: {', '.join(backends)}\n")
        params = StdioServerParameters(
            command=sys.executable, args=["-m", "quiver", "stdio", "--config", str(config)], env=env
        )
        async with Client(params, cache=None) as client:
            surface = (await client.list_tools()).tools
            surface_tokens = tokens.tools_list_tokens(surface, client.instructions)
            console.print(
                f"The client sees {len(surface)} tools: {', '.join(t.name for t in surface)} "
                f"({surface_tokens} tokens with instructions, protocol {client.protocol_version})\n"
            )
            for task in _tasks(workdir, set(backends)):
                await _walk(console, client, task)
            servers = await client.call_tool("list_servers", {})
            console.print("[bold]list_servers[/]")
            console.print(_text(servers))
        direct_tokens, direct_count = await _direct_cost(backends, env)
    table = Table("surface", "tools", "tokens", title="Context cost of the tool surface (cl100k_base)")
    table.add_row("every tool listed directly", str(direct_count), str(direct_tokens))
    table.add_row("Quiver meta-tools + instructions", str(len(surface)), str(surface_tokens))
    console.print(table)
    if direct_tokens:
        saved = 100 * (1 - surface_tokens / direct_tokens)
        console.print(f"The gateway surface costs {saved:.0f}% less context, whatever the number of servers.")


async def _walk(console: Console, client: Any, task: Task) -> None:
    from quiver import tokens

    console.rule(f"[bold]{task.query}")
    found = await client.call_tool("search_tools", {"query": task.query, "limit": 5})
    results = (found.structured_content or {}).get("results", [])
    ids = [item["id"] for item in results]
    console.print(f"search_tools → {tokens.result_tokens(found)} tokens")
    console.print(_text(found))
    rank = ids.index(task.expected) + 1 if task.expected in ids else None
    console.print(f"expected tool {task.expected}: " + (f"rank {rank}" if rank else "not in the top 5"))
    described = await client.call_tool("describe_tools", {"ids": [task.expected]})
    schema = (described.structured_content or {}).get("tools", [{}])[0].get("inputSchema", {})
    console.print(f"describe_tools → input schema properties: {', '.join(schema.get('properties', {}))}")
    result = await client.call_tool("call_tool", {"id": task.expected, "arguments": task.arguments})
    status = "[red]error[/]" if result.is_error else "[green]ok[/]"
    console.print(f"call_tool → {status}: {_text(result)[:300]}\n")


async def _direct_cost(backends: dict[str, dict[str, Any]], env: dict[str, str]) -> tuple[int, int]:
    """Tokens of every backend's own tools/list, connecting to each directly (no gateway)."""
    from mcp import Client
    from mcp.client.stdio import StdioServerParameters, stdio_client

    from quiver import tokens

    all_tools: list[types.Tool] = []
    with _devnull() as quiet:
        for spec in backends.values():
            params = StdioServerParameters(command=spec["command"], args=spec.get("args", []), env=spec.get("env"))
            with anyio.move_on_after(30):
                async with Client(stdio_client(params, errlog=quiet), cache=None) as client:
                    all_tools.extend((await client.list_tools()).tools)
    return tokens.tools_list_tokens(all_tools), len(all_tools)


def _devnull() -> TextIO:
    return open(os.devnull, "w")


def _text(result: types.CallToolResult) -> str:
    return "\n".join(block.text for block in result.content if isinstance(block, types.TextContent))
