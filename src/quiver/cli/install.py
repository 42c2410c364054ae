"""`quiver install`, `update` and `uninstall`: servers from the manifest, in folders Quiver manages.

Thin commands over `quiver.provisioning.installer`: it installs, verifies and registers (or
changes nothing); these show its progress (a bar on a terminal, one line a step otherwise) and
what the user still has to do, such as setting a token.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal, cast

import typer

from quiver.cli.common import ConfigOption, fail, run, setup_logging
from quiver.errors import QuiverError

if TYPE_CHECKING:
    from quiver.provisioning.installer import Installer, InstallResult, Progress

ScopeOption = Annotated[
    str | None,
    typer.Option("--scope", "-s", help="Config scope: user or project (default: the config Quiver loads here)."),
]
TimeoutOption = Annotated[
    float, typer.Option("--timeout", min=1.0, help="Seconds one install may take, download to first start.")
]
ManifestOption = Annotated[
    str | None,
    typer.Option("--manifest", help="A manifest file to install from instead of the bundled one.", show_default=False),
]


def register(app: typer.Typer) -> None:
    app.command()(install)
    app.command()(update)
    app.command()(uninstall)


def install(
    name: Annotated[str, typer.Argument(metavar="NAME", help="The server's name in the manifest.")],
    scope: ScopeOption = None,
    force: Annotated[
        bool, typer.Option("--force", help="Reinstall, and replace a backend of that name in the config.")
    ] = False,
    no_verify: Annotated[
        bool, typer.Option("--no-verify", help="Register without starting the server to list its tools.")
    ] = False,
    timeout: TimeoutOption = 300.0,
    manifest: ManifestOption = None,
    config: ConfigOption = None,
) -> None:
    """Install a server from the manifest, check that it starts, and add it to the config."""
    setup_logging()
    from quiver.clients import Env
    from quiver.config.editing import target_path
    from quiver.provisioning.installer import install_and_register

    try:
        path = target_path(config, _scope(scope))
        installer = _installer(manifest, timeout, path)
    except QuiverError as exc:
        fail(exc)
    with _display(f"installing {name}") as progress:
        result = run(
            lambda: install_and_register(
                name,
                config=str(path),
                force=force,
                progress=progress,
                verify=not no_verify,
                installer=installer,
            )
        )
    print(f"installed {result.name} ({_what(installer, result)}){_where(result)}")
    print(f"added backend '{result.name}' to {Env.current().show(path)}")
    _report_start(result)


def update(
    name: Annotated[str | None, typer.Argument(metavar="[NAME]", help="The installed server to update.")] = None,
    all_servers: Annotated[bool, typer.Option("--all", help="Update every installed server.")] = False,
    timeout: TimeoutOption = 300.0,
    manifest: ManifestOption = None,
    config: ConfigOption = None,
) -> None:
    """Reinstall installed servers at their manifest version and check them again (the config is kept)."""
    setup_logging()
    from quiver.config.editing import target_path

    try:
        if (name is None) == (not all_servers):
            raise QuiverError("give a server NAME or --all", hint="quiver update NAME, or quiver update --all")
        installer = _installer(manifest, timeout, target_path(config, None))
    except QuiverError as exc:
        fail(exc)
    if name is not None:
        _update_one(installer, name)
        return
    names = installer.installed()
    if not names:
        print(f"no servers installed in {installer.root}")
        return
    failed = []
    for each in names:
        if each not in installer.manifest:
            print(f"skipped {each}: no longer in the manifest")
            continue
        try:
            _update_one(installer, each)
        except typer.Exit as exc:
            if exc.exit_code == 130:  # Ctrl-C stops them all
                raise
            failed.append(each)
    if failed:
        print(f"{len(failed)} of {len(names)} not updated: {', '.join(failed)}", file=sys.stderr)
        raise typer.Exit(1)


def uninstall(
    name: Annotated[str, typer.Argument(metavar="NAME", help="The installed server to remove.")],
    scope: ScopeOption = None,
    manifest: ManifestOption = None,
    config: ConfigOption = None,
) -> None:
    """Remove an installed server: its backend in the config and its folder."""
    setup_logging()
    from quiver.clients import Env
    from quiver.config.editing import target_path
    from quiver.provisioning.installer import uninstall_and_unregister

    try:
        path = target_path(config, _scope(scope))
        removed = uninstall_and_unregister(name, config=str(path), installer=_installer(manifest, None, path))
    except QuiverError as exc:
        fail(exc)
    env = Env.current()
    if removed.config is not None:
        print(f"removed backend '{name}' from {env.show(removed.config)}")
    if removed.kept:
        print(
            f"kept backend '{name}' in {env.show(path)}: Quiver did not install it (`quiver remove {name}` removes it)"
        )
    if removed.folder is not None:
        print(f"removed {env.show(removed.folder)}")


# Helpers.


def _update_one(installer: Installer, name: str) -> None:
    with _display(f"updating {name}") as progress:
        result = run(lambda: installer.update(name, progress=progress))
    print(f"updated {result.name} ({_what(installer, result)})")
    _report_start(result)


def _installer(manifest: str | None, timeout: float | None, config_path: Path) -> Installer:
    from quiver import secrets
    from quiver.provisioning.installer import DEFAULT_TIMEOUT, Installer
    from quiver.provisioning.manifest import load_manifest

    loaded = load_manifest(manifest) if manifest else None
    environ = secrets.environment(config_path.parent)
    return Installer(loaded, timeout=timeout or DEFAULT_TIMEOUT, environ=environ)


def _what(installer: Installer, result: InstallResult) -> str:
    entry = installer.manifest.entry(result.name)
    spec = entry.install.spec
    if entry.install.remote is not None:
        return f"hosted at {entry.install.remote.url}"
    version = getattr(spec, "version", None)
    package = getattr(spec, "package", result.name)
    source = "npm" if result.kind == "npm" else "PyPI"
    return f"{package} {version} from {source}" if version else f"{package} from {source}"


def _where(result: InstallResult) -> str:
    if result.path is None:
        return ""
    from quiver.clients import Env

    return f" in {Env.current().show(result.path)}"


def _report_start(result: InstallResult) -> None:
    if result.tools is not None:
        print(f"started it: {result.tools} tool{'' if result.tools == 1 else 's'}")
    elif result.missing_env:
        names = ", ".join(var.name for var in result.missing_env)
        print(f"not started: it needs {names}, and starts once they are set:")
        for line in result.next_steps():
            print(f"  {line}")
    else:
        print("not started (--no-verify)")


@contextmanager
def _display(title: str) -> Iterator[Progress]:
    """Progress on stderr: a bar on a terminal, else one line per step."""
    if sys.stderr.isatty():
        from rich.console import Console
        from rich.progress import BarColumn, TextColumn, TimeElapsedColumn
        from rich.progress import Progress as Bar

        with Bar(
            TextColumn("{task.description}"),
            BarColumn(),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=True,
        ) as bar:
            task = bar.add_task(title, total=None)

            async def show_bar(done: float, total: float, message: str) -> None:
                bar.update(task, completed=done, total=total, description=message)

            yield show_bar
        return
    shown = -1

    async def show_line(done: float, total: float, message: str) -> None:
        nonlocal shown
        if int(done) > shown:
            shown = int(done)
            print(f"[{shown}/{int(total)}] {message}", file=sys.stderr, flush=True)

    yield show_line


def _scope(scope: str | None) -> Literal["user", "project"] | None:
    if scope is not None and scope not in ("user", "project"):
        raise QuiverError(f"unknown scope '{scope}'", hint="use --scope user or --scope project")
    return cast(Literal["user", "project"] | None, scope)
