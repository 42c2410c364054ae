from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest

import quiver.search.engine as engine_module
from quiver.search import BackendInfo, Feedback, SearchDoc, SearchEngine, SemanticUnavailableError
from quiver.search.semantic import SemanticIndex, embedding_text
from tests.fakes import FakeEncoder, install_fake_model


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
    engine = filled(SearchEngine(encoder=FakeEncoder(), feedback=None))
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


def test_the_words_of_the_models_best_tools_widen_the_query_after_the_first_places() -> None:
    def engine(feedback: Feedback | None) -> SearchEngine:
        built = SearchEngine(encoder=FakeEncoder(), feedback=feedback)
        built.set_backend(
            BackendInfo("garage"),
            [doc("garage", "book_service", "Book a service for your car"), doc("garage", "tow", "Tow a vehicle")],
        )
        built.set_backend(BackendInfo("speed"), [doc("speed", f"fast_{letter}", "Fast thing") for letter in "abc"])
        # Neither its words nor its meaning match "automobile"; it shares "service" with the garage.
        built.set_backend(BackendInfo("workshop"), [doc("workshop", "history", "Service history")])
        return built

    without = [hit.id for hit in engine(None).search("automobile", 4)]
    assert without == ["garage.book_service", "garage.tow", "speed.fast_a", "speed.fast_b"]
    # The model's next best keeps the third place; the widened query finds the fourth.
    widened = [hit.id for hit in engine(Feedback(tools=2)).search("automobile", 4)]
    assert widened == ["garage.book_service", "garage.tow", "speed.fast_a", "workshop.history"]
    # The first `keep` places are the query's own ranking; a list that short is not widened.
    assert [hit.id for hit in engine(Feedback(tools=2, keep=4)).search("automobile", 4)] == without


def test_a_tool_both_stages_rank_first_is_listed_once() -> None:
    engine = filled(SearchEngine(encoder=FakeEncoder()))
    hits = [hit.id for hit in engine.search("car service", 3)]
    assert hits[0] == "garage.book_service"
    assert len(hits) == len(set(hits)) == 2


@pytest.mark.anyio
async def test_warm_runs_the_model_in_a_worker_thread_so_search_encodes_nothing() -> None:
    encoder = FakeEncoder()
    engine = filled(SearchEngine(encoder=encoder))
    await engine.warm("automobile")
    assert encoder.threads
    assert threading.get_ident() not in encoder.threads
    assert sorted(encoder.encoded) == sorted(
        ["automobile", embedding_text("book_service", None, "Book a service for your car"), "play: Play a song"]
    )
    encoded = len(encoder.encoded)
    assert [hit.id for hit in engine.search("automobile", 1)] == ["garage.book_service"]
    assert len(encoder.encoded) == encoded
    # A backend that changes later is embedded by the next warm, and only it.
    engine.set_backend(BackendInfo("sky"), [doc("sky", "forecast", "Will it rain")])
    await engine.warm()
    assert encoder.encoded[encoded:] == [embedding_text("forecast", None, "Will it rain")]
    await engine.warm("automobile")
    assert len(encoder.encoded) == encoded + 1


@pytest.mark.anyio
async def test_warm_loads_the_model_off_the_event_loop(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    loads = install_fake_model(monkeypatch, tmp_path)
    engine = filled(SearchEngine())
    await engine.warm()
    assert len(loads) == 1
    assert loads[0].loaded_in != threading.get_ident()
    assert [hit.id for hit in engine.search("automobile", 1)] == ["garage.book_service"]
    assert len(loads) == 1


def test_an_unreadable_or_unwritable_embedding_cache_costs_no_search(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    broken = tmp_path / "broken.npz"
    broken.write_bytes(b"not an archive")
    engine = filled(SearchEngine(encoder=FakeEncoder(), embedding_cache=broken))
    assert [hit.id for hit in engine.search("automobile", 1)] == ["garage.book_service"]
    assert "ignoring unreadable tool embeddings" in caplog.text
    assert SemanticIndex(FakeEncoder(), broken).missing() == []  # rewritten whole, readable again
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory", encoding="utf-8")
    engine = filled(SearchEngine(encoder=FakeEncoder(), embedding_cache=blocker / "cache.npz"))
    assert [hit.id for hit in engine.search("automobile", 1)] == ["garage.book_service"]
    assert "cannot save tool embeddings" in caplog.text
    assert sorted(path.name for path in tmp_path.iterdir()) == ["a-file", "broken.npz"]


def test_cached_embeddings_serve_only_the_model_that_made_them(tmp_path: Path) -> None:
    class OtherModel(FakeEncoder):
        fingerprint = "another-model"

    cache = tmp_path / "embeddings.npz"
    filled(SearchEngine(encoder=FakeEncoder(), embedding_cache=cache)).prepare()
    same = FakeEncoder()
    filled(SearchEngine(encoder=same, embedding_cache=cache)).prepare()
    assert same.encoded == []
    other = OtherModel()
    filled(SearchEngine(encoder=other, embedding_cache=cache)).prepare()
    assert len(other.encoded) == 2  # another model's vectors are never mixed in
    again = OtherModel()
    filled(SearchEngine(encoder=again, embedding_cache=cache)).prepare()
    assert again.encoded == []  # the file now holds the other model's
