from __future__ import annotations

import pytest

from quiver.errors import ConfigError, UnknownToolError
from quiver.ids import ToolId, backend_name_from, check_backend_name


@pytest.mark.parametrize(
    ("text", "backend", "tool"),
    [
        ("time.get_current_time", "time", "get_current_time"),
        ("fs.read.file", "fs", "read.file"),
        ("web-1.fetch-url", "web-1", "fetch-url"),
        ("jp.天気を取得", "jp", "天気を取得"),
    ],
)
def test_round_trip(text: str, backend: str, tool: str) -> None:
    parsed = ToolId.parse(text)
    assert (parsed.backend, parsed.tool) == (backend, tool)
    assert str(parsed) == text


@pytest.mark.parametrize("text", ["", "nodot", ".tool", "backend.", "."])
def test_malformed(text: str) -> None:
    with pytest.raises(UnknownToolError):
        ToolId.parse(text)


def test_backend_names() -> None:
    assert check_backend_name("my_server-2") == "my_server-2"
    for bad in ("a.b", "", "with space", "-lead", "x" * 65):
        with pytest.raises(ConfigError):
            check_backend_name(bad)
    assert backend_name_from("livemcp/Trends Hub") == "livemcp-Trends-Hub"
    assert check_backend_name(backend_name_from("a.b c")) == "a-b-c"
