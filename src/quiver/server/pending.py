"""Input requests for 2026-07-28 clients, whatever era the backend speaks.

A 2026-07-28 client cannot be sent requests; it is answered with `InputRequiredResult` and
retries the same request with its answers and the echoed `requestState`. Two kinds of rounds:

- A 2026-07-28 backend asks the same way: its `InputRequiredResult` goes to the client as it is
  (keys and all) and its own state rides inside ours (`d.` prefix); the retry hands the
  answers and that state back to it. Nothing is kept in the gateway.
- A handshake-era backend asks mid-call, over its connection. The call keeps running in a task
  the gateway owns, its questions are parked, and the client gets them with a state naming the
  parked call (`p.` prefix); the retry delivers the answers and waits for the next question or
  the result. Parked calls nobody comes back for are cancelled after a while.

The SDK's request-state boundary seals every state the client sees.
"""

from __future__ import annotations

import itertools
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
import mcp_types as types
from anyio.abc import TaskGroup
from mcp.shared.exceptions import MCPError

from quiver.upstream import InputRound, Upstream

logger = logging.getLogger(__name__)

# A parked call nobody resumed within this long is cancelled (the SDK's sealed state lives 600 s).
PENDING_TTL = 600.0
# How long a round lets concurrent questions of one call gather before answering with them.
_GATHER = 0.01

Dispatch = Callable[[Upstream], Awaitable[types.Result]]
_PARKED = "p."
_DOWNSTREAM = "d."


@dataclass
class _Question:
    request: types.ServerRequest
    result_type: type[Any]
    answer: anyio.Event = field(default_factory=anyio.Event)
    response: Any = None


class PendingCall:
    """A call running on behalf of a 2026-07-28 client, across its request rounds.

    It gets a key (and a place among the parked calls) only when it parks: most calls never
    ask anything and finish within their first round."""

    def __init__(self, caller: Caller, round: InputRound) -> None:
        self.key: str | None = None
        self.caller = caller
        self.round = round
        self.touched = time.monotonic()
        self._questions: dict[str, _Question] = {}
        self._wake = anyio.Event()  # set when the call finishes or asks something
        self._done = False
        self._result: types.Result | None = None
        self._error: BaseException | None = None
        self._ids = itertools.count(1)
        self.scope = anyio.CancelScope()

    async def run(self, dispatch: Dispatch) -> None:
        with self.scope:
            try:
                self._result = await dispatch(_ParkedUpstream(self))
            except Exception as exc:
                self._error = exc
        self._done = True
        self._wake.set()

    async def ask(self, request: types.ServerRequest, result_type: type[Any]) -> Any:
        question = _Question(request, result_type)
        self._questions[f"q{next(self._ids)}"] = question
        self._wake.set()
        await question.answer.wait()
        return question.response

    def answer(self, responses: dict[str, Any] | None) -> types.ErrorData | None:
        """Deliver a round's answers; an error when a question was left unanswered."""
        self.touched = time.monotonic()
        for key, question in list(self._questions.items()):
            if responses is None or key not in responses:
                return types.ErrorData(code=types.INVALID_PARAMS, message=f"missing input response '{key}'")
            question.response = question.result_type.model_validate(_plain(responses[key]), by_name=False)
        for question in self._questions.values():
            question.answer.set()
        self._questions.clear()
        if not self._done:
            self._wake = anyio.Event()
        return None

    async def next(self) -> types.Result | None:
        """Wait for the result, or for questions to put to the client (then None: the call parks)."""
        await self._wake.wait()
        if not self._done:
            await anyio.sleep(_GATHER)  # concurrent questions of the same call travel together
        if self._done and not self._questions:
            if self._error is not None:
                raise self._error
            assert self._result is not None
            return self._result
        return None

    def parked(self) -> types.InputRequiredResult:
        """The questions asked so far, for the client to answer under this call's key."""
        assert self.key is not None
        return types.InputRequiredResult(
            input_requests={key: q.request for key, q in self._questions.items()},  # type: ignore[misc]
            request_state=_PARKED + self.key,
        )


@dataclass(frozen=True)
class Caller:
    """What a 2026-07-28 client declared on its request."""

    capabilities: types.ClientCapabilities | None

    def supports(self, capability: str) -> bool:
        return self.capabilities is not None and getattr(self.capabilities, capability, None) is not None


class _ParkedUpstream(Upstream):
    def __init__(self, call: PendingCall) -> None:
        self._call = call
        self.round = call.round
        self.capabilities = call.caller.capabilities

    @property
    def session_key(self) -> object:
        return self._call

    def supports(self, capability: str) -> bool:
        return self._call.caller.supports(capability)

    async def request(self, request: types.ServerRequest, result_type: type[Any]) -> Any:
        return await self._call.ask(request, result_type)

    async def log(self, params: types.LoggingMessageNotificationParams) -> None:
        """Log messages of a parked call have no open request to ride on; they are dropped."""


class PendingCalls:
    """The parked calls of one server, keyed by the token in their `requestState`."""

    def __init__(self) -> None:
        self._calls: dict[str, PendingCall] = {}
        self._tg: TaskGroup | None = None

    async def serve(self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        async with anyio.create_task_group() as tg:
            self._tg = tg
            task_status.started()
            try:
                while True:
                    await anyio.sleep(PENDING_TTL / 10)
                    self._reap()
            finally:
                self._tg = None
                tg.cancel_scope.cancel()

    def _reap(self) -> None:
        now = time.monotonic()
        for key, call in list(self._calls.items()):
            if now - call.touched > PENDING_TTL:
                logger.info("cancelling a call whose client never came back for it")
                call.scope.cancel()
                del self._calls[key]

    async def round(
        self,
        request_state: str | None,
        responses: dict[str, Any] | None,
        caller: Caller,
        dispatch: Dispatch,
    ) -> types.Result:
        """One request round: start the call, resume a parked one, or hand a backend its answers."""
        if request_state is not None and request_state.startswith(_PARKED):
            call = self._calls.get(request_state.removeprefix(_PARKED))
            if call is None:
                raise MCPError(code=types.INVALID_PARAMS, message="this call has expired; send it again")
            error = call.answer(responses)
            if error is not None:
                raise MCPError(code=error.code, message=error.message)
        else:
            downstream = request_state.removeprefix(_DOWNSTREAM) if request_state is not None else None
            call = PendingCall(caller, InputRound(responses, downstream or None))
            if self._tg is None:  # not serving parked calls: this request is all the call gets
                return _marked(await dispatch(_ParkedUpstream(call)))
            self._tg.start_soon(call.run, dispatch)
        try:
            result = await call.next()
        except BaseException:
            # The client gave up on this round (or it failed): the call it was waiting for goes too.
            call.scope.cancel()
            self._forget(call)
            raise
        if result is None:
            if call.key is None:
                call.key = secrets.token_urlsafe(16)
                self._calls[call.key] = call
            return call.parked()
        self._forget(call)
        return _marked(result)

    def _forget(self, call: PendingCall) -> None:
        if call.key is not None:
            self._calls.pop(call.key, None)


def _marked(result: types.Result) -> types.Result:
    """A backend's own input-required result, its state marked as the backend's."""
    if isinstance(result, types.InputRequiredResult):
        return result.model_copy(update={"request_state": _DOWNSTREAM + (result.request_state or "")})
    return result


def _plain(value: Any) -> Any:
    return value.model_dump(by_alias=True, mode="json", exclude_none=True) if hasattr(value, "model_dump") else value
