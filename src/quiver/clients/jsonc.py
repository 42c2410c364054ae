"""JSON with comments, edited one member at a time.

Editors keep their settings in JSONC (`//` and `/* */` comments, trailing commas), and people
annotate those files. `parse` reads them; `set_member` and `remove_member` change one member of
one object and leave every other byte (comments, indentation, key order) as it was. Comments and
trailing commas are first blanked to spaces, so offsets in the blanked text are offsets in the
original; a tiny parser over the blanked text finds the span of each object member.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

_DECODER = json.JSONDecoder()
_WHITESPACE = " \t\r\n"


class JsoncError(ValueError):
    """The text is not JSON (with comments), or a key on the path is not an object."""


@dataclass
class _Node:
    start: int
    end: int
    members: list[_Member] | None = None  # set for objects only

    def find(self, key: str) -> _Member | None:
        matches = [member for member in self.members or [] if member.key == key]
        return matches[-1] if matches else None  # JSON: the last duplicate wins


@dataclass
class _Member:
    key: str
    start: int  # the key's opening quote
    value: _Node


@dataclass
class _Blanked:
    text: str
    trailing_commas: set[int] = field(default_factory=set)


def parse(text: str) -> Any:
    """The value of a JSON or JSONC document; an empty document is an empty object."""
    blanked = _blank(text).text
    if not blanked.strip():
        return {}
    try:
        return json.loads(blanked)
    except json.JSONDecodeError as exc:
        raise JsoncError(f"line {exc.lineno} column {exc.colno}: invalid JSON ({exc.msg})") from None


def set_member(text: str, path: Sequence[str], key: str, value: Any) -> str:
    """`text` with `key` set to `value` in the object at `path` (created as needed)."""
    text = text if text.strip() else "{}\n"
    blanked = _blank(text)
    node = _root(blanked.text)
    for depth, part in enumerate(path):
        member = node.find(part)
        if member is None:
            nested: Any = value
            nested = {key: nested}
            for outer in reversed(path[depth + 1 :]):
                nested = {outer: nested}
            return _insert(text, blanked, node, part, nested)
        if member.value.members is None:
            raise JsoncError(f"'{'.'.join(path[: depth + 1])}' is not an object")
        node = member.value
    existing = node.find(key)
    if existing is None:
        return _insert(text, blanked, node, key, value)
    indent = _own_line_indent(text, existing.start)
    rendered = _render(value, indent, _indent_unit(text)) if indent is not None else _compact(value)
    return text[: existing.value.start] + rendered + text[existing.value.end :]


def remove_member(text: str, path: Sequence[str], key: str) -> str:
    """`text` without `key` in the object at `path`; unchanged when there is no such member."""
    if not text.strip():
        return text
    blanked = _blank(text)
    node: _Node | None = _root(blanked.text)
    for part in path:
        member = node.find(part) if node is not None else None
        node = member.value if member is not None and member.value.members is not None else None
    if node is None or node.members is None:
        return text
    members = node.members
    target = node.find(key)
    if target is None:
        return text
    index = members.index(target)
    if len(members) == 1:
        return text[: node.start + 1] + text[node.end - 1 :]
    last = index == len(members) - 1
    if _own_line_indent(text, target.start) is None:  # one-line object: drop the member and one comma
        if last:
            return text[: members[index - 1].value.end] + text[target.value.end :]
        return text[: target.start] + text[members[index + 1].start :]
    start = text.rfind("\n", 0, target.start) + 1
    after = _skip_space(blanked.text, target.value.end)
    trailing = [pos for pos in blanked.trailing_commas if target.value.end <= pos < after]
    separator = None
    if trailing:
        end = trailing[0] + 1
    elif not last:
        end = after + 1  # the comma after the member goes with it
    else:  # the last member: the comma before it goes
        end = target.value.end
        separator = _skip_space(blanked.text, members[index - 1].value.end)
    newline = text.find("\n", end)
    rest = text[end:newline]
    # A comment on the member's own line goes with it (unless a /* */ runs on past the line).
    if newline != -1 and not blanked.text[end:newline].strip() and ("/*" not in rest or "*/" in rest):
        end = newline + 1
    result = text[:start] + text[end:]
    if separator is not None:
        result = result[:separator] + result[separator + 1 :]
    return result


def _insert(text: str, blanked: _Blanked, node: _Node, key: str, value: Any) -> str:
    unit = _indent_unit(text)
    members = node.members or []
    if not members:
        line = text[text.rfind("\n", 0, node.start) + 1 :]
        base = line[: len(line) - len(line.lstrip(" \t"))]
        indent = base + unit
        member = f"{json.dumps(key, ensure_ascii=False)}: {_render(value, indent, unit)}"
        inner = text[node.start + 1 : node.end - 1]
        if not inner.strip():
            return f"{text[: node.start + 1]}\n{indent}{member}\n{base}{text[node.end - 1 :]}"
        return f"{text[: node.start + 1]}\n{indent}{member}{inner}{text[node.end - 1 :]}"
    after = members[-1].value.end
    closing = _skip_space(blanked.text, after)
    commas = sorted(pos for pos in blanked.trailing_commas if after <= pos < closing)
    own_line = _own_line_indent(text, members[0].start)
    if own_line is None:  # an object written on one line stays on one line
        member = f"{json.dumps(key, ensure_ascii=False)}: {_compact(value)}"
        return f"{text[:after]}, {member}{text[after:]}"
    member = f"{json.dumps(key, ensure_ascii=False)}: {_render(value, own_line, unit)}"
    anchor = commas[0] + 1 if commas else after
    # After a trailing comment on the last member's line, not before it (and never inside a /* */).
    newline = text.find("\n", anchor)
    if newline == -1 or newline >= closing or "/*" in text[anchor:newline]:
        newline = anchor
    if commas:  # the file puts a comma after the last member: so does the new one
        return f"{text[:newline]}\n{own_line}{member},{text[newline:]}"
    return f"{text[:after]},{text[after:newline]}\n{own_line}{member}{text[newline:]}"


def _render(value: Any, indent: str, unit: str) -> str:
    """Objects one member a line; arrays of plain values on one line, as people write `args`."""
    if isinstance(value, dict) and value:
        inner = indent + unit
        members = [f"{inner}{_compact(key)}: {_render(item, inner, unit)}" for key, item in value.items()]
        return "{\n" + ",\n".join(members) + f"\n{indent}}}"
    if isinstance(value, list) and any(isinstance(item, dict | list) for item in value):
        inner = indent + unit
        return "[\n" + ",\n".join(inner + _render(item, inner, unit) for item in value) + f"\n{indent}]"
    return _compact(value)


def _compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _own_line_indent(text: str, pos: int) -> str | None:
    """The whitespace before `pos` when it starts its line, else None (it follows other text)."""
    prefix = text[text.rfind("\n", 0, pos) + 1 : pos]
    return prefix if not prefix.strip() else None


def _indent_unit(text: str) -> str:
    match = re.search(r"^([ \t]+)\S", text, re.MULTILINE)
    return match.group(1) if match else "  "


def _skip_space(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in _WHITESPACE:
        pos += 1
    return pos


def _blank(text: str) -> _Blanked:
    """`text` with comments and trailing commas turned into spaces (newlines kept)."""
    out = list(text)
    trailing: set[int] = set()
    pending_comma: int | None = None
    previous = "{"
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char == '"':
            end = _string_end(text, i)
            pending_comma = None
            previous = '"'
            i = end
            continue
        if text.startswith("//", i):
            end = text.find("\n", i)
            end = n if end == -1 else end
            out[i:end] = " " * (end - i)
            i = end
            continue
        if text.startswith("/*", i):
            end = text.find("*/", i + 2)
            end = n if end == -1 else end + 2
            out[i:end] = [c if c == "\n" else " " for c in text[i:end]]
            i = end
            continue
        if char in "}]" and pending_comma is not None:
            out[pending_comma] = " "
            trailing.add(pending_comma)
        if char not in _WHITESPACE:
            # Only a comma after a value can be trailing: `{,}` stays an error.
            pending_comma = i if char == "," and previous not in "{[," else None
            previous = char
        i += 1
    return _Blanked("".join(out), trailing)


def _string_end(text: str, start: int) -> int:
    i = start + 1
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == '"':
            return i + 1
        i += 1
    return len(text)


def _root(blanked: str) -> _Node:
    try:
        json.loads(blanked)
    except json.JSONDecodeError as exc:
        raise JsoncError(f"line {exc.lineno} column {exc.colno}: invalid JSON ({exc.msg})") from None
    node = _value(blanked, _skip_space(blanked, 0))
    if node.members is None:
        raise JsoncError("the top level is not an object")
    return node


def _value(text: str, pos: int) -> _Node:
    if text[pos] != "{":
        _, end = _DECODER.raw_decode(text, pos)
        return _Node(pos, end)
    start = pos
    members: list[_Member] = []
    pos = _skip_space(text, pos + 1)
    while text[pos] != "}":
        key, after_key = _DECODER.raw_decode(text, pos)
        colon = _skip_space(text, after_key)
        value = _value(text, _skip_space(text, colon + 1))
        members.append(_Member(str(key), pos, value))
        pos = _skip_space(text, value.end)
        if text[pos] == ",":
            pos = _skip_space(text, pos + 1)
    return _Node(start, pos + 1, members)
