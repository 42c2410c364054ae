"""Commands for operating Quiver: what is running (`status`), what is wrong (`doctor`), what backends said (`logs`).

Also the hidden `shared-daemon`, the background gateway that `quiver stdio --shared` starts.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from quiver.cli.common import ConfigOption, JsonOption, fail, load, run, setup_logging
from quiver.config.models import QuiverConfig
from quiver.errors import QuiverError

if TYPE_CHECKING:
    from rich.console import Console

    from quiver.ops.status import GatewayReport


def register(app: typer.Typer) -> None:
    app.command()(status)
    app.command()(doctor)
    app.command()(logs)
    app.command("shared-daemon", hidden=True)(shared_daemon)


# -- status ------------------------------------------------------------------------------------


def status(config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Show the gateways running on this machine (for this user) and their backends."""
    setup_logging()
    from quiver.gateway import state_dir
    from quiver.ops.status import read_statuses

    cfg = _config_or_defaults(config)
    reports = read_statuses(state_dir(cfg))
    configured = _configured(cfg)
    if as_json:
        gateways = [{**report.to_dict(), "uptime": report.uptime, "stale": report.stale} for report in reports]
        print(json.dumps({"gateways": gateways, "configured": configured}, indent=2))
        return
    from rich.console import Console

    console = Console(highlight=False)
    if not reports:
        where = cfg.source or "no config file"
        console.print(f"no Quiver gateway is running; configured backends ({where}):")
        _print_configured(console, configured)
        return
    for index, report in enumerate(reports):
        if index:
            console.print()
        _print_gateway(console, report)


def _config_or_defaults(config: str | None) -> QuiverConfig:
    """The config; if it cannot be read, the defaults (what runs, and what it logged, can still be shown)."""
    from quiver.config.loader import load_config

    try:
        return load_config(config)
    except QuiverError as exc:
        print(f"warning: {exc.message} (going on with the default settings)", file=sys.stderr)
        return QuiverConfig()


def _configured(cfg: QuiverConfig) -> list[dict[str, Any]]:
    from quiver.catalog import CatalogStore
    from quiver.gateway import cache_dir

    store = CatalogStore(cache_dir(cfg) / "catalog")
    rows = []
    for name, backend in cfg.enabled_backends().items():
        cached = store.load(name, backend.fingerprint())
        tools = len(cached.listing.tools) if cached is not None else None
        rows.append({"name": name, "type": backend.type, "tools": tools, "description": backend.description})
    return rows


def _print_configured(console: Console, rows: list[dict[str, Any]]) -> None:
    from rich.table import Table

    if not rows:
        console.print("  (none; `quiver doctor` checks the setup)")
        return
    table = Table("backend", "type", "cached tools", "description", box=None, header_style="bold", padding=(0, 1))
    for row in rows:
        tools = "? (quiver refresh)" if row["tools"] is None else str(row["tools"])
        table.add_row(row["name"], row["type"], tools, row["description"] or "")
    console.print(table)


def _print_gateway(console: Console, report: GatewayReport) -> None:
    from rich.markup import escape
    from rich.table import Table

    transport = {"shared": "http (shared by stdio clients)"}.get(report.transport, report.transport)
    where = f" {report.url}" if report.url else ""
    title = f"[bold]gateway {report.pid}[/bold]: {transport}{where}, up {duration(report.uptime)}"
    if report.config:
        title += f", config {escape(report.config)}"
    console.print(title)
    if report.stale:
        console.print(f"  [yellow]not responding: last update {duration(report.silent_for)} ago[/yellow]")
    if not report.backends:
        console.print("  no backends")
        return
    table = Table(box=None, header_style="bold", padding=(0, 1))
    for column in ("backend", "state", "uptime", "restarts", "in flight", "breaker", "tools"):
        table.add_column(column, no_wrap=True)
    for backend in report.backends:
        state = backend.state
        if backend.retry_in:
            state += f" (retry in {duration(backend.retry_in)})"
        table.add_row(
            backend.name,
            state,
            duration(backend.uptime) if backend.uptime is not None else "-",
            str(backend.restarts),
            str(backend.in_flight),
            f"{backend.breaker} ({backend.failures} failed)" if backend.failures else backend.breaker,
            "?" if backend.tools is None else str(backend.tools),
        )
    console.print(table)
    # Errors are long: below the table, where they can wrap, rather than in a squeezed column.
    for backend in report.backends:
        if backend.last_error:
            console.print(f" [bold]{backend.name}[/bold] last error: {escape(backend.last_error)}")


def duration(seconds: float) -> str:
    """`42s`, `5m 3s`, `2h 4m`, `3d 2h`: two units at most."""
    total = int(seconds)
    units = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))
    parts: list[str] = []
    for label, size in units:
        if total >= size or (label == "s" and not parts):
            parts.append(f"{total // size}{label}")
            total %= size
        if len(parts) == 2:
            break
    return " ".join(parts)


# -- doctor ------------------------------------------------------------------------------------


def doctor(config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Check the setup: config, commands, environment, port, directories, locks, Node and Python."""
    setup_logging()
    from quiver.ops.doctor import run_checks

    checks = run_checks(config)
    failed = [check for check in checks if not check.ok]
    if as_json:
        print(json.dumps({"ok": not failed, "checks": [check.to_dict() for check in checks]}, indent=2))
    else:
        for check in checks:
            print(f"{'✓' if check.ok else '✗'} {check.name}: {check.detail}")
            if not check.ok and check.hint:
                print(f"    fix: {check.hint}")
        print(f"\n{len(failed)} problem{'' if len(failed) == 1 else 's'} found" if failed else "\nall checks passed")
    if failed:
        raise typer.Exit(1)


# -- logs --------------------------------------------------------------------------------------


def logs(
    backend: Annotated[str | None, typer.Argument(help="The backend (default: all, each line prefixed).")] = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new lines (Ctrl-C stops).")] = False,
    lines: Annotated[int, typer.Option("--lines", "-n", min=0, help="Lines of each log to print first.")] = 20,
    config: ConfigOption = None,
) -> None:
    """Print what backends wrote to stderr (the gateway keeps it in the state dir)."""
    setup_logging()
    from quiver.gateway import state_dir
    from quiver.ops import logs as backend_logs

    cfg = _config_or_defaults(config)
    directory = backend_logs.log_dir(state_dir(cfg))
    logged = backend_logs.logged_backends(directory)
    if backend is not None:
        _check_backend(backend, cfg, logged)
        names = [backend]
    else:
        names = logged
    files = {name: directory / f"{name}{backend_logs.LOG_SUFFIX}" for name in names}
    prefix = backend is None
    width = max((len(name) for name in names), default=0)

    def emit(name: str, line: str) -> None:
        print(f"{name.ljust(width)} | {line}" if prefix else line, flush=True)

    follower = backend_logs.Follower(files)
    for name, path in files.items():
        # Following, a line still being written is printed by the follower once it is whole.
        for line in backend_logs.tail(path, lines, follower.start(name) if follow else None):
            emit(name, line)
    if not follow:
        if not names:
            print(f"no backend has written a log yet ({directory})", file=sys.stderr)
        elif backend is not None and not files[backend].exists():
            print(f"backend '{backend}' has not written a log yet (it has not run)", file=sys.stderr)
        return
    run(lambda: backend_logs.follow(directory, follower, emit, new_files=prefix))


def _check_backend(name: str, cfg: QuiverConfig, logged: list[str]) -> None:
    configured = cfg.enabled_backends()
    if name in configured and configured[name].type != "stdio":
        fail(QuiverError(f"backend '{name}' is {configured[name].type}: only stdio backends write a log"))
    if name not in configured and name not in logged:
        known = sorted(set(configured) | set(logged))
        fail(
            QuiverError(
                f"unknown backend '{name}'",
                hint=f"known backends: {', '.join(known)}" if known else "no backends are configured",
            )
        )


# -- the shared daemon -------------------------------------------------------------------------


def shared_daemon(
    config: ConfigOption = None,
    idle: Annotated[float, typer.Option(help="Seconds without clients before stopping.")] = 600.0,
) -> None:
    """The background gateway shared by `quiver stdio --shared` clients (started by them)."""
    setup_logging()
    cfg = load(config)
    from quiver.gateway import Gateway
    from quiver.server.shared import SharedHome, serve_daemon

    run(lambda: serve_daemon(Gateway(cfg, watch=True), SharedHome.of(cfg), idle))
