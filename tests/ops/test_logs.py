"""`quiver logs`: tails of what backends wrote to stderr, and following them as they grow."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import anyio
import pytest
import typer
from typer.testing import CliRunner

from quiver.cli.ops import register
from quiver.config.loader import read_config_file
from quiver.gateway import Gateway
from quiver.ops.logs import Follower, follow, tail
from tests.servers import faulty_backend, time_backend, write_config

runner = CliRunner()


def cli() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    directory = tmp_path / "state" / "logs"
    directory.mkdir(parents=True)
    return directory


def test_tail_reads_the_last_lines_even_of_a_big_file(tmp_path: Path) -> None:
    path = tmp_path / "big.log"
    path.write_text("".join(f"line {i} " + "x" * 100 + "\n" for i in range(2000)) + "unfinished")
    last = tail(path, 3)
    assert [line.split()[:2] for line in last] == [["line", "1998"], ["line", "1999"], ["unfinished"]]
    assert len(tail(path, 500)) == 500
    assert tail(path, 0) == []
    assert tail(tmp_path / "missing.log", 5) == []
    (tmp_path / "short.log").write_text("one\ntwo\n")
    assert tail(tmp_path / "short.log", 10) == ["one", "two"]


def test_the_follower_gives_whole_lines_and_starts_over_after_truncation(tmp_path: Path) -> None:
    path = tmp_path / "a.log"
    path.write_text("old\n")
    follower = Follower({"a": path})
    seen: list[tuple[str, str]] = []
    with path.open("a") as log:
        log.write("first\nsecond half")
    follower.read(lambda name, line: seen.append((name, line)))
    assert seen == [("a", "first")]
    with path.open("a") as log:
        log.write(" done\n")
    follower.read(lambda name, line: seen.append((name, line)))
    assert seen[-1] == ("a", "second half done")
    path.write_text("new\n")  # truncated and rewritten
    follower.read(lambda name, line: seen.append((name, line)))
    assert seen[-1] == ("a", "new")


def test_the_tail_and_the_follower_meet_at_the_last_whole_line(tmp_path: Path) -> None:
    path = tmp_path / "a.log"
    path.write_text("one\ntwo\nhalf")
    follower = Follower({"a": path})
    assert tail(path, 5, follower.start("a")) == ["one", "two"]
    seen: list[tuple[str, str]] = []
    with path.open("a") as log:
        log.write(" done\nthree\n")
    follower.read(lambda name, line: seen.append((name, line)))
    assert seen == [("a", "half done"), ("a", "three")]


@pytest.mark.anyio
async def test_follow_prints_new_lines_of_old_and_new_logs(logs: Path) -> None:
    (logs / "a.log").write_text("before\n")
    seen: list[tuple[str, str]] = []
    arrived = anyio.Event()
    wanted = [("a", "one"), ("b", "two")]

    def emit(name: str, line: str) -> None:
        seen.append((name, line))
        if seen == wanted:
            arrived.set()

    follower = Follower({"a": logs / "a.log"})
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: follow(logs, follower, emit, new_files=True))
        await anyio.wait_all_tasks_blocked()
        with (logs / "a.log").open("a") as log:
            log.write("one\n")
        (logs / "b.log").write_text("two\n")
        with anyio.fail_after(10):
            await arrived.wait()
        tg.cancel_scope.cancel()
    assert seen == wanted


def test_logs_of_one_backend_and_of_all(tmp_path: Path, logs: Path) -> None:
    config = str(write_config(tmp_path / "quiver.json", {"a": time_backend(), "bb": time_backend()}))
    (logs / "bb.log").write_text("bb 1\nbb 2\n")
    os.utime(logs / "bb.log", (1, 1))  # written before a's
    (logs / "a.log").write_text("a 1\na 2\na 3\n")
    one = runner.invoke(cli(), ["logs", "a", "--lines", "2", "--config", config])
    assert one.exit_code == 0, one.output
    assert one.stdout == "a 2\na 3\n"
    both = runner.invoke(cli(), ["logs", "-n", "1", "--config", config])
    assert both.stdout == "bb | bb 2\na  | a 3\n"


def test_unknown_and_silent_backends(tmp_path: Path, logs: Path) -> None:
    backends = {"time": time_backend(), "web": {"url": "http://127.0.0.1:9/mcp"}}
    config = str(write_config(tmp_path / "quiver.json", backends))
    unknown = runner.invoke(cli(), ["logs", "tme", "--config", config])
    assert unknown.exit_code == 1
    assert "error: unknown backend 'tme'" in unknown.output
    assert "hint: known backends: time, web" in unknown.output
    remote = runner.invoke(cli(), ["logs", "web", "--config", config])
    assert remote.exit_code == 1
    assert "backend 'web' is http: only stdio backends write a log" in remote.output
    silent = runner.invoke(cli(), ["logs", "time", "--config", config])
    assert silent.exit_code == 0
    assert "backend 'time' has not written a log yet" in silent.output


@pytest.mark.e2e
def test_logs_show_what_a_real_backend_wrote(tmp_path: Path) -> None:
    config = write_config(tmp_path / "quiver.json", {"faulty": faulty_backend("--exit-at-start")})
    gateway = Gateway(read_config_file(config))

    async def start() -> None:
        async with gateway.running():
            await gateway.refresh(["faulty"])

    anyio.run(start)
    shown = runner.invoke(cli(), ["logs", "faulty", "--config", str(config)])
    assert "faulty: cannot start, missing a licence file" in shown.stdout


@pytest.mark.e2e
def test_follow_until_ctrl_c(tmp_path: Path, logs: Path) -> None:
    config = write_config(tmp_path / "quiver.json", {"time": time_backend()})
    (logs / "time.log").write_text("old line\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "quiver", "logs", "time", "--follow", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    timer = threading.Timer(30, proc.kill)  # a hung follower fails the test instead of hanging it
    timer.start()
    try:
        assert proc.stdout.readline() == "old line\n"
        with (logs / "time.log").open("a") as log:
            log.write("new line\n")
        assert proc.stdout.readline() == "new line\n"
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=10)
    finally:
        timer.cancel()
    assert proc.returncode == 130
    assert stderr == ""
