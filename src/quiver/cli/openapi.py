"""`quiver import-openapi`: an OpenAPI spec in, capability files for a `rest` backend out."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from quiver.cli.common import JsonOption, fail, setup_logging
from quiver.errors import QuiverError


def register(app: typer.Typer) -> None:
    app.command("import-openapi")(import_openapi)


def import_openapi(
    spec: Annotated[str, typer.Argument(help="OpenAPI 3.0/3.1 spec, JSON or YAML: a file or an http(s) URL.")],
    prefix: Annotated[
        str,
        typer.Option("--prefix", help="Starts every tool name (<prefix>_<operation>) and variable (<PREFIX>_TOKEN)."),
    ],
    out: Annotated[str, typer.Option("--out", help="Directory for the capability files (a rest backend's dir).")],
    base_url: Annotated[
        str | None, typer.Option("--base-url", help="Server URL to call, instead of the spec's `servers`.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Write one capability file per operation of an OpenAPI spec, for a `rest` backend to serve as tools."""
    setup_logging()
    from quiver.openapi import import_openapi as run_import

    try:
        report = run_import(spec, prefix=prefix, out=Path(out), base_url=base_url)
    except QuiverError as exc:
        fail(exc)
    if as_json:
        print(
            json.dumps(
                {
                    "written": [str(path) for path in report.written],
                    "skipped": [{"operation": s.operation, "reason": s.reason} for s in report.skipped],
                    "notes": report.notes,
                    "variables": report.variables,
                },
                indent=2,
            )
        )
        return
    print(f"wrote {len(report.written)} capability files to {out}")
    for skipped in report.skipped:
        print(f"skipped {skipped.operation}: {skipped.reason}")
    for note in report.notes:
        print(f"note: {note}")
    if report.variables:
        print(f"set before calling (export, or `quiver secrets set NAME`): {', '.join(report.variables)}")
    if not report.written:
        raise typer.Exit(1)
    print(f'serve them with a backend: {{"type": "rest", "dir": "{out}"}}')
