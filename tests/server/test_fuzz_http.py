"""Malformed input at the real `/mcp` endpoint: errors come back, never crashes, and the gateway keeps serving.

Hypothesis throws random bytes, random JSON, JSON-RPC with wrong types, unknown methods, deep
nesting and odd unicode (bidi controls, NUL, lone surrogates escaped in JSON or raw) at a
gateway with no backends, three ways: with no session, inside a handshake-era session, and as
stateless 2026-07-28 requests. Every answer must be a 2xx carrying JSON-RPC messages, or a 4xx.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import anyio
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcp import Client
from mcp.server.transport_security import DEFAULT_MAX_REQUEST_BODY_SIZE
from mcp.shared.inbound import NAME_BEARING_METHODS, encode_header_value

from quiver.config.models import HttpSettings, QuiverConfig
from quiver.gateway import Gateway
from quiver.server.http import build_app
from tests.server.test_auth import ACCEPT, INITIALIZE, serving

MAX_BODY = DEFAULT_MAX_REQUEST_BODY_SIZE  # 4 MiB
EXAMPLES = 200
MODERN = "2026-07-28"
MODERN_META = {
    "io.modelcontextprotocol/protocolVersion": MODERN,
    "io.modelcontextprotocol/clientCapabilities": {},
    "io.modelcontextprotocol/clientInfo": {"name": "fuzz", "version": "0"},
}
# Methods a client may send, minus `subscriptions/listen`, whose stream stays open by design.
METHODS = [
    "initialize",
    "ping",
    "server/discover",
    "tools/list",
    "tools/call",
    "resources/list",
    "resources/templates/list",
    "resources/read",
    "resources/subscribe",
    "resources/unsubscribe",
    "prompts/list",
    "prompts/get",
    "completion/complete",
    "logging/setLevel",
    "notifications/initialized",
    "notifications/cancelled",
    "notifications/progress",
]
TOOLS = ["search_tools", "describe_tools", "call_tool", "list_servers", "install_server"]
ODD = ["\u202e", "\u202d", "\u2066", "\u200f", "\x00", "\ud800", "\udfff", "\ufeff", "\uffff", "\U0010ffff", "💥"]


@dataclass
class Served:
    base: str
    session: str

    @property
    def url(self) -> str:
        return f"{self.base}/mcp"


@pytest.fixture
def served() -> Iterator[Served]:
    with serving(lambda base: build_app(Gateway(QuiverConfig()), HttpSettings())) as base, httpx.Client() as http:
        opened = http.post(f"{base}/mcp", json=INITIALIZE, headers=ACCEPT)
        assert opened.status_code == 200
        session = opened.headers["mcp-session-id"]
        headers = {**ACCEPT, "Mcp-Session-Id": session, "Mcp-Protocol-Version": "2025-11-25"}
        initialized = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        assert http.post(f"{base}/mcp", json=initialized, headers=headers).status_code == 202
        yield Served(base, session)


# -- what is thrown --------------------------------------------------------------------------

odd_text = st.text(st.one_of(st.sampled_from(ODD), st.characters(codec=None)), max_size=20)
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), odd_text)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(odd_text, inner, max_size=4),
    max_leaves=12,
)
MISSING = object()


def shaped(method: str) -> st.SearchStrategy[dict[str, Any]]:
    """Params with the members `method` reads, holding anything."""
    name = st.sampled_from(TOOLS) | odd_text
    members: dict[str, dict[str, st.SearchStrategy[Any]]] = {
        "tools/call": {"name": name, "arguments": json_values},
        "prompts/get": {"name": odd_text, "arguments": json_values},
        "resources/read": {"uri": odd_text},
        "resources/subscribe": {"uri": odd_text},
        "logging/setLevel": {"level": st.sampled_from(["debug", "error"]) | odd_text},
        "initialize": {
            "protocolVersion": st.sampled_from(["2025-11-25", "2024-11-05", MODERN]) | odd_text,
            "capabilities": json_values,
            "clientInfo": json_values,
        },
    }
    return st.fixed_dictionaries(members.get(method, {}), optional={"cursor": odd_text, "_meta": json_values})


@st.composite
def messages(draw: st.DrawFn) -> dict[str, Any]:
    """A JSON-RPC-shaped object: half the time well formed with strange contents, else any member mangled."""
    if draw(st.booleans()):
        method = draw(st.sampled_from(METHODS))
        members: dict[str, Any] = {"jsonrpc": "2.0", "id": draw(st.integers(0, 2**31)), "method": method}
        members["params"] = draw(shaped(method))
    else:
        members = {
            "jsonrpc": draw(st.just("2.0") | st.just(MISSING) | json_values),
            "id": draw(st.integers() | odd_text | st.just(MISSING) | json_values),
            "method": draw(st.sampled_from(METHODS) | odd_text | json_values),
            "params": draw(st.just(MISSING) | json_values | st.dictionaries(odd_text, json_values, max_size=3)),
        }
    return {name: value for name, value in members.items() if value is not MISSING}


def nested(depth: int, kind: str) -> bytes:
    if kind == "list":
        return b"[" * depth + b"]" * depth
    inner = b'{"a":' * depth + b"1" + b"}" * depth
    return b'{"jsonrpc":"2.0","id":1,"method":"tools/list","params":' + inner + b"}"


def encode(value: Any, ascii_only: bool) -> bytes:
    # Escaped, a lone surrogate is valid JSON text; raw, it is invalid UTF-8 on the wire.
    return json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


bodies = st.one_of(
    st.binary(max_size=512),
    st.builds(encode, json_values, st.booleans()),
    st.builds(encode, messages(), st.booleans()),
    st.builds(nested, st.integers(1, 20_000), st.sampled_from(["list", "object"])),
)


@dataclass
class Thrown:
    body: bytes
    channel: str
    content_type: str | None
    accept: str | None


throws = st.builds(
    Thrown,
    body=bodies,
    channel=st.sampled_from(["fresh", "session", "modern"]),
    content_type=st.sampled_from(["application/json", "application/json", "text/plain", None]),
    accept=st.sampled_from([ACCEPT["Accept"], ACCEPT["Accept"], "application/json", "text/html", None]),
)


def as_modern(body: bytes, headers: dict[str, str]) -> bytes:
    """A request made 2026-07-28-shaped (envelope and routing headers), so the fuzz reaches past those checks."""
    headers["Mcp-Protocol-Version"] = MODERN
    try:
        message = json.loads(body)
        if not isinstance(message, dict):
            return body
        method = message.get("method")
        params = message.get("params")
        if isinstance(method, str):
            headers["Mcp-Method"] = encode_header_value(method)
            name = params.get(NAME_BEARING_METHODS.get(method, "")) if isinstance(params, dict) else None
            if isinstance(name, str):
                headers["Mcp-Name"] = encode_header_value(name)
        if isinstance(params, dict):
            params["_meta"] = MODERN_META
            return encode(message, True)
    except (ValueError, RecursionError):  # not JSON (or not encodable), or too deep to re-encode: sent as it is
        pass
    return body


def send(http: httpx.Client, served: Served, thrown: Thrown) -> httpx.Response:
    headers: dict[str, str] = {}
    if thrown.content_type is not None:
        headers["Content-Type"] = thrown.content_type
    if thrown.accept is not None:
        headers["Accept"] = thrown.accept
    body = thrown.body
    if thrown.channel == "session":
        headers |= {"Mcp-Session-Id": served.session, "Mcp-Protocol-Version": "2025-11-25"}
    elif thrown.channel == "modern":
        body = as_modern(body, headers)
    return http.post(served.url, content=body, headers=headers)


# -- what must come back ---------------------------------------------------------------------


def check(response: httpx.Response) -> None:
    text = response.text
    assert "Traceback" not in text
    assert response.status_code < 500, text[:500]
    if response.status_code == 202:  # a notification (or something read as one): no answer is due
        assert text.strip() == ""
    elif response.status_code < 300:
        for message in json_rpc_messages(response):
            assert message.get("jsonrpc") == "2.0"
            assert ("result" in message) != ("error" in message), message
    else:
        assert 400 <= response.status_code < 500


def json_rpc_messages(response: httpx.Response) -> list[dict[str, Any]]:
    kind = response.headers.get("content-type", "")
    if kind.startswith("text/event-stream"):
        data = [line[5:].strip() for line in response.text.splitlines() if line.startswith("data:")]
        return [json.loads(item) for item in data if item]
    assert kind.startswith("application/json"), kind
    return [json.loads(response.content)]


async def still_serving(url: str) -> None:
    for mode in ("legacy", "auto"):
        with anyio.fail_after(30):
            async with Client(url, mode=mode, cache=None) as client:
                found = await client.call_tool("search_tools", {"query": "anything"})
                assert not found.is_error


# -- the tests -------------------------------------------------------------------------------


def test_malformed_requests_get_errors_and_the_gateway_keeps_serving(served: Served) -> None:
    with httpx.Client(timeout=30) as http:

        @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
        @given(thrown=throws)
        def throw(thrown: Thrown) -> None:
            check(send(http, served, thrown))

        throw()
    anyio.run(still_serving, served.url)


@pytest.mark.parametrize("chunked", [False, True], ids=["sized", "chunked"])
def test_oversized_bodies_are_refused(served: Served, chunked: bool) -> None:
    body = b'{"jsonrpc":"2.0","id":1,"method":"ping","params":{"x":"' + b"a" * MAX_BODY + b'"}}'
    content: bytes | Iterator[bytes] = body
    if chunked:  # no Content-Length: the limit must hold while reading
        content = iter([body[i : i + 65536] for i in range(0, len(body), 65536)])
    headers = {**ACCEPT, "Mcp-Session-Id": served.session, "Mcp-Protocol-Version": "2025-11-25"}
    with httpx.Client(timeout=30) as http:
        response = http.post(served.url, content=content, headers=headers)
    assert response.status_code == 413
    check(response)
    anyio.run(still_serving, served.url)
