from __future__ import annotations

import mcp_types as types

from quiver.backends.base import Listing
from quiver.ids import ToolId
from quiver.server.naming import MAX_NAME, build_names, identity_names, shortened
from tests.fakes import tool


def listing(*names: str, uris: tuple[str, ...] = (), prompts: tuple[str, ...] = ()) -> Listing:
    return Listing(
        [tool(name) for name in names],
        resources=[types.Resource(uri=uri, name=uri) for uri in uris],
        prompts=[types.Prompt(name=name) for name in prompts],
    )


def test_prefixed_names_map_back_exactly() -> None:
    names = build_names({"fs": listing("read.file", "write-file"), "git": listing("log")}, ["fs", "git"])
    assert names.tools[ToolId("fs", "read.file")] == "fs__read_file"
    assert names.tools[ToolId("fs", "write-file")] == "fs__write-file"
    assert names.tool_ids["git__log"] == ToolId("git", "log")


def test_long_names_are_shortened_stably_within_64_characters() -> None:
    long_tool = "x" * 100
    first = build_names({"backend": listing(long_tool)}, ["backend"]).tools[ToolId("backend", long_tool)]
    again = build_names({"backend": listing(long_tool, "other")}, ["backend"]).tools[ToolId("backend", long_tool)]
    assert len(first) <= MAX_NAME
    assert first == again
    assert shortened("a" * 80, "one") != shortened("a" * 80, "two")


def test_names_that_would_collide_both_get_a_hash() -> None:
    names = build_names({"a": listing("b__c"), "a__b": listing("c")}, ["a", "a__b"])
    first, second = names.tools[ToolId("a", "b__c")], names.tools[ToolId("a__b", "c")]
    assert first != second
    assert names.tool_ids[first] == ToolId("a", "b__c")
    assert names.tool_ids[second] == ToolId("a__b", "c")


def test_unprefixed_backends_keep_their_names_unless_taken() -> None:
    listings = {"one": listing("echo", uris=("test://x",)), "two": listing("echo", uris=("test://x",))}
    names = build_names(listings, ["one", "two"], frozenset({"one", "two"}))
    assert names.tools[ToolId("one", "echo")] == "echo"
    assert names.tools[ToolId("two", "echo")] == "two__echo"
    assert names.uri("one", "test://x") == "test://x"
    assert names.uri("two", "test://x") == "two+test://x"
    assert names.resolve_uri("test://x", ["one", "two"]) == ("one", "test://x")
    assert names.resolve_uri("two+test://x", ["one", "two"]) == ("two", "test://x")


def test_uris_round_trip_through_the_prefix() -> None:
    names = build_names({"fs": listing(uris=("file:///a b", "git+https://h/r"))}, ["fs"])
    for uri in ("file:///a b", "git+https://h/r"):
        exposed = names.uri("fs", uri)
        assert exposed == f"fs+{uri}"
        assert names.resolve_uri(exposed, ["fs"]) == ("fs", uri)
    assert names.resolve_uri("nobody+file:///a", ["fs"]) is None


def test_prompts_are_namespaced_like_tools() -> None:
    names = build_names({"docs": listing(prompts=("summarise",))}, ["docs"])
    assert names.prompts[("docs", "summarise")] == "docs__summarise"
    assert names.prompt_keys["docs__summarise"] == ("docs", "summarise")


def test_a_backend_endpoint_keeps_every_name_verbatim() -> None:
    names = identity_names("fs", listing("read.file", "a" * 80))
    assert names.tools[ToolId("fs", "read.file")] == "read.file"
    assert names.tools[ToolId("fs", "a" * 80)] == "a" * 80
