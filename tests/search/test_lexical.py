from __future__ import annotations

import math

import numpy as np
import pytest

from quiver.search.lexical import FIELDS, Bm25fParams, FieldText, LexicalIndex, LikelihoodParams


def index(likelihood: LikelihoodParams | None = None) -> LexicalIndex:
    lexical = LexicalIndex(likelihood=likelihood or LikelihoodParams())
    lexical.set_segment(
        "weather",
        "weather service",
        [
            ("weather.forecast", FieldText(name="forecast", description="Daily forecast for a city")),
            ("weather.alerts", FieldText(name="alerts", description="Severe weather alerts", parameters="city")),
        ],
    )
    lexical.set_segment(
        "files",
        "",
        [("files.write", FieldText(name="write_file", description="Write a file", parameter_docs="city of the file"))],
    )
    return lexical


def test_without_likelihood_the_score_is_bm25f() -> None:
    lexical = index(LikelihoodParams(weight=0.0))
    query = {"citi": 1.0, "forecast": 1.0}
    assert lexical.scores(query).tolist() == lexical.bm25f(query).tolist()


def test_bm25f_rescaled_plus_the_weighted_likelihood() -> None:
    lexical = index()
    query = {"citi": 1.0, "forecast": 1.0}
    scores = lexical.scores(query)
    bm25f = lexical.bm25f(query)
    assert lexical.ids[int(scores.argmax())] == "weather.forecast"
    # The best tool of both models gets 1 (BM25F / its best) + the weight (top of the likelihood's range).
    assert scores.max() == pytest.approx(1.0 + LikelihoodParams().weight)
    assert (scores > 0).tolist() == (bm25f > 0).tolist()


def test_log_likelihood_is_the_smoothed_field_mixture() -> None:
    params = Bm25fParams()
    priors = LikelihoodParams()
    lexical = index(priors)
    query = {"citi": 1.0, "weather": 0.5}
    candidates, likelihood = lexical.log_likelihood(lexical.postings(query))
    # The same model by hand: per field, (tf + prior * p(term | catalogue field)) / (length + prior).
    fields = {
        "weather.forecast": (["forecast"], ["daili", "forecast", "citi"], [], [], ["weather", "servic"]),
        "weather.alerts": (["alert"], ["sever", "weather", "alert"], ["citi"], [], ["weather", "servic"]),
        "files.write": (["write", "file"], ["write", "file"], [], ["citi", "file"], []),
    }
    mix = [weight / sum(params.weights()) for weight in params.weights()]
    totals = [sum(len(doc[f]) for doc in fields.values()) for f in range(len(FIELDS))]

    def probability(term: str, doc: tuple[list[str], ...]) -> float:
        total = 0.0
        for f, prior in enumerate(priors.priors()):
            catalogue = sum(other[f].count(term) for other in fields.values()) / max(totals[f], 1)
            total += mix[f] * (doc[f].count(term) + prior * catalogue) / (len(doc[f]) + prior)
        return total

    expected = {
        doc_id: sum(weight * math.log(probability(term, doc)) for term, weight in query.items())
        for doc_id, doc in fields.items()
    }
    assert sorted(lexical.ids[c] for c in candidates) == sorted(expected)
    for position, value in zip(candidates.tolist(), likelihood.tolist(), strict=True):
        assert value == pytest.approx(expected[lexical.ids[position]], rel=1e-4)


def test_a_shortlist_gives_the_likelihood_to_the_best_by_bm25f_only() -> None:
    query = {"citi": 1.0, "weather": 0.5}
    full = index(LikelihoodParams(shortlist=None)).scores(query)
    assert index(LikelihoodParams(shortlist=3)).scores(query).tolist() == full.tolist()  # all listed
    lexical = index(LikelihoodParams(shortlist=1))
    short = lexical.scores(query)
    bm25f = lexical.bm25f(query)
    best = int(bm25f.argmax())
    # The likelihood's range is that one tool's: it gets the whole weight, the rest BM25F alone.
    assert short[best] == pytest.approx(1.0 + LikelihoodParams().weight)
    others = [position for position in range(3) if position != best]
    assert short[others].tolist() == pytest.approx((bm25f[others] / bm25f[best]).tolist())
    candidates, likelihood = lexical.log_likelihood(lexical.postings(query), only=np.asarray([best]))
    assert candidates.tolist() == [best]
    everything, all_likelihoods = lexical.log_likelihood(lexical.postings(query))
    assert likelihood[0] == pytest.approx(all_likelihoods[everything.tolist().index(best)])


def test_removing_a_segment_updates_the_catalogue_statistics() -> None:
    lexical = index()
    before = lexical.scores({"citi": 1.0})
    lexical.remove_segment("files")
    after = lexical.scores({"citi": 1.0})
    assert len(before) == 3
    assert len(after) == 2
    assert lexical.ids == ["weather.forecast", "weather.alerts"]
    assert lexical.scores({"write": 1.0}).tolist() == [0.0, 0.0]


def test_unknown_terms_score_nothing() -> None:
    lexical = index()
    assert lexical.scores({"zebra": 1.0}).tolist() == [0.0, 0.0, 0.0]
    assert LexicalIndex().scores({"zebra": 1.0}).tolist() == []
