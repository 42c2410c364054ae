"""`--arg key=value`, `--json '{...}'` and the same after the tool id, into a tool's arguments, typed by its schema."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from quiver.errors import QuiverError


class ArgumentSyntaxError(QuiverError):
    code = "invalid_arguments"


def split_positional(given: Sequence[str], json_text: str | None) -> tuple[str | None, list[str]]:
    """Arguments given after the tool id: one JSON object, or key=value pairs (the forms of `--json` and `--arg`)."""
    if len(given) == 1 and given[0].lstrip().startswith("{"):
        if json_text:
            raise ArgumentSyntaxError(
                "the arguments are given twice, as JSON after the tool id and with --json", hint="keep one of them"
            )
        return given[0], []
    for item in given:
        if "=" not in item:
            raise ArgumentSyntaxError(
                f"'{item}' is neither a JSON object nor key=value",
                hint='give the arguments as one JSON object (\'{"key": "value"}\') or as key=value pairs',
            )
    return None, list(given)


def parse_arguments(pairs: Sequence[str], json_text: str | None, schema: Mapping[str, Any]) -> dict[str, Any]:
    arguments: dict[str, Any] = {}
    if json_text:
        try:
            loaded = json.loads(json_text)
        except json.JSONDecodeError as exc:
            raise ArgumentSyntaxError(
                f"--json is not valid JSON ({exc.msg} at column {exc.colno})",
                hint='quote it for the shell: --json \'{"key": "value"}\'',
            ) from None
        if not isinstance(loaded, dict):
            raise ArgumentSyntaxError("--json must be a JSON object", hint='e.g. --json \'{"key": "value"}\'')
        arguments.update(loaded)
    properties = schema.get("properties")
    properties = properties if isinstance(properties, Mapping) else {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ArgumentSyntaxError(f"--arg '{pair}' is not key=value", hint="e.g. --arg timezone=Europe/Paris")
        arguments[key] = _typed(value, properties.get(key))
    return arguments


def _typed(value: str, prop: Any) -> Any:
    """Strings stay strings where the schema says string (or says nothing JSON-like); else parse JSON."""
    declared = prop.get("type") if isinstance(prop, Mapping) else None
    types = set(declared) if isinstance(declared, list) else {declared}
    if "string" in types or (declared is None and not _looks_like_json(value)):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


def _looks_like_json(value: str) -> bool:
    return value[:1] in ("{", "[", '"') or value in ("true", "false", "null") or _is_number(value)


def _is_number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True
