"""API keys: created once, stored only as hashes, checked in constant time, revoked at once.

The store is one JSON file (mode 0600) that several processes share: `quiver keys create` and
`revoke` rewrite it atomically under a file lock, and a running gateway re-reads it whenever the
file changes, so a revoked key stops working on the next request without a restart.
"""

from __future__ import annotations

import builtins
import contextlib
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from filelock import FileLock

from quiver.errors import QuiverError
from quiver.policy.principal import Principal

logger = logging.getLogger(__name__)

KEYS_FILE = "api-keys.json"
"""The store's file name in the gateway's state dir."""

KEY_PREFIX = "qv_"
"""Marks a string as a Quiver key, so secret scanners and people can recognise a leaked one."""

# 32 bytes (256 bits) of randomness: far beyond any guessing, which is what lets a fast hash stand in for a KDF.
KEY_BYTES = 32
# The key's tail shown by `list`: enough to tell keys apart, far too little to help guess one.
SUFFIX_CHARS = 4
# A bound on what is hashed: a presented key longer than any real one is refused without work.
MAX_KEY_CHARS = 256
# A lock held longer than this belongs to a stuck process; better to fail than to hang a CLI.
LOCK_TIMEOUT = 10.0

FORMAT_VERSION = 1
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """What `list` shows of a key: never the key or its hash."""

    name: str
    role: str | None
    created: datetime
    suffix: str


class KeyStoreError(QuiverError):
    """A key cannot be created or revoked as asked, or the key file cannot be read."""

    code = "api_keys"


@dataclass(frozen=True, slots=True)
class _Record:
    name: str
    role: str | None
    created: datetime
    suffix: str
    digest: bytes

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "role": self.role,
            "created": self.created.isoformat(),
            "suffix": self.suffix,
            "sha256": self.digest.hex(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> _Record:
        return cls(
            name=str(data["name"]),
            role=None if data.get("role") is None else str(data["role"]),
            created=datetime.fromisoformat(str(data["created"])),
            suffix=str(data["suffix"]),
            digest=bytes.fromhex(str(data["sha256"])),
        )


def _digest(key: str) -> bytes:
    # A plain SHA-256 suffices: a key carries 256 random bits, so there is no dictionary to try and a
    # slow password hash (bcrypt, scrypt) would only make every request slower without adding safety.
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()


class KeyStore:
    """The API keys in one JSON file. `create` and `revoke` are safe across processes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = FileLock(str(path) + ".lock", timeout=LOCK_TIMEOUT)
        self._records: builtins.list[_Record] = []
        self._seen: tuple[int, int, int] | None = None

    def create(self, name: str, role: str | None = None) -> str:
        """A new key for `name`; the only time the key itself is ever returned."""
        if not _NAME.fullmatch(name):
            raise KeyStoreError(
                f"invalid key name '{name}'",
                hint="use up to 64 letters, digits, '.', '_', '@' or '-', starting with a letter or digit",
            )
        key = KEY_PREFIX + secrets.token_urlsafe(KEY_BYTES)
        record = _Record(name, role, datetime.now(UTC).replace(microsecond=0), key[-SUFFIX_CHARS:], _digest(key))
        with self._locked():
            records = self._read()
            if any(r.name == name for r in records):
                raise KeyStoreError(
                    f"a key named '{name}' already exists",
                    hint=f"revoke it first (quiver keys revoke {name}) or choose another name",
                )
            self._write([*records, record])
        return key

    def list(self) -> builtins.list[KeyInfo]:
        self._refresh()
        return [KeyInfo(r.name, r.role, r.created, r.suffix) for r in self._records]

    def revoke(self, name: str) -> None:
        with self._locked():
            records = self._read()
            kept = [r for r in records if r.name != name]
            if len(kept) == len(records):
                raise KeyStoreError(f"no key named '{name}'", hint="quiver keys list shows the existing keys")
            self._write(kept)

    def verify(self, presented: str) -> Principal | None:
        """The key's principal, or None. Costs a stat, plus a read when the file changed."""
        if len(presented) > MAX_KEY_CHARS:
            return None
        try:
            self._refresh()
        except KeyStoreError as exc:
            # Fail closed: a file that cannot be read admits no key until it is repaired.
            logger.error("refusing every API key: %s", exc.message)
            return None
        digest = _digest(presented)
        found: _Record | None = None
        # Compare with every stored hash, without stopping at a match, so timing says nothing about which matched.
        for record in self._records:
            if hmac.compare_digest(digest, record.digest):
                found = record
        return None if found is None else Principal(found.name, found.role, "api_key")

    # -- the file -------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with self._lock:
            yield

    def _refresh(self) -> None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            self._records, self._seen = [], None
            return
        # The inode changes on every atomic replace, so a rewrite within the mtime's granularity still shows.
        seen = (st.st_ino, st.st_mtime_ns, st.st_size)
        if seen != self._seen:
            self._records = self._read()
            self._seen = seen

    def _read(self) -> builtins.list[_Record]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise KeyStoreError(
                f"cannot read the API key file {self.path}: {exc.strerror}",
                hint="the gateway needs to read this file; check its owner and permissions",
            ) from None
        try:
            data = json.loads(text)
            return [_Record.from_json(item) for item in data["keys"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise KeyStoreError(
                f"the API key file {self.path} is damaged: {exc}",
                hint="restore it from a backup, or delete it and create the keys again",
            ) from None

    def _write(self, records: builtins.list[_Record]) -> None:
        data = {"version": FORMAT_VERSION, "keys": [r.to_json() for r in records]}
        # mkstemp creates the file 0600, so the hashes are never readable by others, not even briefly.
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=self.path.name + ".", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(data, f, indent=2)
                f.write("\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
