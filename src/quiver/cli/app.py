"""Command definitions. Each command loads config, builds a `Gateway`, and prints."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer

from quiver.cli.common import ConfigOption, JsonOption, check_role, fail, load, run, setup_logging
from quiver.errors import QuiverError

app = typer.Typer(
    name="quiver",
    help="Quiver: one MCP server in front of all your MCP servers, with tool search.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="Log debug detail to stderr.")]


@app.command()
def stdio(
    config: ConfigOption = None,
    role: Annotated[
        str | None, typer.Option(envvar="QUIVER_ROLE", help="Role (from policy.roles) whose rules apply.")
    ] = None,
    shared: Annotated[
        bool, typer.Option("--shared", help="Share one background gateway with the other `--shared` clients.")
    ] = False,
    verbose: Verbose = False,
) -> None:
    """Serve one MCP client over stdin/stdout (what a client config launches)."""
    setup_logging(verbose)
    cfg = load(config)
    if shared:
        from quiver.server.shared import serve_shared_stdio

        check_role(cfg, role)
        run(lambda: serve_shared_stdio(cfg, role))
        return
    from quiver.gateway import Gateway
    from quiver.policy.principal import Principal
    from quiver.server.stdio import serve_stdio

    check_role(cfg, role)
    if cfg.gateway.tracing:
        from quiver.tracing import configure_tracing

        configure_tracing()
    run(lambda: serve_stdio(Gateway(cfg, watch=True), Principal("local", role or cfg.policy.default_role)))


@app.command()
def serve(
    config: ConfigOption = None,
    host: Annotated[str | None, typer.Option(help="Interface to bind (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8765; 0 picks a free one).")] = None,
    verbose: Verbose = False,
) -> None:
    """Serve MCP clients over streamable HTTP at /mcp."""
    setup_logging(verbose)
    cfg = load(config)
    settings = cfg.gateway.http.model_copy(update={k: v for k, v in (("host", host), ("port", port)) if v is not None})
    from quiver.gateway import Gateway
    from quiver.server.http import serve_http

    if cfg.gateway.tracing:
        from quiver.tracing import configure_tracing

        configure_tracing()
    run(lambda: serve_http(Gateway(cfg, watch=True), settings))


@app.command("list")
def list_backends(config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """List the configured backends with their cached tool counts."""
    setup_logging()
    cfg = load(config)
    from quiver.gateway import Gateway

    gateway = Gateway(cfg)

    async def main() -> list[dict[str, Any]]:
        async with gateway.running():
            return [
                {
                    "name": info.status.name,
                    "type": info.status.type,
                    "tools": info.tools,
                    "description": info.description,
                }
                for info in gateway.servers()
            ]

    rows = run(main)
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    if not rows:
        where = cfg.source or "no config file found"
        print(f"no backends configured ({where}); see `quiver --help` and docs/CONFIG.md")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("backend", "type", "tools", "description", box=None, header_style="bold")
    for row in rows:
        tools = "? (quiver refresh)" if row["tools"] is None else str(row["tools"])
        table.add_row(row["name"], row["type"], tools, row["description"] or "")
    Console().print(table)


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="What you want to do, in plain words.")],
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=20)] = 5,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Search the tools of every backend (the same ranking as the search_tools meta-tool)."""
    setup_logging()
    cfg = load(config)
    from quiver.catalog import NOT_INSTALLED
    from quiver.gateway import Gateway

    gateway = Gateway(cfg)

    async def main() -> Any:
        async with gateway.running():
            return await gateway.search(query, limit)

    reply = run(main)
    if as_json:
        print(json.dumps({"results": [card.to_dict() for card in reply.cards], "pending": reply.pending}, indent=2))
        return
    for card in reply.cards:
        print(card.render())
    if any(card.state == NOT_INSTALLED for card in reply.cards):
        print("servers not installed: add one with `quiver install NAME`", file=sys.stderr)
    if not reply.cards:
        print("no matching tools" + ("" if cfg.backends else " (no backends configured)"))
    if reply.pending:
        print(f"still starting: {', '.join(reply.pending)}", file=sys.stderr)
    if reply.failed:
        print(f"unavailable (see `quiver list`): {', '.join(reply.failed)}", file=sys.stderr)


@app.command()
def describe(
    ids: Annotated[list[str], typer.Argument(help="Tool ids, e.g. time.get_current_time.")],
    config: ConfigOption = None,
) -> None:
    """Print the exact downstream definition (input and output schema) of tools."""
    setup_logging()
    cfg = load(config)
    from quiver.gateway import Gateway

    gateway = Gateway(cfg)

    async def main() -> list[dict[str, Any]]:
        async with gateway.running():
            return await gateway.describe(ids)

    described = run(main)
    print(json.dumps(described, indent=2, ensure_ascii=False))
    if any("error" in item for item in described):
        raise typer.Exit(1)


@app.command()
def call(
    tool_id: Annotated[str, typer.Argument(metavar="ID", help="Tool id, e.g. time.get_current_time.")],
    given: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="[JSON | KEY=VALUE...]",
            help='The arguments: one JSON object (\'{"timezone": "UTC"}\') or key=value pairs.',
            show_default=False,
        ),
    ] = None,
    arg: Annotated[list[str] | None, typer.Option("--arg", "-a", help="An argument as key=value (repeatable).")] = None,
    json_args: Annotated[str | None, typer.Option("--json", help="All arguments as one JSON object.")] = None,
    raw: Annotated[bool, typer.Option("--raw", help="Print the whole result as JSON.")] = False,
    config: ConfigOption = None,
) -> None:
    """Call a tool through the gateway (arguments are checked against its schema first)."""
    setup_logging()
    cfg = load(config)
    from quiver.cli.arguments import parse_arguments, split_positional
    from quiver.gateway import Gateway

    gateway = Gateway(cfg)

    async def main() -> Any:
        positional_json, positional_pairs = split_positional(given or [], json_args)
        async with gateway.running():
            schema = await gateway.input_schema(tool_id)
            arguments = parse_arguments([*positional_pairs, *(arg or [])], positional_json or json_args, schema)
            return await gateway.call(tool_id, arguments)

    result = run(main)
    if raw:
        print(json.dumps(result.model_dump(by_alias=True, mode="json", exclude_none=True), indent=2))
    else:
        from quiver.cli.render import render_result

        print(render_result(result))
    if result.is_error:
        raise typer.Exit(1)


@app.command()
def refresh(
    names: Annotated[list[str] | None, typer.Argument(help="Backends to refresh (default: all).")] = None,
    config: ConfigOption = None,
) -> None:
    """Start backends, cache their tool lists for search, and stop them again."""
    setup_logging()
    cfg = load(config)
    from quiver.gateway import Gateway

    gateway = Gateway(cfg)

    async def main() -> dict[str, int | QuiverError]:
        async with gateway.running():
            return await gateway.refresh(names)

    results = run(main)
    failed = False
    for name, outcome in results.items():
        if isinstance(outcome, QuiverError):
            failed = True
            print(f"{name}: failed — {outcome.message}")
        else:
            print(f"{name}: {outcome} tools")
    if failed:
        raise typer.Exit(1)


@app.command()
def demo(
    node_modules: Annotated[
        str | None,
        typer.Option(help="Folder holding the npm reference servers (default: ./tools/node/node_modules)."),
    ] = None,
) -> None:
    """Run a real progressive-disclosure session through the gateway against real servers."""
    setup_logging()
    from quiver.cli.demo import run_demo

    try:
        run(lambda: run_demo(node_modules))
    except QuiverError as exc:
        fail(exc)


@app.command("eval-search")
def eval_search(
    catalog: Annotated[str, typer.Option("--catalog", help="Tools, one JSON object a line (catalogue.jsonl).")],
    queries: Annotated[str, typer.Option("--queries", help="Tasks with gold tools, one a line (queries-*.jsonl).")],
    semantic: Annotated[
        bool | None,
        typer.Option("--semantic/--lexical", help="Force the semantic stage on or off (default: on if installed)."),
    ] = None,
    embedding_cache: Annotated[
        str | None,
        typer.Option(
            "--embedding-cache",
            help="File keeping tool embeddings between runs (semantic stage only;"
            " default: search-embeddings.npz in Quiver's cache directory).",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Measure the gateway's search engine on your own catalogue and tasks (R@k, MRR, latency)."""
    setup_logging()
    from pathlib import Path

    from quiver.config import QuiverConfig
    from quiver.gateway import EMBEDDINGS_FILE, cache_dir
    from quiver.search.evaluate import METRIC_KEYS, run_benchmark

    for label, path in (("--catalog", catalog), ("--queries", queries)):
        if not Path(path).is_file():
            fail(QuiverError(f"{label} file {path} does not exist", hint="give the path of a .jsonl file"))
    try:
        cache = Path(embedding_cache) if embedding_cache else cache_dir(QuiverConfig()) / EMBEDDINGS_FILE
        result = run_benchmark(Path(catalog), Path(queries), semantic=semantic, embedding_cache=cache)
    except (ValueError, KeyError, TypeError) as exc:
        error = QuiverError(f"cannot read the catalogue or tasks: {exc}", hint="check the format (docs/SEARCH.md)")
        fail(error)
    except QuiverError as exc:
        fail(exc)
    if as_json:
        print(json.dumps({key: result[key] for key in METRIC_KEYS}))
        return
    stages = "semantic + lexical" if result["semantic"] else "lexical"
    print(f"{result['n']} tasks over {result['tools']} tools ({stages})")
    print(f"R@1 {result['r1']:.3f}  R@5 {result['r5']:.3f}  R@10 {result['r10']:.3f}  MRR {result['mrr']:.3f}")
    print(
        f"latency p50 {result['p50_ms']:.2f} ms  p95 {result['p95_ms']:.2f} ms"
        f"  (index built in {result['index_s']:.1f} s)"
    )


def _register_groups() -> None:
    from quiver.cli.install import register as register_install
    from quiver.cli.openapi import register as register_openapi
    from quiver.cli.ops import register as register_ops
    from quiver.cli.secrets import register as register_secrets
    from quiver.cli.security import register as register_security
    from quiver.cli.wiring import register as register_wiring

    register_install(app)
    register_openapi(app)
    register_ops(app)
    register_secrets(app)
    register_security(app)
    register_wiring(app)


_register_groups()
