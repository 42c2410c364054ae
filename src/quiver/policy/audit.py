"""The audit log: one row per call, in an embedded SQLite database.

Recording never waits on the disk: rows are queued and a background task writes them in
batches on a worker thread. SQLite in WAL mode with a busy timeout keeps the database consistent
when several gateways (one per stdio client) write to it at once. Arguments are not stored,
only a digest of them, since they may hold secrets.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from operator import attrgetter
from pathlib import Path
from typing import Any

import anyio

logger = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
    id INTEGER PRIMARY KEY,
    ts REAL NOT NULL,
    principal TEXT,
    role TEXT,
    tool TEXT NOT NULL,
    args_digest TEXT,
    duration_ms REAL,
    outcome TEXT NOT NULL,
    error_code TEXT,
    bytes_in INTEGER,
    bytes_out INTEGER,
    policy TEXT
);
CREATE INDEX IF NOT EXISTS calls_ts ON calls (ts);
CREATE INDEX IF NOT EXISTS calls_tool ON calls (tool);
"""
_BUSY_TIMEOUT_MS = 5000
# Rows wait at most this long (or until this many are queued) before they are written.
_FLUSH_INTERVAL = 0.5
_FLUSH_ROWS = 200
# Rows kept for a later attempt while the database cannot be written; beyond this the oldest go.
_MAX_QUEUED = 50_000


@dataclass(frozen=True, slots=True)
class AuditRecord:
    ts: float
    principal: str
    role: str | None
    tool: str
    args_digest: str
    duration_ms: float
    outcome: str  # ok | tool_error | error
    error_code: str | None
    bytes_in: int
    bytes_out: int
    policy: str | None  # JSON of what policy did


def digest(arguments: Mapping[str, Any]) -> str:
    return fingerprint(arguments)[0]


def fingerprint(arguments: Mapping[str, Any]) -> tuple[str, int]:
    """The arguments' digest, and their size in bytes as compact JSON."""
    canonical = json.dumps(arguments, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()
    return hashlib.sha256(canonical).hexdigest()[:32], len(canonical)


_COLUMNS = tuple(field.name for field in fields(AuditRecord))
_row_values = attrgetter(*_COLUMNS)


class AuditLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._queue: list[AuditRecord] = []
        self._wake = anyio.Event()
        self._connection: sqlite3.Connection | None = None

    def record(self, record: AuditRecord) -> None:
        self._queue.append(record)
        if len(self._queue) >= _FLUSH_ROWS:
            self._wake.set()

    async def run(self) -> None:
        """Write queued rows until cancelled; what is queued at the end is written too."""
        try:
            while True:
                with anyio.move_on_after(_FLUSH_INTERVAL):
                    await self._wake.wait()
                self._wake = anyio.Event()
                await self.flush()
        finally:
            with anyio.CancelScope(shield=True):
                await self.flush(final=True)
                if self._connection is not None:
                    await anyio.to_thread.run_sync(self._connection.close)
                    self._connection = None

    async def flush(self, *, final: bool = False) -> None:
        """Write what is queued; rows that cannot be written now stay queued for the next flush."""
        if not self._queue:
            return
        batch, self._queue = self._queue, []
        try:
            await anyio.to_thread.run_sync(self._write, batch)
        except (OSError, sqlite3.Error) as exc:
            if final:
                logger.warning("could not write %d audit rows to %s: %s", len(batch), self.path, exc)
                return
            self._queue[:0] = batch
            overflow = len(self._queue) - _MAX_QUEUED
            if overflow > 0:
                del self._queue[:overflow]
            logger.warning(
                "could not write %d audit rows to %s (%s); trying again shortly%s",
                len(batch),
                self.path,
                exc,
                f", {overflow} oldest rows dropped" if overflow > 0 else "",
            )

    def _connect(self) -> sqlite3.Connection:
        if self._connection is None:
            self._connection = connect(self.path)
        return self._connection

    def _write(self, batch: Sequence[AuditRecord]) -> None:
        connection = self._connect()
        with connection:
            connection.executemany(
                f"INSERT INTO calls ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})",
                map(_row_values, batch),
            )


def connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(path, timeout=_BUSY_TIMEOUT_MS / 1000, check_same_thread=False)
    try:
        connection.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
        # Switching a new database to WAL takes an exclusive lock that SQLite's busy handler does
        # not wait for: gateways opening it at the same moment get "locked" at once, so retry.
        _while_locked(lambda: _use_wal(connection))
        _while_locked(lambda: connection.executescript(_SCHEMA))
    except BaseException:
        connection.close()
        raise
    return connection


def _use_wal(connection: sqlite3.Connection) -> None:
    (mode,) = connection.execute("PRAGMA journal_mode").fetchone()
    if str(mode).lower() != "wal":
        connection.execute("PRAGMA journal_mode = WAL")


def _while_locked(step: Callable[[], object]) -> None:
    """Run `step`, retrying for up to the busy timeout while the database is locked."""
    deadline = time.monotonic() + _BUSY_TIMEOUT_MS / 1000
    delay = 0.005
    while True:
        try:
            step()
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


def query(
    path: Path,
    *,
    principal: str | None = None,
    tool: str | None = None,
    outcome: str | None = None,
    since: float | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Rows newest first; `tool` is a glob on tool ids, `since` a Unix time."""
    if not path.exists():
        return []
    clauses: list[str] = []
    values: list[Any] = []
    if principal is not None:
        clauses.append("principal = ?")
        values.append(principal)
    if outcome is not None:
        clauses.append("outcome = ?")
        values.append(outcome)
    if since is not None:
        clauses.append("ts >= ?")
        values.append(since)
    if tool is not None:
        clauses.append("tool GLOB ?")
        values.append(tool)
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    connection = connect(path)
    try:
        connection.row_factory = sqlite3.Row
        rows = connection.execute(f"SELECT * FROM calls {where} ORDER BY ts DESC, id DESC LIMIT ?", (*values, limit))
        return [_row(dict(row)) for row in rows]
    finally:
        connection.close()


def _row(row: dict[str, Any]) -> dict[str, Any]:
    row.pop("id", None)
    row["time"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(row.pop("ts")))
    if row.get("policy"):
        row["policy"] = json.loads(row["policy"])
    return row
