from __future__ import annotations

from collections.abc import Sequence

import pytest

from quiver.search import BackendInfo, Hit, SearchDoc, SearchEngine
from quiver.search.lexical import Bm25fParams


def doc(backend: str, name: str, description: str = "", **params: str) -> SearchDoc:
    properties = {key: {"type": "string", "description": text} for key, text in params.items()}
    return SearchDoc(
        id=f"{backend}.{name}",
        backend=backend,
        name=name,
        description=description,
        input_schema={"type": "object", "properties": properties},
    )


def ids(hits: Sequence[Hit]) -> list[str]:
    return [hit.id for hit in hits]


@pytest.fixture
def engine() -> SearchEngine:
    engine = SearchEngine(semantic=False)
    engine.set_backend(
        BackendInfo("weather", title="Weather service"),
        [
            doc("weather", "get_forecast", "Daily forecast for a city.", city="City name"),
            doc(
                "weather",
                "get_alerts",
                "Active severe-weather alerts for a US state.",
                state="Two-letter state",
            ),
        ],
    )
    engine.set_backend(
        BackendInfo("files", description="Read and write local files"),
        [
            doc("files", "write_file", "Create or overwrite a file with content.", path="Where to write"),
            doc("files", "read_file", "Read the content of a file.", path="What to read"),
            doc("files", "list_directory", "List the entries of a folder.", path="The folder"),
        ],
    )
    return engine


def test_finds_by_name_description_and_backend(engine: SearchEngine) -> None:
    assert ids(engine.search("weather forecast for Paris", 1)) == ["weather.get_forecast"]
    assert ids(engine.search("save my notes to /home/me/notes.md", 1)) == ["files.write_file"]
    assert ids(engine.search("what is in this folder", 1)) == ["files.list_directory"]
    assert len(engine) == 5


def test_name_outweighs_description() -> None:
    engine = SearchEngine(semantic=False)
    engine.set_backend(
        BackendInfo("a"),
        [
            doc("a", "translate_text", "Convert words between languages."),
            doc("a", "summarize", "Summarize a document; can also translate text on request."),
        ],
    )
    assert ids(engine.search("translate text", 2)) == ["a.translate_text", "a.summarize"]
    flat = SearchEngine(semantic=False, params=Bm25fParams(name=0.0))
    flat.set_backend(BackendInfo("a"), [doc("a", "translate_text", ""), doc("a", "summarize", "translate text")])
    assert ids(flat.search("translate text", 1)) == ["a.summarize"]


def test_parameter_descriptions_are_searched(engine: SearchEngine) -> None:
    assert ids(engine.search("two-letter state", 1)) == ["weather.get_alerts"]


def test_docstring_sections_count_as_parameter_text() -> None:
    engine = SearchEngine(semantic=False)
    engine.set_backend(
        BackendInfo("x"),
        [
            doc("x", "stock_quote", "Latest stock quote.\n\nArgs:\n    symbol: ticker such as AAPL"),
            doc("x", "company_news", "News about a company and its ticker symbol."),
        ],
    )
    # "ticker symbol" is in both, but the first has it only in its Args section.
    assert ids(engine.search("ticker symbol", 1)) == ["x.company_news"]


def test_set_backend_replaces_only_that_backend(engine: SearchEngine) -> None:
    assert engine.search("city", 1)
    engine.set_backend(BackendInfo("weather"), [doc("weather", "get_tides", "Tide tables for a harbour.")])
    assert engine.search("city", 5) == []
    assert ids(engine.search("tide tables", 1)) == ["weather.get_tides"]
    assert ids(engine.search("read a file", 1)) == ["files.read_file"]
    assert len(engine) == 4


def test_remove_backend(engine: SearchEngine) -> None:
    engine.remove_backend("files")
    assert engine.search("write file", 5) == []
    assert len(engine) == 2
    engine.remove_backend("unknown")
    assert len(engine) == 2


def test_allow_filters_before_the_limit(engine: SearchEngine) -> None:
    everything = ids(engine.search("file", 5))
    assert len(everything) == 3
    hidden = everything[0]
    visible = ids(engine.search("file", 2, allow=lambda tool_id: tool_id != hidden))
    assert visible == everything[1:]


def test_allow_that_hides_everything(engine: SearchEngine) -> None:
    assert engine.search("file", 5, allow=lambda _: False) == []


def test_limit_and_empty_queries(engine: SearchEngine) -> None:
    assert engine.search("", 5) == []
    assert engine.search("   ", 5) == []
    assert engine.search("the of and", 5) == []
    assert engine.search("file", 0) == []
    assert len(engine.search("file", 2)) == 2
    assert SearchEngine(semantic=False).search("anything", 5) == []


def test_ties_keep_insertion_order() -> None:
    engine = SearchEngine(semantic=False)
    for name in ("b", "a", "c"):
        engine.set_backend(BackendInfo(name), [doc(name, "echo", "Echo a message.")])
    assert ids(engine.search("echo message", 3)) == ["b.echo", "a.echo", "c.echo"]


def test_scores_descend(engine: SearchEngine) -> None:
    scores = [hit.score for hit in engine.search("write or read a file in a folder", 5)]
    assert scores == sorted(scores, reverse=True)
    assert all(score > 0 for score in scores)


def test_many_ties_past_the_partition_are_ordered_stably() -> None:
    engine = SearchEngine(semantic=False)
    names = [f"b{i:03d}" for i in range(60)]
    for name in names:
        engine.set_backend(BackendInfo(name), [doc(name, "ping", "Ping.")])
    assert ids(engine.search("ping", 5)) == [f"{name}.ping" for name in names[:5]]
