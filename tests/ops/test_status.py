"""Status files: written while a gateway serves, gone when it stops, and what `quiver status` shows."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import pytest
import typer
from typer.testing import CliRunner

from quiver.cli.ops import duration, register
from quiver.config.loader import read_config_file
from quiver.gateway import Gateway, state_dir
from quiver.ops.status import GatewayReport, StatusWriter, read_statuses, status_path
from tests.e2e.gateway_proc import quiver_serve, stdio_params
from tests.fakes import FakeWorld, tool, wait_until
from tests.servers import time_backend, write_config

runner = CliRunner()


def cli() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


def fake_gateway(tmp_path: Path, world: FakeWorld, *names: str) -> Gateway:
    config = write_config(tmp_path / "quiver.json", {name: {"command": "fake"} for name in names})
    return Gateway(read_config_file(config), backend_factory=world.factory)


@pytest.mark.anyio
async def test_writer_reports_the_gateway_and_its_backends_then_removes_the_file(tmp_path: Path) -> None:
    world = FakeWorld()
    world.tools["clock"] = [tool("now", "The time"), tool("zone", "A time zone")]
    gateway = fake_gateway(tmp_path, world, "clock", "files")
    path = status_path(state_dir(gateway.config))
    writer = StatusWriter(gateway, path)
    async with gateway.running(), anyio.create_task_group() as tg:
        tg.start_soon(writer.run)
        writer.serving("http", "http://127.0.0.1:9/mcp")
        await wait_until(path.exists)
        await gateway.supervisor.get("clock").ensure_running()
        writer.write()
        [report] = read_statuses(state_dir(gateway.config))
        tg.cancel_scope.cancel()
    assert (report.transport, report.url) == ("http", "http://127.0.0.1:9/mcp")
    assert report.config == str(tmp_path / "quiver.json")
    backends = {backend.name: backend for backend in report.backends}
    assert backends["clock"].state == "running"
    assert backends["clock"].tools == 2
    assert backends["clock"].uptime is not None
    assert backends["clock"].breaker == "closed"
    assert backends["files"].state == "configured"
    assert backends["files"].tools is None
    assert not path.exists()


@pytest.mark.anyio
async def test_nothing_is_written_until_a_transport_serves(tmp_path: Path) -> None:
    gateway = fake_gateway(tmp_path, FakeWorld(), "clock")
    path = status_path(state_dir(gateway.config))
    writer = StatusWriter(gateway, path)
    async with gateway.running(), anyio.create_task_group() as tg:
        tg.start_soon(writer.run)
        await anyio.wait_all_tasks_blocked()
        assert not path.exists()
        tg.cancel_scope.cancel()


def test_files_of_dead_processes_are_dropped(tmp_path: Path) -> None:
    state = tmp_path / "state"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    report = GatewayReport(pid=0, started=1.0, updated=1.0, transport="stdio", url=None, config=None)
    for pid in (dead.pid, os.getpid()):
        path = status_path(state, pid)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({**report.to_dict(), "pid": pid}))
    (state / "run" / "garbage.json").write_text("{")
    assert [found.pid for found in read_statuses(state)] == [os.getpid()]
    assert not status_path(state, dead.pid).exists()


def test_status_without_a_gateway_shows_the_configured_backends(tmp_path: Path) -> None:
    world = FakeWorld()
    world.tools["clock"] = [tool("now", "The time")]
    gateway = fake_gateway(tmp_path, world, "clock", "files")

    async def refresh() -> None:
        async with gateway.running():
            await gateway.refresh(["clock"])

    anyio.run(refresh)
    config = str(tmp_path / "quiver.json")
    shown = runner.invoke(cli(), ["status", "--config", config, "--json"])
    assert shown.exit_code == 0, shown.output
    data = json.loads(shown.stdout)
    assert data["gateways"] == []
    assert [(row["name"], row["tools"]) for row in data["configured"]] == [("clock", 1), ("files", None)]
    text = runner.invoke(cli(), ["status", "--config", config])
    assert "no Quiver gateway is running" in text.stdout
    assert "? (quiver refresh)" in text.stdout


@pytest.mark.e2e
def test_status_shows_a_running_gateway_and_its_backends(tmp_path: Path) -> None:
    config = write_config(tmp_path / "quiver.json", {"time": time_backend(autostart=True)})

    def shown() -> dict[str, Any]:
        result = runner.invoke(cli(), ["status", "--config", str(config), "--json"])
        assert result.exit_code == 0, result.output
        data: dict[str, Any] = json.loads(result.stdout)
        return data

    with quiver_serve(config) as served:
        # Another process: nothing to await but its status file; the autostarted backend comes up soon.
        deadline = time.monotonic() + 20
        while _states(shown()) != {"time": "running"}:
            assert time.monotonic() < deadline, shown()
            time.sleep(0.1)
        [gateway] = shown()["gateways"]
        assert gateway["pid"] == served.pid
        assert (gateway["transport"], gateway["url"]) == ("http", served.url)
        assert gateway["backends"][0]["tools"] == 2
        text = runner.invoke(cli(), ["status", "--config", str(config)]).stdout
        assert f"gateway {served.pid}: http {served.url}" in text
    assert shown()["gateways"] == []


@pytest.mark.e2e
@pytest.mark.anyio
async def test_a_stdio_gateway_reports_itself_while_its_client_is_connected(tmp_path: Path) -> None:
    from mcp import Client

    config = write_config(tmp_path / "quiver.json", {"time": time_backend()})
    state = tmp_path / "state"
    async with Client(stdio_params(config), cache=None) as client:
        await client.call_tool("list_servers", {})
        await wait_until(lambda: bool(read_statuses(state)), limit=20)
        [report] = read_statuses(state)
        assert (report.transport, report.url, report.config) == ("stdio", None, str(config))
        assert [backend.name for backend in report.backends] == ["time"]
    await wait_until(lambda: not read_statuses(state), limit=20)


def _states(data: dict[str, Any]) -> dict[str, str]:
    return {backend["name"]: backend["state"] for gateway in data["gateways"] for backend in gateway["backends"]}


@pytest.mark.parametrize(
    ("seconds", "text"), [(0, "0s"), (42.9, "42s"), (303, "5m 3s"), (7440, "2h 4m"), (266400, "3d 2h"), (3600, "1h")]
)
def test_durations_read_at_a_glance(seconds: float, text: str) -> None:
    assert duration(seconds) == text
