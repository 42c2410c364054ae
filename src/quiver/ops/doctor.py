"""`quiver doctor`: the checks that explain why a gateway would not start or serve.

Each check is a small function returning `Check`s (pass or fail, what was found, and how to
fix it). They read the config, the environment and the machine, and change nothing.
"""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from quiver.config.interpolate import referenced_variables
from quiver.config.models import AnyBackendConfig, QuiverConfig, StdioBackendConfig
from quiver.errors import MissingEnvError, QuiverError

MIN_PYTHON = (3, 11)
NODE_COMMANDS = frozenset({"node", "npx", "npm"})
# Quiver holds its file locks for milliseconds; one held this long is probably stuck.
LOCK_WAIT = 2.0
# Where locks are plain files (no flock on the filesystem), one left this long is stale.
STALE_LOCK_AGE = 600.0
_LOCK_POLL = 0.05
_VERSION_TIMEOUT = 10.0

_flock = fcntl.flock  # a seam for tests: filesystems without flock are hard to come by


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str
    hint: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_checks(explicit: str | None = None, environ: Mapping[str, str] | None = None) -> list[Check]:
    """Every check, in the order a user would fix things. `environ` stands for the process environment."""
    environ = os.environ if environ is None else environ
    config_check, config = check_config(explicit, environ)
    resolved = {
        name: Resolved.of(name, backend, config, environ) for name, backend in config.enabled_backends().items()
    }
    checks = [config_check, check_python()]
    checks += check_commands(resolved, environ)
    checks.append(check_environment(resolved))
    checks += check_node(config, environ)
    checks.append(check_port(config))
    checks += check_dirs(config)
    checks.append(check_locks(config))
    return checks


@dataclass(frozen=True, slots=True)
class Resolved:
    """A backend with its `${VAR}`s replaced as the gateway replaces them (secrets, then the environment)."""

    original: AnyBackendConfig
    config: AnyBackendConfig  # `original` itself when it could not be resolved
    missing: list[str]  # variables without a default that are not set (replaced by "" here)
    referenced: int  # variables looked up, set or not
    problem: str | None = None  # why it could not be resolved at all

    @classmethod
    def of(cls, name: str, backend: AnyBackendConfig, config: QuiverConfig, environ: Mapping[str, str]) -> Resolved:
        from quiver import secrets
        from quiver.config.interpolate import resolve_backend

        config_dir = config.source.parent if config.source is not None else None
        lookups = _Lookups(secrets.environment(config_dir, environ))
        missing: list[str] = []
        while True:
            try:
                return cls(backend, resolve_backend(name, backend, lookups), missing, len(lookups.asked))
            except MissingEnvError as exc:
                if exc.variable in missing:  # cannot happen once filled in; never loop
                    return cls(backend, backend, missing, len(lookups.asked), exc.message)
                missing.append(exc.variable)
                lookups.fill(exc.variable)
            except QuiverError as exc:
                return cls(backend, backend, missing, len(lookups.asked), exc.message)


class _Lookups(Mapping[str, str]):
    """An environment that remembers which names were looked up."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._values = dict(environ)
        self.asked: set[str] = set()

    def fill(self, name: str) -> None:
        self._values[name] = ""

    def __getitem__(self, key: str) -> str:
        self.asked.add(key)
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


def check_config(explicit: str | None, environ: Mapping[str, str]) -> tuple[Check, QuiverConfig]:
    """The config file found and read; the rest of the checks use it (or the defaults)."""
    from quiver.config.loader import discover_config_path, read_config_file

    try:
        path = discover_config_path(explicit, environ=environ)
        if path is None:
            check = Check(
                "config",
                False,
                "no config file found ($QUIVER_CONFIG, ./quiver.yaml, ./.mcp.json, the user config dir)",
                "`quiver init` writes one",
            )
            return check, QuiverConfig()
        config = read_config_file(path)
    except QuiverError as exc:
        return Check("config", False, exc.message, exc.hint or "fix the config file"), QuiverConfig()
    count = len(config.enabled_backends())
    return Check("config", True, f"{path} ({count} backend{'' if count == 1 else 's'} enabled)"), config


def check_python() -> Check:
    version = ".".join(str(part) for part in sys.version_info[:3])
    if sys.version_info[:2] >= MIN_PYTHON:
        return Check("python", True, f"Python {version}")
    wanted = ".".join(map(str, MIN_PYTHON))
    return Check("python", False, f"Python {version}", f"Quiver needs Python {wanted} or newer")


def check_commands(backends: Mapping[str, Resolved], environ: Mapping[str, str]) -> list[Check]:
    """Every stdio backend's command can be found (on PATH, or as a path)."""
    checks = []
    for name, resolved in backends.items():
        backend = resolved.config
        if not isinstance(backend, StdioBackendConfig):
            continue
        label = f"command of {name}"
        command = resolved.original.command if isinstance(resolved.original, StdioBackendConfig) else ""
        unset = [variable for variable in resolved.missing if variable in referenced_variables(command)]
        if unset:
            checks.append(Check(label, False, f"needs {', '.join(unset)}, which is not set", "see 'environment'"))
            continue
        found = _resolve_command(backend, environ)
        if found is not None:
            checks.append(Check(label, True, found))
        else:
            hint = f"install it, or give the full path in backends.{name}.command"
            checks.append(Check(label, False, f"'{backend.command}' was not found on PATH", hint))
    return checks


def _resolve_command(backend: StdioBackendConfig, environ: Mapping[str, str]) -> str | None:
    """Found the way the gateway finds it: the backend's own PATH if it sets one, then its cwd."""
    found = shutil.which(backend.command, path=backend.env.get("PATH") or environ.get("PATH"))
    if found is not None:
        return found
    cwd = Path(backend.cwd).expanduser() if backend.cwd else None
    if cwd is not None and (cwd / backend.command).exists():
        return str(cwd / backend.command)
    return None


def check_environment(backends: Mapping[str, Resolved]) -> Check:
    """Every `${VAR}` without a default is set (in the environment or stored with `quiver secrets`)."""
    missing = [f"{variable} (for {name})" for name, resolved in backends.items() for variable in resolved.missing]
    broken = [f"{name}: {resolved.problem}" for name, resolved in backends.items() if resolved.problem]
    if missing or broken:
        return Check(
            "environment",
            False,
            "; ".join([*(["not set: " + ", ".join(missing)] if missing else []), *broken]),
            "store them with `quiver secrets set NAME` (or export them where the client starts Quiver),"
            " or give a default in the config: ${NAME:-value}",
        )
    total = sum(resolved.referenced for resolved in backends.values())
    if total == 0:
        return Check("environment", True, "no ${VAR} references")
    return Check("environment", True, f"{total} variable{'' if total == 1 else 's'} referenced, none missing")


def check_node(config: QuiverConfig, environ: Mapping[str, str]) -> list[Check]:
    """Node (and npm, for npx) when a backend runs them; nothing otherwise."""
    users: dict[str, list[str]] = {}
    for name, backend in config.enabled_backends().items():
        if isinstance(backend, StdioBackendConfig):
            program = Path(backend.command).name
            if program in NODE_COMMANDS:
                users.setdefault("node", []).append(name)
                if program != "node":
                    users.setdefault("npm", []).append(name)
    checks = []
    for program, backends in users.items():
        label = f"{program} (for {', '.join(backends)})"
        found = shutil.which(program, path=environ.get("PATH"))
        if found is None:
            hint = "install Node.js (https://nodejs.org), which brings npm and npx, and put it on PATH"
            checks.append(Check(label, False, f"{program} was not found on PATH", hint))
        else:
            checks.append(Check(label, True, f"{found} {_version_of(found)}".strip()))
    return checks


def _version_of(program: str) -> str:
    try:
        done = subprocess.run(
            [program, "--version"], capture_output=True, text=True, timeout=_VERSION_TIMEOUT, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout.strip()


def check_port(config: QuiverConfig) -> Check:
    """`quiver serve`'s port is free, or taken by a running Quiver."""
    from quiver.gateway import state_dir
    from quiver.ops.status import read_statuses

    settings = config.gateway.http
    where = f"{settings.host}:{settings.port}"
    if settings.port == 0:
        return Check("http port", True, f"{settings.host}: any free port (0)")
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((settings.host.strip("[]"), settings.port))
        except OSError as exc:
            problem = exc.strerror or str(exc)
        else:
            return Check("http port", True, f"{where} is free")
    for report in read_statuses(state_dir(config)):
        if report.url is not None and f":{settings.port}/" in report.url:
            return Check("http port", True, f"{where} is served by quiver (pid {report.pid})")
    hint = "set gateway.http.port in the config, or pass --port to `quiver serve` (0 picks a free one)"
    return Check("http port", False, f"cannot listen on {where}: {problem}", hint)


def check_dirs(config: QuiverConfig) -> list[Check]:
    from quiver.gateway import cache_dir, state_dir

    checks = []
    for label, path, setting in (
        ("cache dir", cache_dir(config), "QUIVER_CACHE_DIR (or gateway.cache_dir)"),
        ("state dir", state_dir(config), "QUIVER_STATE_DIR (or gateway.state_dir)"),
    ):
        problem = _unwritable(path)
        if problem is None:
            checks.append(Check(label, True, f"{path} is writable"))
        else:
            hint = f"make it writable, or set {setting} to a folder you can write"
            checks.append(Check(label, False, f"{path} is not writable: {problem}", hint))
    return checks


def _unwritable(path: Path) -> str | None:
    """Why files cannot be made in `path` (created on first use, so an ancestor counts if it is missing)."""
    if path.is_dir():
        try:
            with tempfile.NamedTemporaryFile(dir=path, prefix=".doctor-"):
                return None
        except OSError as exc:
            return exc.strerror or str(exc)
    ancestor = path
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        return f"{ancestor} is not a folder"
    if not os.access(ancestor, os.W_OK | os.X_OK):
        return f"cannot create it in {ancestor}"
    return None


def check_locks(config: QuiverConfig) -> Check:
    """No lock file in the cache or state dir is stuck: held for long, or left behind where locks are files."""
    from quiver.gateway import cache_dir, state_dir

    files = sorted({path for root in (cache_dir(config), state_dir(config)) for path in _lock_files(root)})
    problems = [problem for path in files if (problem := _lock_problem(path)) is not None]
    if problems:
        return Check(
            "locks",
            False,
            "; ".join(problems),
            "if no Quiver command is running, stop the holder or delete the file",
        )
    return Check("locks", True, f"{len(files)} lock file{'' if len(files) == 1 else 's'}, none stuck")


def _lock_files(root: Path) -> list[Path]:
    return [path for path in root.rglob("*.lock") if path.is_file()] if root.is_dir() else []


def _lock_problem(path: Path) -> str | None:
    """Why this lock is stuck, or None. A free lock's file is normal: file locks leave their file behind."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None  # removed meanwhile, or not ours to read
    try:
        deadline = time.monotonic() + LOCK_WAIT
        while True:
            try:
                _flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno == errno.ENOSYS:  # no flock here: the file's existence is the lock
                    age = time.time() - os.fstat(fd).st_mtime
                    return f"{path} left behind {age / 60:.0f} min ago" if age > STALE_LOCK_AGE else None
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    return f"{path}: {exc.strerror}"
            else:
                _flock(fd, fcntl.LOCK_UN)
                return None
            if time.monotonic() >= deadline:
                holder = _lock_holder(path)
                by = f" by pid {holder}" if holder is not None else ""
                return f"{path} held{by} for over {LOCK_WAIT:g}s"
            time.sleep(_LOCK_POLL)
    finally:
        os.close(fd)


def _lock_holder(path: Path) -> int | None:
    """The process holding a flock on `path`, from /proc/locks (Linux), if it can be told."""
    try:
        stat = path.stat()
        table = Path("/proc/locks").read_text()
    except OSError:
        return None
    device = f"{os.major(stat.st_dev):02x}:{os.minor(stat.st_dev):02x}:{stat.st_ino}"
    for line in table.splitlines():
        fields = line.split()
        if "->" in fields:  # a waiter, not the holder
            continue
        if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5] == device and fields[4].isdigit():
            return int(fields[4])
    return None
