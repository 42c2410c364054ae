"""Installing manifest servers into folders Quiver manages, verified before they count as installed.

Each server gets a folder of its own under `servers_dir()`: an npm prefix, or a venv with its own
dependencies (so a server pinned to another `mcp` never meets Quiver's). An install is built in a
hidden sibling folder and verified by starting it with Quiver's own backend class; only then does
`servers_dir()/NAME`, a symlink, switch to it with one rename. A venv records its absolute path in
its scripts and cannot be moved once built, hence the link. So a failed or interrupted install
leaves nothing that looks installed, a failed update keeps the previous version, and a file lock
per server keeps two installs of one server apart, across processes too.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

import anyio

from quiver.errors import QuiverError, sole_error
from quiver.provisioning.manifest import EnvVar, Manifest, ManifestEntry, load_manifest

if TYPE_CHECKING:
    from anyio.abc import ByteReceiveStream
    from filelock import BaseFileLock

    from quiver.config.editing import ConfigEditor
    from quiver.config.models import AnyBackendConfig

Progress = Callable[[float, float, str], Awaitable[None]]
"""`progress(done, total, message)`: `done` rises strictly and ends equal to `total`."""

DATA_DIR_ENV = "QUIVER_DATA_DIR"
DEFAULT_TIMEOUT = 300.0  # seconds for one install: a cold npm or pip cache makes a big server take minutes
VERIFY_TIMEOUT = 60.0  # seconds for the first start to list tools (the gateway allows a start 30)
STEPS = 4  # preparing, installing, starting, putting in place; `done == STEPS` when finished
METADATA_FILE = "quiver-install.json"
_LOCK_POLL = 0.2  # seconds between tries at a server's lock
_HEARTBEAT = 5.0  # seconds of silence from npm or pip before a progress report anyway (keeps callers waiting)
_MIN_REPORT_INTERVAL = 0.25  # seconds between progress reports for output lines
_PIPE_GRACE = 5.0  # seconds to read what is left after npm/pip exits (a grandchild may hold the pipes)
_OUTPUT_LINES = 200  # output kept per command, for the error
_TAIL_LINES = 8  # lines of it an error quotes
_SERVER_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_ERROR_PREFIXES = ("npm error", "npm err!", "error:", "error ")
_OFFLINE_MARKS = (
    "enotfound",
    "econnrefused",
    "econnreset",
    "etimedout",
    "eai_again",
    "enetunreach",
    "npm error network",
    "failed to establish a new connection",
    "max retries exceeded",
    "temporary failure in name resolution",
    "name or service not known",
)
_MISSING_MARKS = (
    "e404",
    "404 not found",
    "etarget",
    "no matching version",
    "no matching distribution",
    "could not find a version",
)


def servers_dir() -> Path:
    """Where installed servers live: `$QUIVER_DATA_DIR/servers`, else `servers` in the user data dir."""
    configured = os.environ.get(DATA_DIR_ENV)
    if configured:
        return Path(configured).expanduser() / "servers"
    import platformdirs

    return Path(platformdirs.user_data_dir("quiver", appauthor=False)) / "servers"


class InstallError(QuiverError):
    """Installing a server failed; nothing was left behind. `output` holds the installer's last lines."""

    code = "install_failed"

    def __init__(
        self, message: str, *, hint: str | None = None, retryable: bool | None = None, output: Sequence[str] = ()
    ) -> None:
        super().__init__(message, hint=hint, retryable=retryable)
        self.output = list(output)


class NotInstalledError(QuiverError):
    """A server that has no folder (and no entry) to update or remove."""

    code = "not_installed"


class AlreadyInstalledError(QuiverError):
    """A server that the config already has; installing again needs `force`."""

    code = "already_installed"


@dataclass(frozen=True)
class InstallResult:
    """What an install did: where the server is, how to run it, and what it still needs."""

    name: str
    kind: str
    command: str | None  # the executable the backend runs; None for a hosted server
    tools: int | None  # tools the server listed when started; None when it was not started
    missing_env: list[EnvVar]  # required variables that are unset (so it was not started)
    backend: dict[str, Any]  # the backend config entry, `${VAR}` references unresolved
    path: Path | None  # the server's folder; None for a hosted server

    def next_steps(self) -> list[str]:
        """What the user must do before the server can start, a few lines per missing variable."""
        lines = []
        for var in self.missing_env:
            lines.append(f"{var.name}: {var.description}")
            if var.obtain:
                lines.append(f"  get it: {var.obtain}")
            lines.append(f"  set it: quiver secrets set {var.name}")
        return lines


@dataclass(frozen=True)
class UninstallResult:
    name: str
    config: Path | None  # the config file the backend was removed from, if it was registered
    folder: Path | None  # the folder removed, if there was one
    kept: bool  # the config has a backend of that name that Quiver did not install; left alone


class Installer:
    """Installs, updates and removes manifest servers under `root` (default `servers_dir()`).

    `environ` is what `${VAR}` resolves against when verifying (default: secrets and the process
    environment, as the gateway sees them). `timeout` bounds one install, from waiting for the
    server's lock to the end of verification.
    """

    def __init__(
        self,
        manifest: Manifest | None = None,
        *,
        root: Path | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        verify_timeout: float = VERIFY_TIMEOUT,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.manifest = manifest if manifest is not None else load_manifest()
        self.root = (root if root is not None else servers_dir()).absolute()  # commands must not depend on the cwd
        self.timeout = timeout
        self.verify_timeout = verify_timeout
        self._environ = environ

    # -- queries ----------------------------------------------------------------------------

    def installed(self) -> list[str]:
        """Names of the servers that have a folder here."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if _SERVER_NAME.match(p.name) and p.is_dir())

    def is_installed(self, name: str) -> bool:
        return _SERVER_NAME.match(name) is not None and (self.root / name).is_dir()

    def folder(self, name: str) -> Path:
        return self.root / _checked(name)

    # -- install ----------------------------------------------------------------------------

    async def install(self, name: str, *, progress: Progress | None = None, verify: bool = True) -> InstallResult:
        """Install (or reinstall) `name` and check that it starts and lists its tools; the config is not touched."""
        async with self.installing(name, progress=progress, verify=verify) as result:
            pass
        return result

    async def update(self, name: str, *, progress: Progress | None = None) -> InstallResult:
        """Reinstall an installed server at its manifest version; on failure the old install stays."""
        entry = self.manifest.entry(name)
        if entry.kind == "remote":
            raise NotInstalledError(
                f"'{entry.name}' is a hosted server: there is nothing installed to update",
                hint=f"its URL comes from the manifest; `quiver install {entry.name} --force` registers it again",
            )
        if not self.is_installed(entry.name):
            raise NotInstalledError(
                f"'{entry.name}' is not installed in {self.root}", hint=f"install it with `quiver install {entry.name}`"
            )
        return await self.install(entry.name, progress=progress)

    @asynccontextmanager
    async def installing(
        self, name: str, *, progress: Progress | None = None, verify: bool = True
    ) -> AsyncIterator[InstallResult]:
        """Install `name` and put it in place for the body; if the body raises, undo everything.

        The body is where a caller registers the server (see `install_and_register`). The server's
        lock is held throughout, and `progress` reaches its total only after the body.
        """
        entry = self.manifest.entry(name)
        report = _Reporter(progress)
        await report.step(0, f"preparing to install {entry.name}")
        deadline = anyio.current_time() + self.timeout
        lock: BaseFileLock | None = None
        staged: _Staged | None = None
        try:
            with anyio.CancelScope(deadline=deadline) as scope:
                lock = await self._lock(entry.name, report)
                staged = await self._build(entry, report, verify)
            if scope.cancelled_caught or staged is None:
                raise InstallError(
                    f"installing '{entry.name}' ({_spec(entry)}) did not finish within {self.timeout:g} s",
                    hint="run it again (a cold npm or pip cache makes the first install slow), or allow longer"
                    " with --timeout; nothing was left behind",
                    retryable=True,
                )
            try:
                await report.step(3, f"putting {entry.name} in place")
                previous = self._swap_in(entry.name, staged.folder)
            except BaseException:
                if staged.folder is not None:
                    _remove(staged.folder)
                raise
            try:
                yield staged.result
            except BaseException:
                self._swap_back(entry.name, staged.folder, previous)
                raise
            if previous is not None:
                _remove(previous)
        finally:
            if lock is not None:
                lock.release()
        tools = f": {_count(staged.result.tools, 'tool')}" if staged.result.tools is not None else ""
        await report.step(STEPS, f"installed {entry.name}{tools}")

    async def _build(self, entry: ManifestEntry, report: _Reporter, verify: bool) -> _Staged:
        """The server installed in a fresh hidden folder and verified there (nothing in place yet)."""
        if entry.kind == "remote":
            await report.step(1, f"nothing to install for {entry.name}: it is a hosted server")
            backend = _described(entry, entry.backend_config())
            tools, missing = await self._verify(entry, backend, report, verify)
            return _Staged(None, InstallResult(entry.name, entry.kind, None, tools, missing, backend, None))
        self._sweep(entry.name)
        folder = Path(tempfile.mkdtemp(prefix=f".{entry.name}.", dir=self.root))
        try:
            if entry.kind == "npm":
                relative = await self._npm(entry, folder, report)
            else:
                relative = await self._pypi(entry, folder, report)
            final = self.root / entry.name / relative
            staged_backend = _described(entry, entry.backend_config(str(folder / relative)))
            tools, missing = await self._verify(entry, staged_backend, report, verify)
            _write_metadata(folder, entry, relative)
        except BaseException:
            _remove(folder)
            raise
        backend = _described(entry, entry.backend_config(str(final)))
        result = InstallResult(entry.name, entry.kind, str(final), tools, missing, backend, self.root / entry.name)
        return _Staged(folder, result)

    async def _npm(self, entry: ManifestEntry, folder: Path, report: _Reporter) -> Path:
        spec = entry.install.npm
        assert spec is not None
        npm = shutil.which("npm")
        if npm is None:
            raise InstallError(
                f"cannot install '{entry.name}' ({_spec(entry)}): npm was not found on PATH",
                hint="install Node.js (it includes npm) from https://nodejs.org, then run the command again",
            )
        await report.step(1, f"installing {_spec(entry)} from npm")
        argv = [npm, "install", "--prefix", str(folder), "--no-audit", "--no-fund", "--no-update-notifier"]
        await self._run([*argv, _spec(entry)], entry, "npm", report)
        relative = Path("node_modules", ".bin", spec.bin_name)
        _check_executable(entry, folder, relative, spec.bin_name)
        return relative

    async def _pypi(self, entry: ManifestEntry, folder: Path, report: _Reporter) -> Path:
        spec = entry.install.pypi
        assert spec is not None
        await report.step(1, f"installing {_spec(entry)} from PyPI")
        venv = folder / "venv"
        await report.tick("creating its virtual environment", always=True)
        await self._run([sys.executable, "-m", "venv", str(venv)], entry, "python -m venv", report)
        pip = [
            str(venv / "bin" / "pip"),
            "install",
            "--disable-pip-version-check",
            "--no-input",
            "--progress-bar",
            "off",
        ]
        extra = list(entry.install.pypi.requires) if entry.install.pypi is not None else []
        await self._run([*pip, _spec(entry), *extra], entry, "pip", report)
        relative = Path("venv", "bin", spec.script)
        _check_executable(entry, folder, relative, spec.script)
        return relative

    async def _run(self, argv: list[str], entry: ManifestEntry, tool: str, report: _Reporter) -> None:
        """Run an installer command; its output feeds progress, and its last lines any error."""
        output: deque[str] = deque(maxlen=_OUTPUT_LINES)
        try:
            process = await anyio.open_process(
                argv, stdin=subprocess.DEVNULL, start_new_session=True, env={**os.environ, "NO_COLOR": "1"}
            )
        except OSError as exc:
            raise InstallError(
                f"cannot install '{entry.name}': {tool} could not be started ({exc.strerror or exc})",
                hint="check that it is installed and runnable",
            ) from None
        try:
            async with anyio.create_task_group() as tg:
                for stream in (process.stdout, process.stderr):
                    if stream is not None:
                        tg.start_soon(_read_lines, stream, output, report)
                code: int | None = None
                while code is None:
                    with anyio.move_on_after(_HEARTBEAT):
                        code = await process.wait()
                    if code is None:
                        await report.heartbeat()
                tg.cancel_scope.deadline = anyio.current_time() + _PIPE_GRACE
        finally:
            if process.returncode is None:
                _kill_group(process.pid)
            with anyio.CancelScope(shield=True):
                await process.aclose()
        if code:  # a non-zero exit
            raise _failed(entry, tool, code, list(output))

    async def _verify(
        self, entry: ManifestEntry, backend: dict[str, Any], report: _Reporter, verify: bool
    ) -> tuple[int | None, list[EnvVar]]:
        """Start the server as the gateway would and count its tools; skipped while required variables are unset."""
        environ = self._environment()
        missing = [var for var in entry.env if var.required and not environ.get(var.name)]
        if missing:
            await report.step(2, f"not starting {entry.name}: it needs {', '.join(var.name for var in missing)}")
            return None, missing
        if not verify:
            await report.step(2, f"not starting {entry.name} (verification skipped)")
            return None, missing
        from quiver.backends.mcp import McpBackend

        await report.step(2, f"starting {entry.name} to list its tools")
        with tempfile.TemporaryDirectory(prefix="quiver-verify-") as logs:
            server = McpBackend(entry.name, _backend_model(backend), log_dir=Path(logs), environ=environ)
            try:
                with anyio.CancelScope(deadline=anyio.current_time() + self.verify_timeout) as scope:
                    async with server.lifespan():
                        tools = await server.list_tools()
            except Exception as exc:
                raise _not_started(entry, _reason(sole_error(exc)), server.failure_detail()) from None
            if scope.cancelled_caught:
                reason = f"it did not list its tools within {self.verify_timeout:g} s"
                raise _not_started(entry, reason, server.failure_detail())
        return len(tools), missing

    def _environment(self) -> dict[str, str]:
        if self._environ is not None:
            return dict(self._environ)
        from quiver import secrets

        return secrets.environment()

    # -- the folder and its link ------------------------------------------------------------

    async def _lock(self, name: str, report: _Reporter) -> BaseFileLock:
        from filelock import FileLock, Timeout

        self.root.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(self._lock_path(name)))
        waiting = False
        while True:
            try:
                lock.acquire(timeout=0)
                return lock
            except Timeout:
                if not waiting:
                    await report.tick(f"waiting for another install of {name} to finish", always=True)
                    waiting = True
                await anyio.sleep(_LOCK_POLL)

    @contextmanager
    def _locked(self, name: str) -> Iterator[None]:
        from filelock import FileLock, Timeout

        self.root.mkdir(parents=True, exist_ok=True)
        try:
            with FileLock(str(self._lock_path(name)), timeout=self.timeout):
                yield
        except Timeout:
            raise QuiverError(
                f"another install of '{name}' is still running", hint="wait for it to finish", retryable=True
            ) from None

    def _lock_path(self, name: str) -> Path:
        return self.root / f".{name}.lock"

    def _current(self, name: str) -> Path | None:
        """The folder `NAME` stands for now (its link's target), if any."""
        link = self.root / name
        if link.is_symlink():
            target = link.resolve()
            return target if target.is_dir() else None
        return link if link.is_dir() else None

    def _swap_in(self, name: str, folder: Path | None) -> Path | None:
        """Point `NAME` at `folder` in one rename; return the folder it pointed at before."""
        if folder is None:
            return None
        link = self.root / name
        previous = self._current(name)
        if previous == link:  # a plain folder (not made by this installer): move it aside first
            previous = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=self.root))
            os.replace(link, previous)
        temp = self.root / f".{name}.link-{os.getpid()}-{time.monotonic_ns()}"
        os.symlink(folder.name, temp)
        os.replace(temp, link)
        return previous

    def _swap_back(self, name: str, folder: Path | None, previous: Path | None) -> None:
        if folder is None:
            return
        link = self.root / name
        if previous is None:
            link.unlink(missing_ok=True)
        else:
            temp = self.root / f".{name}.link-{os.getpid()}-{time.monotonic_ns()}"
            os.symlink(previous.name, temp)
            os.replace(temp, link)
        _remove(folder)

    def _sweep(self, name: str) -> None:
        """Remove what interrupted installs of `name` left (hidden folders and links not in use)."""
        current = self._current(name)
        for path in self.root.glob(f".{name}.*"):
            if path != self._lock_path(name) and (current is None or path.resolve() != current):
                _remove(path)

    # -- uninstall --------------------------------------------------------------------------

    def uninstall(self, name: str) -> bool:
        """Remove the server's folder; False when it has none. Waits while an install of it runs."""
        name = _checked(name)
        if not self.root.is_dir():
            return False
        with self._locked(name):
            link = self.root / name
            current = self._current(name)
            existed = link.is_symlink() or link.exists()
            if link.is_symlink():
                link.unlink()  # first the name, so nothing looks installed while the folder goes
            if current is not None:
                _remove(current)
            self._sweep(name)
        return existed

    def owns(self, name: str, backend: AnyBackendConfig) -> bool:
        """Whether `backend` is what installing `name` registers (so uninstalling may remove it)."""
        command = getattr(backend, "command", None)
        if command is not None:
            return Path(command).parts[: len(self.folder(name).parts)] == self.folder(name).parts
        entry = self.manifest.get(name)
        remote = entry.install.remote if entry is not None else None
        return remote is not None and getattr(backend, "url", None) == remote.url


async def install_and_register(
    name: str,
    *,
    config: str | None = None,
    scope: str | None = None,
    force: bool = False,
    progress: Progress | None = None,
    verify: bool = True,
    installer: Installer | None = None,
) -> InstallResult:
    """Install `name` and add it to the config as a backend; on any failure neither changes.

    The config file is `config`, else the file of `scope` (user or project), else the one Quiver
    loads here. A backend of that name already there is an error unless `force`. `installer`
    chooses the manifest, folder and timeout; by default the server is verified with the secrets
    of the config's directory, as the gateway will run it.
    """
    from quiver import secrets
    from quiver.config.editing import ConfigEditor, target_path

    path = target_path(config, _scope(scope))
    if installer is None:
        installer = Installer(environ=secrets.environment(path.parent))
    entry = installer.manifest.entry(name)
    _refuse_registered(ConfigEditor(path), entry.name, path, force)  # fail before the slow part
    async with installer.installing(entry.name, progress=progress, verify=verify) as result:
        with _register_lock(installer.root):
            editor = ConfigEditor(path)  # read again: the file may have changed during the install
            _refuse_registered(editor, entry.name, path, force)
            editor.set_backend(entry.name, _backend_model(result.backend))
            editor.save()
    return result


def uninstall_and_unregister(
    name: str, *, config: str | None = None, scope: str | None = None, installer: Installer | None = None
) -> UninstallResult:
    """Remove `name`'s backend from the config (when Quiver installed it) and its folder.

    A backend of that name that points elsewhere is left alone (`kept`); neither a folder nor an
    installed backend is a `NotInstalledError`.
    """
    from quiver.config.editing import ConfigEditor, target_path

    installer = installer or Installer()
    name = _checked(name)
    path = target_path(config, _scope(scope))
    editor = ConfigEditor(path)
    backends = editor.backends() if editor.original is not None else {}
    registered = name in backends and installer.owns(name, backends[name])
    if not registered and not installer.is_installed(name):
        raise NotInstalledError(
            f"'{name}' is not installed (no folder in {installer.root}, no backend of Quiver's in {path})",
            hint="`quiver list` shows the configured backends; `quiver remove NAME` removes one added by hand",
        )
    if registered:
        editor.remove_backend(name)
        editor.save()
    folder = installer.folder(name) if installer.uninstall(name) else None
    kept = name in backends and not registered
    return UninstallResult(name, path if registered else None, folder, kept)


# -- helpers --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Staged:
    folder: Path | None  # None: nothing installed (a hosted server)
    result: InstallResult


class _Reporter:
    """Steps and output lines as progress that rises strictly (MCP requires it) without flooding."""

    def __init__(self, progress: Progress | None) -> None:
        self._progress = progress
        self._step = 0
        self._ticks = 0
        self._last = -1.0
        self._last_time = float("-inf")
        self.message = ""

    async def step(self, index: int, message: str) -> None:
        self._step, self._ticks, self.message = index, 0, message
        await self._send(float(index), message)

    async def tick(self, detail: str, *, always: bool = False) -> None:
        """Something happened within the step: report it, unless a report just went out."""
        if always or anyio.current_time() - self._last_time >= _MIN_REPORT_INTERVAL:
            await self._advance(f"{self.message}: {detail[:120]}")

    async def heartbeat(self) -> None:
        await self._advance(self.message)

    async def _advance(self, message: str) -> None:
        self._ticks += 1
        await self._send(self._step + self._ticks / (self._ticks + 10), message)  # approaches the next step

    async def _send(self, value: float, message: str) -> None:
        if value <= self._last:
            return
        self._last, self._last_time = value, anyio.current_time()
        if self._progress is not None:
            await self._progress(value, float(STEPS), message)


async def _read_lines(stream: ByteReceiveStream, output: deque[str], report: _Reporter) -> None:
    pending = b""
    async for chunk in stream:
        *lines, pending = re.split(rb"[\r\n]", pending + chunk)
        for raw in lines:
            line = raw.decode("utf-8", errors="replace").strip()
            if line:
                output.append(line)
                if not line.lower().startswith("npm warn"):
                    await report.tick(line)
    if pending.strip():
        output.append(pending.decode("utf-8", errors="replace").strip())


def _kill_group(pid: int) -> None:
    """npm and pip start children of their own (install scripts, builds): stop them all."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _failed(entry: ManifestEntry, tool: str, code: int, output: list[str]) -> InstallError:
    errors = [line for line in output if line.lower().startswith(_ERROR_PREFIXES) and not _noise(line)]
    tail = errors[:_TAIL_LINES] if errors else output[-_TAIL_LINES:]  # the first errors say why, later ones repeat
    text = "\n".join(output).lower()
    message = f"could not install '{entry.name}': {tool} failed on {_spec(entry)} (exit code {code})"
    if tail:
        message += "\n" + "\n".join(f"  {line}" for line in tail)
    retryable = False
    if any(mark in text for mark in _OFFLINE_MARKS):
        hint = "the package registry could not be reached: check the network (and any proxy or registry setting)"
        retryable = True
    elif any(mark in text for mark in _MISSING_MARKS):
        hint = f"the registry has no {_spec(entry)}: the manifest entry's package name or version is wrong"
    else:
        hint = f"the {tool} output above says why"
    return InstallError(message, hint=f"{hint}; nothing was installed or registered", retryable=retryable, output=tail)


def _noise(line: str) -> bool:
    """npm error lines that say nothing about this failure."""
    return re.fullmatch(r"npm error( \d+)?", line) is not None or "complete log of this run" in line


def _not_started(entry: ManifestEntry, reason: str, detail: str | None) -> InstallError:
    output = detail.split(" | ") if detail else []
    message = f"'{entry.name}' was installed but did not start: {reason}"
    if output:
        message += "\n" + "\n".join(f"  {line}" for line in output)
    optional = [var.name for var in entry.env if not var.required]
    settings = f" (it reads {', '.join(optional)})" if optional else ""
    return InstallError(
        message,
        hint=f"its own output above says why, usually a missing or wrong setting{settings};"
        " nothing was installed or registered",
        output=output,
    )


def _reason(error: BaseException) -> str:
    if isinstance(error, QuiverError):
        return error.message
    return str(error) or type(error).__name__


def _check_executable(entry: ManifestEntry, folder: Path, relative: Path, executable: str) -> None:
    if (folder / relative).exists():
        return
    found = sorted(p.name for p in (folder / relative.parent).glob("*")) if (folder / relative.parent).is_dir() else []
    raise InstallError(
        f"could not install '{entry.name}': {_spec(entry)} has no executable '{executable}'",
        hint=f"the manifest entry names the wrong executable (the package has: {', '.join(found) or 'none'});"
        " nothing was installed or registered",
    )


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _spec(entry: ManifestEntry) -> str:
    if entry.install.npm is not None:
        npm = entry.install.npm
        return f"{npm.package}@{npm.version}" if npm.version else npm.package
    if entry.install.pypi is not None:
        pypi = entry.install.pypi
        return f"{pypi.package}=={pypi.version}" if pypi.version else pypi.package
    return entry.install.remote.url if entry.install.remote is not None else entry.name


def _described(entry: ManifestEntry, backend: dict[str, Any]) -> dict[str, Any]:
    """The manifest's title and description go with the backend: search and listings show them."""
    return {**backend, "title": entry.title, "description": entry.description}


def _backend_model(backend: dict[str, Any]) -> AnyBackendConfig:
    from pydantic import TypeAdapter

    from quiver.config.models import AnyBackendConfig, BackendConfig

    return TypeAdapter[AnyBackendConfig](BackendConfig).validate_python(backend)


def _write_metadata(folder: Path, entry: ManifestEntry, relative: Path) -> None:
    spec = entry.install.spec
    data = {
        "name": entry.name,
        "kind": entry.kind,
        "package": getattr(spec, "package", None),
        "version": getattr(spec, "version", None),
        "command": relative.as_posix(),
        "installed": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    (folder / METADATA_FILE).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
    elif path.is_dir():
        shutil.rmtree(path, ignore_errors=True)


def _checked(name: str) -> str:
    if not _SERVER_NAME.match(name):
        raise NotInstalledError(
            f"'{name}' is not a server name", hint="server names use lowercase letters, digits, '_' and '-'"
        )
    return name


def _scope(scope: str | None) -> Literal["user", "project"] | None:
    if scope is not None and scope not in ("user", "project"):
        raise QuiverError(f"unknown scope '{scope}'", hint="use --scope user or --scope project")
    return cast(Literal["user", "project"] | None, scope)


def _refuse_registered(editor: ConfigEditor, name: str, path: Path, force: bool) -> None:
    if not force and editor.original is not None and name in editor.backends():
        raise AlreadyInstalledError(
            f"backend '{name}' is already in {path}",
            hint=f"`quiver update {name}` reinstalls it; `quiver install {name} --force` replaces the entry too",
        )


@contextmanager
def _register_lock(root: Path) -> Iterator[None]:
    """Installs finishing at once edit the config one at a time (a config edit refuses a file changed under it)."""
    from filelock import FileLock

    root.mkdir(parents=True, exist_ok=True)
    with FileLock(str(root / ".register.lock")):
        yield
