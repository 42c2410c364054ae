"""`quiver doctor`: each check passes on a sound setup and fails, with a fix, on a broken one."""

from __future__ import annotations

import errno
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from quiver.cli.ops import register
from quiver.ops import doctor
from quiver.ops.doctor import Check, run_checks
from quiver.ops.status import GatewayReport, status_path
from tests.servers import free_port, time_backend, write_config

runner = CliRunner()


def cli() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


def by_name(checks: list[Check]) -> dict[str, Check]:
    return {check.name: check for check in checks}


def config_with(tmp_path: Path, backends: dict[str, dict[str, Any]], **gateway: Any) -> str:
    gateway.setdefault("http", {"port": free_port()})
    return str(write_config(tmp_path / "quiver.json", backends, **gateway))


def test_a_sound_setup_passes_every_check(tmp_path: Path) -> None:
    config = config_with(tmp_path, {"time": time_backend(env={"TZ_NAME": "${HOME}"})})
    result = runner.invoke(cli(), ["doctor", "--config", config])
    assert result.exit_code == 0, result.output
    assert "✗" not in result.stdout
    assert f"✓ config: {config} (1 backend enabled)" in result.stdout
    assert "✓ command of time: " in result.stdout
    assert "✓ environment: 1 variable referenced, none missing" in result.stdout
    assert "all checks passed" in result.stdout
    data = json.loads(runner.invoke(cli(), ["doctor", "--config", config, "--json"]).stdout)
    assert data["ok"] is True
    assert {check["name"] for check in data["checks"]} >= {
        "config",
        "python",
        "command of time",
        "environment",
        "http port",
        "cache dir",
        "state dir",
        "locks",
    }


def test_no_config_file_fails_with_a_hint_to_write_one() -> None:
    result = runner.invoke(cli(), ["doctor"])
    assert result.exit_code == 1
    assert "✗ config: no config file found" in result.stdout
    assert "fix: `quiver init` writes one" in result.stdout


def test_an_invalid_config_names_the_problem(tmp_path: Path) -> None:
    path = tmp_path / "quiver.yaml"
    path.write_text("backends:\n  time:\n    command: x\n    colour: blue\n")
    config = by_name(run_checks(str(path)))["config"]
    assert not config.ok
    assert "colour" in config.detail


def test_a_command_not_on_path_fails(tmp_path: Path) -> None:
    config = config_with(tmp_path, {"gone": {"command": "quiver-no-such-command"}, "time": time_backend()})
    checks = by_name(run_checks(config))
    assert not checks["command of gone"].ok
    assert checks["command of gone"].hint == "install it, or give the full path in backends.gone.command"
    assert checks["command of time"].ok


def test_unset_variables_without_a_default_fail(tmp_path: Path) -> None:
    backends = {
        "api": {"url": "https://${QUIVER_TEST_HOST}/mcp", "headers": {"Authorization": "Bearer ${QUIVER_TEST_TOKEN}"}},
        "time": time_backend(args=["--local-timezone", "${QUIVER_TEST_TZ:-UTC}"]),
    }
    config = config_with(tmp_path, backends)
    environment = by_name(run_checks(config, {"PATH": os.environ["PATH"], "QUIVER_TEST_HOST": "x"}))["environment"]
    assert not environment.ok
    assert environment.detail == "not set: QUIVER_TEST_TOKEN (for api)"
    assert environment.hint is not None
    assert "quiver secrets set" in environment.hint
    environ = {"PATH": os.environ["PATH"], "QUIVER_TEST_HOST": "x", "QUIVER_TEST_TOKEN": ""}
    assert by_name(run_checks(config, environ))["environment"].ok


def test_a_variable_stored_as_a_secret_counts_as_set(tmp_path: Path) -> None:
    from quiver import secrets

    config = config_with(
        tmp_path, {"api": {"url": "https://example.com/mcp", "headers": {"X-Key": "${QUIVER_TEST_KEY}"}}}
    )
    assert not by_name(run_checks(config, {}))["environment"].ok
    secrets.store("project", config_dir=tmp_path).set("QUIVER_TEST_KEY", "s3cret")
    environment = by_name(run_checks(config, {}))["environment"]
    assert environment.ok
    assert environment.detail == "1 variable referenced, none missing"


def test_a_command_made_of_an_unset_variable_says_so(tmp_path: Path) -> None:
    config = config_with(tmp_path, {"tool": {"command": "${QUIVER_TEST_BIN}/server"}})
    check = by_name(run_checks(config, {"PATH": os.environ["PATH"]}))["command of tool"]
    assert not check.ok
    assert check.detail == "needs QUIVER_TEST_BIN, which is not set"


def test_a_port_taken_by_another_program_fails(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        config = config_with(tmp_path, {}, http={"port": port})
        check = by_name(run_checks(config))["http port"]
        assert not check.ok
        assert f"127.0.0.1:{port}" in check.detail
        assert check.hint is not None
        assert "--port" in check.hint


def test_a_port_served_by_a_running_quiver_is_fine(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        config = config_with(tmp_path, {}, http={"port": port})
        # What a gateway serving on that port writes (this test's process stands in for it).
        url = f"http://127.0.0.1:{port}/mcp"
        report = GatewayReport(os.getpid(), time.time(), time.time(), "http", url, config)
        path = status_path(tmp_path / "state")
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(report.to_dict()))
        check = by_name(run_checks(config))["http port"]
    assert check.ok
    assert check.detail == f"127.0.0.1:{port} is served by quiver (pid {os.getpid()})"


def test_unwritable_dirs_fail(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("QUIVER_CACHE_DIR", str(tmp_path / "a-file" / "cache"))
    checks = by_name(run_checks(config_with(tmp_path, {})))
    assert not checks["cache dir"].ok
    assert checks["cache dir"].hint is not None
    assert "QUIVER_CACHE_DIR" in checks["cache dir"].hint
    assert checks["state dir"].ok


@pytest.fixture
def held_lock(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    """A lock in the state dir that another process holds until the test ends."""
    path = tmp_path / "state" / "pins.json.lock"
    path.parent.mkdir(parents=True)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import filelock, sys; lock = filelock.FileLock({str(path)!r}); lock.acquire(); print(); sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None
    assert holder.stdin is not None
    holder.stdout.readline()  # it holds the lock now
    try:
        yield path, holder.pid
    finally:
        holder.stdin.close()
        holder.wait(10)
        holder.stdout.close()


def test_a_lock_held_for_long_fails_and_names_its_holder(
    tmp_path: Path, held_lock: tuple[Path, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(doctor, "LOCK_WAIT", 0.2)
    path, pid = held_lock
    check = by_name(run_checks(config_with(tmp_path, {})))["locks"]
    assert not check.ok
    assert check.detail == f"{path} held by pid {pid} for over 0.2s"


def test_lock_files_left_by_released_locks_are_normal(tmp_path: Path) -> None:
    from filelock import FileLock

    path = tmp_path / "cache" / "catalog" / "time.lock"
    path.parent.mkdir(parents=True)
    with FileLock(str(path)):
        pass
    os.utime(path, (0, 0))  # old, and nobody holds it
    check = by_name(run_checks(config_with(tmp_path, {})))["locks"]
    assert check.ok
    assert check.detail == "1 lock file, none stuck"


def test_an_old_lock_file_is_stale_where_locks_are_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_flock(fd: int, operation: int) -> None:
        raise OSError(errno.ENOSYS, "Function not implemented")

    monkeypatch.setattr(doctor, "_flock", no_flock)
    old, fresh = tmp_path / "state" / "old.lock", tmp_path / "state" / "fresh.lock"
    old.parent.mkdir(parents=True)
    old.write_text("")
    fresh.write_text("")
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    check = by_name(run_checks(config_with(tmp_path, {})))["locks"]
    assert not check.ok
    assert check.detail == f"{old} left behind 60 min ago"


def test_node_is_checked_only_when_a_backend_runs_it(tmp_path: Path) -> None:
    assert not any(name.startswith(("node", "npm")) for name in by_name(run_checks(config_with(tmp_path, {}))))
    config = config_with(tmp_path, {"everything": {"command": "npx", "args": ["-y", "server-everything"]}})
    node_dir = str(Path(shutil.which("node") or "/nonexistent").parent)
    checks = by_name(run_checks(config, {"PATH": node_dir}))
    assert checks["node (for everything)"].ok
    assert checks["node (for everything)"].detail.split()[-1].startswith("v")
    missing = by_name(run_checks(config, {"PATH": str(tmp_path)}))
    assert not missing["node (for everything)"].ok
    assert not missing["npm (for everything)"].ok
    assert "nodejs.org" in (missing["node (for everything)"].hint or "")
