"""One `[prefix.NAME]` table of a TOML file, rewritten without touching the rest of the text.

Codex keeps its MCP servers in `~/.codex/config.toml` as `[mcp_servers.NAME]` tables, next to
settings people comment by hand. A whole-file rewrite (tomli-w) would drop those comments, so
this splices text instead: it finds the table's header line (and its sub-tables), replaces those
lines with the new table, and then parses the result with `tomllib` to prove that only that
table changed. A table written in another form (inline, dotted keys) fails that proof, and the
caller is told to edit by hand rather than getting a broken file.
"""

from __future__ import annotations

import copy
import json
import re
import tomllib
from collections.abc import Mapping, Sequence
from typing import Any

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
_HEADER = re.compile(r"^\s*\[(\[)?(?P<key>[^\[\]]+)\]\]?\s*(#.*)?$")
_KEY_PART = re.compile(r'\s*("(?:[^"\\]|\\.)*"|\'[^\']*\'|[A-Za-z0-9_-]+)\s*(?:\.|$)')


class TomlEditError(ValueError):
    """The text is not TOML, or the table cannot be rewritten safely."""


def parse(text: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise TomlEditError(f"invalid TOML ({exc})") from None


def set_table(text: str, prefix: Sequence[str], name: str, value: Mapping[str, Any]) -> str:
    """`text` with the table `prefix.name` replaced by (or appended as) `value`."""
    before = parse(text)
    lines = text.splitlines(keepends=True)
    owned = _owned_lines(lines, [*prefix, name])
    rendered = render_table([*prefix, name], value)
    if owned:
        first = owned[0]
        kept = [line for index, line in enumerate(lines) if index not in set(owned)]
        tail = "\n" if first < len(kept) else ""
        result = "".join(kept[:first]) + rendered + tail + "".join(kept[first:])
    else:
        body = text if not text or text.endswith("\n") else text + "\n"
        result = body + ("\n" if body.strip() else "") + rendered
    _check(before, result, prefix, name, dict(value))
    return result


def remove_table(text: str, prefix: Sequence[str], name: str) -> str:
    """`text` without the table `prefix.name`; unchanged when it is not there."""
    before = parse(text)
    if name not in _container(before, prefix):
        return text
    lines = text.splitlines(keepends=True)
    owned = set(_owned_lines(lines, [*prefix, name]))
    result = "".join(line for index, line in enumerate(lines) if index not in owned)
    if result.endswith("\n\n") and not text.endswith("\n\n"):
        result = result.rstrip("\n") + "\n"
    _check(before, result, prefix, name, None)
    return result


def render_table(path: Sequence[str], value: Mapping[str, Any]) -> str:
    lines = [f"[{'.'.join(_key(part) for part in path)}]"]
    lines += [f"{_key(key)} = {_value(item)}" for key, item in value.items()]
    return "\n".join(lines) + "\n"


def _owned_lines(lines: Sequence[str], path: Sequence[str]) -> list[int]:
    """Indices of the lines of the table at `path` and its sub-tables (header to next header)."""
    owned: list[int] = []
    inside = False
    for index, line in enumerate(lines):
        match = _HEADER.match(line)
        if match:
            parts = _split_key(match.group("key"))
            inside = match.group(1) is None and parts is not None and parts[: len(path)] == list(path)
        if inside:
            owned.append(index)
    return owned


def _split_key(key: str) -> list[str] | None:
    parts: list[str] = []
    pos = 0
    while pos < len(key):
        match = _KEY_PART.match(key, pos)
        if not match:
            return None
        token = match.group(1)
        parts.append(json.loads(token) if token.startswith('"') else token.strip("'"))
        pos = match.end()
    return parts


def _check(before: dict[str, Any], text: str, prefix: Sequence[str], name: str, value: dict[str, Any] | None) -> None:
    where = ".".join([*prefix, name])
    unsafe = f"'{where}' is written in a form that cannot be rewritten safely (edit it by hand)"
    try:
        after = parse(text)
    except TomlEditError:
        raise TomlEditError(unsafe) from None
    expected = copy.deepcopy(before)
    container = expected
    for part in prefix:
        container = container.setdefault(part, {})
    if value is None:
        container.pop(name, None)
    else:
        container[name] = value
    if after != expected:
        raise TomlEditError(unsafe)


def _container(data: Mapping[str, Any], prefix: Sequence[str]) -> Mapping[str, Any]:
    for part in prefix:
        found = data.get(part)
        if not isinstance(found, Mapping):
            return {}
        data = found
    return data


def _key(key: str) -> str:
    return key if _BARE_KEY.match(key) else _string(key)


def _string(value: str) -> str:
    # JSON's escapes are TOML basic-string escapes; DEL is the one control character JSON leaves raw.
    return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, Sequence):
        return "[" + ", ".join(_value(item) for item in value) + "]"
    if isinstance(value, Mapping):
        if not value:
            return "{}"
        return "{ " + ", ".join(f"{_key(str(key))} = {_value(item)}" for key, item in value.items()) + " }"
    raise TomlEditError(f"cannot write a {type(value).__name__} to TOML")
