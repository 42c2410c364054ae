"""Backends: the `Backend` interface, downstream MCP servers, and the supervisor of lifecycles."""

from quiver.backends.base import Backend, BackendState, ProgressFn
from quiver.backends.supervisor import BackendStatus, ManagedBackend, Supervisor

__all__ = ["Backend", "BackendState", "BackendStatus", "ManagedBackend", "ProgressFn", "Supervisor"]
