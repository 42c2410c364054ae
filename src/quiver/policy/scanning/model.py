"""What a scan produces and what a rule sees: findings, results, the scanned texts, the rule interface."""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field
from typing import Literal, Protocol

import mcp_types as types

from quiver.config.policy import Severity

Level = Literal["none", "low", "medium", "high"]
TextKind = Literal["prose", "identifier", "decoded"]

RANK: dict[str, int] = {"none": 0, "low": 1, "medium": 2, "high": 3}
# Evidence is for a person skimming a report, not a copy of the payload.
EVIDENCE_CHARS = 120


def worst(levels: list[Level] | list[Severity]) -> Level:
    """The highest of `levels`, "none" for none."""
    best: Level = "none"
    for level in levels:
        if RANK[level] > RANK[best]:
            best = level
    return best


def excerpt(text: str, start: int = 0, end: int | None = None, *, context: int = 24) -> str:
    """The span `text[start:end]` with a little context, on one line, at most `EVIDENCE_CHARS` long."""
    end = len(text) if end is None else end
    left, right = max(0, start - context), min(len(text), end + context)
    piece = " ".join(text[left:right].split())
    if left > 0:
        piece = "…" + piece
    if right < len(text):
        piece += "…"
    if len(piece) > EVIDENCE_CHARS:
        piece = piece[: EVIDENCE_CHARS - 1] + "…"
    return piece


@dataclass(frozen=True, slots=True)
class Finding:
    """One rule firing on one part of a tool definition."""

    code: str
    severity: Severity
    message: str
    evidence: str
    where: str = ""


@dataclass(frozen=True, slots=True)
class ScanResult:
    tool: str
    severity: Level
    findings: tuple[Finding, ...]

    @property
    def rules(self) -> list[str]:
        """The codes that fired, sorted, each once."""
        return sorted({finding.code for finding in self.findings})

    def at_least(self, level: Severity) -> bool:
        """Whether this result reaches `level` (e.g. the configured quarantine severity)."""
        return RANK[self.severity] >= RANK[level]


@dataclass(frozen=True, slots=True)
class Text:
    """One string of a tool definition, ready for pattern matching.

    `text` has invisible characters removed, compatibility forms and common homoglyphs folded to
    ASCII, runs of spaces collapsed and blank lines kept as a single newline (a paragraph break).
    Identifiers (names, property keys) also have `_`, `-` and camelCase split into words.
    Decoded texts are hidden layers recovered from another text; `origin` names the encoding
    ("tag characters", "base64", ...).
    """

    where: str
    raw: str
    text: str
    kind: TextKind
    origin: str = ""


# Joins the texts of a tool: no pattern crosses it (it holds a line break, a sentence end for
# every rule, and a NUL, which no whitespace or word class matches).
SEPARATOR = "\n\x00\n"


@dataclass(frozen=True, slots=True)
class ScanContext:
    """Everything a rule may look at besides the tool itself, computed once per tool.

    `joined` is every normalised text in one string, so that a pattern runs once per tool rather
    than once per string; `locate` maps a match back to the text it fell in.
    """

    tool_name: str
    server: str | None
    siblings: frozenset[str]
    parameters: frozenset[str]
    texts: tuple[Text, ...]
    joined: str = field(init=False)
    lowered: str = field(init=False)
    starts: tuple[int, ...] = field(init=False)

    def __post_init__(self) -> None:
        starts: list[int] = []
        position = 0
        for text in self.texts:
            starts.append(position)
            position += len(text.text) + len(SEPARATOR)
        joined = SEPARATOR.join(text.text for text in self.texts)
        object.__setattr__(self, "joined", joined)
        lowered = joined.lower()
        object.__setattr__(self, "lowered", lowered)
        object.__setattr__(self, "starts", tuple(starts))

    def mentions(self, needles: tuple[str, ...]) -> bool:
        """Whether any of the lower-case `needles` occurs in the texts (all do when there are none).

        A cheap gate before a costly pattern: each pattern lists words every match must contain.
        """
        return not needles or any(map(self.lowered.__contains__, needles))

    def locate(self, start: int, end: int) -> tuple[Text, tuple[int, int]]:
        """The text holding `joined[start:end]`, and the span within that text."""
        index = max(0, bisect_right(self.starts, start) - 1)
        base = self.starts[index]
        text = self.texts[index]
        return text, (start - base, min(end - base, len(text.text)))

    def visible(self) -> tuple[Text, ...]:
        """The texts as they were sent: everything but decoded layers."""
        return tuple(text for text in self.texts if text.kind != "decoded")


class Rule(Protocol):
    """A poisoning check: a stable code, a default severity, a title, and a pure `check`."""

    @property
    def code(self) -> str: ...

    @property
    def severity(self) -> Severity: ...

    @property
    def title(self) -> str: ...

    def check(self, tool: types.Tool, context: ScanContext) -> list[Finding]: ...
