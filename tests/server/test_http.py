"""`quiver serve`: streamable HTTP in both eras, loopback-only without auth, rebinding protection."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from mcp import Client

from tests.e2e.gateway_proc import quiver_serve
from tests.servers import time_backend, write_config

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return write_config(tmp_path / "quiver.json", {"time": time_backend()})


async def test_search_describe_call_over_http_in_both_eras(config: Path) -> None:
    with quiver_serve(config) as served:
        for mode, era in (("legacy", "2025-11-25"), ("auto", "2026-07-28")):
            async with Client(served.url, mode=mode, cache=None) as client:
                assert client.protocol_version == era
                found = await client.call_tool("search_tools", {"query": "convert a time between timezones"})
                ids = [r["id"] for r in (found.structured_content or {})["results"]]
                assert ids[0] == "time.convert_time"
                described = await client.call_tool("describe_tools", {"ids": ["time.convert_time"]})
                assert (described.structured_content or {})["tools"][0]["name"] == "convert_time"
                called = await client.call_tool(
                    "call_tool",
                    {
                        "id": "time.convert_time",
                        "arguments": {
                            "source_timezone": "UTC",
                            "time": "12:00",
                            "target_timezone": "Asia/Tokyo",
                        },
                    },
                )
                assert not called.is_error
                assert (called.structured_content or {})["target"]["timezone"] == "Asia/Tokyo"


async def test_health_and_dns_rebinding_protection(config: Path) -> None:
    with quiver_serve(config) as served:
        base = served.url.removesuffix("/mcp")
        async with httpx.AsyncClient() as http:
            health = await http.get(f"{base}/healthz")
            assert health.json() == {"status": "ok"}
            body = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
            headers = {"Host": "evil.example.com", "Accept": "application/json, text/event-stream"}
            rebound = await http.post(served.url, json=body, headers=headers)
            assert rebound.status_code in (403, 421)


def test_refuses_a_non_loopback_bind_without_auth(config: Path) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "quiver",
            "serve",
            "--config",
            str(config),
            "--host",
            "0.0.0.0",
            "--port",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode != 0
    assert "refusing to serve on 0.0.0.0" in out.stderr
    assert "Traceback" not in out.stderr
