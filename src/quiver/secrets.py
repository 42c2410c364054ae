"""Secrets for backends: values kept out of config files, injected where a config says `${NAME}`.

Two scopes, like `claude mcp add --scope`: `user` (`secrets.env` in the user config dir) and
`project` (`.quiver/secrets.env` beside the project's config). Files are dotenv-style
`NAME=value` lines with mode 0600, written atomically under a file lock. The project scope wins
over the user scope, and the process environment wins over both. Values are never printed: `list`
shows names only.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from quiver._files import write_atomic
from quiver.errors import QuiverError

Scope = Literal["user", "project"]
SECRETS_FILE = "secrets.env"
PROJECT_DIR = ".quiver"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class SecretError(QuiverError):
    code = "secrets"


@dataclass(frozen=True)
class SecretStore:
    path: Path
    scope: Scope

    def load(self) -> dict[str, str]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise SecretError(f"cannot read {self.path}: {exc.strerror}", hint="check its permissions") from None
        values: dict[str, str] = {}
        for line in text.splitlines():
            name, sep, value = line.partition("=")
            if sep and _NAME.match(name.strip()):
                values[name.strip()] = _unquote(value)
        return values

    def names(self) -> list[str]:
        return sorted(self.load())

    def set(self, name: str, value: str) -> None:
        check_name(name)
        if "\n" in value or "\r" in value:
            raise SecretError("a secret cannot span lines", hint="store it base64-encoded if it must")
        self._update({name: value}, remove=())

    def unset(self, name: str) -> bool:
        if name not in self.load():
            return False
        self._update({}, remove=(name,))
        return True

    def _update(self, values: Mapping[str, str], remove: tuple[str, ...]) -> None:
        from filelock import FileLock

        self.path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.path) + ".lock"):
            current = {**self.load(), **values}
            for name in remove:
                current.pop(name, None)
            text = "".join(f"{name}={_quote(value)}\n" for name, value in sorted(current.items()))
            write_atomic(self.path, text, mode=0o600)


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise SecretError(
            f"'{name}' is not a valid secret name",
            hint="use letters, digits and underscores, not starting with a digit (e.g. GITHUB_TOKEN)",
        )
    return name


def store(scope: Scope, *, config_dir: Path | None = None) -> SecretStore:
    if scope == "user":
        from quiver.config.loader import user_config_dir

        return SecretStore(user_config_dir() / SECRETS_FILE, "user")
    return SecretStore((config_dir or Path.cwd()) / PROJECT_DIR / SECRETS_FILE, "project")


def environment(config_dir: Path | None = None, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """What `${NAME}` resolves against: user secrets, then project secrets, then the process environment."""
    merged = {**store("user").load(), **store("project", config_dir=config_dir).load()}
    merged.update(os.environ if environ is None else environ)
    return merged


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    return value
