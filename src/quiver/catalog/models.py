"""What the catalog holds: one `ToolEntry` per downstream tool, and the `Card` search returns."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import TYPE_CHECKING, Any

import mcp_types as types

from quiver.ids import ToolId

if TYPE_CHECKING:
    from quiver.catalog.validation import ArgumentValidator

SUMMARY_CHARS = 90
NOT_INSTALLED = "not installed"
_SENTENCE_END = re.compile(r"(?<=[.!?])\s")


def summarize(description: str | None, limit: int = SUMMARY_CHARS) -> str:
    """The first sentence of a description, on one line, cut to `limit` characters."""
    text = " ".join((description or "").split())
    if not text:
        return ""
    text = _SENTENCE_END.split(text, maxsplit=1)[0]
    if len(text) > limit:
        cut = text[: limit - 1]
        text = (cut.rsplit(" ", 1)[0] if " " in cut[limit // 2 :] else cut) + "…"
    return text


@dataclass(frozen=True, slots=True)
class Card:
    """The compact form of a tool in search results."""

    id: str
    summary: str
    required: list[str]
    state: str
    read_only: bool = False
    destructive: bool = False
    needs: list[str] = field(default_factory=list)
    """For a server that is not installed: the environment variables it cannot start without."""

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.id}
        if self.summary:
            data["summary"] = self.summary
        data["state"] = self.state
        if self.required:
            data["required"] = self.required
        if self.needs:
            data["needs"] = self.needs
        if self.read_only:
            data["readOnly"] = True
        if self.destructive:
            data["destructive"] = True
        return data

    def with_summary(self, summary: str) -> Card:
        return replace(self, summary=summary)

    def render(self, *, summary: bool = True) -> str:
        if self.state == NOT_INSTALLED:
            needs = f"; needs {', '.join(self.needs)}" if self.needs else ""
            text = f"{self.id} [server, not installed: install_server{needs}]"
            return f"{text} {self.summary}" if summary and self.summary else text
        flags = [flag for flag, on in (("ro", self.read_only), ("destructive", self.destructive)) if on]
        tail = f" [{', '.join(flags)}]" if flags else ""
        text = f"{self.id}({', '.join(self.required)}){tail}"
        return f"{text} {self.summary}" if summary and self.summary else text


@dataclass(eq=False)
class ToolEntry:
    """One downstream tool, exactly as its backend defined it."""

    id: ToolId
    tool: types.Tool
    _validator: ArgumentValidator | None = field(default=None, repr=False)

    @property
    def backend(self) -> str:
        return self.id.backend

    @cached_property
    def key(self) -> str:
        return str(self.id)

    @cached_property
    def required(self) -> list[str]:
        required = self.tool.input_schema.get("required")
        return [str(name) for name in required] if isinstance(required, list) else []

    @property
    def read_only(self) -> bool:
        return bool(self.tool.annotations and self.tool.annotations.read_only_hint)

    @property
    def destructive(self) -> bool:
        annotations = self.tool.annotations
        # The spec's default for destructiveHint is true, but only a declared hint is shown.
        return bool(annotations and not annotations.read_only_hint and annotations.destructive_hint)

    def card(self, state: str) -> Card:
        return Card(
            id=self.key,
            summary=summarize(self.tool.description or self.tool.title),
            required=self.required,
            state=state,
            read_only=self.read_only,
            destructive=self.destructive,
        )

    def validator(self) -> ArgumentValidator:
        """A compiled JSON-schema validator for the tool's input, built once on first use."""
        if self._validator is None:
            from quiver.catalog.validation import ArgumentValidator

            self._validator = ArgumentValidator(self.tool.input_schema)
        return self._validator
