"""A small in-process `Backend` for testing Quiver's own logic without processes, and a fake embedding model."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import mcp_types as types
import numpy as np
import pytest
from mcp.shared.exceptions import MCPError

from quiver.backends.base import Backend, ProgressFn
from quiver.config.models import AnyBackendConfig
from quiver.upstream import Upstream

if TYPE_CHECKING:
    from numpy.typing import NDArray

ToolFn = Callable[[Mapping[str, Any]], Awaitable[str]]


async def echo(arguments: Mapping[str, Any]) -> str:
    return f"echo: {arguments.get('message', '')}"


def tool(name: str, description: str = "", required: tuple[str, ...] = (), **properties: str) -> types.Tool:
    return types.Tool(
        name=name,
        description=description,
        input_schema={
            "type": "object",
            "properties": {key: {"type": kind} for key, kind in properties.items()},
            "required": list(required),
        },
    )


class FakeWorld:
    """Shared by every connection the factory makes: scripted behaviour and counters."""

    def __init__(self) -> None:
        self.tools: dict[str, list[types.Tool]] = {}
        self.handlers: dict[str, ToolFn] = {}
        self.start_error: dict[str, Exception] = {}
        self.start_delay: dict[str, float] = {}
        self.starts: dict[str, int] = {}
        self.live: dict[str, FakeBackend] = {}

    def factory(self, name: str, config: AnyBackendConfig) -> Backend:
        return FakeBackend(name, self)


class FakeBackend(Backend):
    def __init__(self, name: str, world: FakeWorld) -> None:
        super().__init__(name)
        self.world = world

    @asynccontextmanager
    async def lifespan(self) -> AsyncIterator[None]:
        self.world.starts[self.name] = self.world.starts.get(self.name, 0) + 1
        await anyio.sleep(self.world.start_delay.get(self.name, 0))
        if self.name in self.world.start_error:
            raise self.world.start_error[self.name]
        self.world.live[self.name] = self
        try:
            yield
        finally:
            self.world.live.pop(self.name, None)

    async def list_tools(self) -> list[types.Tool]:
        return list(self.world.tools.get(self.name, []))

    async def call_tool(
        self,
        name: str,
        arguments: Mapping[str, Any],
        *,
        progress: ProgressFn | None = None,
        upstream: Upstream | None = None,
    ) -> types.CallToolResult:
        handler = self.world.handlers.get(f"{self.name}.{name}", echo)
        text = await handler(arguments)
        return types.CallToolResult(content=[types.TextContent(type="text", text=text)])

    def die(self) -> None:
        """The connection ends, as when a server process exits."""
        self.lost.set()


async def wait_until(predicate: Callable[[], bool], limit: float = 5.0) -> None:
    """Wait for state that other tasks own and publish no event for (e.g. a backend's state)."""
    with anyio.fail_after(limit):
        while not predicate():  # noqa: ASYNC110 - nothing to await: the state has no event
            await anyio.sleep(0.01)


async def eventually(check: Callable[[], Awaitable[bool]], limit: float = 5.0, every: float = 0.2) -> None:
    """Poll an async check (e.g. a tool call) until it holds; fail after ``limit`` seconds."""
    with anyio.fail_after(limit):
        while not await check():  # noqa: ASYNC110 - the check is a remote call, not an event
            await anyio.sleep(every)


def connection_closed() -> MCPError:
    return MCPError(code=types.CONNECTION_CLOSED, message="Connection closed")


def text_of(result: types.Result) -> str:
    """The text content of a tool result (empty for anything else)."""
    content = getattr(result, "content", [])
    return "".join(block.text for block in content if isinstance(block, types.TextContent))


# Words the fake model treats as meaning the same thing: what an embedding model adds to BM25.
CONCEPTS = {
    "car": 0,
    "automobile": 0,
    "vehicle": 0,
    "song": 1,
    "music": 1,
    "track": 1,
    "rain": 2,
    "weather": 2,
}
WIDTH = 8


class FakeEncoder:
    """Bag of concepts: texts that share a concept point the same way."""

    def __init__(self) -> None:
        self.encoded: list[str] = []
        self.threads: set[int] = set()
        self.loaded_in = threading.get_ident()

    def encode(self, texts: Sequence[str]) -> NDArray[np.float32]:
        self.encoded.extend(texts)
        self.threads.add(threading.get_ident())
        out = np.zeros((len(texts), WIDTH), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in text.lower().replace(":", " ").split():
                if word in CONCEPTS:
                    out[row, CONCEPTS[word]] += 1.0
            out[row, WIDTH - 1] += 0.1  # never all-zero
        normalised: NDArray[np.float32] = out / np.linalg.norm(out, axis=1, keepdims=True)
        return normalised


def install_fake_model(monkeypatch: pytest.MonkeyPatch, model_dir: Path) -> list[FakeEncoder]:
    """Make search find an embedding model in `model_dir`; each load makes a new `FakeEncoder`,
    appended to the list returned."""
    import quiver.search.engine as engine

    loaded: list[FakeEncoder] = []

    def load(directory: Path | None = None) -> FakeEncoder:
        loaded.append(FakeEncoder())
        return loaded[-1]

    monkeypatch.setattr(engine, "find_model_dir", lambda: model_dir)
    monkeypatch.setattr(engine, "load_encoder", load)
    return loaded
