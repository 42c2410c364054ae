from __future__ import annotations

from pathlib import Path

import pytest

from quiver.backends.base import Listing
from quiver.catalog import Catalog, CatalogStore, summarize
from quiver.config import StdioBackendConfig
from quiver.errors import UnknownToolError
from tests.fakes import tool


def make_catalog(tmp_path: Path) -> Catalog:
    configs = {"time": StdioBackendConfig(command="t"), "fs": StdioBackendConfig(command="f")}
    return Catalog(configs, CatalogStore(tmp_path / "catalog"))


def test_update_indexes_and_caches(tmp_path: Path) -> None:
    catalog = make_catalog(tmp_path)
    catalog.update("time", Listing([tool("get_current_time", "Get the current time in a timezone", ("timezone",))]))
    assert catalog.count("time") == 1
    assert catalog.count("fs") is None
    assert [e.key for e in catalog.search("current time", 5)] == ["time.get_current_time"]
    again = make_catalog(tmp_path)
    again.ensure_loaded()
    assert again.get("time.get_current_time") is not None  # read back from the disk cache


def test_update_replaces_a_backends_tools(tmp_path: Path) -> None:
    catalog = make_catalog(tmp_path)
    catalog.update("fs", Listing([tool("read_file", "Read a file"), tool("write_file", "Write a file")]))
    catalog.update("fs", Listing([tool("read_text_file", "Read a text file")]))
    assert catalog.get("fs.read_file") is None
    assert [e.key for e in catalog.tools_of("fs")] == ["fs.read_text_file"]
    assert [e.key for e in catalog.search("write file", 5)] == ["fs.read_text_file"]


def test_unknown_ids_get_suggestions(tmp_path: Path) -> None:
    catalog = make_catalog(tmp_path)
    catalog.update("time", Listing([tool("get_current_time"), tool("convert_time")]))
    with pytest.raises(UnknownToolError) as caught:
        catalog.resolve("time.get_curent_time")
    assert caught.value.suggestions[0] == "time.get_current_time"
    assert "did you mean 'time.get_current_time'" in str(caught.value)
    assert catalog.suggest("get_current_time") == ["time.get_current_time"]  # backend left out


def test_hidden_ids_never_appear_in_suggestions(tmp_path: Path) -> None:
    catalog = make_catalog(tmp_path)
    catalog.update("time", Listing([tool("get_current_time"), tool("get_current_tide")]))
    with pytest.raises(UnknownToolError) as caught:
        catalog.resolve("time.get_current_tim", allow=lambda key: key != "time.get_current_time")
    assert "time.get_current_time" not in caught.value.suggestions


@pytest.mark.parametrize(
    ("description", "expected"),
    [
        ("Get the time. Returns ISO format.", "Get the time."),
        ("  Multi\n line\n\n text  ", "Multi line text"),
        ("", ""),
        (None, ""),
        ("word " * 40, ("word " * 17).strip() + "…"),
    ],
)
def test_summarize(description: str | None, expected: str) -> None:
    assert summarize(description) == expected
