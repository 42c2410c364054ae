"""Telling backend faults apart and describing them: what went wrong, in the backend's own words."""

from __future__ import annotations

import anyio

from quiver.backends.base import Backend


class Deadline:
    """A request timeout that progress from the backend pushes back."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._scope: anyio.CancelScope | None = None

    def scope(self) -> anyio.CancelScope:
        self._scope = anyio.move_on_after(self.timeout)
        return self._scope

    def extend(self) -> None:
        if self._scope is not None:
            self._scope.deadline = anyio.current_time() + self.timeout


def is_downstream_fault(exc: BaseException) -> bool:
    """Whether `exc` is something a backend did (a protocol error, a bad reply, a broken link)."""
    from mcp.shared.exceptions import MCPError
    from pydantic import ValidationError

    faults = (MCPError, ValidationError, OSError, anyio.BrokenResourceError, anyio.ClosedResourceError)
    return isinstance(root_cause(exc), faults) or type(exc).__module__.startswith("httpx")


def is_connection_closed(exc: BaseException) -> bool:
    """Whether the session saw the link to the backend close (usually: the process died)."""
    import mcp_types as types
    from mcp.shared.exceptions import MCPError

    cause = root_cause(exc)
    if isinstance(cause, MCPError):
        return cause.error.code == types.CONNECTION_CLOSED
    return isinstance(cause, anyio.BrokenResourceError | anyio.ClosedResourceError | anyio.EndOfStream)


def root_cause(exc: BaseException) -> BaseException:
    """The first leaf of an exception group (task groups wrap what went wrong inside them)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def describe(exc: BaseException, backend: Backend | None) -> str:
    exc = root_cause(exc)
    text = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc) or type(exc).__name__
    detail = backend.failure_detail() if backend is not None else None
    if detail and detail not in text:
        text += f" ({detail})"
    return text
