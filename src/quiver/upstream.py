"""The client side of a call: what a backend may ask of the client whose request it is serving.

A downstream server may, during a call, ask for an LLM completion (sampling), ask the user
(elicitation), ask for the client's roots, or send log messages. Quiver answers on behalf of
the client whose request caused the call: an `Upstream` is that client, seen from the call.
Transports make one per upward request; backends receive it with the call and route the
server's requests to it. A client that lacks a capability gets the backend a proper error
(never a hang).
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import mcp_types as types

logger = logging.getLogger(__name__)

SamplingResult = types.CreateMessageResult | types.CreateMessageResultWithTools | types.ErrorData


@dataclass(frozen=True)
class InputRound:
    """A 2026-07-28 client's retry: the answers it brings and the backend's own state to echo."""

    responses: dict[str, Any] | None = None
    state: str | None = None


class Upstream(ABC):
    """The client of one upward request, as a backend sees it during a call."""

    round: InputRound | None = None
    """Set for 2026-07-28 clients: a backend of that era may hand its input requests through."""

    capabilities: types.ClientCapabilities | None = None
    """What the client declared, for backends that take them per request (2026-07-28)."""

    @property
    @abstractmethod
    def session_key(self) -> object:
        """Identity of the client connection (requests of one client share it)."""

    @abstractmethod
    def supports(self, capability: str) -> bool:
        """Whether the client declared `sampling`, `elicitation` or `roots`."""

    @abstractmethod
    async def request(self, request: types.ServerRequest, result_type: type[Any]) -> Any:
        """Send a server-to-client request to this client and return its result."""

    @abstractmethod
    async def log(self, params: types.LoggingMessageNotificationParams) -> None:
        """Relay a log message from the backend (dropped when the client cannot receive it)."""

    async def create_message(self, params: types.CreateMessageRequestParams) -> SamplingResult:
        result_type = types.CreateMessageResultWithTools if params.tools else types.CreateMessageResult
        answer: SamplingResult = await self._ask("sampling", types.CreateMessageRequest(params=params), result_type)
        return answer

    async def elicit(self, params: types.ElicitRequestParams) -> types.ElicitResult | types.ErrorData:
        answer: types.ElicitResult | types.ErrorData = await self._ask(
            "elicitation", types.ElicitRequest(params=params), types.ElicitResult
        )
        return answer

    async def list_roots(self) -> types.ListRootsResult | types.ErrorData:
        answer: types.ListRootsResult | types.ErrorData = await self._ask(
            "roots", types.ListRootsRequest(), types.ListRootsResult
        )
        return answer

    async def _ask(self, capability: str, request: types.ServerRequest, result_type: type[Any]) -> Any:
        if not self.supports(capability):
            return unsupported(capability)
        from mcp.shared.exceptions import MCPError

        try:
            return await self.request(request, result_type)
        except MCPError as exc:
            return exc.error


def unsupported(capability: str) -> types.ErrorData:
    return types.ErrorData(
        code=types.METHOD_NOT_FOUND, message=f"the client of this call does not support {capability}"
    )


def no_caller(what: str) -> types.ErrorData:
    return types.ErrorData(
        code=types.INVALID_REQUEST,
        message=f"{what} is only forwarded while a client request to this backend is in progress",
    )


current_upstream: ContextVar[Upstream | None] = ContextVar("quiver_upstream", default=None)
"""The upstream of the call the current task is making, where the transport keeps the context."""
