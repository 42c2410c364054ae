"""Reading and rewriting a client's config file, one server entry at a time.

Every edit goes through the text: JSON and JSONC files through `jsonc` (comments and layout
kept), Codex's TOML through `tomledit`. Writing backs up the previous file, follows a symlinked
dotfile to its target, keeps the file's permissions (`~/.claude.json` is private), and replaces
the file in one step.
"""

from __future__ import annotations

import shutil
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from quiver._files import write_atomic
from quiver.clients import jsonc, tomledit
from quiver.clients.base import ClientConfigError, Location

# Suffix of the copy kept of a client's file before Quiver changes it.
BACKUP_SUFFIX = ".quiver.bak"


@dataclass(frozen=True)
class ClientFile:
    """A client's config file as read: its text, or None when it does not exist yet."""

    location: Location
    text: str | None

    @classmethod
    def read(cls, location: Location) -> ClientFile:
        path = location.path
        if not path.is_file():
            return cls(location, None)
        try:
            return cls(location, path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise ClientConfigError(f"{path}: cannot be read ({exc})", hint="check the file's permissions") from None

    def servers(self) -> dict[str, Any]:
        """The servers mapping at the location's keys (empty when the file or key is missing)."""
        if not self.text:
            return {}
        data: Any = self._parse()
        for key in self.location.keys:
            data = data.get(key) if isinstance(data, dict) else None
        if data is None:
            return {}
        if not isinstance(data, dict):
            where = ".".join(self.location.keys)
            raise ClientConfigError(f"{self.location.path}: '{where}' is not a mapping of servers")
        return data

    def with_server(self, name: str, entry: dict[str, Any]) -> str:
        """The file's new text with `name` set to `entry`."""
        keys = self.location.keys
        try:
            if self.location.toml:
                return tomledit.set_table(self.text or "", keys, name, entry)
            return jsonc.set_member(self.text or "", keys, name, entry)
        except (jsonc.JsoncError, tomledit.TomlEditError) as exc:
            raise ClientConfigError(f"{self.location.path}: {exc}", hint="fix or edit the file by hand") from None

    def without_server(self, name: str) -> str:
        keys = self.location.keys
        try:
            if self.location.toml:
                return tomledit.remove_table(self.text or "", keys, name)
            return jsonc.remove_member(self.text or "", keys, name)
        except (jsonc.JsoncError, tomledit.TomlEditError) as exc:
            raise ClientConfigError(f"{self.location.path}: {exc}", hint="fix or edit the file by hand") from None

    def _parse(self) -> Any:
        try:
            return tomledit.parse(self.text or "") if self.location.toml else jsonc.parse(self.text or "")
        except (jsonc.JsoncError, tomledit.TomlEditError) as exc:
            raise ClientConfigError(f"{self.location.path}: {exc}", hint="fix the file, then run again") from None


def replace_file(path: Path, text: str, *, backup_suffix: str = BACKUP_SUFFIX) -> Path | None:
    """Write `text` to `path` atomically, first copying an existing file aside; return the copy."""
    if path.is_symlink():
        path = path.resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    backup = None
    mode = None
    if path.exists():
        mode = stat.S_IMODE(path.stat().st_mode)
        backup = path.with_name(path.name + backup_suffix)
        shutil.copy2(path, backup)
    write_atomic(path, text, mode=mode)
    return backup
