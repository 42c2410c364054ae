"""The `quiver` command line: thin typer commands over the library."""

from __future__ import annotations


def main() -> None:
    from quiver.cli.app import app

    app()


__all__ = ["main"]
