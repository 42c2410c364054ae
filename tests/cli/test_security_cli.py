"""`quiver keys` and `quiver audit`: keys that a served gateway accepts, an audit log that can be queried."""

from __future__ import annotations

import json
import time
from pathlib import Path

import anyio
import pytest
from typer.testing import CliRunner

from quiver.cli.app import app
from quiver.config import read_config_file
from quiver.gateway import AUDIT_FILE, state_dir
from quiver.policy.audit import AuditLog, AuditRecord, digest
from quiver.policy.keys import KEYS_FILE, KeyStore
from tests.servers import write_config

runner = CliRunner()


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = write_config(tmp_path / "quiver.json", {})
    data = json.loads(path.read_text())
    data["policy"] = {"roles": {"dev": {"allow": ["*"]}}}
    path.write_text(json.dumps(data))
    return path


def test_a_created_key_is_shown_once_verifies_and_stops_working_when_revoked(config: Path) -> None:
    created = runner.invoke(app, ["keys", "create", "ci-bot", "--role", "dev", "--config", str(config)])
    assert created.exit_code == 0, created.output
    key = created.stdout.strip()
    store = KeyStore(state_dir(read_config_file(config)) / KEYS_FILE)
    principal = store.verify(key)
    assert principal is not None
    assert (principal.name, principal.role) == ("ci-bot", "dev")
    assert key not in (state_dir(read_config_file(config)) / KEYS_FILE).read_text()  # stored hashed

    listed = runner.invoke(app, ["keys", "list", "--json", "--config", str(config)])
    [row] = json.loads(listed.stdout)
    assert (row["name"], row["role"], row["ends"]) == ("ci-bot", "dev", f"…{key[-4:]}")
    assert key not in listed.stdout

    revoked = runner.invoke(app, ["keys", "revoke", "ci-bot", "--config", str(config)])
    assert revoked.exit_code == 0, revoked.output
    assert store.verify(key) is None
    again = runner.invoke(app, ["keys", "revoke", "ci-bot", "--config", str(config)])
    assert again.exit_code == 1
    assert "no key named 'ci-bot'" in again.output


def test_a_key_for_an_unknown_role_is_refused(config: Path) -> None:
    result = runner.invoke(app, ["keys", "create", "bob", "--role", "admin", "--config", str(config)])
    assert result.exit_code != 0
    assert "admin" in result.output
    assert "dev" in result.output  # names the roles that exist


@pytest.mark.anyio
async def test_audit_lists_calls_newest_first_with_filters(config: Path) -> None:
    log = AuditLog(state_dir(read_config_file(config)) / AUDIT_FILE)
    now = time.time()
    rows = [("alice", "fs.read_file", "ok", now - 7200), ("bob", "git.log", "error", now - 60)]
    async with anyio.create_task_group() as tg:
        tg.start_soon(log.run)
        for principal, tool, outcome, ts in rows:
            log.record(
                AuditRecord(
                    ts=ts,
                    principal=principal,
                    role=None,
                    tool=tool,
                    args_digest=digest({}),
                    duration_ms=2.0,
                    outcome=outcome,
                    error_code=None,
                    bytes_in=2,
                    bytes_out=40,
                    policy=None,
                )
            )
        await log.flush()
        tg.cancel_scope.cancel()

    everything = runner.invoke(app, ["audit", "--json", "--config", str(config)])
    assert [row["tool"] for row in json.loads(everything.stdout)] == ["git.log", "fs.read_file"]
    recent = runner.invoke(app, ["audit", "--since", "30m", "--config", str(config)])
    assert "git.log" in recent.stdout
    assert "fs.read_file" not in recent.stdout
    by_tool = runner.invoke(app, ["audit", "--tool", "fs.*", "--json", "--config", str(config)])
    assert [row["principal"] for row in json.loads(by_tool.stdout)] == ["alice"]
    nothing = runner.invoke(app, ["audit", "--principal", "carol", "--config", str(config)])
    assert "no calls recorded matching the filters" in nothing.stdout
    bad = runner.invoke(app, ["audit", "--since", "yesterday", "--config", str(config)])
    assert bad.exit_code != 0
    assert "--since 'yesterday' is not an age or a time" in bad.output
