"""Learn when a transport's connection ends, without changing what flows through it.

The SDK wakes pending requests with `CONNECTION_CLOSED` when a server goes away but has no
hook for anyone else; wrapping the read stream gives the supervisor that signal.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from types import TracebackType
from typing import TYPE_CHECKING, Any

import anyio

if TYPE_CHECKING:
    from mcp.client._transport import ReadStream, Transport, TransportStreams
    from mcp.shared.message import SessionMessage


class _WatchedReadStream:
    """A read stream that calls `on_end` once when the other side closes it."""

    def __init__(self, inner: ReadStream[SessionMessage | Exception], on_end: Callable[[], None]) -> None:
        self._inner = inner
        self._on_end = on_end

    async def receive(self) -> SessionMessage | Exception:
        try:
            return await self._inner.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
            self._on_end()
            raise

    async def aclose(self) -> None:
        await self._inner.aclose()

    def __aiter__(self) -> _WatchedReadStream:
        return self

    async def __anext__(self) -> SessionMessage | Exception:
        try:
            return await self.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            raise StopAsyncIteration from None

    async def __aenter__(self) -> _WatchedReadStream:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def __getattr__(self, name: str) -> Any:
        # `last_context` and friends, read by the SDK with getattr.
        return getattr(self._inner, name)


@asynccontextmanager
async def watch_transport(transport: Transport, on_end: Callable[[], None]) -> AsyncIterator[TransportStreams]:
    """Enter `transport`, and call `on_end` when its read side ends (or the transport exits)."""
    try:
        async with transport as (read, write):
            yield _WatchedReadStream(read, on_end), write
    finally:
        on_end()
