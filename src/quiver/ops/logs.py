"""Backend logs: the tail of what each stdio backend wrote to stderr, and following it.

The gateway appends every stdio backend's stderr to `state_dir/logs/<backend>.log`. Those
lines carry no timestamps, so the tails of several backends cannot be interleaved exactly:
they are printed one backend after another, the most recently written last, and from then on
(`follow`) every new line is printed as it arrives, whichever backend wrote it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

import anyio

LOG_DIR = "logs"
LOG_SUFFIX = ".log"
_BLOCK = 1 << 14
# File events arrive in batches: wait this long (ms) for more before reading.
_DEBOUNCE_MS = 50
# Read anyway this often (ms), in case a write slipped in before the watch began.
_RESCAN_MS = 1000

Emit = Callable[[str, str], None]
"""Told (backend, line) for every line, without its line break."""


def log_dir(state: Path) -> Path:
    return state / LOG_DIR


def log_path(state: Path, backend: str) -> Path:
    return log_dir(state) / f"{backend}{LOG_SUFFIX}"


def logged_backends(directory: Path) -> list[str]:
    """Backends with a log file, least recently written first."""
    if not directory.is_dir():
        return []
    files = [path for path in directory.glob(f"*{LOG_SUFFIX}") if path.is_file()]
    return [path.stem for path in sorted(files, key=_mtime)]


def tail(path: Path, lines: int, end: int | None = None) -> list[str]:
    """The last `lines` lines of a file (or of its first `end` bytes), without line breaks.

    Reads only the end of a big file."""
    if lines <= 0:
        return []
    try:
        with path.open("rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            end = size if end is None else min(end, size)
            start, data = end, b""
            while start > 0 and data.count(b"\n") <= lines:
                start = max(0, start - _BLOCK)
                handle.seek(start)
                data = handle.read(end - start)
    except FileNotFoundError:
        return []
    text = data.decode("utf-8", errors="replace")
    return text.splitlines()[-lines:]


class Follower:
    """New lines of log files; lines are whole (a partial one waits for its end).

    It starts after the last complete line of each file: `tail(path, n, follower.start(name))`
    prints what came before, so no line is lost or printed twice between the two."""

    def __init__(self, files: Mapping[str, Path]) -> None:
        self._files = dict(files)
        self._offsets = {name: _complete(path) for name, path in self._files.items()}
        self._partial: dict[str, bytes] = {}

    def start(self, name: str) -> int:
        return self._offsets[name]

    def add(self, name: str, path: Path) -> None:
        """Follow one more file, from its start (it appeared after the follower was made)."""
        if name not in self._files:
            self._files[name] = path
            self._offsets[name] = 0

    def read(self, emit: Emit) -> None:
        for name, path in self._files.items():
            size = _size(path)
            if size < self._offsets[name]:  # truncated or replaced: start over
                self._offsets[name] = 0
                self._partial.pop(name, None)
            if size == self._offsets[name]:
                continue
            with path.open("rb") as handle:
                handle.seek(self._offsets[name])
                data = self._partial.pop(name, b"") + handle.read(size - self._offsets[name])
            self._offsets[name] = size
            complete, newline, rest = data.rpartition(b"\n")
            if rest:
                self._partial[name] = rest
            if newline:
                for line in complete.decode("utf-8", errors="replace").split("\n"):
                    emit(name, line.rstrip("\r"))


async def follow(directory: Path, follower: Follower, emit: Emit, *, new_files: bool) -> None:
    """Emit new lines until cancelled; with `new_files`, logs that appear in `directory` are followed too."""
    from watchfiles import awatch

    await anyio.Path(directory).mkdir(parents=True, exist_ok=True)
    follower.read(emit)
    changes = awatch(
        directory,
        debounce=_DEBOUNCE_MS,
        step=_DEBOUNCE_MS,
        recursive=False,
        rust_timeout=_RESCAN_MS,
        yield_on_timeout=True,
    )
    async for _ in changes:
        if new_files:
            for name in logged_backends(directory):
                follower.add(name, directory / f"{name}{LOG_SUFFIX}")
        follower.read(emit)


def _complete(path: Path) -> int:
    """The size of the file up to and including its last line break."""
    try:
        with path.open("rb") as handle:
            end = handle.seek(0, os.SEEK_END)
            while end > 0:
                start = max(0, end - _BLOCK)
                handle.seek(start)
                found = handle.read(end - start).rfind(b"\n")
                if found >= 0:
                    return start + found + 1
                end = start
    except FileNotFoundError:
        pass
    return 0


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return 0.0
