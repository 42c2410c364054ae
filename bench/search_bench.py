"""Tool-search benchmark: every ranking variant tried, a 2-fold check, latency, index time, memory.

    .venv/bin/python bench/search_bench.py [--benchmark DIR] [--no-semantic] [--embedding-cache FILE]

Quality is measured on the public tool-retrieval set (whole catalogue, and each task's own
source as a second scope). Variants that are not the engine's default are built here from the
engine's parts, so the table shows what each step is worth. Scale is measured on 10,000 tools:
the 6,568 of the catalogue plus copies of random tools under new backends (forks, as catalogues
have), which keeps embeddings cached while growing every index. The first semantic run embeds
the catalogue (a few minutes on two cores) into the embedding cache; later runs reuse it.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import os
import random
import re
import statistics
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from quiver.search import BackendInfo, Hit, SearchDoc, SearchEngine
from quiver.search.analysis import Analyzer
from quiver.search.engine import Feedback, backend_text, merge_hits, top_hits
from quiver.search.evaluate import (
    Catalogue,
    Query,
    Searcher,
    build_engine,
    evaluate,
    load_queries,
    read_catalogue,
)
from quiver.search.lexical import Bm25fParams, FieldText, LexicalIndex, LikelihoodParams
from quiver.search.semantic import SemanticIndex, embedding_text, load_encoder

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_BENCHMARK = ROOT.parent / "shared" / "benchmarks" / "tool-retrieval"
DEFAULT_CACHE = Path.home() / ".cache" / "quiver" / "search-bench-embeddings.npz"
SCALE_TOOLS = 10_000
LATENCY_QUERIES = 200
FOLD_SEED = 20
# Clause boundaries of a multi-need request: sentence ends, commas, "and", "then".
CLAUSE = re.compile(r"(?<=[.!?;:])\s+|,\s*|\s+(?:and then|then|and|after that|finally|also)\s+", re.IGNORECASE)
# Coarser boundaries: sentence ends, "then" and "and" only (commas often separate details).
SENTENCE = re.compile(r"(?<=[.!?;])\s+|\n+|,?\s+(?:and then|then|after that|finally|also|and)\s+", re.IGNORECASE)
Scores = Callable[[str], NDArray[np.float32]]


@dataclass
class Ranker:
    """Any scoring function over the engine's documents, searchable like the engine."""

    ids: list[str]
    score: Scores

    def search(self, query: str, limit: int = 5, *, allow: Callable[[str], bool] | None = None) -> list[Hit]:
        return top_hits(self.ids, self.score(query), limit, allow)


@dataclass
class OrderRanker:
    """A ranking given as an ordered list of document positions (for interleaving variants)."""

    ids: list[str]
    order: Callable[[str], list[int]]

    def search(self, query: str, limit: int = 5, *, allow: Callable[[str], bool] | None = None) -> list[Hit]:
        hits: list[Hit] = []
        for rank, position in enumerate(self.order(query)):
            doc_id = self.ids[position]
            if allow is None or allow(doc_id):
                hits.append(Hit(doc_id, 1.0 / (rank + 1)))
            if len(hits) >= limit:
                break
        return hits


@dataclass
class Composed:
    """Lexical scores plus semantic scores, merged the engine's way (`merge_hits`)."""

    ids: list[str]
    lexical: Scores
    semantic: Scores
    rank: int | None

    def search(self, query: str, limit: int = 5, *, allow: Callable[[str], bool] | None = None) -> list[Hit]:
        return merge_hits(self.ids, self.lexical(query), self.semantic(query), limit, allow, self.rank)


def normalised(scores: NDArray[np.float32]) -> NDArray[np.float32]:
    best = float(scores.max()) if len(scores) else 0.0
    return scores / best if best > 0 else scores


def standardised(scores: NDArray[np.float32], where: NDArray[np.bool_] | None = None) -> NDArray[np.float32]:
    """z-scores (over `where` if given; elsewhere the lowest of them)."""
    values = scores if where is None else scores[where]
    if not len(values):
        return np.zeros_like(scores)
    out: NDArray[np.float32] = ((scores - values.mean()) / (values.std() + 1e-9)).astype(np.float32)
    if where is not None:
        out = np.where(where, out, out[where].min()).astype(np.float32)
    return out


def ranks_of(scores: NDArray[np.float32]) -> NDArray[np.float32]:
    ranks = np.empty(len(scores), dtype=np.float32)
    ranks[np.argsort(-scores, kind="stable")] = np.arange(len(scores), dtype=np.float32)
    return ranks


def lexical_engine(catalogue: Catalogue, **options: Any) -> SearchEngine:
    return build_engine(catalogue.backends, catalogue.docs, semantic=False, **options)


def scores_of(engine: SearchEngine) -> Scores:
    def score(query: str) -> NDArray[np.float32]:
        scores = engine.scores(query)
        return scores if scores is not None else np.zeros(len(engine.ids), dtype=np.float32)

    return score


def clauses(query: str, pattern: re.Pattern[str], analyzer: Analyzer) -> list[str]:
    return [part for part in pattern.split(query) if part and analyzer.query_terms(part)]


def backend_index(catalogue: Catalogue) -> tuple[LexicalIndex, list[str]]:
    """One document per backend: all its tools' text together (for backend-level variants)."""
    index = LexicalIndex(likelihood=LikelihoodParams(weight=0.0))
    names: list[str] = []
    for info in catalogue.backends:
        docs = catalogue.docs[info.name]
        text = FieldText(
            name=" ".join(doc.name for doc in docs),
            description=" ".join(doc.description for doc in docs),
        )
        index.set_segment(info.name, backend_text(info), [(info.name, text)])
        names.append(info.name)
    return index, names


def lexical_variants(catalogue: Catalogue) -> list[tuple[str, Searcher]]:
    plain = Analyzer(
        normalize=False,
        whole_camel=False,
        stop_words=False,
        stemming=False,
        query_filler=False,
        synonyms=False,
    )
    bm25f = LikelihoodParams(weight=0.0)
    variants: list[tuple[str, Searcher]] = [
        (
            "BM25 name+description, plain words",
            lexical_engine(
                catalogue,
                analyzer=plain,
                split_docstrings=False,
                params=Bm25fParams(1, 1, 0, 0, 0),
                likelihood=bm25f,
            ),
        ),
        ("BM25F alone (the previous default)", lexical_engine(catalogue, likelihood=bm25f)),
        # At weight 1000 the likelihood decides; BM25F only breaks its ties.
        ("query likelihood alone", lexical_engine(catalogue, likelihood=LikelihoodParams(weight=1000.0))),
        ("lexical (default): BM25F + 2 x likelihood", lexical_engine(catalogue)),
    ]
    for step in ("normalize", "whole_camel", "stop_words", "stemming", "query_filler", "synonyms"):
        variants.append((f"  without {step}", lexical_engine(catalogue, analyzer=Analyzer(**{step: False}))))
    variants += [
        ("  without docstring split", lexical_engine(catalogue, split_docstrings=False)),
        ("  name weight 1 (no boost)", lexical_engine(catalogue, params=Bm25fParams(name=1.0))),
        ("  no backend field", lexical_engine(catalogue, params=Bm25fParams(backend=0.0))),
        (
            "  no parameter fields",
            lexical_engine(catalogue, params=Bm25fParams(parameters=0, parameter_docs=0)),
        ),
        ("  all fields weight 1", lexical_engine(catalogue, params=Bm25fParams(1, 1, 1, 1, 1))),
        ("  likelihood weight 1", lexical_engine(catalogue, likelihood=LikelihoodParams(weight=1.0))),
        ("  likelihood weight 4", lexical_engine(catalogue, likelihood=LikelihoodParams(weight=4.0))),
        ("  name prior 5", lexical_engine(catalogue, likelihood=LikelihoodParams(name=5.0))),
        ("  description prior 300", lexical_engine(catalogue, likelihood=LikelihoodParams(description=300.0))),
        ("  backend prior 20", lexical_engine(catalogue, likelihood=LikelihoodParams(backend=20.0))),
    ]
    return variants


def structural_variants(catalogue: Catalogue, engine: SearchEngine) -> list[tuple[str, Searcher]]:
    """Backend-level evidence and multi-need splitting, built on the default lexical engine."""
    backends, names = backend_index(catalogue)
    position = {name: index for index, name in enumerate(names)}
    backend_of = np.asarray([position[doc_id.split(".", 1)[0]] for doc_id in engine.ids])
    analyzer = Analyzer()
    lexical = scores_of(engine)
    cache: dict[str, NDArray[np.float32]] = {}

    def cached(text: str) -> NDArray[np.float32]:
        if text not in cache:
            cache[text] = normalised(lexical(text))
        return cache[text]

    def backend_scores(query: str) -> NDArray[np.float32]:
        return backends.scores(analyzer.query_terms(query))

    def soft(weight: float) -> Scores:
        def score(query: str) -> NDArray[np.float32]:
            combined: NDArray[np.float32] = cached(query) + weight * normalised(backend_scores(query))[backend_of]
            return combined

        return score

    def two_stage(top: int) -> Scores:
        def score(query: str) -> NDArray[np.float32]:
            chosen = np.argsort(-backend_scores(query), kind="stable")[:top]
            return cached(query) + 1e6 * np.isin(backend_of, chosen)

        return score

    def sibling_smoothing(weight: float, top: int) -> Scores:
        """Each tool gains the mean of its backend's `top` best scores."""

        def score(query: str) -> NDArray[np.float32]:
            scores = cached(query)
            order = np.lexsort((-scores, backend_of))
            grouped = backend_of[order]
            first = np.r_[0, np.flatnonzero(np.diff(grouped)) + 1]
            rank = np.arange(len(order)) - np.repeat(first, np.diff(np.r_[first, len(order)]))
            keep = rank < top
            totals = np.zeros(len(names), dtype=np.float32)
            np.add.at(totals, grouped[keep], scores[order][keep])
            smoothed: NDArray[np.float32] = (scores + weight * totals[backend_of] / top).astype(np.float32)
            return smoothed

        return score

    def clause_max(pattern: re.Pattern[str], weight: float) -> Scores:
        """The whole query's score plus the best normalised score the tool gets for one clause."""

        def score(query: str) -> NDArray[np.float32]:
            parts = clauses(query, pattern, analyzer)
            if len(parts) < 2:
                return cached(query)
            best: NDArray[np.float32] = np.max([cached(part) for part in parts], axis=0)
            return cached(query) + weight * best

        return score

    def interleaved(query: str) -> list[int]:
        lists = [np.argsort(-cached(query), kind="stable")[:100].tolist()]
        parts = clauses(query, CLAUSE, analyzer)
        if len(parts) > 1:
            lists += [np.argsort(-cached(part), kind="stable")[:100].tolist() for part in parts]
        seen: set[int] = set()
        order: list[int] = []
        for tier in zip(*lists, strict=False):
            for item in tier:
                if item not in seen:
                    seen.add(item)
                    order.append(int(item))
        return order

    ids = engine.ids
    return [
        ("lexical + backend-document BM25F x0.25", Ranker(ids, soft(0.25))),
        ("two-stage: tools of the top 3 backends", Ranker(ids, two_stage(3))),
        ("sibling smoothing: + 0.25 x backend's top-3 mean", Ranker(ids, sibling_smoothing(0.25, 3))),
        ("multi-need: + 1.0 x best clause (sentences, and/then)", Ranker(ids, clause_max(SENTENCE, 1.0))),
        ("multi-need: + 0.5 x best clause (also commas)", Ranker(ids, clause_max(CLAUSE, 0.5))),
        ("multi-need: whole query + clauses interleaved", OrderRanker(ids, interleaved)),
    ]


def semantic_index(catalogue: Catalogue, cache: Path) -> SemanticIndex:
    index = SemanticIndex(load_encoder(), cache)
    for info in catalogue.backends:
        index.set_segment(
            info.name,
            [embedding_text(doc.name, doc.title, doc.description) for doc in catalogue.docs[info.name]],
        )
    index.matrix()
    return index


def semantic_variants(
    catalogue: Catalogue, engine: SearchEngine, index: SemanticIndex, cache: Path
) -> list[tuple[str, Searcher]]:
    ids = engine.ids
    analyzer = Analyzer()
    lexical = scores_of(engine)
    bm25f = scores_of(lexical_engine(catalogue, likelihood=LikelihoodParams(weight=0.0)))

    def tools(query: str) -> NDArray[np.float32]:
        return index.similarities(query)[0]

    def with_backend(query: str) -> NDArray[np.float32]:
        tool, backend = index.similarities(query)
        combined: NDArray[np.float32] = tool + backend
        return combined

    def fused(base: Scores, weight: float) -> Scores:
        def score(query: str) -> NDArray[np.float32]:
            return normalised(base(query)) + weight * with_backend(query)

        return score

    def standard(weight: float) -> Scores:
        def score(query: str) -> NDArray[np.float32]:
            words = lexical(query)
            return standardised(words, words > 0) + weight * standardised(with_backend(query))

        return score

    def reciprocal(k: float) -> Scores:
        def score(query: str) -> NDArray[np.float32]:
            return 1.0 / (k + ranks_of(lexical(query))) + 1.0 / (k + ranks_of(with_backend(query)))

        return score

    def clause_similarity(weight: float) -> Scores:
        """Similarity to the whole query, plus the best similarity to one of its clauses."""

        def score(query: str) -> NDArray[np.float32]:
            whole = with_backend(query)
            parts = clauses(query, SENTENCE, analyzer)
            if len(parts) < 2:
                return normalised(lexical(query)) + 0.5 * whole
            best: NDArray[np.float32] = np.max([with_backend(part) for part in parts], axis=0)
            mixed = (whole + weight * best) / (1.0 + weight)
            combined: NDArray[np.float32] = (normalised(lexical(query)) + 0.5 * mixed).astype(np.float32)
            return combined

        return score

    fused_engine = build_engine(catalogue.backends, catalogue.docs, semantic=True, embedding_cache=cache)

    def feedback(**options: Any) -> WithFeedback:
        return WithFeedback(fused_engine, Feedback(**options))

    return [
        ("semantic only (MiniLM, tool)", Ranker(ids, tools)),
        ("semantic only + backend similarity", Ranker(ids, with_backend)),
        ("previous default: BM25F/best + 0.5 x (tool + backend)", Ranker(ids, fused(bm25f, 0.5))),
        ("score fusion: lexical/best + 0.25 x (tool + backend)", Ranker(ids, fused(lexical, 0.25))),
        ("score fusion: lexical/best + 0.5 x (tool + backend)", Ranker(ids, fused(lexical, 0.5))),
        ("score fusion: z-scores, semantic x 1", Ranker(ids, standard(1.0))),
        ("reciprocal rank fusion (k = 60)", Ranker(ids, reciprocal(60.0))),
        ("score fusion + best clause similarity", Ranker(ids, clause_similarity(1.0))),
        ("lexical, model's best at rank 2", Composed(ids, lexical, with_backend, 1)),
        ("lexical, model's best at rank 3 (no feedback)", WithFeedback(fused_engine, None)),
        ("lexical, model's best at rank 4", Composed(ids, lexical, with_backend, 3)),
        ("lexical, model's best (tool only) at rank 3", Composed(ids, lexical, tools, 2)),
        ("+ semantic feedback, 10 tools x 0.5, keep 2 (default)", feedback()),
        ("+ semantic feedback, 5 tools", feedback(tools=5)),
        ("+ semantic feedback, 20 tools", feedback(tools=20)),
        ("+ semantic feedback, weight 0.2", feedback(weight=0.2)),
        ("+ semantic feedback, weight 1", feedback(weight=1.0)),
        ("+ semantic feedback, keep 0 (widened from the first place)", feedback(keep=0)),
        ("+ semantic feedback, keep 1", feedback(keep=1)),
    ]


def quality(
    catalogue: Catalogue, queries: Sequence[Query], variants: list[tuple[str, Searcher]]
) -> list[dict[str, Any]]:
    """Every variant over all tasks, each half of the 2-fold split, and the own-source scope."""
    parts = halves(len(queries))
    rows = []
    for name, searcher in variants:
        result = evaluate(searcher, queries, ids=catalogue.ids, sources=catalogue.sources)
        result["halves"] = [evaluate(searcher, [queries[i] for i in half], ids=catalogue.ids) for half in parts]
        rows.append({"variant": name, **result})
        own, (first, second) = result["source"], result["halves"]
        print(
            f"{name:56s} {result['r1']:.3f} {result['r5']:.3f} {result['r10']:.3f} {result['mrr']:.3f}"
            f" {result['p50_ms']:7.2f} {result['p95_ms']:7.2f}"
            f" | {first['r1']:.3f} {first['r5']:.3f} | {second['r1']:.3f} {second['r5']:.3f}"
            f" | {own['r1']:.3f} {own['r5']:.3f} {own['r10']:.3f}",
            flush=True,
        )
    return rows


def halves(count: int) -> list[list[int]]:
    order = list(range(count))
    random.Random(FOLD_SEED).shuffle(order)
    return [order[: count // 2], order[count // 2 :]]


def two_fold(catalogue: Catalogue, queries: Sequence[Query], index: SemanticIndex | None) -> dict[str, Any]:
    """Tune on one half of the tasks, report the other half; both ways, and pooled."""
    grid: dict[str, Searcher] = {}
    engines: dict[str, SearchEngine] = {}
    for name, description, backend, weight in itertools.product(
        (5.0, 10.0, 20.0), (300.0, 1000.0, 3000.0), (5.0, 20.0), (1.0, 2.0)
    ):
        label = f"lexical priors name={name} description={description} backend={backend} weight={weight}"
        params = LikelihoodParams(name=name, description=description, backend=backend, weight=weight)
        engines[label] = lexical_engine(catalogue, likelihood=params)
        grid[label] = engines[label]
    defaults = {"lexical": "lexical priors name=20.0 description=1000.0 backend=5.0 weight=2.0"}
    if index is not None:
        engine = engines[defaults["lexical"]]
        lexical = scores_of(engine)

        def semantic(query: str) -> NDArray[np.float32]:
            tool, backend = index.similarities(query)
            combined: NDArray[np.float32] = tool + backend
            return combined

        for weight, rank in itertools.product((0.0, 0.25, 0.5), (None, 1, 2, 3)):

            def base(query: str, weight: float = weight) -> NDArray[np.float32]:
                return normalised(lexical(query)) + weight * semantic(query) if weight else lexical(query)

            grid[f"fused weight={weight} rank={rank}"] = Composed(engine.ids, base, semantic, rank)
        fused = build_engine(catalogue.backends, catalogue.docs, semantic=True, embedding_cache=index.cache_path)
        grid["feedback off"] = WithFeedback(fused, None)
        for tools, weight, keep in itertools.product((5, 10, 20), (0.2, 0.35, 0.5), (1, 2)):
            setting = Feedback(tools=tools, weight=weight, keep=keep)
            grid[f"feedback tools={tools} weight={weight} keep={keep}"] = WithFeedback(fused, setting)
        defaults["fused"] = "fused weight=0.0 rank=2"
        defaults["feedback"] = "feedback tools=10 weight=0.5 keep=2"
    parts = halves(len(queries))
    results = {
        label: [evaluate(searcher, [queries[i] for i in half], ids=catalogue.ids) for half in parts]
        for label, searcher in grid.items()
    }
    report: dict[str, Any] = {}
    for prefix, default in defaults.items():
        labels = [label for label in results if label.startswith(prefix)]
        pooled: dict[str, float] = {}
        for tune, test in ((0, 1), (1, 0)):
            best = max(labels, key=lambda label: results[label][tune]["r1"] + results[label][tune]["r5"])
            chosen, fixed = results[best][test], results[default][test]
            key = f"{prefix}: tune on half {tune + 1}, test on half {test + 1}"
            report[key] = {"chosen": best, "chosen_test": chosen, "default_test": fixed}
            for metric in ("r1", "r5", "r10", "mrr"):
                pooled[metric] = pooled.get(metric, 0.0) + chosen[metric] * chosen["n"] / len(queries)
            print(
                f"{key}: chose [{best}] -> test R@1 {chosen['r1']:.3f} R@5 {chosen['r5']:.3f}"
                f" | default on the same half R@1 {fixed['r1']:.3f} R@5 {fixed['r5']:.3f}",
                flush=True,
            )
        report[f"{prefix}: held-out, both halves"] = pooled
        print(
            f"{prefix}: held-out over all tasks R@1 {pooled['r1']:.3f} R@5 {pooled['r5']:.3f}"
            f" R@10 {pooled['r10']:.3f} MRR {pooled['mrr']:.3f}",
            flush=True,
        )
    return report


def rss_bytes() -> int:
    with open("/proc/self/statm", encoding="ascii") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def synthetic(catalogue: Catalogue, total: int) -> list[tuple[BackendInfo, list[SearchDoc]]]:
    """The catalogue plus forks: copies of random tools under new backends, seven to a backend."""
    rng = random.Random(7)
    every = [doc for info in catalogue.backends for doc in catalogue.docs[info.name]]
    groups = [(info, list(catalogue.docs[info.name])) for info in catalogue.backends]
    extra = total - len(every)
    for number in range((extra + 6) // 7):
        name = f"fork-{number}"
        picks = rng.sample(every, min(7, extra - 7 * number))
        docs = [replace(doc, id=f"{name}.{doc.name}-{i}", backend=name) for i, doc in enumerate(picks)]
        groups.append((BackendInfo(name, title=f"Fork {number}"), docs))
    return groups


def latencies(engine: SearchEngine, texts: Sequence[str]) -> tuple[float, float]:
    return timed(lambda text: engine.search(text, 5), texts)


def timed(run: Callable[[str], object], texts: Sequence[str]) -> tuple[float, float]:
    """p50 and p95 milliseconds of `run` over `texts`."""
    times = []
    for text in texts:
        started = time.perf_counter()
        run(text)
        times.append((time.perf_counter() - started) * 1000.0)
    times.sort()
    return statistics.median(times), times[int(0.95 * (len(times) - 1))]


def scale(catalogue: Catalogue, queries: Sequence[Query], cache: Path | None) -> dict[str, Any]:
    groups = synthetic(catalogue, SCALE_TOOLS)
    texts = [queries[i % len(queries)].text + ("" if i < len(queries) else f" {i}") for i in range(LATENCY_QUERIES)]
    report: dict[str, Any] = {"tools": sum(len(docs) for _, docs in groups)}
    gc.collect()
    before = rss_bytes()
    started = time.perf_counter()
    engine = SearchEngine(semantic=False)
    for info, docs in groups:
        engine.set_backend(info, docs)
    analysed = time.perf_counter()
    engine.prepare()
    merged = time.perf_counter()
    report["lexical_index_s"] = merged - started
    report["lexical_analysis_s"] = analysed - started
    report["lexical_merge_s"] = merged - analysed
    report["lexical_rss_mb"] = (rss_bytes() - before) / 2**20
    report["lexical_arrays_mb"] = engine.memory_bytes() / 2**20
    engine.search("warm up", 5)
    report["lexical_p50_ms"], report["lexical_p95_ms"] = latencies(engine, texts)
    info, docs = max(groups, key=lambda group: len(group[1]))
    changed = [replace(doc, description=doc.description + " updated") for doc in docs]
    started = time.perf_counter()
    engine.set_backend(info, changed)
    engine.search(texts[0], 5)
    report["update_one_backend_ms"] = (time.perf_counter() - started) * 1000.0
    report["update_backend_tools"] = len(docs)
    print(
        f"lexical @ {report['tools']} tools: index {report['lexical_index_s']:.2f}s"
        f" (analysis {report['lexical_analysis_s']:.2f}s, merge {report['lexical_merge_s'] * 1000:.0f}ms),"
        f" RSS +{report['lexical_rss_mb']:.0f} MB (arrays {report['lexical_arrays_mb']:.0f} MB),"
        f" search p50 {report['lexical_p50_ms']:.2f} ms p95 {report['lexical_p95_ms']:.2f} ms,"
        f" one backend ({len(docs)} tools) replaced + next search {report['update_one_backend_ms']:.0f} ms",
        flush=True,
    )
    if cache is None:
        return report
    gc.collect()
    before = rss_bytes()
    started = time.perf_counter()
    fused = SearchEngine(semantic=True, embedding_cache=cache)
    for info, docs in groups:
        fused.set_backend(info, docs)
    fused.prepare()
    report["semantic_index_cached_s"] = time.perf_counter() - started
    report["semantic_rss_mb"] = (rss_bytes() - before) / 2**20
    fused.search("warm up", 5)
    report["fused_p50_ms"], report["fused_p95_ms"] = latencies(fused, texts)
    # The same work without semantic feedback, and the query's embedding alone (fresh texts each:
    # the index caches query embeddings).
    fused.feedback = None
    report["fused_no_feedback_p50_ms"], report["fused_no_feedback_p95_ms"] = latencies(
        fused, [f"{text} again" for text in texts]
    )
    report["embed_query_p50_ms"], _ = timed(fused.semantic_scores, [f"{text} once more" for text in texts])
    encoder = load_encoder()
    sample = [
        embedding_text(doc.name, doc.title, doc.description) + " (fresh)" for _, docs in groups[:60] for doc in docs
    ]
    sample = sample[:256]
    started = time.perf_counter()
    encoder.encode(sample)
    per_doc = (time.perf_counter() - started) / len(sample)
    report["embed_docs_per_s"] = 1.0 / per_doc
    report["embed_10k_estimate_s"] = per_doc * SCALE_TOOLS
    print(
        f"fused @ {report['tools']} tools: index from cache {report['semantic_index_cached_s']:.2f}s,"
        f" RSS +{report['semantic_rss_mb']:.0f} MB (model and matrix, on top of lexical),"
        f" search p50 {report['fused_p50_ms']:.2f} ms p95 {report['fused_p95_ms']:.2f} ms"
        f" (without feedback {report['fused_no_feedback_p50_ms']:.2f} / {report['fused_no_feedback_p95_ms']:.2f} ms,"
        f" embedding the query alone p50 {report['embed_query_p50_ms']:.2f} ms);"
        f" embedding new tools {report['embed_docs_per_s']:.0f}/s"
        f" (~{report['embed_10k_estimate_s']:.0f}s for 10,000 uncached)",
        flush=True,
    )
    return report


def machine() -> dict[str, str]:
    model = ""
    for line in subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout.splitlines():
        if line.startswith("Model name:"):
            model = line.split(":", 1)[1].strip()
    return {"cpu": model, "cores": str(os.cpu_count()), "date": time.strftime("%Y-%m-%d %H:%M %Z")}


@dataclass
class WithFeedback:
    """The engine searched with one semantic-feedback setting (the engine is shared, not copied)."""

    engine: SearchEngine
    feedback: Feedback | None

    def search(self, query: str, limit: int = 5, *, allow: Callable[[str], bool] | None = None) -> list[Hit]:
        self.engine.feedback = self.feedback
        return self.engine.search(query, limit, allow=allow)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--benchmark", type=Path, default=DEFAULT_BENCHMARK)
    parser.add_argument("--no-semantic", action="store_true", help="skip the variants that need the model")
    parser.add_argument("--embedding-cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--scale-only", action="store_true", help="only the 10,000-tool measurements")
    parser.add_argument("--skip-scale", action="store_true", help="only the quality measurements")
    parser.add_argument("--json", type=Path, help="also write every figure to this file")
    args = parser.parse_args()
    catalogue = read_catalogue(args.benchmark / "catalogue.jsonl")
    queries = load_queries(args.benchmark / "queries-dev.jsonl")
    print(f"{machine()} — {len(catalogue.ids)} tools, {len(queries)} tasks", flush=True)
    # Scale first, while the process holds nothing else, so the RSS deltas are the indexes'.
    scale_report = (
        {} if args.skip_scale else scale(catalogue, queries, None if args.no_semantic else args.embedding_cache)
    )
    if args.scale_only:
        return
    print(
        f"{'variant':56s} R@1   R@5   R@10  MRR    p50ms   p95ms"
        " | half 1 R@1 R@5 | half 2 R@1 R@5 | own source R@1 R@5 R@10"
    )
    variants = lexical_variants(catalogue)
    default = variants[3][1]
    assert isinstance(default, SearchEngine)
    variants += structural_variants(catalogue, default)
    index = None
    if not args.no_semantic:
        index = semantic_index(catalogue, args.embedding_cache)
        variants += semantic_variants(catalogue, default, index, args.embedding_cache)
    report: dict[str, Any] = {"machine": machine(), "quality": quality(catalogue, queries, variants)}
    report["two_fold"] = two_fold(catalogue, queries, index)
    report["scale"] = scale_report
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2, default=float), encoding="utf-8")


if __name__ == "__main__":
    main()
