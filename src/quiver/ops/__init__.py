"""Operating Quiver: status files (`status`), setup checks (`doctor`), backend logs (`logs`).

Only the status API is re-exported here: the gateway imports it, and it stays light.
"""

from quiver.ops.status import (
    BackendReport,
    GatewayReport,
    StatusWriter,
    pid_alive,
    read_statuses,
    status_path,
)

__all__ = [
    "BackendReport",
    "GatewayReport",
    "StatusWriter",
    "pid_alive",
    "read_statuses",
    "status_path",
]
