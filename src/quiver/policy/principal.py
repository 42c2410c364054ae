"""Who is calling: the principal of an upward session."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Via = Literal["api_key", "oauth", "local"]


@dataclass(frozen=True, slots=True)
class Principal:
    """A caller: a name for the audit log and rate limits, and the role whose rules apply."""

    name: str
    role: str | None = None
    via: Via = "local"


LOCAL = Principal("local")
"""The caller of a stdio gateway, or of the CLI: the user running Quiver."""
