from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

import quiver.search.engine as engine_module
from quiver.search import BackendInfo, SearchDoc, SearchEngine, SemanticUnavailableError
from quiver.search.semantic import SemanticIndex, embedding_text

# Words the fake model treats as meaning the same thing: what an embedding model adds to BM25.
CONCEPTS = {
    "car": 0,
    "automobile": 0,
    "vehicle": 0,
    "song": 1,
    "music": 1,
    "track": 1,
    "rain": 2,
    "weather": 2,
}
WIDTH = 8


class FakeEncoder:
    """Bag of concepts: texts that share a concept point the same way."""

    def __init__(self) -> None:
        self.encoded: list[str] = []

    def encode(self, texts: Sequence[str]) -> NDArray[np.float32]:
        self.encoded.extend(texts)
        out = np.zeros((len(texts), WIDTH), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in text.lower().replace(":", " ").split():
                if word in CONCEPTS:
                    out[row, CONCEPTS[word]] += 1.0
            out[row, WIDTH - 1] += 0.1  # never all-zero
        normalised: NDArray[np.float32] = out / np.linalg.norm(out, axis=1, keepdims=True)
        return normalised


def doc(backend: str, name: str, description: str) -> SearchDoc:
    return SearchDoc(id=f"{backend}.{name}", backend=backend, name=name, description=description)


def filled(engine: SearchEngine) -> SearchEngine:
    engine.set_backend(BackendInfo("garage"), [doc("garage", "book_service", "Book a service for your car")])
    engine.set_backend(BackendInfo("radio"), [doc("radio", "play", "Play a song")])
    return engine


def test_semantic_stage_finds_what_words_miss() -> None:
    lexical = filled(SearchEngine(semantic=False))
    assert lexical.search("automobile", 2) == []
    semantic = filled(SearchEngine(encoder=FakeEncoder()))
    assert semantic.semantic
    assert [hit.id for hit in semantic.search("automobile", 1)] == ["garage.book_service"]
    assert [hit.id for hit in semantic.search("music track", 1)] == ["radio.play"]


def test_allow_applies_to_semantic_results() -> None:
    engine = filled(SearchEngine(encoder=FakeEncoder()))
    hits = engine.search("automobile", 2, allow=lambda tool_id: tool_id != "garage.book_service")
    assert [hit.id for hit in hits] == ["radio.play"]


def test_lexical_when_the_extra_is_absent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine_module, "find_model_dir", lambda: None)
    engine = filled(SearchEngine())
    assert not engine.semantic
    assert [hit.id for hit in engine.search("car service", 1)] == ["garage.book_service"]
    with pytest.raises(SemanticUnavailableError):
        SearchEngine(semantic=True)


def test_semantic_can_be_forced_off(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(engine_module, "find_model_dir", lambda: tmp_path)
    assert SearchEngine().semantic
    assert not SearchEngine(semantic=False).semantic


def test_only_a_changed_backend_is_embedded_again() -> None:
    encoder = FakeEncoder()
    engine = filled(SearchEngine(encoder=encoder))
    engine.search("car", 1)
    assert len(encoder.encoded) == 3  # two tools and the query
    engine.set_backend(BackendInfo("radio"), [doc("radio", "play", "Play a song")])
    engine.search("car", 1)
    assert len(encoder.encoded) == 3  # same tools, same query: nothing new to embed
    engine.set_backend(BackendInfo("radio"), [doc("radio", "play", "Play a song"), doc("radio", "stop", "Stop")])
    engine.search("rain", 1)
    assert encoder.encoded[3:] == [embedding_text("stop", None, "Stop"), "rain"]


def test_embedding_cache_file_round_trip(tmp_path: Path) -> None:
    cache = tmp_path / "embeddings.npz"
    first = FakeEncoder()
    filled(SearchEngine(encoder=first, embedding_cache=cache)).prepare()
    assert cache.is_file()
    second = FakeEncoder()
    engine = filled(SearchEngine(encoder=second, embedding_cache=cache))
    engine.prepare()
    assert second.encoded == []
    assert [hit.id for hit in engine.search("vehicle", 1)] == ["garage.book_service"]


def test_backend_similarity_is_added() -> None:
    index = SemanticIndex(FakeEncoder(), backend_weight=1.0)
    index.set_segment("a", ["car", "song"])
    index.set_segment("b", ["car"])
    scores = index.scores("car")
    # Both "car" tools match equally; the one whose backend is all about cars ranks first.
    assert scores[2] > scores[0] > scores[1]


def test_embedding_text_spells_out_the_name() -> None:
    assert embedding_text("getWeatherForecast", None, "Daily.") == "get Weather Forecast: Daily."
    assert embedding_text("play", "Play music", "") == "play (Play music):"


def test_the_model_loads_on_first_search_not_when_tools_are_set(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    loads: list[Path | None] = []

    def load(model_dir: Path | None = None) -> FakeEncoder:
        loads.append(model_dir)
        return FakeEncoder()

    monkeypatch.setattr(engine_module, "find_model_dir", lambda: tmp_path)
    monkeypatch.setattr(engine_module, "load_encoder", load)
    engine = filled(SearchEngine())
    assert loads == []
    assert [hit.id for hit in engine.search("automobile", 1)] == ["garage.book_service"]
    engine.set_backend(BackendInfo("sky"), [doc("sky", "forecast", "Will it rain")])
    assert [hit.id for hit in engine.search("weather", 1)] == ["sky.forecast"]
    assert loads == [None]


def test_backends_without_tools() -> None:
    engine = SearchEngine(encoder=FakeEncoder())
    engine.set_backend(BackendInfo("empty"), [])
    assert engine.search("car", 5) == []
    filled(engine)
    assert [hit.id for hit in engine.search("car", 1)] == ["garage.book_service"]
    index = SemanticIndex(FakeEncoder())
    index.set_segment("empty", [])
    assert len(index.scores("car")) == 0


def test_the_models_best_tool_joins_the_lexical_ranking_third() -> None:
    engine = filled(SearchEngine(encoder=FakeEncoder()))
    engine.set_backend(
        BackendInfo("speed"), [doc("speed", f"fast_{letter}", f"Fast thing {letter}") for letter in "abcd"]
    )
    # No tool says "automobile": the words find the four fast tools, the model finds the garage.
    hits = [hit.id for hit in engine.search("fast automobile", 5)]
    assert hits == ["speed.fast_a", "speed.fast_b", "garage.book_service", "speed.fast_c", "speed.fast_d"]
    assert [hit.id for hit in engine.search("fast automobile", 2)] == ["speed.fast_a", "speed.fast_b"]
    hidden = engine.search("fast automobile", 5, allow=lambda tool_id: tool_id != "garage.book_service")
    assert "garage.book_service" not in [hit.id for hit in hidden]
    assert [hit.id for hit in hidden][3:] == ["speed.fast_d", "radio.play"]  # the unmatched go by meaning
    engine.semantic_rank = None
    assert [hit.id for hit in engine.search("fast automobile", 5)][4] == "garage.book_service"


def test_a_tool_both_stages_rank_first_is_listed_once() -> None:
    engine = filled(SearchEngine(encoder=FakeEncoder()))
    hits = [hit.id for hit in engine.search("car service", 3)]
    assert hits[0] == "garage.book_service"
    assert len(hits) == len(set(hits)) == 2
