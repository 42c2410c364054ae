"""The calls in flight through a gateway: listed for operators, cancellable one by one, awaited on shutdown."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import anyio

from quiver.errors import QuiverError


class CallCancelledError(QuiverError):
    code = "cancelled"


@dataclass
class InFlightCall:
    id: str
    tool_id: str
    principal: str
    started: float
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope, repr=False)
    cancelled_by: str | None = None

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "tool": self.tool_id,
            "principal": self.principal,
            "seconds": round(time.time() - self.started, 1),
        }


class Quiet:
    """Wakes whoever waits for work in flight to end; costs nothing while nobody waits."""

    def __init__(self) -> None:
        self._event: anyio.Event | None = None

    async def wait(self, busy: Callable[[], object]) -> None:
        """Return once `busy()` is false; the owner calls `ended()` whenever it may have become so."""
        while busy():
            if self._event is None:
                self._event = anyio.Event()
            await self._event.wait()

    def ended(self) -> None:
        if self._event is not None:
            self._event.set()
            self._event = None


class InFlight:
    def __init__(self) -> None:
        self._calls: dict[str, InFlightCall] = {}
        self._quiet = Quiet()

    def __len__(self) -> int:
        return len(self._calls)

    def track(self, tool_id: str, principal: str) -> _Tracked:
        """Run a call under a scope an operator can cancel; an operator's cancel becomes a clear error."""
        return _Tracked(self, InFlightCall(secrets.token_hex(4), tool_id, principal, time.time()))

    def list(self) -> list[dict[str, Any]]:
        return [call.summary() for call in sorted(self._calls.values(), key=lambda c: c.started)]

    def cancel(self, call_id: str, by: str) -> bool:
        call = self._calls.get(call_id)
        if call is None:
            return False
        call.cancelled_by = by
        call.scope.cancel()
        return True

    async def wait_quiet(self) -> None:
        await self._quiet.wait(lambda: self._calls)


class _Tracked:
    """`with in_flight.track(...)`: the call is listed (and cancellable) while the block runs."""

    __slots__ = ("_call", "_flight")

    def __init__(self, flight: InFlight, call: InFlightCall) -> None:
        self._flight = flight
        self._call = call

    def __enter__(self) -> InFlightCall:
        calls, call = self._flight._calls, self._call
        calls[call.id] = call
        call.scope.__enter__()
        return call

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool:
        flight, call = self._flight, self._call
        try:
            swallowed = call.scope.__exit__(exc_type, exc, tb)
        finally:
            del flight._calls[call.id]
            if not flight._calls:
                flight._quiet.ended()
        if call.scope.cancelled_caught:
            raise CallCancelledError(
                f"the call to '{call.tool_id}' was cancelled by {call.cancelled_by or 'an operator'}",
                hint="call it again if it is still needed",
            )
        return bool(swallowed)
