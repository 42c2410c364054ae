"""Commands that fit Quiver into the user's setup: wire clients to it, import their servers, manage backends.

`setup` writes Quiver's entry into a client's config; `import` moves the clients' servers into
Quiver's config; `init` starts a config; `add` and `remove` mirror `claude mcp add/remove`. Every
write validates first, backs up the previous file, and leaves unrelated keys as they were.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, cast

import typer

from quiver.cli.common import ConfigOption, fail, setup_logging
from quiver.errors import QuiverError

if TYPE_CHECKING:
    from quiver.clients import Client, Decision, Env, Location, Scope
    from quiver.config.models import AnyBackendConfig, McpBackendConfig

ClientOption = Annotated[
    str,
    typer.Option(
        "--client",
        help="claude-code, claude-desktop, cursor, vscode, windsurf, zed, codex, gemini or opencode.",
        show_default=False,
    ),
]
ScopeOption = Annotated[
    str | None,
    typer.Option("--scope", "-s", help="Config scope: user or project (default: the config Quiver loads here)."),
]
HeaderOption = Annotated[
    list[str] | None, typer.Option("--header", "-H", help="An HTTP header as 'Name: value' (repeatable).")
]

STARTER_CONFIG = """\
# Quiver: the MCP servers behind the gateway (see docs/CONFIG.md).
#   add a server:       quiver add NAME -- COMMAND ARGS...
#   import a client's:  quiver import --from CLIENT   (or --all)
#   connect a client:   quiver setup --client CLIENT --write
backends: {}
"""


def register(app: typer.Typer) -> None:
    app.command()(setup)
    app.command("import")(import_servers)
    app.command()(init)
    app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(add)
    app.command()(remove)


def setup(
    client_name: ClientOption,
    mode: Annotated[str, typer.Option("--mode", help="stdio (the client starts Quiver) or http.")] = "stdio",
    write: Annotated[bool, typer.Option("--write", help="Write the entry into the client's config file.")] = False,
    config: ConfigOption = None,
    url: Annotated[
        str | None, typer.Option("--url", help="Gateway URL for --mode http (default: from the config).")
    ] = None,
    scope: Annotated[
        str | None,
        typer.Option("--scope", "-s", help="The client's user, project or local file (default: its usual)."),
    ] = None,
    name: Annotated[str, typer.Option("--name", help="The entry's name in the client.")] = "quiver",
    header: HeaderOption = None,
) -> None:
    """Print (or --write) Quiver's entry in an MCP client's config."""
    setup_logging()
    from quiver.clients import ClientFile, Env, get_client, replace_file

    try:
        env = Env.current()
        client = get_client(client_name)
        if mode not in ("stdio", "http"):
            raise QuiverError(f"unknown mode '{mode}'", hint="use --mode stdio or --mode http")
        backend = _own_backend(cast(Literal["stdio", "http"], mode), config, url, _headers(header or []))
        location = client.location(env, _client_scope(scope))
        file = ClientFile.read(location)
        existing = file.servers().get(name)
        entry = client.merge(existing, backend)
        if not write:
            _print_snippet(location.keys, location.toml, name, entry)
            print(f"# {client.title} ({location.scope}): {env.show(location.path)}", file=sys.stderr)
            print("# `--write` adds it there (other entries are kept, the old file is backed up)", file=sys.stderr)
            return
        _refuse_own_config(location.path, config)
        if existing is not None and existing != entry:
            own_urls = _own_urls(config) | {_url_of(backend)}
            _refuse_foreign_entry(client, existing, name, own_urls, env, location.path)
        if existing == entry:
            print(f"unchanged: {env.show(location.path)} already has Quiver's entry '{name}'")
            return
        backup = replace_file(location.path, file.with_server(name, entry))
        kept = f" (previous file: {env.show(backup)})" if backup else ""
        print(f"wrote Quiver's entry '{name}' to {env.show(location.path)}{kept}")
        print(f"restart or reload {client.title} to connect")
    except QuiverError as exc:
        fail(exc)


def import_servers(
    from_client: Annotated[str | None, typer.Option("--from", help="The client to import from.")] = None,
    all_clients: Annotated[bool, typer.Option("--all", help="Import from every client found.")] = False,
    scope: ScopeOption = None,
    config: ConfigOption = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Report what would happen; write nothing.")] = False,
    replace: Annotated[
        bool,
        typer.Option("--replace", help="Also swap the imported entries in each client for Quiver's one entry."),
    ] = False,
) -> None:
    """Move servers from MCP clients' configs into Quiver's config (duplicates are skipped)."""
    setup_logging()
    from quiver.clients import CLIENTS, Env, discover, get_client, plan_import
    from quiver.config.editing import ConfigEditor, target_path

    try:
        if (from_client is None) == (not all_clients):
            raise QuiverError("give --from CLIENT or --all", hint=f"clients: {', '.join(CLIENTS)}")
        env = Env.current()
        clients = list(CLIENTS.values()) if all_clients else [get_client(str(from_client))]
        path = target_path(config, _config_scope(scope))
        editor = ConfigEditor(path)
        found = [item for item in discover(clients, env) if not _same_file(item.location.path, path)]
        if not found:
            names = ", ".join(client.name for client in clients)
            print(f"no servers found in the config files of: {names}")
            return
        decisions = plan_import(found, editor.backends(), env, _own_urls(str(path)))
        _report(decisions, env)
        imported = [decision for decision in decisions if decision.action == "import"]
        if dry_run:
            print(f"dry run: {len(imported)} to import into {env.show(path)}; nothing written")
            return
        for decision in imported:
            assert decision.backend is not None
            editor.set_backend(decision.name, decision.backend)
        if editor.changed:
            backup = editor.save()
            kept = f" (previous file: {env.show(backup)})" if backup else ""
            print(f"{len(imported)} imported into {env.show(path)}{kept}")
        else:
            print(f"nothing new to import into {env.show(path)}")
        if replace:
            _replace_in_clients(decisions, path, env)
    except QuiverError as exc:
        fail(exc)


def init(
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Import what clients have without asking.")] = False,
    scope: Annotated[str, typer.Option("--scope", "-s", help="project (./quiver.yaml) or user.")] = "project",
    config: ConfigOption = None,
) -> None:
    """Write a starter config, then offer to import the servers your MCP clients already have."""
    setup_logging()
    from quiver._files import write_atomic
    from quiver.clients import CLIENTS, Env, discover, plan_import
    from quiver.config.editing import ConfigEditor, scope_path
    from quiver.config.loader import parse_config

    try:
        env = Env.current()
        config_scope = _config_scope(scope) or "project"
        if config is not None:
            path = Path(config).expanduser().absolute()
        else:
            path = scope_path("user") if config_scope == "user" else env.cwd / "quiver.yaml"
        # A project's .mcp.json is a client's file: init adds a quiver.yaml next to it (and offers its servers).
        candidates = [env.cwd / "quiver.yaml", env.cwd / "quiver.yml"] if path == env.cwd / "quiver.yaml" else [path]
        existing = [candidate for candidate in candidates if candidate.exists()]
        if existing:
            raise QuiverError(
                f"{env.show(existing[0])} already exists; init never overwrites a config",
                hint="add servers with `quiver add` or `quiver import`, or remove the file first",
            )
        parse_config(STARTER_CONFIG, path)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, STARTER_CONFIG)
        print(f"wrote {env.show(path)}")
        found = discover(CLIENTS.values(), env)
        decisions = [d for d in plan_import(found, {}, env, _own_urls(str(path))) if d.action == "import"]
        if decisions:
            print(f"found {len(decisions)} servers in your MCP clients:")
            for decision in decisions:
                print(
                    f"  {decision.name:24} from {decision.found.client.name} ({env.show(decision.found.location.path)})"
                )
            if yes or _confirm(f"import them into {env.show(path)}?"):
                editor = ConfigEditor(path)
                for decision in decisions:
                    assert decision.backend is not None
                    editor.set_backend(decision.name, decision.backend)
                editor.save()
                print(f"{len(decisions)} imported")
            else:
                print("not imported; `quiver import --all` does it later")
        wired = [client.name for client in CLIENTS.values() if any(loc.path.is_file() for loc in client.locations(env))]
        example = wired[0] if wired else "claude-desktop"
        print(f"next: quiver setup --client {example} --write")
    except QuiverError as exc:
        fail(exc)


def add(
    name: Annotated[str, typer.Argument(metavar="NAME", help="The backend's name.")],
    target: Annotated[
        list[str] | None,
        typer.Argument(metavar="COMMAND_OR_URL", help="-- COMMAND ARGS... for stdio, or the URL for http/sse."),
    ] = None,
    transport: Annotated[str, typer.Option("--transport", "-t", help="stdio, http or sse.")] = "stdio",
    scope: ScopeOption = None,
    env_vars: Annotated[
        list[str] | None, typer.Option("--env", "-e", help="An environment variable as KEY=VALUE (repeatable).")
    ] = None,
    header: HeaderOption = None,
    description: Annotated[str | None, typer.Option("--description", help="What the backend is for.")] = None,
    config: ConfigOption = None,
) -> None:
    """Add a backend, as `claude mcp add` does: `quiver add NAME -- CMD ARGS` or `quiver add -t http NAME URL`."""
    setup_logging()
    from quiver.clients import Env
    from quiver.config.editing import ConfigEditor, target_path
    from quiver.ids import check_backend_name

    try:
        check_backend_name(name)
        backend = _backend_from_cli(transport, target or [], _env_pairs(env_vars or []), _headers(header or []))
        if description:
            backend = backend.model_copy(update={"description": description})
        path = target_path(config, _config_scope(scope))
        editor = ConfigEditor(path)
        if name in editor.backends():
            raise QuiverError(
                f"backend '{name}' already exists in {Env.current().show(path)}",
                hint=f"remove it first with `quiver remove {name}`, or pick another name",
            )
        editor.set_backend(name, backend)
        backup = editor.save()
        env = Env.current()
        kept = f" (previous file: {env.show(backup)})" if backup else ""
        print(f"added {backend.type} backend '{name}' to {env.show(path)}{kept}")
        _note_shadowed(path, config, env)
    except QuiverError as exc:
        fail(exc)


def remove(
    name: Annotated[str, typer.Argument(metavar="NAME", help="The backend to remove.")],
    scope: ScopeOption = None,
    config: ConfigOption = None,
) -> None:
    """Remove a backend from Quiver's config."""
    setup_logging()
    from quiver.clients import Env
    from quiver.config.editing import ConfigEditor, target_path

    try:
        env = Env.current()
        path = target_path(config, _config_scope(scope))
        editor = ConfigEditor(path)
        known = sorted(editor.backends()) if editor.original is not None else []
        if not editor.remove_backend(name):
            raise QuiverError(
                f"no backend '{name}' in {env.show(path)}",
                hint=f"backends there: {', '.join(known)}" if known else "that config has no backends",
            )
        backup = editor.save()
        kept = f" (previous file: {env.show(backup)})" if backup else ""
        print(f"removed backend '{name}' from {env.show(path)}{kept}")
    except QuiverError as exc:
        fail(exc)


# Helpers.


def _url_of(backend: AnyBackendConfig) -> str:
    return str(getattr(backend, "url", ""))


def _refuse_foreign_entry(
    client: Client, existing: Any, name: str, own_urls: frozenset[str], env: Env, path: Path
) -> None:
    """`setup` replaces its own entry, never another server that happens to have the name."""
    from quiver.clients import Unsupported, is_quiver

    try:
        theirs = client.parse(existing, env)
    except Unsupported:
        theirs = None
    if theirs is None or not is_quiver(theirs, own_urls):
        raise QuiverError(
            f"{env.show(path)} already has a server named '{name}' that is not Quiver",
            hint="choose another name with --name",
        )


def _own_backend(
    mode: Literal["stdio", "http"], config: str | None, url: str | None, headers: dict[str, str]
) -> McpBackendConfig:
    from quiver.clients import quiver_backend
    from quiver.config.loader import discover_config_path

    if mode == "http":
        return quiver_backend("http", config=None, url=url or _gateway_url(config), headers=headers)
    if headers:
        raise QuiverError("--header applies to --mode http", hint="drop --header, or use --mode http")
    path = discover_config_path(config)
    if path is None:
        raise QuiverError("no Quiver config found to point the client at", hint="create one with `quiver init`")
    return quiver_backend("stdio", config=path.resolve(), url="")


def _gateway_url(config: str | None) -> str:
    from quiver.config.loader import load_config

    settings = load_config(config).gateway.http
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{settings.port}{settings.path}"


def _own_urls(config: str | None) -> frozenset[str]:
    try:
        url = _gateway_url(config)
    except QuiverError:
        url = "http://127.0.0.1:8765/mcp"
    return frozenset({url, url.replace("127.0.0.1", "localhost")})


def _client_scope(scope: str | None) -> Scope | None:
    if scope is not None and scope not in ("user", "project", "local"):
        raise QuiverError(f"unknown scope '{scope}'", hint="use --scope user, project or local")
    return cast("Scope | None", scope)


def _config_scope(scope: str | None) -> Literal["user", "project"] | None:
    if scope is not None and scope not in ("user", "project"):
        raise QuiverError(f"unknown scope '{scope}'", hint="use --scope user or --scope project")
    return cast(Literal["user", "project"] | None, scope)


def _env_pairs(pairs: Sequence[str]) -> dict[str, str]:
    env = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise QuiverError(f"--env '{pair}' is not KEY=VALUE", hint="write it as -e KEY=VALUE")
        env[key.strip()] = value
    return env


def _headers(pairs: Sequence[str]) -> dict[str, str]:
    headers = {}
    for pair in pairs:
        key, sep, value = pair.partition(":")
        if not sep or not key.strip():
            raise QuiverError(f"--header '{pair}' is not 'Name: value'", hint='write it as --header "Name: value"')
        headers[key.strip()] = value.strip()
    return headers


def _backend_from_cli(
    transport: str, target: list[str], env: dict[str, str], headers: dict[str, str]
) -> AnyBackendConfig:
    from pydantic import ValidationError

    from quiver.config.models import HttpBackendConfig, SseBackendConfig, StdioBackendConfig

    # Unknown options reach `target` (so a server's own flags need no quoting): catch the typos among them.
    flags = [item for item in (target[:1] if transport == "stdio" else target) if item.startswith("-")]
    if flags:
        raise QuiverError(f"unknown option '{flags[0]}'", hint="a server's command and its flags go after --")
    try:
        if transport == "stdio":
            if not target:
                raise QuiverError("missing the command to run", hint="quiver add NAME -- COMMAND ARGS...")
            if headers:
                raise QuiverError("--header applies to http and sse backends", hint="use -e KEY=VALUE for stdio")
            return StdioBackendConfig(command=target[0], args=target[1:], env=env)
        if transport not in ("http", "sse"):
            raise QuiverError(f"unknown transport '{transport}'", hint="use --transport stdio, http or sse")
        if len(target) != 1:
            raise QuiverError(f"a {transport} backend takes one URL", hint=f"quiver add -t {transport} NAME URL")
        if env:
            raise QuiverError("--env applies to stdio backends", hint='use --header "Name: value" for http and sse')
        model = HttpBackendConfig if transport == "http" else SseBackendConfig
        return model(url=target[0], headers=headers)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        where = ".".join(str(part) for part in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        raise QuiverError(f"{where}: {message}", hint="check the command or URL") from None


def _print_snippet(keys: Sequence[str], toml: bool, name: str, entry: dict[str, Any]) -> None:
    if toml:
        from quiver.clients.tomledit import render_table

        print(render_table([*keys, name], entry), end="")
        return
    snippet: dict[str, Any] = {name: entry}
    for key in reversed(keys):
        snippet = {key: snippet}
    print(json.dumps(snippet, indent=2, ensure_ascii=False))


def _refuse_own_config(path: Path, config: str | None) -> None:
    from quiver.config.loader import discover_config_path

    own = discover_config_path(config)
    if own is not None and _same_file(own, path):
        raise QuiverError(
            f"{path} is Quiver's own config: Quiver would become one of its own backends",
            hint="use another --scope for the client, or give Quiver a quiver.yaml",
        )


def _same_file(a: Path, b: Path) -> bool:
    return a.expanduser().resolve() == b.expanduser().resolve()


def _note_shadowed(path: Path, config: str | None, env: Env) -> None:
    from quiver.config.loader import discover_config_path

    if config:
        return
    loaded = discover_config_path()
    if loaded is not None and not _same_file(loaded, path):
        print(f"note: Quiver here loads {env.show(loaded)}, not {env.show(path)}", file=sys.stderr)


def _confirm(question: str) -> bool:
    try:
        return typer.confirm(question, default=True)
    except typer.Abort:  # no answer (stdin closed): no
        print()
        return False


def _report(decisions: Sequence[Decision], env: Env) -> None:
    for decision in decisions:
        found = decision.found
        where = f"{found.client.name} ({env.show(found.location.path)})"
        note = f": {decision.reason}" if decision.reason else ""
        label = "imported" if decision.action == "import" else "skipped"
        print(f"{label:9} {decision.name:24} from {where}{note}")
    imported = sum(decision.action == "import" for decision in decisions)
    print(f"{imported} to import, {len(decisions) - imported} skipped")


def _replace_in_clients(decisions: Sequence[Decision], config_path: Path, env: Env) -> None:
    """Take the entries Quiver now serves out of each client, and put Quiver's entry in instead."""
    from quiver.clients import ENTRY_NAME, ClientFile, quiver_backend, replace_file

    originals: dict[Path, str | None] = {}
    texts: dict[Path, str | None] = {}

    def current(location: Location) -> ClientFile:
        if location.path not in texts:
            originals[location.path] = texts[location.path] = ClientFile.read(location).text
        return ClientFile(location, texts[location.path])

    removed: dict[Path, list[str]] = {}
    clients = {}
    for decision in decisions:
        found = decision.found
        clients[found.client.name] = found.client
        if decision.served:
            texts[found.location.path] = current(found.location).without_server(found.name)
            removed.setdefault(found.location.path, []).append(found.name)
    backend = quiver_backend("stdio", config=config_path.resolve(), url="")
    for client in clients.values():
        file = current(client.location(env))
        existing = file.servers().get(ENTRY_NAME)
        entry = client.merge(existing, backend)
        if existing != entry:
            texts[file.location.path] = file.with_server(ENTRY_NAME, entry)
    for path, text in texts.items():
        if text is None or text == originals[path]:
            continue
        backup = replace_file(path, text)
        gone = ", ".join(removed.get(path, [])) or "nothing"
        kept = f" (previous file: {env.show(backup)})" if backup else ""
        print(f"replaced in {env.show(path)}: removed {gone}; Quiver's entry is '{ENTRY_NAME}'{kept}")
