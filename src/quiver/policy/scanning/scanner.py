"""Running the rules: one tool (`scan_tool`) or a catalogue file (`scan_catalogue`)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import mcp_types as types

from quiver.policy.scanning.data import ContextHarvesting, Exfiltration, SecretFiles
from quiver.policy.scanning.hidden import ControlCharacters, EncodedPayload, HiddenCharacters, Homoglyphs, Oversized
from quiver.policy.scanning.instructions import (
    Coercion,
    Concealment,
    InstructionOverride,
    InstructionTags,
    PreferenceManipulation,
)
from quiver.policy.scanning.model import Finding, Rule, ScanContext, ScanResult, worst
from quiver.policy.scanning.text import collect_texts, parameter_names
from quiver.policy.scanning.tools import DangerousCommands, Shadowing

RULES: tuple[Rule, ...] = (
    InstructionTags(),
    InstructionOverride(),
    Concealment(),
    SecretFiles(),
    Exfiltration(),
    ContextHarvesting(),
    Shadowing(),
    HiddenCharacters(),
    ControlCharacters(),
    Homoglyphs(),
    EncodedPayload(),
    Oversized(),
    Coercion(),
    PreferenceManipulation(),
    DangerousCommands(),
)


def sibling_names(siblings: Iterable[str]) -> frozenset[str]:
    """Sibling names as given, plus the tool part of `backend.tool` ids."""
    names: set[str] = set()
    for sibling in siblings:
        names.add(sibling)
        backend, dot, tool = sibling.partition(".")
        if dot and backend and tool:
            names.add(tool)
    return frozenset(names)


def scan_context(tool: types.Tool, *, server: str | None = None, siblings: Iterable[str] = ()) -> ScanContext:
    """What the rules see of `tool`; `siblings` may be given as the frozenset `sibling_names` returns."""
    texts = collect_texts(tool)
    return ScanContext(
        tool_name=tool.name,
        server=server,
        siblings=siblings if isinstance(siblings, frozenset) else sibling_names(siblings),
        parameters=parameter_names(texts),
        texts=texts,
    )


def scan_tool(
    tool: types.Tool, *, server: str | None = None, siblings: Iterable[str] = (), rules: Sequence[Rule] = RULES
) -> ScanResult:
    """Run every rule over `tool`; `siblings` are the other tools the gateway knows (names or `backend.tool` ids).

    When scanning many tools against the same siblings, pass `sibling_names(siblings)` once.
    """
    context = scan_context(tool, server=server, siblings=siblings)
    findings: list[Finding] = []
    for rule in rules:
        findings.extend(rule.check(tool, context))
    return ScanResult(tool=tool.name, severity=worst([f.severity for f in findings]), findings=tuple(findings))


_TOOL_FIELDS = ("name", "title", "description", "inputSchema", "outputSchema", "annotations")


def tool_from_entry(entry: dict[str, Any]) -> types.Tool:
    """A `types.Tool` from one catalogue line: its MCP fields, other keys (`server`, `source`, ...) dropped."""
    fields = {key: entry[key] for key in _TOOL_FIELDS if entry.get(key) is not None}
    fields.setdefault("inputSchema", {"type": "object"})
    return types.Tool.model_validate(fields)


def scan_entries(entries: Sequence[dict[str, Any]]) -> list[tuple[dict[str, Any], ScanResult]]:
    """Scan catalogue entries; every tool's siblings are all the catalogue's tools (its own name aside)."""
    siblings = sibling_names(entry["name"] for entry in entries)
    return [
        (entry, scan_tool(tool_from_entry(entry), server=entry.get("server"), siblings=siblings)) for entry in entries
    ]


def read_catalogue(path: str | Path) -> list[dict[str, Any]]:
    """The entries of a catalogue.jsonl file, one JSON object per non-empty line."""
    with Path(path).open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def scan_catalogue(path: str | Path) -> list[dict[str, Any]]:
    """One `{"server", "name", "severity", "rules"}` per tool of a catalogue.jsonl file, in file order."""
    return [
        {"server": entry.get("server"), "name": entry["name"], "severity": result.severity, "rules": result.rules}
        for entry, result in scan_entries(read_catalogue(path))
    ]
