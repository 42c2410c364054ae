"""Learn when a transport's connection ends, and speak for the caller on the way out.

The SDK wakes pending requests with `CONNECTION_CLOSED` when a server goes away but has no
hook for anyone else; wrapping the read stream gives the supervisor that signal.

On 2026-07-28 connections the SDK stamps the gateway's own client capabilities on every
request; a request made on behalf of a client carries that client's capabilities under
`CALLER_CAPABILITIES_KEY` instead, and the write side puts them in the stamp's place, so a
backend decides what it may ask by the real client's abilities.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from types import TracebackType
from typing import TYPE_CHECKING, Any

import anyio

CALLER_CAPABILITIES_KEY = "quiver/callerCapabilities"

if TYPE_CHECKING:
    from mcp.client._transport import ReadStream, Transport, TransportStreams, WriteStream
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


class _CallerWriteStream:
    """A write stream that presents a caller's capabilities in place of the gateway's."""

    def __init__(self, inner: WriteStream[SessionMessage]) -> None:
        self._inner = inner

    async def send(self, item: SessionMessage, /) -> None:
        await self._inner.send(_with_caller_capabilities(item))

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def __aenter__(self) -> _CallerWriteStream:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def _with_caller_capabilities(item: SessionMessage) -> SessionMessage:
    import mcp_types as types

    message = item.message
    params = getattr(message, "params", None)
    meta = params.get("_meta") if isinstance(params, dict) else None
    if not isinstance(meta, dict) or CALLER_CAPABILITIES_KEY not in meta:
        return item
    meta = dict(meta)
    caller = meta.pop(CALLER_CAPABILITIES_KEY)
    if types.CLIENT_CAPABILITIES_META_KEY in meta:
        meta[types.CLIENT_CAPABILITIES_META_KEY] = caller
    assert isinstance(params, dict)
    rewritten = message.model_copy(update={"params": {**params, "_meta": meta}})
    return type(item)(rewritten, item.metadata)


@asynccontextmanager
async def watch_transport(transport: Transport, on_end: Callable[[], None]) -> AsyncIterator[TransportStreams]:
    """Enter `transport`, and call `on_end` when its read side ends (or the transport exits)."""
    try:
        async with transport as (read, write):
            yield _WatchedReadStream(read, on_end), _CallerWriteStream(write)
    finally:
        on_end()
