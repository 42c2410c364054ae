"""The one error tree of Quiver.

Every failure that a user or a model can act on is a `QuiverError`: it carries a stable
`code`, whether retrying can help, and a `hint` that says what to do next. One boundary
(`metatools.results.error_result` for tool calls, the CLI for commands) turns these into
what the caller sees; nothing else formats errors.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Self


class QuiverError(Exception):
    """Base of every error Quiver reports to a caller."""

    code: str = "error"
    retryable: bool = False

    def __init__(self, message: str, *, hint: str | None = None, retryable: bool | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        if retryable is not None:
            self.retryable = retryable

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\nhint: {self.hint}"

    def again(self) -> Self:
        """A fresh copy to raise once more: raising one stored object again and again grows its traceback."""
        clone = type(self).__new__(type(self))
        clone.args = self.args
        clone.__dict__.update(self.__dict__)
        return clone

    def to_dict(self) -> dict[str, object]:
        data: dict[str, object] = {"code": self.code, "message": self.message, "retryable": self.retryable}
        if self.hint:
            data["hint"] = self.hint
        return data


def sole_error(exc: BaseException) -> BaseException:
    """The one error inside (nested) exception groups of one error each; else `exc` itself.

    Task groups wrap whatever escapes their body; a caller that reports errors wants the error.
    """
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


class ConfigError(QuiverError):
    """A config file cannot be read or does not validate."""

    code = "config_invalid"


class MissingEnvError(QuiverError):
    """A `${VAR}` reference in a backend's config names a variable that is not set."""

    code = "env_missing"

    def __init__(self, variable: str, backend: str, where: str, obtain: str | None = None) -> None:
        how = f"get one from {obtain}, then " if obtain else ""
        super().__init__(
            f"backend '{backend}' needs environment variable {variable} (used in {where}), which is not set",
            hint=f"{how}store it with `quiver secrets set {variable}` (or export it), or give a default in the"
            f" config: ${{{variable}:-value}}",
        )
        self.variable = variable
        self.backend = backend


class UnknownToolError(QuiverError):
    """A tool id that no backend provides."""

    code = "unknown_tool"

    def __init__(self, tool_id: str, suggestions: Sequence[str] = (), *, not_installed: str | None = None) -> None:
        message = f"unknown tool id '{tool_id}'"
        if not_installed is not None:
            message += f": '{not_installed}' is a server that is not installed"
            hint = f"install it with install_server (name '{not_installed}') or `quiver install {not_installed}`"
        elif suggestions:
            hint = "did you mean " + ", ".join(f"'{s}'" for s in suggestions) + "?"
        else:
            hint = "use search_tools to find tool ids"
        super().__init__(message, hint=hint)
        self.suggestions = list(suggestions)


class UnknownBackendError(QuiverError):
    """A backend name that is not configured."""

    code = "unknown_backend"

    def __init__(self, name: str, suggestions: Sequence[str] = ()) -> None:
        hint = (
            "did you mean " + ", ".join(f"'{s}'" for s in suggestions) + "?"
            if suggestions
            else "list_servers shows the configured backends"
        )
        super().__init__(f"unknown backend '{name}'", hint=hint)


class InvalidArgumentsError(QuiverError):
    """Arguments that do not match a tool's input schema; nothing was sent."""

    code = "invalid_arguments"

    def __init__(self, tool_id: str, problems: Sequence[str]) -> None:
        listing = "; ".join(problems)
        super().__init__(
            f"arguments for '{tool_id}' do not match its schema: {listing}",
            hint=f"describe_tools(['{tool_id}']) shows the exact schema; nothing was sent to the backend",
        )
        self.problems = list(problems)


class BackendUnavailableError(QuiverError):
    """A backend could not be started or reached."""

    code = "backend_unavailable"
    retryable = True


class BackendCallError(QuiverError):
    """A request was sent but the backend did not answer it (it died, refused it, or broke the protocol)."""

    code = "backend_failed"
    retryable = True

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        retryable: bool | None = None,
        error: Any = None,
        lost: bool = False,
    ) -> None:
        super().__init__(message, hint=hint, retryable=retryable)
        self.lost = lost
        """The backend's connection ended during the request."""
        self.error = error
        """The JSON-RPC error the backend answered with (`mcp_types.ErrorData`), if it answered."""


class BusyError(QuiverError):
    """A backend already has as many calls running and waiting as it is allowed."""

    code = "busy"
    retryable = True


class NotAllowedError(QuiverError):
    """The caller may not do this (policy, not a fault)."""

    code = "not_allowed"


class ShuttingDownError(QuiverError):
    """The gateway is draining before it stops and accepts no new calls."""

    code = "shutting_down"
    retryable = True


class CallTimeoutError(QuiverError):
    """A call did not finish within its timeout; it was cancelled downstream."""

    code = "timeout"
    retryable = True
