"""The one search engine behind `search_tools`, `quiver search` and `quiver eval-search`.

Documents are grouped by backend so that a backend's tools can be replaced in one step when
its tool list changes. The index is rebuilt lazily on the first query after a change.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

_TOKEN = re.compile(r"[A-Za-z][a-z]+|[A-Z]+(?![a-z])|\d+|[^\W\d_]+", re.UNICODE)


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


def tokenize(text: str) -> list[str]:
    """Lower-cased words, with snake_case, kebab-case and camelCase split apart."""
    return [token.lower() for token in _TOKEN.findall(text)]


def _document_text(doc: SearchDoc, backend: BackendInfo | None) -> str:
    properties = doc.input_schema.get("properties") if isinstance(doc.input_schema, Mapping) else None
    params = " ".join(str(name) for name in properties) if isinstance(properties, Mapping) else ""
    parts = [doc.name, doc.title or "", doc.description, params]
    if backend is not None:
        parts += [backend.name, backend.title or "", backend.description or ""]
    return " ".join(parts)


class SearchEngine:
    """BM25 over tool names, descriptions and parameter names."""

    def __init__(self) -> None:
        self._docs: dict[str, list[SearchDoc]] = {}
        self._backends: dict[str, BackendInfo] = {}
        self._index: Any = None
        self._order: list[SearchDoc] = []

    def __len__(self) -> int:
        return sum(len(docs) for docs in self._docs.values())

    def set_backend(self, info: BackendInfo, docs: Sequence[SearchDoc]) -> None:
        """Replace everything known of one backend."""
        self._backends[info.name] = info
        self._docs[info.name] = list(docs)
        self._index = None

    def remove_backend(self, name: str) -> None:
        self._backends.pop(name, None)
        if self._docs.pop(name, None) is not None:
            self._index = None

    def search(self, query: str, limit: int = 5, *, allow: Callable[[str], bool] | None = None) -> list[Hit]:
        """The best `limit` tools for `query`, best first; `allow` filters ids before ranking."""
        terms = tokenize(query)
        if not terms or limit <= 0:
            return []
        index = self._ensure_index()
        if index is None:
            return []
        import numpy as np

        scores = index.get_scores(terms)
        ranked = np.argsort(-scores, kind="stable")
        hits: list[Hit] = []
        for position in ranked:
            score = float(scores[position])
            if score <= 0:
                break
            doc = self._order[int(position)]
            if allow is not None and not allow(doc.id):
                continue
            hits.append(Hit(doc.id, score))
            if len(hits) >= limit:
                break
        return hits

    def _ensure_index(self) -> Any:
        if self._index is not None:
            return self._index
        self._order = [doc for docs in self._docs.values() for doc in docs]
        if not self._order:
            return None
        import bm25s

        corpus = [tokenize(_document_text(doc, self._backends.get(doc.backend))) for doc in self._order]
        index = bm25s.BM25()
        index.index(corpus, show_progress=False)
        self._index = index
        return index
