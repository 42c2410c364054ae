"""Tool ids: `<backend>.<tool>`, parsed and formatted only here.

A backend name never contains a dot, so the first dot splits an id unambiguously and the
tool part may hold anything a downstream server uses in a name (dots, dashes, unicode).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from quiver.errors import ConfigError, UnknownToolError

SEPARATOR = "."
MAX_BACKEND_NAME = 64
_BACKEND_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_\-]*$")
_INVALID_BACKEND_CHARS = re.compile(r"[^A-Za-z0-9_\-]+")


def check_backend_name(name: str) -> str:
    """Return `name` if it can be a backend name, else raise a `ConfigError` saying why."""
    if not name or len(name) > MAX_BACKEND_NAME or not _BACKEND_NAME.match(name):
        raise ConfigError(
            f"'{name}' is not a valid backend name",
            hint=f"use letters, digits, '_' and '-' (no dots, at most {MAX_BACKEND_NAME} characters),"
            f" e.g. '{backend_name_from(name)}'",
        )
    return name


def backend_name_from(text: str) -> str:
    """Turn any label (a server's display name, a package name) into a valid backend name."""
    cleaned = _INVALID_BACKEND_CHARS.sub("-", text.strip()).strip("-")
    return (cleaned or "backend")[:MAX_BACKEND_NAME]


@dataclass(frozen=True, slots=True)
class ToolId:
    backend: str
    tool: str

    def __str__(self) -> str:
        return f"{self.backend}{SEPARATOR}{self.tool}"

    @classmethod
    def parse(cls, text: str) -> ToolId:
        backend, sep, tool = text.strip().partition(SEPARATOR)
        if not sep or not backend or not tool:
            raise UnknownToolError(text)
        return cls(backend, tool)
