"""The calls in flight through a gateway: listed for operators, cancellable one by one, awaited on shutdown."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
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


class InFlight:
    def __init__(self) -> None:
        self._calls: dict[str, InFlightCall] = {}
        self._quiet = anyio.Event()  # set while nothing is in flight
        self._quiet.set()

    def __len__(self) -> int:
        return len(self._calls)

    @contextmanager
    def track(self, tool_id: str, principal: str) -> Iterator[InFlightCall]:
        """Run a call under a scope an operator can cancel; an operator's cancel becomes a clear error."""
        call = InFlightCall(secrets.token_hex(4), tool_id, principal, time.time())
        self._calls[call.id] = call
        if len(self._calls) == 1:
            self._quiet = anyio.Event()
        try:
            with call.scope:
                yield call
            if call.scope.cancelled_caught:
                raise CallCancelledError(
                    f"the call to '{tool_id}' was cancelled by {call.cancelled_by or 'an operator'}",
                    hint="call it again if it is still needed",
                )
        finally:
            del self._calls[call.id]
            if not self._calls:
                self._quiet.set()

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
        await self._quiet.wait()
