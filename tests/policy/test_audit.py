from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import anyio
import pytest

from quiver.policy.audit import AuditLog, AuditRecord, connect, digest, query

pytestmark = pytest.mark.anyio


def record(tool: str, outcome: str = "ok", principal: str = "alice") -> AuditRecord:
    return AuditRecord(
        ts=time.time(),
        principal=principal,
        role="dev",
        tool=tool,
        args_digest=digest({"q": 1}),
        duration_ms=1.5,
        outcome=outcome,
        error_code=None if outcome == "ok" else "timeout",
        bytes_in=10,
        bytes_out=20,
        policy=None,
    )


async def test_rows_are_written_in_the_background_and_queried_with_filters(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    log = AuditLog(path)
    async with anyio.create_task_group() as tg:
        tg.start_soon(log.run)
        log.record(record("fs.read_file"))
        log.record(record("fs.write_file", "error"))
        log.record(record("git.log", principal="bob"))
        await log.flush()
        tg.cancel_scope.cancel()
    assert len(query(path)) == 3
    assert [row["tool"] for row in query(path, tool="fs.*")] == ["fs.write_file", "fs.read_file"]
    assert [row["tool"] for row in query(path, outcome="error")] == ["fs.write_file"]
    assert [row["principal"] for row in query(path, principal="bob")] == ["bob"]
    assert query(path, since=time.time() + 60) == []


async def test_queued_rows_are_written_on_shutdown(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    log = AuditLog(path)
    async with anyio.create_task_group() as tg:
        tg.start_soon(log.run)
        log.record(record("a.b"))
        tg.cancel_scope.cancel()
    assert len(query(path)) == 1


async def test_several_writers_share_one_database(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    logs = [AuditLog(path) for _ in range(4)]
    async with anyio.create_task_group() as tg:
        for index, log in enumerate(logs):
            for n in range(50):
                log.record(record(f"w{index}.t{n}"))
            tg.start_soon(log.flush)
    assert len(query(path, limit=1000)) == 200


def test_opening_waits_while_another_gateway_writes_to_a_database_not_yet_in_wal_mode(tmp_path: Path) -> None:
    # Switching to WAL needs an exclusive lock, and SQLite's busy handler does not wait for it
    # while another connection is writing: gateways opening a new database at the same moment
    # used to get "database is locked" at once and drop their rows.
    path = tmp_path / "audit.db"
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("CREATE TABLE other (x)")
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO other VALUES (1)")
    release = threading.Timer(0.3, lambda: other.execute("COMMIT"))
    release.start()
    try:
        connection = connect(path)
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        connection.close()
    finally:
        release.join()
        other.close()


async def test_rows_that_cannot_be_written_yet_are_kept_for_the_next_flush(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "state"
    blocker.write_text("a file where the audit directory should be")
    path = blocker / "audit.db"
    log = AuditLog(path)
    log.record(record("a.first"))
    await log.flush()
    assert "trying again shortly" in caplog.text
    log.record(record("a.second"))
    blocker.unlink()
    await log.flush()
    assert sorted(row["tool"] for row in query(path)) == ["a.first", "a.second"]


def test_arguments_are_digested_not_stored() -> None:
    assert digest({"password": "hunter2"}) == digest({"password": "hunter2"})
    assert "hunter2" not in digest({"password": "hunter2"})
