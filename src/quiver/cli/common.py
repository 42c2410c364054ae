"""What every command shares: the config option, logging, and the one error boundary."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Annotated, NoReturn, TypeVar

import typer

from quiver.config.models import QuiverConfig
from quiver.errors import QuiverError, sole_error

T = TypeVar("T")

LOG_LEVEL_ENV = "QUIVER_LOG_LEVEL"
# Libraries whose loggers are too talkative below WARNING.
_CHATTY_LIBRARIES = ("httpx2", "mcp")

ConfigOption = Annotated[
    str | None,
    typer.Option(
        "--config",
        "-c",
        help="Config file (default: $QUIVER_CONFIG, ./quiver.yaml, ./.mcp.json, then the user config dir).",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]


def setup_logging(verbose: bool = False) -> None:
    """Logs go to stderr (stdout may be the MCP channel)."""
    level = "DEBUG" if verbose else os.environ.get(LOG_LEVEL_ENV, "WARNING").upper()
    logging.basicConfig(level=level, stream=sys.stderr, format="quiver %(levelname)s %(name)s: %(message)s")
    for chatty in _CHATTY_LIBRARIES:
        logging.getLogger(chatty).setLevel(max(logging.getLevelName(level), logging.WARNING))


def fail(error: QuiverError) -> NoReturn:
    """Print one clear line plus a hint, and exit non-zero."""
    print(f"error: {error.message}", file=sys.stderr)
    if error.hint:
        print(f"hint: {error.hint}", file=sys.stderr)
    raise typer.Exit(2 if error.code == "config_invalid" else 1)


def load(config: str | None) -> QuiverConfig:
    from quiver.config.loader import load_config

    try:
        loaded = load_config(config)
    except QuiverError as exc:
        fail(exc)
    _redact_logs(loaded)
    return loaded


def _redact_logs(config: QuiverConfig) -> None:
    """Secrets (built-in kinds, configured patterns, values from this config) never reach a log line."""
    from quiver.gateway import config_secrets
    from quiver.policy.redaction import Redactor, install_log_redaction

    try:
        install_log_redaction(Redactor.from_config(config.policy.redaction, secrets=config_secrets(config)))
    except QuiverError as exc:
        fail(exc)


def check_role(config: QuiverConfig, role: str | None) -> None:
    """Fail with the known roles when `role` is not one of them."""
    if role is not None and role not in config.policy.roles:
        known = ", ".join(config.policy.roles) or "none"
        fail(QuiverError(f"unknown role '{role}'", hint=f"roles in the config: {known}"))


def run(main: Callable[[], Awaitable[T]]) -> T:
    """Run an async command; Quiver errors become one line, Ctrl-C a quiet exit."""
    import anyio

    try:
        return anyio.run(main)
    except BaseException as exc:
        error = sole_error(exc)
        if isinstance(error, QuiverError):
            fail(error)
        if isinstance(error, KeyboardInterrupt):
            raise typer.Exit(130) from None
        if isinstance(error, Exception):
            logging.getLogger("quiver").debug("unexpected error", exc_info=error)
            fail(
                QuiverError(
                    f"unexpected {type(error).__name__}: {error}",
                    hint=f"run with {LOG_LEVEL_ENV}=debug for the traceback, and report it",
                )
            )
        raise
