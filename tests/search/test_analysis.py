from __future__ import annotations

import pytest

from quiver.search import tokenize
from quiver.search.analysis import SYNONYM_WEIGHT, Analyzer, normalize, query_terms, stem, words


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("get_current_time", ["get", "current", "time"]),
        ("list-open-issues", ["list", "open", "issues"]),
        ("getStoryWithComments", ["get", "story", "with", "comments", "getstorywithcomments"]),
        ("HTTPServer", ["http", "server", "httpserver"]),
        ("v2 api", ["v", "2", "api"]),
        ("天気を取得", ["天気を取得"]),
    ],
)
def test_identifiers_split(text: str, expected: list[str]) -> None:
    assert list(words(text)) == expected


def test_tokenize_lowercases_stems_and_drops_stop_words() -> None:
    assert tokenize("Searches the Files of a Repository") == ["search", "file", "repositori"]


def test_single_letters_dropped_but_digits_kept() -> None:
    assert tokenize("today's top 5 a b") == ["today", "top", "5"]


def test_url_keeps_the_host_words() -> None:
    text = normalize("summarise https://www.youtube.com/watch?v=abc123 now")
    assert tokenize(text) == ["summaris", "url", "youtub", "now"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("save it to /root/markdown/report.md", ["save", "file", "report", "markdown"]),
        ("open ~/slides/deck.pptx", ["open", "file", "deck", "powerpoint", "present"]),
        ("list /var/log", ["list", "directori", "log"]),
        ("read data.xlsx please", ["read", "file", "data", "excel", "spreadsheet", "pleas"]),
    ],
)
def test_paths_become_file_words(text: str, expected: list[str]) -> None:
    assert tokenize(text) == expected


def test_query_drops_filler_and_adds_synonyms_at_lower_weight() -> None:
    terms = query_terms("Please help me save the report")
    assert terms["save"] == 1.0
    assert terms["report"] == 1.0
    assert terms[stem("write")] == SYNONYM_WEIGHT
    assert "help" not in terms
    assert "pleas" not in terms


def test_a_word_of_the_query_keeps_full_weight_even_if_also_a_synonym() -> None:
    terms = query_terms("write and save a file")
    assert terms["write"] == 1.0
    assert terms["save"] == 1.0


def test_analyzer_steps_can_be_switched_off() -> None:
    plain = Analyzer(normalize=False, stop_words=False, stemming=False, whole_camel=False, synonyms=False)
    assert plain.tokenize("the searchFiles /tmp/x.md") == ["the", "search", "files", "tmp", "md"]
    assert plain.query_terms("please save") == {"save": 1.0}
    assert Analyzer(query_filler=False, synonyms=False).query_terms("please save") == {
        "pleas": 1.0,
        "save": 1.0,
    }
