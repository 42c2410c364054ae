"""MCP clients' config files: where they are, their formats, and moving servers between them and Quiver."""

from quiver.clients.base import (
    ENTRY_NAME,
    Client,
    ClientConfigError,
    Env,
    Location,
    Scope,
    Unsupported,
    identity,
    is_quiver,
    quiver_backend,
    quiver_command,
)
from quiver.clients.files import BACKUP_SUFFIX, ClientFile, replace_file
from quiver.clients.formats import CLIENTS
from quiver.clients.importing import Decision, Found, discover, plan_import
from quiver.errors import QuiverError


def get_client(name: str) -> Client:
    """The client called `name`, or an error listing the known ones."""
    try:
        return CLIENTS[name]
    except KeyError:
        raise QuiverError(f"unknown client '{name}'", hint=f"known clients: {', '.join(CLIENTS)}") from None


__all__ = [
    "BACKUP_SUFFIX",
    "CLIENTS",
    "ENTRY_NAME",
    "Client",
    "ClientConfigError",
    "ClientFile",
    "Decision",
    "Env",
    "Found",
    "Location",
    "Scope",
    "Unsupported",
    "discover",
    "get_client",
    "identity",
    "is_quiver",
    "plan_import",
    "quiver_backend",
    "quiver_command",
    "replace_file",
]
