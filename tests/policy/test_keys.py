"""The API key store: keys shown once, stored hashed in a private file, revoked at once, shared by processes."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from quiver.policy.keys import KEY_PREFIX, KeyStore, KeyStoreError
from quiver.policy.principal import Principal


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "api-keys.json"


def test_a_created_key_verifies_as_its_principal(path: Path) -> None:
    store = KeyStore(path)
    key = store.create("ci", "reader")
    assert key.startswith(KEY_PREFIX)
    assert len(key) >= len(KEY_PREFIX) + 43  # 32 random bytes, url-safe base64
    assert store.verify(key) == Principal("ci", "reader", "api_key")
    assert KeyStore(path).verify(key) == Principal("ci", "reader", "api_key")


def test_wrong_or_absurd_keys_do_not_verify(path: Path) -> None:
    store = KeyStore(path)
    key = store.create("ci")
    assert store.verify(key[:-1]) is None
    assert store.verify(key + "x") is None
    assert store.verify("") is None
    assert store.verify(KEY_PREFIX + "x" * 10_000) is None
    assert store.verify("\ud800\x00") is None
    assert KeyStore(path.with_name("none.json")).verify(key) is None


def test_the_file_holds_only_hashes_and_is_private(path: Path) -> None:
    store = KeyStore(path)
    key = store.create("ci", "admin")
    text = path.read_text()
    assert key not in text
    assert key[len(KEY_PREFIX) :] not in text
    assert hashlib.sha256(key.encode()).hexdigest() in text
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")] == []


def test_list_shows_names_roles_and_suffixes_but_never_keys(path: Path) -> None:
    store = KeyStore(path)
    first = store.create("alice", "admin")
    second = store.create("bob")
    listed = store.list()
    assert [(k.name, k.role, k.suffix) for k in listed] == [("alice", "admin", first[-4:]), ("bob", None, second[-4:])]
    assert all(k.created.tzinfo is not None for k in listed)
    assert first not in repr(listed)
    assert second not in repr(listed)


def test_a_revoked_key_stops_working_in_a_running_store(path: Path) -> None:
    running = KeyStore(path)  # the gateway's
    key = KeyStore(path).create("ci")
    assert running.verify(key) is not None
    KeyStore(path).revoke("ci")  # the CLI's, another process in real life
    assert running.verify(key) is None
    assert running.list() == []


def test_names_are_unique_and_checked(path: Path) -> None:
    store = KeyStore(path)
    store.create("ci")
    with pytest.raises(KeyStoreError, match="already exists"):
        store.create("ci")
    with pytest.raises(KeyStoreError, match="invalid key name"):
        store.create("no spaces")
    with pytest.raises(KeyStoreError, match="invalid key name"):
        store.create("")
    with pytest.raises(KeyStoreError, match="no key named 'other'"):
        store.revoke("other")


def test_a_damaged_file_admits_no_key_and_says_so(path: Path) -> None:
    store = KeyStore(path)
    key = store.create("ci")
    assert store.verify(key) is not None
    path.write_text("{not json")
    assert store.verify(key) is None
    with pytest.raises(KeyStoreError, match="damaged"):
        store.list()


CREATE_MANY = """
import sys
from pathlib import Path
from quiver.policy.keys import KeyStore

store = KeyStore(Path(sys.argv[1]))
keys = [store.create(f"{sys.argv[2]}-{i}") for i in range(10)]
print("\\n".join(keys))
"""


def test_processes_create_keys_concurrently_without_losing_any(path: Path) -> None:
    procs = [
        subprocess.Popen([sys.executable, "-c", CREATE_MANY, str(path), f"p{n}"], stdout=subprocess.PIPE, text=True)
        for n in range(4)
    ]
    keys = []
    for proc in procs:
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0
        keys += out.split()
    store = KeyStore(path)
    assert len(store.list()) == 40
    assert all(store.verify(key) is not None for key in keys)
    assert len(json.loads(path.read_text())["keys"]) == 40
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
