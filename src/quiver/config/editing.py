"""Editing Quiver's own config file: add, replace or remove one backend and keep everything else.

YAML goes through ruamel.yaml's round-trip mode, so comments, key order and quoting survive an
edit; `.mcp.json` goes through the member-level JSON editor used for clients' files. The edited
text is read back by the real loader before anything is written: an edit that would leave an
invalid config is refused and the file stays as it was. Writing is atomic, after the previous file
is copied to `NAME.bak`.

Scopes mirror `claude mcp add --scope`: `user` is `quiver.yaml` in the user config dir (created
when missing); `project` is the project file in the working directory (`quiver.yaml`,
`quiver.yml` or `.mcp.json`, whichever exists, else a new `quiver.yaml`).
"""

from __future__ import annotations

import io
from itertools import pairwise
from pathlib import Path
from typing import Any, Literal

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import CommentMark, YAMLError
from ruamel.yaml.tokens import CommentToken

from quiver.clients import jsonc
from quiver.clients.files import replace_file
from quiver.config.loader import LOCAL_FILES, USER_FILE, discover_config_path, parse_config, user_config_dir
from quiver.config.models import AnyBackendConfig, QuiverConfig
from quiver.errors import ConfigError

ConfigScope = Literal["user", "project"]

BACKUP_SUFFIX = ".bak"
DEFAULT_PROJECT_FILE = "quiver.yaml"
# Keys that say how to reach a backend come first in a written entry; Quiver's own keys follow.
_TRANSPORT_ORDER = ("type", "command", "args", "env", "cwd", "url", "headers")


def scope_path(scope: ConfigScope, cwd: Path | None = None) -> Path:
    """The config file of `scope` (which need not exist yet)."""
    if scope == "user":
        return user_config_dir() / USER_FILE
    here = cwd or Path.cwd()
    return next((here / name for name in LOCAL_FILES if (here / name).is_file()), here / DEFAULT_PROJECT_FILE)


def target_path(config: str | None = None, scope: ConfigScope | None = None) -> Path:
    """The file an edit goes to: `--config`, else the scope's file, else the one Quiver would load."""
    if config:
        return Path(config).expanduser().absolute()
    if scope:
        return scope_path(scope).absolute()
    return (discover_config_path() or scope_path("project")).absolute()


def entry_of(backend: AnyBackendConfig, *, typed: bool = False) -> dict[str, Any]:
    """The plain entry that configures `backend`: only keys that differ from the defaults."""
    data = backend.model_dump(mode="json", exclude_defaults=True, exclude={"type"})
    if typed or backend.type != "stdio":
        data["type"] = backend.type
    first = {key: data.pop(key) for key in _TRANSPORT_ORDER if key in data}
    return first | data


class ConfigEditor:
    """One config file, edited in memory and written once by `save`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.original: str | None = path.read_text(encoding="utf-8") if path.is_file() else None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: cannot be read ({exc})", hint="check the file's permissions") from None
        self._json = path.suffix == ".json"
        self._text = self.original or ""
        self._yaml = _yaml_for(self._text)
        self._doc: Any = None if self._json else self._load_yaml(self._text)

    def config(self) -> QuiverConfig:
        """The config as it stands with the edits so far (raises `ConfigError` if invalid)."""
        return parse_config(self.text(), self.path)

    def backends(self) -> dict[str, AnyBackendConfig]:
        return dict(self.config().backends)

    def set_backend(self, name: str, backend: AnyBackendConfig) -> None:
        """Add `name`, or replace the backend of that name."""
        if self._json:
            key = self._json_key(name)
            self._text = jsonc.set_member(self._text, [key], name, entry_of(backend, typed=True))
            return
        mapping = self._yaml_mapping(name, create=True)
        entry = _commented(entry_of(backend))
        if len(mapping) and name not in mapping:
            _move_trailing_blank(mapping[list(mapping)[-1]], entry)
        elif name in mapping and list(mapping)[-1] == name:
            _move_trailing_blank(mapping[name], entry)
        mapping[name] = entry
        mapping.fa.set_block_style()

    def remove_backend(self, name: str) -> bool:
        """Remove `name`; False when there is no such backend."""
        if self._json:
            key = self._json_key(name)
            before = self._text
            self._text = jsonc.remove_member(self._text, [key], name)
            return self._text != before
        mapping = self._yaml_mapping(name, create=False)
        if mapping is None or name not in mapping:
            return False
        names = list(mapping)
        if names[-1] == name and len(names) > 1:
            _move_trailing_blank(mapping[name], mapping[names[-2]])
        del mapping[name]
        return True

    def text(self) -> str:
        if self._json or self._doc is None:
            return self._text
        out = io.StringIO()
        self._yaml.dump(self._doc, out)
        return out.getvalue()

    @property
    def changed(self) -> bool:
        return self.text() != (self.original or "")

    def save(self) -> Path | None:
        """Validate and write the edited file; return the backup of the previous one, if any."""
        text = self.text()
        parse_config(text, self.path)
        current = self.path.read_text(encoding="utf-8") if self.path.is_file() else None
        if current != self.original:
            raise ConfigError(f"{self.path} changed while it was being edited", hint="run the command again")
        return replace_file(self.path, text, backup_suffix=BACKUP_SUFFIX)

    def _json_key(self, name: str) -> str:
        data = jsonc.parse(self._text)
        if not isinstance(data, dict):
            return "mcpServers"  # the loader will name the problem when the edit is saved
        if isinstance(data.get("backends"), dict) and (name in data["backends"] or "mcpServers" not in data):
            return "backends"
        return "mcpServers"

    def _load_yaml(self, text: str) -> Any:
        try:
            doc = self._yaml.load(text)
        except YAMLError as exc:
            parse_config(text, self.path)  # the loader's own message names the line and column
            problem = str(exc).strip().splitlines()[0]
            raise ConfigError(f"{self.path}: cannot be edited ({problem})", hint="fix the file by hand") from None
        if doc is None:
            return CommentedMap()
        if not isinstance(doc, CommentedMap):
            raise ConfigError(f"{self.path}: the top level must be a mapping, not {type(doc).__name__}")
        return doc

    def _yaml_mapping(self, name: str, *, create: bool) -> Any:
        doc = self._doc
        for key in ("backends", "mcpServers"):
            if isinstance(doc.get(key), CommentedMap) and name in doc[key]:
                return doc[key]
        for key in ("backends", "mcpServers"):
            if isinstance(doc.get(key), CommentedMap):
                return doc[key]
        if not create:
            return None
        doc["backends"] = CommentedMap()
        return doc["backends"]


def _yaml_for(text: str) -> YAML:
    """A round-trip YAML that indents new entries the way the file already does."""
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096  # never re-wrap a user's long lines
    lines = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    indents = [len(line) - len(line.lstrip(" ")) for line in lines]
    mapping = min((indent for indent in indents if indent), default=2)
    offset = 0
    for previous, line in pairwise(lines):
        if line.lstrip().startswith("- "):
            offset = max(0, (len(line) - len(line.lstrip(" "))) - (len(previous) - len(previous.lstrip(" "))))
            break
    yaml.indent(mapping=mapping, sequence=offset + 2, offset=offset)
    return yaml


def _commented(value: Any) -> Any:
    """Plain data as ruamel nodes: block mappings, and lists on one line as people write `args`."""
    if isinstance(value, dict):
        mapping = CommentedMap()
        for key, item in value.items():
            mapping[key] = _commented(item)
        return mapping
    if isinstance(value, list):
        seq = CommentedSeq(_commented(item) for item in value)
        if not any(isinstance(item, dict | list) for item in value):
            seq.fa.set_flow_style()
        return seq
    return value


def _tail(node: Any) -> tuple[Any, Any]:
    holder = key = None
    while isinstance(node, CommentedMap) and len(node):
        holder, key = node, list(node)[-1]
        node = node[key]
    return holder, key


def _move_trailing_blank(source: Any, target: Any) -> None:
    """Move the blank lines that end `source` to the end of `target`.

    ruamel keeps the blank lines after a mapping as a comment on its last scalar: without this,
    a new last entry would sit after them and the section break would move up.
    """
    source_holder, source_key = _tail(source)
    target_holder, target_key = _tail(target)
    if source_holder is None or target_holder is None:
        return
    slot = source_holder.ca.items.get(source_key)
    if not slot or len(slot) < 3 or slot[2] is None:
        return
    token = slot[2]
    comment, _, blank = token.value.partition("\n")
    if not blank:
        return
    token.value = comment + "\n"
    target_holder.ca.items[target_key] = [None, None, CommentToken("\n" + blank, CommentMark(0), None), None]
