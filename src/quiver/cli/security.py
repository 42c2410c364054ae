"""Commands for what passes through: scanning, quarantine and approval, API keys, the audit log."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from quiver.cli.common import ConfigOption, JsonOption, check_role, fail, load, run, setup_logging
from quiver.errors import QuiverError

if TYPE_CHECKING:
    from quiver.policy.keys import KeyStore

keys_app = typer.Typer(help="API keys for `quiver serve` (stored hashed; shown once).", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.command()(scan)
    app.command()(quarantine)
    app.command()(approve)
    app.command()(audit)
    app.add_typer(keys_app, name="keys")


def scan(
    catalog: Annotated[
        str | None, typer.Option("--catalog", help="Scan a catalogue file (one tool per line) instead.")
    ] = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Scan tool definitions for poisoning: the configured backends, or a catalogue file."""
    setup_logging()
    from quiver.policy.scanning import scan_catalogue

    if catalog is not None:
        if not Path(catalog).is_file():
            fail(QuiverError(f"--catalog file {catalog} does not exist", hint="give the path of a .jsonl file"))
        entries = scan_catalogue(Path(catalog))
    else:
        entries = run(lambda: _scan_configured(config))
    if as_json:
        print(json.dumps(entries, ensure_ascii=False))
        return
    flagged = [entry for entry in entries if entry["severity"] != "none"]
    for entry in flagged:
        print(f"{entry['severity']:6} {entry['server']}.{entry['name']}: {', '.join(entry['rules'])}")
    print(f"{len(entries)} tools scanned, {len(flagged)} with findings")


async def _scan_configured(config: str | None) -> list[dict[str, Any]]:
    from quiver.gateway import Gateway
    from quiver.policy.scanning import scan_tool

    gateway = Gateway(load(config))
    async with gateway.running():
        await gateway.refresh()
        entries = []
        for backend in gateway.supervisor.names():
            for entry in gateway.catalog.tools_of(backend):
                result = scan_tool(entry.tool, server=backend)
                codes = sorted({finding.code for finding in result.findings})
                entries.append(
                    {"server": backend, "name": entry.tool.name, "severity": result.severity, "rules": codes}
                )
        return entries


def quarantine(config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """List quarantined tools: poisoning findings, or definitions changed since approval (with the diff)."""
    setup_logging()
    held = _held(config)
    if as_json:
        print(json.dumps([{"id": q.tool_id, "kind": q.kind, "reasons": q.reasons, "diff": q.diff} for q in held]))
        return
    if not held:
        print("nothing is quarantined")
    for item in held:
        print(f"{item.tool_id} ({item.kind})")
        for reason in item.reasons:
            print(f"  {reason}")
        if item.diff:
            print("  " + item.diff.replace("\n", "\n  "))


def approve(
    ids: Annotated[list[str] | None, typer.Argument(help="Quarantined tool ids to approve.")] = None,
    everything: Annotated[bool, typer.Option("--all", help="Approve every quarantined tool.")] = False,
    config: ConfigOption = None,
) -> None:
    """Approve quarantined tools: pin their current definitions so they become visible again."""
    setup_logging()
    if not ids and not everything:
        fail(QuiverError("name the tools to approve, or pass --all", hint="`quiver quarantine` lists them"))
    from quiver.gateway import Gateway

    gateway = Gateway(load(config))
    gateway.catalog.ensure_loaded()
    held = {item.tool_id for item in gateway.guard.held()}
    wanted = sorted(held) if everything else list(ids or [])
    unknown = [tool_id for tool_id in wanted if tool_id not in held]
    if unknown:
        fail(QuiverError(f"not quarantined: {', '.join(unknown)}", hint="`quiver quarantine` lists what is"))
    for tool_id in gateway.guard.approve(wanted):
        print(f"approved {tool_id}")


def _held(config: str | None) -> list[Any]:
    from quiver.gateway import Gateway

    gateway = Gateway(load(config))
    gateway.catalog.ensure_loaded()
    return gateway.guard.held()


def audit(
    principal: Annotated[str | None, typer.Option(help="Only this principal's calls.")] = None,
    tool: Annotated[str | None, typer.Option(help="Only tools matching this glob, e.g. 'github.*'.")] = None,
    outcome: Annotated[str | None, typer.Option(help="ok, tool_error, error or cancelled.")] = None,
    since: Annotated[str | None, typer.Option(help="Age (30m, 2h, 7d) or a Unix time.")] = None,
    limit: Annotated[int, typer.Option(min=1)] = 50,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Query the audit log of calls (newest first)."""
    setup_logging()
    from quiver.gateway import AUDIT_FILE, state_dir
    from quiver.policy.audit import query

    cfg = load(config)
    rows = query(
        state_dir(cfg) / AUDIT_FILE,
        principal=principal,
        tool=tool,
        outcome=outcome,
        since=_since(since) if since else None,
        limit=limit,
    )
    if as_json:
        print(json.dumps(rows, ensure_ascii=False))
        return
    for row in rows:
        print(
            f"{row['time']} {row['principal']:<12} {row['tool']:<40} {row['outcome']:<10}"
            f" {row['duration_ms']:8.1f} ms {row['bytes_out']:>8} B"
        )
    if not rows:
        print("no calls recorded" + (" matching the filters" if principal or tool or outcome or since else ""))


def _since(text: str) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([smhd])", text.strip())
    if match:
        seconds = float(match.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]
        return time.time() - seconds
    try:
        return float(text)
    except ValueError:
        fail(QuiverError(f"--since {text!r} is not an age or a time", hint="e.g. --since 2h, or a Unix time"))


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Argument(help="Who the key is for (shown in the audit log).")],
    role: Annotated[str | None, typer.Option(help="The role whose rules apply to this key.")] = None,
    config: ConfigOption = None,
) -> None:
    """Create an API key; it is printed once and stored only as a hash."""
    setup_logging()
    cfg = load(config)
    check_role(cfg, role)
    try:
        key = _key_store(cfg).create(name, role)
    except QuiverError as exc:
        fail(exc)
    print(key)


@keys_app.command("list")
def keys_list(config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """List API keys (names and roles; never the keys)."""
    setup_logging()
    infos = _key_store(load(config)).list()
    rows = [{"name": i.name, "role": i.role, "created": i.created.isoformat(), "ends": f"…{i.suffix}"} for i in infos]
    if as_json:
        print(json.dumps(rows))
        return
    for row in rows:
        print(f"{row['name']:<24} role={row['role'] or '-':<12} key={row['ends']:<8} created {row['created']}")
    if not rows:
        print("no API keys")


@keys_app.command("revoke")
def keys_revoke(name: Annotated[str, typer.Argument()], config: ConfigOption = None) -> None:
    """Revoke an API key; a running gateway stops accepting it at once."""
    setup_logging()
    try:
        _key_store(load(config)).revoke(name)
    except QuiverError as exc:
        fail(exc)
    print(f"revoked {name}")


def _key_store(config: Any) -> KeyStore:
    from quiver.gateway import state_dir
    from quiver.policy.keys import KEYS_FILE, KeyStore

    return KeyStore(state_dir(config) / KEYS_FILE)
