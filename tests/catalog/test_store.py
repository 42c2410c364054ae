from __future__ import annotations

from pathlib import Path

from quiver.backends.base import Listing
from quiver.catalog import CatalogStore
from tests.fakes import tool


def test_round_trip_and_fingerprint_keying(tmp_path: Path) -> None:
    store = CatalogStore(tmp_path / "catalog")
    tools = [tool("a", "first", ("x",), x="string"), tool("b.c", "dotted")]
    store.save("srv", "f1", Listing(tools, server_title="A server"))
    cached = store.load("srv", "f1")
    assert cached is not None
    assert [t.name for t in cached.listing.tools] == ["a", "b.c"]
    assert cached.listing.tools[0].input_schema == tools[0].input_schema
    assert cached.listing.server_title == "A server"
    assert store.load("srv", "f2") is None  # config changed: the old list does not apply
    assert store.load("other", "f1") is None


def test_unreadable_cache_is_ignored(tmp_path: Path) -> None:
    store = CatalogStore(tmp_path)
    (tmp_path / "srv-f1.json").write_text("{not json")
    assert store.load("srv", "f1") is None


def test_writes_are_atomic(tmp_path: Path) -> None:
    store = CatalogStore(tmp_path)
    store.save("srv", "f1", Listing([tool("a")]))
    store.save("srv", "f1", Listing([tool("a"), tool("b")]))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["srv-f1.json"]  # no temp files left
    cached = store.load("srv", "f1")
    assert cached is not None
    assert len(cached.listing.tools) == 2
