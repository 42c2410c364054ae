"""Status files: each serving gateway says what it is doing, so `quiver status` can tell.

A gateway that serves a client writes `state_dir/run/<pid>.json` every couple of seconds
(atomically, so a reader never sees half a file) and removes it when it stops. A file whose
process is gone (killed, crashed) is dropped by the readers. One-shot CLI commands never write
one: the file appears only once a transport calls `serving()`.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from quiver._files import write_atomic

if TYPE_CHECKING:
    from quiver.gateway import Gateway

RUN_DIR = "run"
# Often enough that `quiver status` looks live, rarely enough to cost nothing.
WRITE_INTERVAL = 2.0
# A file not rewritten for this long belongs to a gateway that is alive but not responding.
STALE_AFTER = 10 * WRITE_INTERVAL


@dataclass(frozen=True, slots=True)
class BackendReport:
    name: str
    type: str
    state: str
    uptime: float | None
    restarts: int
    in_flight: int
    last_error: str | None
    breaker: str
    failures: int
    retry_in: float | None
    tools: int | None


@dataclass(frozen=True, slots=True)
class GatewayReport:
    pid: int
    started: float  # seconds since the epoch
    updated: float  # when the file was last written
    transport: str  # "stdio", "http", or "shared" (the daemon of `quiver stdio --shared`)
    url: str | None
    config: str | None
    backends: list[BackendReport] = field(default_factory=list)

    @property
    def uptime(self) -> float:
        return max(0.0, time.time() - self.started)

    @property
    def silent_for(self) -> float:
        """Seconds since the gateway last wrote its file."""
        return max(0.0, time.time() - self.updated)

    @property
    def stale(self) -> bool:
        return self.silent_for > STALE_AFTER

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GatewayReport:
        backends = [BackendReport(**item) for item in data.get("backends", [])]
        return cls(**{**data, "backends": backends})


def status_path(state: Path, pid: int | None = None) -> Path:
    """Where the gateway in process `pid` (default: this one) writes its status."""
    return state / RUN_DIR / f"{pid or os.getpid()}.json"


class StatusWriter:
    """Keeps a gateway's status file current while it serves; `run()` is its task."""

    def __init__(self, gateway: Gateway, path: Path) -> None:
        self.gateway = gateway
        self.path = path
        self.started = time.time()
        self.transport: str | None = None
        self.url: str | None = None
        self._serving = anyio.Event()

    def serving(self, transport: str, url: str | None = None) -> None:
        """Say how the gateway is reached; the file is written from now on."""
        self.transport = transport
        self.url = url
        self._serving.set()

    async def run(self) -> None:
        await self._serving.wait()
        try:
            while True:
                self.write()
                await anyio.sleep(WRITE_INTERVAL)
        finally:
            self.path.unlink(missing_ok=True)

    def report(self) -> GatewayReport:
        gateway = self.gateway
        source = gateway.config.source
        return GatewayReport(
            pid=os.getpid(),
            started=self.started,
            updated=time.time(),
            transport=self.transport or "unknown",
            url=self.url,
            config=str(source.resolve()) if source is not None else None,
            backends=[
                BackendReport(
                    name=status.name,
                    type=status.type,
                    state=str(status.state),
                    uptime=status.uptime,
                    restarts=status.restarts,
                    in_flight=status.in_flight,
                    last_error=status.last_error,
                    breaker=str(status.breaker),
                    failures=status.failures,
                    retry_in=status.retry_in,
                    tools=gateway.catalog.count(status.name),
                )
                for status in gateway.supervisor.statuses()
            ],
        )

    def write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(self.path, json.dumps(self.report().to_dict(), indent=1))


def read_statuses(state: Path) -> list[GatewayReport]:
    """The reports of every gateway still running, oldest first; files of dead processes are removed."""
    reports: list[GatewayReport] = []
    for path in sorted((state / RUN_DIR).glob("*.json")):
        if not path.stem.isdigit():
            continue
        if not pid_alive(int(path.stem)):
            path.unlink(missing_ok=True)
            continue
        try:
            reports.append(GatewayReport.from_dict(json.loads(path.read_text(encoding="utf-8"))))
        except (OSError, ValueError, TypeError):
            continue  # removed while we read it, or written by another version
    return sorted(reports, key=lambda report: report.started)


def pid_alive(pid: int) -> bool:
    """Whether process `pid` exists and has not exited (a zombie has)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive, though not ours
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc (macOS): kill(0) is all there is
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
