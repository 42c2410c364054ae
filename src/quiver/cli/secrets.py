"""`quiver secrets`: values for `${NAME}` references, kept in 0600 env files instead of the config."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from quiver.cli.common import ConfigOption, JsonOption, fail, setup_logging
from quiver.errors import QuiverError
from quiver.secrets import SecretStore

secrets_app = typer.Typer(
    help="Secrets for backends (API tokens...): stored in 0600 env files, injected where a config says ${NAME}.",
    no_args_is_help=True,
)
ScopeOption = Annotated[
    str, typer.Option("--scope", "-s", help="user (all projects) or project (.quiver/ beside the config).")
]


def register(app: typer.Typer) -> None:
    app.add_typer(secrets_app, name="secrets")


@secrets_app.command("set")
def set_secret(
    name: Annotated[str, typer.Argument(help="The variable name, e.g. GITHUB_TOKEN.")],
    value: Annotated[
        str | None, typer.Argument(help="The value; omit it to be asked (hidden) or to read it from stdin.")
    ] = None,
    scope: ScopeOption = "user",
    config: ConfigOption = None,
) -> None:
    """Store a secret. Prefer leaving VALUE out: a value on the command line lands in shell history."""
    setup_logging()
    try:
        secret_store = _store(scope, config)
        if value is None:
            value = _read_value(name)
        secret_store.set(name, value)
    except QuiverError as exc:
        fail(exc)
    print(f"stored {name} in the {scope} secrets ({secret_store.path}); backends started from now on see it")


@secrets_app.command("list")
def list_secrets(
    scope: Annotated[str | None, typer.Option("--scope", "-s", help="Only this scope.")] = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """List secret names and where each is stored (never the values)."""
    setup_logging()
    scopes = [scope] if scope else ["user", "project"]
    try:
        rows = [{"name": name, "scope": each} for each in scopes for name in _store(each, config).names()]
    except QuiverError as exc:
        fail(exc)
    if as_json:
        print(json.dumps(rows))
        return
    for row in rows:
        print(f"{row['name']:<32} {row['scope']}")
    if not rows:
        print("no secrets stored; add one with `quiver secrets set NAME`")


@secrets_app.command("unset")
def unset_secret(
    name: Annotated[str, typer.Argument(help="The variable name.")],
    scope: ScopeOption = "user",
    config: ConfigOption = None,
) -> None:
    """Remove a stored secret."""
    setup_logging()
    try:
        removed = _store(scope, config).unset(name)
    except QuiverError as exc:
        fail(exc)
    if not removed:
        fail(QuiverError(f"no {scope} secret named {name}", hint="`quiver secrets list` shows the stored names"))
    print(f"removed {name} from the {scope} secrets")


def _store(scope: str, config: str | None) -> SecretStore:
    from quiver import secrets

    if scope not in ("user", "project"):
        raise QuiverError(f"unknown scope '{scope}'", hint="use --scope user or --scope project")
    if scope == "user":
        return secrets.store("user")
    return secrets.store("project", config_dir=_config_dir(config))


def _config_dir(config: str | None) -> Path:
    """The directory of the config the project scope belongs to (as the gateway sees it), else this one."""
    from quiver.config.loader import discover_config_path

    found = discover_config_path(config)
    return found.resolve().parent if found is not None else Path.cwd()


def _read_value(name: str) -> str:
    if sys.stdin.isatty():
        return str(typer.prompt(f"value for {name}", hide_input=True))
    value = sys.stdin.readline().rstrip("\r\n")
    if not value:
        raise QuiverError(
            f"no value given for {name}", hint=f'pipe it in: printf %s "$TOKEN" | quiver secrets set {name}'
        )
    return value
