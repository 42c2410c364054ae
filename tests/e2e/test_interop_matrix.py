"""The interoperability matrix: independent MCP clients × transports × protocol eras through Quiver.

Each client (the Python SDK in both eras, TypeScript SDK v1, TypeScript SDK v2 in both eras, the
MCP Inspector CLI in both eras) reaches a real gateway over stdio (`quiver stdio`, launched by the
client) and streamable HTTP (one `quiver serve` for the module). Behind the gateway sit
mcp-server-time, server-everything (a handshake-era TypeScript server) and the conformance
reference server (a 2026-07-28 Python server). Every client that keeps a connection runs the whole
plan once; its report is shared by the feature tests below:

- search → describe → call through the meta-tools;
- `tools/list_changed` when a backend announces a change of a pinned (so listed) tool, heard on the
  connection (handshake era) or on a `subscriptions/listen` stream (2026-07-28);
- a sampling and an elicitation request from each of the two backends that ask, answered by the
  client's own handlers with fixed answers that must come back in the backend's result.

docs/INTEROP.md shows the matrix and says how to run it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AsyncExitStack, ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import anyio
import mcp_types as types
import pytest
from mcp import Client
from mcp.client.session import ClientRequestContext, IncomingMessage
from mcp.client.stdio import StdioServerParameters

from tests.e2e.conformance import REFERENCE_SERVER
from tests.e2e.gateway_proc import quiver_serve, stdio_command
from tests.e2e.test_independent_clients import (
    HANDSHAKE_VERSION,
    META_TOOLS,
    STATELESS_SERVER_INFO,
    TIME_ID,
    TIME_QUERY,
    Target,
    assert_current_utc_time,
    described,
    found_ids,
    inspector,
    text_of,
)
from tests.servers import everything_backend, node, time_backend, write_config

pytestmark = pytest.mark.e2e

STATELESS_VERSION: Final = "2026-07-28"
# Pinned, so the meta surface lists it directly and a change of its backend's tools is one a client sees.
TRIGGER_ID: Final = "reference.test_trigger_tool_change"
TRIGGER_NAME: Final = "reference__test_trigger_tool_change"

SAMPLED_TEXT: Final = "Paris, said the interop matrix model"
ELICITED_NAME: Final = "Matrix Tester"
# Answers to every form field the two backends ask for; each form gets the fields it names.
ELICITED_FIELDS: Final = {"name": ELICITED_NAME, "username": ELICITED_NAME, "email": "tester@example.com"}
EVERYTHING_FORM_MESSAGE: Final = "Please provide inputs for the following fields:"
REFERENCE_FORM_MESSAGE: Final = "Who is running the interop matrix?"
BACKENDS_THAT_ASK: Final = ("everything", "reference")


def sampling_prompt(backend: str) -> str:
    return f"Interop matrix question through {backend}"


# The calls whose backends ask the client something, keyed as the reports key their results.
BACKEND_CALLS: Final[dict[str, dict[str, Any]]] = {
    "sampling_everything": {
        "id": "everything.trigger-sampling-request",
        "arguments": {"prompt": sampling_prompt("everything"), "maxTokens": 20},
    },
    "sampling_reference": {"id": "reference.test_sampling", "arguments": {"prompt": sampling_prompt("reference")}},
    "elicitation_everything": {"id": "everything.trigger-elicitation-request", "arguments": {}},
    "elicitation_reference": {"id": "reference.test_elicitation", "arguments": {"message": REFERENCE_FORM_MESSAGE}},
}

# How long a client waits for the change notification after the trigger returned: it normally comes
# within milliseconds; the wait only bounds a failing cell.
LIST_CHANGED_WAIT: Final = 10.0
# A single request, including a backend's first start behind the gateway.
REQUEST_TIMEOUT: Final = 30.0
# A whole client run (connect, every step, close); a hang must fail inside the per-test timeout.
CLIENT_TIMEOUT: Final = 90.0

PLAN: Final[dict[str, Any]] = {
    "walk": {"query": TIME_QUERY, "id": TIME_ID, "arguments": {"timezone": "UTC"}},
    "listChanged": {"id": TRIGGER_ID, "waitMs": int(LIST_CHANGED_WAIT * 1000)},
    "calls": BACKEND_CALLS,
    "answers": {"sampling": SAMPLED_TEXT, "elicitation": ELICITED_FIELDS},
    "requestTimeoutMs": int(REQUEST_TIMEOUT * 1000),
}

CLIENTS_DIR: Final = Path(__file__).parent / "clients"
TS_V1: Final = CLIENTS_DIR / "ts_matrix_v1.mjs"
TS_V2: Final = CLIENTS_DIR / "ts_matrix_v2.mjs"

TRANSPORTS: Final = ("stdio", "http")
# Client → the protocol version it must end up speaking with Quiver (which offers both eras).
SDK_CLIENTS: Final = {
    "python-legacy": HANDSHAKE_VERSION,
    "python-auto": STATELESS_VERSION,
    "ts-v1": HANDSHAKE_VERSION,
    "ts-v2-legacy": HANDSHAKE_VERSION,
    "ts-v2-auto": STATELESS_VERSION,
}
INSPECTOR_ERAS: Final = ("legacy", "modern")
INSPECTOR_ONE_SHOT: Final = (
    "the Inspector CLI is one-shot: one request per process, with no handlers for server requests "
    "and nothing left open to receive notifications"
)


# --- the Python SDK client, in this process ---


@dataclass
class Changes:
    """Counts `notifications/tools/list_changed` and lets a step wait for the next one."""

    count: int = 0
    _next: anyio.Event = field(default_factory=anyio.Event)

    def seen(self) -> None:
        self.count += 1
        self._next.set()
        self._next = anyio.Event()

    async def beyond(self, count: int, limit: float) -> bool:
        with anyio.move_on_after(limit):
            while self.count <= count:
                await self._next.wait()
        return self.count > count


class Answers:
    """The Python client's side of the conversation: fixed answers, and what it was asked and told."""

    def __init__(self) -> None:
        self.asked: dict[str, list[str]] = {"sampling": [], "elicitation": []}
        self.changes = Changes()

    async def sample(
        self, context: ClientRequestContext, params: types.CreateMessageRequestParams
    ) -> types.CreateMessageResult:
        self.asked["sampling"].append("\n".join(getattr(message.content, "text", "") for message in params.messages))
        return types.CreateMessageResult(
            role="assistant", content=types.TextContent(text=SAMPLED_TEXT), model="interop-matrix"
        )

    async def elicit(self, context: ClientRequestContext, params: types.ElicitRequestParams) -> types.ElicitResult:
        self.asked["elicitation"].append(params.message)
        form = params.requested_schema if isinstance(params, types.ElicitRequestFormParams) else {}
        fields = form.get("properties", {})
        content: dict[str, str | int | float | bool | list[str] | None] = {
            key: value for key, value in ELICITED_FIELDS.items() if key in fields
        }
        return types.ElicitResult(action="accept", content=content)

    async def on_message(self, message: IncomingMessage) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            self.changes.seen()


async def recorded(seen: dict[str, Any], name: str, body: Callable[[], Awaitable[None]]) -> None:
    """Run one step; a failure is recorded in the report, and the next step runs all the same."""
    try:
        await body()
    except Exception as exc:
        seen["errors"][name] = repr(exc)


async def python_client(mode: str, target: str | StdioServerParameters) -> dict[str, Any]:
    """The plan through the Python SDK `Client`; the report has the TypeScript clients' shape."""
    answers = Answers()
    seen: dict[str, Any] = {"client": f"python-sdk-{mode}", "errors": {}, "asked": answers.asked, "calls": {}}
    async with Client(
        target,
        mode=mode,
        sampling_callback=answers.sample,
        elicitation_callback=answers.elicit,
        message_handler=answers.on_message,
        read_timeout_seconds=REQUEST_TIMEOUT,
        cache=None,
    ) as client:
        seen["protocolVersion"] = client.protocol_version
        info = client.server_info
        seen["server"] = info.model_dump(mode="json", exclude_none=True) if info is not None else None

        async def call(name: str, arguments: dict[str, Any]) -> dict[str, Any]:
            result: dict[str, Any] = (await client.call_tool(name, arguments)).model_dump(
                by_alias=True, mode="json", exclude_none=True
            )
            return result

        async def walk() -> None:
            seen["tools"] = [tool.name for tool in (await client.list_tools()).tools]
            seen["search"] = await call("search_tools", {"query": TIME_QUERY})
            seen["describe"] = await call("describe_tools", {"ids": [TIME_ID]})
            seen["call"] = await call("call_tool", {"id": TIME_ID, "arguments": {"timezone": "UTC"}})

        async def list_changed() -> None:
            async with AsyncExitStack() as stack:
                if client.protocol_version == STATELESS_VERSION:
                    # No connection to notify in this era: changes come on a listen stream, whose
                    # events the SDK also hands to `message_handler`.
                    await stack.enter_async_context(client.listen(tools_list_changed=True))
                before = answers.changes.count
                trigger = await call("call_tool", {"id": TRIGGER_ID, "arguments": {}})
                received = await answers.changes.beyond(before, LIST_CHANGED_WAIT)
                after = answers.changes.count
                seen["listChanged"] = {"before": before, "trigger": trigger, "received": received, "after": after}

        await recorded(seen, "walk", walk)
        await recorded(seen, "listChanged", list_changed)
        for key, planned in BACKEND_CALLS.items():

            async def ask(key: str = key, planned: dict[str, Any] = planned) -> None:
                seen["calls"][key] = await call("call_tool", planned)

            await recorded(seen, key, ask)
    return seen


# --- running a client once per transport, for every feature test ---


def run_node(script: Path, target: Target, env: dict[str, str], negotiation: str | None = None) -> dict[str, Any]:
    """A TypeScript client's report; a client that could not even connect fails the test here."""
    plan = PLAN if negotiation is None else {**PLAN, "negotiation": negotiation}
    argv = [node(), str(script), json.dumps(plan), target.transport, *target.argv]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=CLIENT_TIMEOUT, env=env, check=False)
    assert done.returncode == 0, f"{argv} exited with {done.returncode}\nstdout: {done.stdout}\nstderr: {done.stderr}"
    report: dict[str, Any] = json.loads(done.stdout)
    return report


class Matrix:
    """One `quiver serve` for the module, and each client's report over each transport, made once.

    Every gateway (the served one, and each `quiver stdio` a client launches) shares one catalog
    cache, so only the first to start discovers the backends; each gets its own state (logs) dir.
    """

    def __init__(self, root: Path, config: Path, url: str) -> None:
        self.root = root
        self.config = config
        self.url = url
        self.cache_dir = root / "cache"
        self._reports: dict[tuple[str, str], dict[str, Any]] = {}
        self._failures: dict[tuple[str, str], str] = {}

    def env(self, label: str) -> dict[str, str]:
        state = self.root / "state" / label
        return {**os.environ, "QUIVER_CACHE_DIR": str(self.cache_dir), "QUIVER_STATE_DIR": str(state)}

    def target(self, transport: str) -> Target:
        return Target("stdio", stdio_command(self.config)) if transport == "stdio" else Target("http", [self.url])

    def report(self, client: str, transport: str) -> dict[str, Any]:
        """The client's report; a run that failed as a whole fails every test of its cell, once run."""
        key = (client, transport)
        if key not in self._reports and key not in self._failures:
            try:
                self._reports[key] = self._run(client, transport)
            except Exception as exc:
                self._failures[key] = f"{client} over {transport} did not complete: {exc!r}"
        if key in self._failures:
            pytest.fail(self._failures[key])
        return self._reports[key]

    def _run(self, client: str, transport: str) -> dict[str, Any]:
        env = self.env(f"{client}-{transport}")
        target = self.target(transport)
        if client.startswith("python-"):
            mode = client.removeprefix("python-")
            where: str | StdioServerParameters = target.argv[0]
            if transport == "stdio":
                command, *args = target.argv
                where = StdioServerParameters(command=command, args=args, env=env)

            async def run() -> dict[str, Any]:
                with anyio.fail_after(CLIENT_TIMEOUT):
                    return await python_client(mode, where)

            return anyio.run(run)
        if client == "ts-v1":
            return run_node(TS_V1, target, env)
        return run_node(TS_V2, target, env, negotiation=client.removeprefix("ts-v2-"))


@pytest.fixture(scope="module")
def matrix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Matrix]:
    root = tmp_path_factory.mktemp("interop")
    reference = {"command": sys.executable, "args": [str(REFERENCE_SERVER), "stdio"]}
    backends = {"time": time_backend(), "everything": everything_backend(), "reference": reference}
    config = write_config(root / "quiver.json", backends, pinned=[TRIGGER_ID])
    with ExitStack() as stack:
        with pytest.MonkeyPatch.context() as env:
            # The per-test isolation fixture is not in force for a module's gateway: it gets the module's dirs.
            env.setenv("QUIVER_CACHE_DIR", str(root / "cache"))
            env.setenv("QUIVER_STATE_DIR", str(root / "state" / "served"))
            served = stack.enter_context(quiver_serve(config))
        yield Matrix(root, config, served.url)


def sdk_cells() -> list[Any]:
    return [
        pytest.param(client, transport, id=f"{client}-{transport}")
        for client in SDK_CLIENTS
        for transport in TRANSPORTS
    ]


def inspector_cells() -> list[Any]:
    skip = pytest.mark.skip(reason=INSPECTOR_ONE_SHOT)
    return [
        pytest.param(f"inspector-{era}", transport, id=f"inspector-{era}-{transport}", marks=skip)
        for era in INSPECTOR_ERAS
        for transport in TRANSPORTS
    ]


def step(seen: dict[str, Any], name: str) -> None:
    """A step the client reported as failed fails the test with the client's own error."""
    assert name not in seen["errors"], f"{seen.get('client')} failed at {name}:\n{seen['errors'][name]}"


# --- search → describe → call ---


@pytest.mark.parametrize(("client", "transport"), sdk_cells())
def test_search_describe_call(matrix: Matrix, client: str, transport: str) -> None:
    seen = matrix.report(client, transport)
    step(seen, "walk")
    assert seen["protocolVersion"] == SDK_CLIENTS[client]
    assert seen["server"]["name"] == "quiver"
    assert sorted(seen["tools"]) == sorted([*META_TOOLS, TRIGGER_NAME])
    assert TIME_ID in found_ids(seen["search"])
    assert described(seen["describe"], TIME_ID)["required"] == ["timezone"]
    assert_current_utc_time(seen["call"])
    if SDK_CLIENTS[client] == STATELESS_VERSION:  # each result names its server: the stateless era was spoken
        assert seen["call"]["_meta"][STATELESS_SERVER_INFO]["name"] == "quiver"


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("era", INSPECTOR_ERAS)
def test_inspector_search_describe_call(
    matrix: Matrix, era: str, transport: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `inspector` hands the gateway it launches these two variables: the module's warm catalog, own logs.
    for name in ("QUIVER_CACHE_DIR", "QUIVER_STATE_DIR"):
        monkeypatch.setenv(name, matrix.env(f"inspector-{era}-{transport}")[name])
    target = matrix.target(transport)
    call = ("--method", "tools/call", "--tool-name")
    found = inspector(target, era, *call, "search_tools", "--tool-arg", f"query={TIME_QUERY}")
    assert TIME_ID in found_ids(found)
    # A --tool-arg value that parses as JSON is sent as that JSON: a list here, an object below.
    schema = described(
        inspector(target, era, *call, "describe_tools", "--tool-arg", f"ids={json.dumps([TIME_ID])}"), TIME_ID
    )
    assert schema["required"] == ["timezone"]
    called = inspector(target, era, *call, "call_tool", "--tool-arg", f"id={TIME_ID}", 'arguments={"timezone": "UTC"}')
    assert_current_utc_time(called)
    if era == "modern":
        for result in (found, called):
            assert result["_meta"][STATELESS_SERVER_INFO]["name"] == "quiver"


# --- tools/list_changed ---


@pytest.mark.parametrize(("client", "transport"), [*sdk_cells(), *inspector_cells()])
def test_tools_list_changed_reaches_the_client(matrix: Matrix, client: str, transport: str) -> None:
    seen = matrix.report(client, transport)
    step(seen, "listChanged")
    changed = seen["listChanged"]
    assert not changed["trigger"].get("isError"), changed["trigger"]
    assert text_of(changed["trigger"]) == "Announced a tools/list change"
    # Counted from just before the trigger: a notification from the backends' first discovery cannot pass for it.
    assert changed["received"], f"no tools/list_changed within {LIST_CHANGED_WAIT}s of the trigger"
    assert changed["after"] > changed["before"]


# --- sampling and elicitation, asked by a backend, answered by the client ---


@pytest.mark.parametrize("backend", BACKENDS_THAT_ASK)
@pytest.mark.parametrize(("client", "transport"), [*sdk_cells(), *inspector_cells()])
def test_sampling_is_answered_by_the_client(matrix: Matrix, client: str, transport: str, backend: str) -> None:
    seen = matrix.report(client, transport)
    key = f"sampling_{backend}"
    step(seen, key)
    result = seen["calls"][key]
    assert not result.get("isError"), result
    assert SAMPLED_TEXT in text_of(result)
    assert any(sampling_prompt(backend) in prompt for prompt in seen["asked"]["sampling"]), seen["asked"]


@pytest.mark.parametrize("backend", BACKENDS_THAT_ASK)
@pytest.mark.parametrize(("client", "transport"), [*sdk_cells(), *inspector_cells()])
def test_elicitation_is_answered_by_the_client(matrix: Matrix, client: str, transport: str, backend: str) -> None:
    seen = matrix.report(client, transport)
    key = f"elicitation_{backend}"
    step(seen, key)
    result = seen["calls"][key]
    assert not result.get("isError"), result
    text = text_of(result)
    if backend == "everything":
        assert f"- Name: {ELICITED_NAME}" in text
        assert EVERYTHING_FORM_MESSAGE in seen["asked"]["elicitation"]
    else:
        assert "action=accept" in text
        assert f'"username": "{ELICITED_NAME}"' in text
        assert REFERENCE_FORM_MESSAGE in seen["asked"]["elicitation"]
